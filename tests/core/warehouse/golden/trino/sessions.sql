/* ExperimentOS Checkout button colour: fact source 'sessions', exposure days 2026-03-02..2026-03-15 */
SELECT
  "t10"."variant",
  "t10"."day",
  "t10"."platform",
  COUNT(*) AS "n",
  SUM("t10"."future_facts") AS "future_facts",
  SUM("t10"."v0") AS "m0_sum",
  SUM("t10"."v0" * "t10"."v0") AS "m0_sum_squares",
  SUM("t10"."d0") AS "m0_sum_den",
  SUM("t10"."d0" * "t10"."d0") AS "m0_sum_den_squares",
  SUM("t10"."v0" * "t10"."d0") AS "m0_sum_num_den"
FROM (
  SELECT
    "t9"."variant",
    "t9"."platform",
    DATE("t9"."first_seen") AS "day",
    COALESCE("t9"."future_facts", 0) AS "future_facts",
    COALESCE("t9"."v0", 0) AS "v0",
    COALESCE("t9"."d0", 0) AS "d0"
  FROM (
    SELECT
      "t8"."unit_id",
      "t8"."first_seen",
      "t8"."variant",
      "t8"."platform",
      SUM(
        IF(
          "t8"."timestamp" > CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP),
          1,
          0
        )
      ) AS "future_facts",
      SUM(
        IF(
          (
            "t8"."timestamp" >= "t8"."first_seen"
          )
          AND (
            "t8"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
          )
          AND (
            "t8"."timestamp" < (
              "t8"."first_seen" + INTERVAL '3' DAY
            )
          ),
          "t8"."page_views",
          CAST(0.0 AS DOUBLE)
        )
      ) AS "v0",
      SUM(
        IF(
          (
            "t8"."timestamp" >= "t8"."first_seen"
          )
          AND (
            "t8"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
          )
          AND (
            "t8"."timestamp" < (
              "t8"."first_seen" + INTERVAL '3' DAY
            )
          ),
          "t8"."session_count",
          CAST(0.0 AS DOUBLE)
        )
      ) AS "d0"
    FROM (
      SELECT
        "t7"."unit_id",
        "t7"."first_seen",
        "t7"."variants",
        "t7"."variant",
        "t7"."platform",
        "t4"."fact_unit",
        "t4"."timestamp",
        "t4"."page_views",
        "t4"."session_count"
      FROM (
        SELECT
          *
        FROM (
          SELECT
            "t3"."unit_id",
            MIN("t3"."timestamp") AS "first_seen",
            IF(MIN("t3"."variant") = MAX("t3"."variant"), 1, 2) AS "variants",
            MIN("t3"."variant") AS "variant",
            COALESCE(MIN_BY("t3"."platform", "t3"."timestamp"), '(none)') AS "platform"
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
            ) AS "t1"
            WHERE
              "t1"."experiment_key" = 'checkout_button' AND "t1"."unit_id" IS NOT NULL
          ) AS "t3"
          GROUP BY
            1
        ) AS "t5"
        WHERE
          "t5"."variants" = 1
          AND "t5"."first_seen" >= CAST(FROM_ISO8601_TIMESTAMP('2026-03-02T00:00:00') AS TIMESTAMP)
          AND "t5"."first_seen" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
      ) AS "t7"
      LEFT OUTER JOIN (
        SELECT
          "t0"."unit_id" AS "fact_unit",
          "t0"."timestamp",
          "t0"."page_views",
          "t0"."session_count"
        FROM (
          SELECT
            user_id AS unit_id,
            started_at AS timestamp,
            1 AS session_count,
            page_views
          FROM analytics.sessions
        ) AS "t0"
        WHERE
          "t0"."timestamp" >= CAST(FROM_ISO8601_TIMESTAMP('2026-03-02T00:00:00') AS TIMESTAMP)
          AND "t0"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
      ) AS "t4"
        ON "t7"."unit_id" = "t4"."fact_unit"
        AND "t4"."timestamp" >= "t7"."first_seen"
        AND "t4"."timestamp" < LEAST(
          "t7"."first_seen" + INTERVAL '3' DAY,
          CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
        )
    ) AS "t8"
    GROUP BY
      1,
      2,
      3,
      4
  ) AS "t9"
) AS "t10"
GROUP BY
  1,
  2,
  3
LIMIT 100001