/* ExperimentOS Checkout button colour: fact source 'sessions', exposure days 2026-03-02..2026-03-15 */
WITH "t5" AS (
  SELECT
    "t2"."unit_id",
    MIN("t2"."timestamp") AS "first_seen",
    IF(MIN("t2"."variant") = MAX("t2"."variant"), 1, 2) AS "variants",
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
)
SELECT
  "t14"."variant",
  "t14"."day",
  "t14"."platform",
  COUNT(*) AS "n",
  SUM("t14"."future_facts") AS "future_facts",
  SUM("t14"."v0") AS "m0_sum",
  SUM("t14"."v0" * "t14"."v0") AS "m0_sum_squares",
  SUM("t14"."d0") AS "m0_sum_den",
  SUM("t14"."d0" * "t14"."d0") AS "m0_sum_den_squares",
  SUM("t14"."v0" * "t14"."d0") AS "m0_sum_num_den"
FROM (
  SELECT
    "t9"."variant",
    "t9"."platform",
    DATE("t9"."first_seen") AS "day",
    COALESCE("t13"."future_facts", 0) AS "future_facts",
    COALESCE("t13"."v0", 0) AS "v0",
    COALESCE("t13"."d0", 0) AS "d0"
  FROM (
    SELECT
      *
    FROM "t5" AS "t6"
    WHERE
      "t6"."variants" = 1
      AND "t6"."first_seen" >= CAST(FROM_ISO8601_TIMESTAMP('2026-03-02T00:00:00') AS TIMESTAMP)
      AND "t6"."first_seen" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
  ) AS "t9"
  LEFT OUTER JOIN (
    SELECT
      "t11"."span_unit",
      SUM(
        IF(
          "t11"."timestamp" > CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP),
          1,
          0
        )
      ) AS "future_facts",
      SUM(
        IF(
          (
            "t11"."timestamp" >= "t11"."span_first"
          )
          AND (
            "t11"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
          )
          AND (
            "t11"."timestamp" < (
              "t11"."span_first" + INTERVAL '3' DAY
            )
          ),
          "t11"."page_views",
          CAST(0.0 AS DOUBLE)
        )
      ) AS "v0",
      SUM(
        IF(
          (
            "t11"."timestamp" >= "t11"."span_first"
          )
          AND (
            "t11"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
          )
          AND (
            "t11"."timestamp" < (
              "t11"."span_first" + INTERVAL '3' DAY
            )
          ),
          "t11"."session_count",
          CAST(0.0 AS DOUBLE)
        )
      ) AS "d0"
    FROM (
      SELECT
        "t10"."span_unit",
        "t10"."span_first",
        "t4"."fact_unit",
        "t4"."timestamp",
        "t4"."page_views",
        "t4"."session_count"
      FROM (
        SELECT
          "t6"."unit_id" AS "span_unit",
          "t6"."first_seen" AS "span_first"
        FROM "t5" AS "t6"
        WHERE
          "t6"."variants" = 1
          AND "t6"."first_seen" >= CAST(FROM_ISO8601_TIMESTAMP('2026-03-02T00:00:00') AS TIMESTAMP)
          AND "t6"."first_seen" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
      ) AS "t10"
      INNER JOIN (
        SELECT
          "t1"."unit_id" AS "fact_unit",
          "t1"."timestamp",
          "t1"."page_views",
          "t1"."session_count"
        FROM (
          SELECT
            user_id AS unit_id,
            started_at AS timestamp,
            1 AS session_count,
            page_views
          FROM analytics.sessions
        ) AS "t1"
        WHERE
          "t1"."timestamp" >= CAST(FROM_ISO8601_TIMESTAMP('2026-03-02T00:00:00') AS TIMESTAMP)
          AND "t1"."timestamp" < CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
      ) AS "t4"
        ON "t10"."span_unit" = "t4"."fact_unit"
        AND "t4"."timestamp" >= "t10"."span_first"
        AND "t4"."timestamp" < LEAST(
          "t10"."span_first" + INTERVAL '3' DAY,
          CAST(FROM_ISO8601_TIMESTAMP('2026-03-16T00:00:00') AS TIMESTAMP)
        )
    ) AS "t11"
    GROUP BY
      1
  ) AS "t13"
    ON "t9"."unit_id" = "t13"."span_unit"
) AS "t14"
GROUP BY
  1,
  2,
  3
LIMIT 100001