/* ExperimentOS Checkout button colour: fact source 'orders', exposure days 2026-03-02..2026-03-15 */
SELECT
  "t9"."variant",
  "t9"."day",
  "t9"."platform",
  COUNT(*) AS "n",
  SUM("t9"."future_facts") AS "future_facts",
  SUM("t9"."v0") AS "m0_sum",
  SUM("t9"."v0" * "t9"."v0") AS "m0_sum_squares",
  SUM("t9"."v1") AS "m1_sum",
  SUM("t9"."v1" * "t9"."v1") AS "m1_sum_squares",
  SUM("t9"."x1") AS "m1_sum_x",
  SUM("t9"."x1" * "t9"."x1") AS "m1_sum_x2",
  SUM("t9"."x1" * "t9"."v1") AS "m1_sum_xy",
  SUM("t9"."v2") AS "m2_sum",
  SUM("t9"."v2" * "t9"."v2") AS "m2_sum_squares",
  SUM("t9"."d2") AS "m2_sum_den",
  SUM("t9"."d2" * "t9"."d2") AS "m2_sum_den_squares",
  SUM("t9"."v2" * "t9"."d2") AS "m2_sum_num_den",
  SUM("t9"."v3") AS "m3_sum",
  SUM("t9"."v3" * "t9"."v3") AS "m3_sum_squares"
FROM (
  SELECT
    "t8"."variant",
    "t8"."platform",
    DATE("t8"."first_seen") AS "day",
    COALESCE("t8"."future_facts", 0) AS "future_facts",
    COALESCE("t8"."v0", 0) AS "v0",
    COALESCE("t8"."v1", 0) AS "v1",
    COALESCE("t8"."x1", 0) AS "x1",
    COALESCE("t8"."v2", 0) AS "v2",
    COALESCE("t8"."d2", 0) AS "d2",
    COALESCE("t8"."v3", 0) AS "v3"
  FROM (
    SELECT
      "t7"."unit_id",
      "t7"."first_seen",
      "t7"."variants",
      "t7"."variant",
      "t7"."platform",
      SUM(
        IF(
          "t7"."timestamp" > CAST(FROM_ISO8601_TIMESTAMP('2000-01-01T00:00:00') AS TIMESTAMP),
          1,
          0
        )
      ) AS "future_facts",
      MAX(
        IF(
          (
            "t7"."timestamp" >= "t7"."first_seen"
          )
          AND (
            "t7"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
          )
          AND (
            "t7"."timestamp" < (
              "t7"."first_seen" + INTERVAL '7' DAY
            )
          ),
          1,
          0
        )
      ) AS "v0",
      SUM(
        IF(
          (
            "t7"."timestamp" >= "t7"."first_seen"
          )
          AND (
            "t7"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
          )
          AND (
            "t7"."timestamp" < (
              "t7"."first_seen" + INTERVAL '7' DAY
            )
          ),
          "t7"."revenue",
          CAST(0.0 AS DOUBLE)
        )
      ) AS "v1",
      SUM(
        IF(
          (
            "t7"."timestamp" >= (
              "t7"."first_seen" - INTERVAL '14' DAY
            )
          )
          AND (
            "t7"."timestamp" < "t7"."first_seen"
          ),
          "t7"."revenue",
          CAST(0.0 AS DOUBLE)
        )
      ) AS "x1",
      SUM(
        IF(
          (
            "t7"."timestamp" >= "t7"."first_seen"
          )
          AND (
            "t7"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
          )
          AND (
            "t7"."timestamp" < (
              "t7"."first_seen" + INTERVAL '7' DAY
            )
          ),
          "t7"."revenue",
          CAST(0.0 AS DOUBLE)
        )
      ) AS "v2",
      SUM(
        IF(
          (
            "t7"."timestamp" >= "t7"."first_seen"
          )
          AND (
            "t7"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
          )
          AND (
            "t7"."timestamp" < (
              "t7"."first_seen" + INTERVAL '7' DAY
            )
          )
          AND (
            "t7"."revenue" IS NOT NULL
          ),
          1,
          0
        )
      ) AS "d2",
      SUM(
        IF(
          (
            "t7"."timestamp" >= "t7"."first_seen"
          )
          AND (
            "t7"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
          )
          AND (
            "t7"."items" IS NOT NULL
          ),
          1,
          0
        )
      ) AS "v3"
    FROM (
      SELECT
        "t6"."unit_id",
        "t6"."first_seen",
        "t6"."variants",
        "t6"."variant",
        "t6"."platform",
        "t4"."fact_unit",
        "t4"."timestamp",
        "t4"."items",
        "t4"."revenue"
      FROM (
        SELECT
          "t2"."unit_id",
          MIN("t2"."timestamp") AS "first_seen",
          COUNT(DISTINCT "t2"."variant") AS "variants",
          MIN("t2"."variant") AS "variant",
          COALESCE(MIN_BY("t2"."platform", "t2"."timestamp"), '(none)') AS "platform"
        FROM (
          SELECT
            *
          FROM (
            SELECT
              user_id AS unit_id,
              exposed_at AS timestamp,
              experiment AS experiment_key,
              arm AS variant,
              platform
            FROM analytics.assignments
          ) AS "t0"
          WHERE
            "t0"."experiment_key" = 'checkout_button' AND "t0"."unit_id" IS NOT NULL
        ) AS "t2"
        GROUP BY
          1
      ) AS "t6"
      LEFT OUTER JOIN (
        SELECT
          "t1"."unit_id" AS "fact_unit",
          "t1"."timestamp",
          "t1"."items",
          "t1"."revenue"
        FROM (
          SELECT
            user_id AS unit_id,
            ordered_at AS timestamp,
            revenue,
            items
          FROM analytics.orders
          WHERE
            status = 'paid'
        ) AS "t1"
        WHERE
          "t1"."timestamp" >= CAST(FROM_ISO8601_TIMESTAMP('2026-02-16T00:00:00') AS TIMESTAMP)
          AND "t1"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
      ) AS "t4"
        ON "t6"."unit_id" = "t4"."fact_unit"
    ) AS "t7"
    GROUP BY
      1,
      2,
      3,
      4,
      5
  ) AS "t8"
  WHERE
    "t8"."variants" = 1
    AND "t8"."first_seen" >= CAST(FROM_ISO8601_TIMESTAMP('2026-03-02T00:00:00') AS TIMESTAMP)
    AND "t8"."first_seen" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
) AS "t9"
GROUP BY
  1,
  2,
  3
LIMIT 100001