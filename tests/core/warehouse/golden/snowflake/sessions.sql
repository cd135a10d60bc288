/* ExperimentOS Checkout button colour: fact source 'sessions', exposure days 2026-03-02..2026-03-15 */
SELECT
  "t9"."variant",
  "t9"."day",
  "t9"."platform",
  COUNT(*) AS "n",
  SUM("t9"."future_facts") AS "future_facts",
  SUM("t9"."v0") AS "m0_sum",
  SUM("t9"."v0" * "t9"."v0") AS "m0_sum_squares",
  SUM("t9"."d0") AS "m0_sum_den",
  SUM("t9"."d0" * "t9"."d0") AS "m0_sum_den_squares",
  SUM("t9"."v0" * "t9"."d0") AS "m0_sum_num_den"
FROM (
  SELECT
    "t8"."variant",
    "t8"."platform",
    TO_DATE("t8"."first_seen") AS "day",
    COALESCE("t8"."future_facts", 0) AS "future_facts",
    COALESCE("t8"."v0", 0) AS "v0",
    COALESCE("t8"."d0", 0) AS "d0"
  FROM (
    SELECT
      "t7"."unit_id",
      "t7"."first_seen",
      "t7"."variants",
      "t7"."variant",
      "t7"."platform",
      SUM(IFF("t7"."timestamp" > TIMESTAMP_FROM_PARTS(2000, 1, 1, 0, 0, 0, 0), 1, 0)) AS "future_facts",
      SUM(
        IFF(
          (
            "t7"."timestamp" >= "t7"."first_seen"
          )
          AND (
            "t7"."timestamp" < TIMESTAMP_FROM_PARTS(2026, 3, 16, 0, 0, 0, 0)
          )
          AND (
            "t7"."timestamp" < DATEADD(DAY, '3', "t7"."first_seen")
          ),
          "t7"."page_views",
          0.0
        )
      ) AS "v0",
      SUM(
        IFF(
          (
            "t7"."timestamp" >= "t7"."first_seen"
          )
          AND (
            "t7"."timestamp" < TIMESTAMP_FROM_PARTS(2026, 3, 16, 0, 0, 0, 0)
          )
          AND (
            "t7"."timestamp" < DATEADD(DAY, '3', "t7"."first_seen")
          ),
          "t7"."session_count",
          0.0
        )
      ) AS "d0"
    FROM (
      SELECT
        "t6"."unit_id",
        "t6"."first_seen",
        "t6"."variants",
        "t6"."variant",
        "t6"."platform",
        "t4"."fact_unit",
        "t4"."timestamp",
        "t4"."page_views",
        "t4"."session_count"
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
          "t1"."timestamp" >= TIMESTAMP_FROM_PARTS(2026, 3, 2, 0, 0, 0, 0)
          AND "t1"."timestamp" < TIMESTAMP_FROM_PARTS(2026, 3, 16, 0, 0, 0, 0)
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
    AND "t8"."first_seen" >= TIMESTAMP_FROM_PARTS(2026, 3, 2, 0, 0, 0, 0)
    AND "t8"."first_seen" < TIMESTAMP_FROM_PARTS(2026, 3, 16, 0, 0, 0, 0)
) AS "t9"
GROUP BY
  1,
  2,
  3
LIMIT 100001