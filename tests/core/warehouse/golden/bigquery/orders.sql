/* ExperimentOS Checkout button colour: fact source 'orders', exposure days 2026-03-02..2026-03-15 */
WITH `t5` AS (
  SELECT
    `t2`.`unit_id`,
    MIN(`t2`.`timestamp`) AS `first_seen`,
    IF(MIN(`t2`.`variant`) = MAX(`t2`.`variant`), 1, 2) AS `variants`,
    MIN(`t2`.`variant`) AS `variant`,
    COALESCE(MIN_BY(`t2`.`platform`, `t2`.`timestamp`), '(none)') AS `platform`
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
    ) AS `t0`
    WHERE
      `t0`.`experiment_key` = 'checkout_button' AND `t0`.`unit_id` IS NOT NULL
  ) AS `t2`
  GROUP BY
    1
)
SELECT
  `t14`.`variant`,
  `t14`.`day`,
  `t14`.`platform`,
  COUNT(*) AS `n`,
  SUM(`t14`.`future_facts`) AS `future_facts`,
  SUM(`t14`.`v0`) AS `m0_sum`,
  SUM(`t14`.`v0` * `t14`.`v0`) AS `m0_sum_squares`,
  SUM(`t14`.`v1`) AS `m1_sum`,
  SUM(`t14`.`v1` * `t14`.`v1`) AS `m1_sum_squares`,
  SUM(`t14`.`x1`) AS `m1_sum_x`,
  SUM(`t14`.`x1` * `t14`.`x1`) AS `m1_sum_x2`,
  SUM(`t14`.`x1` * `t14`.`v1`) AS `m1_sum_xy`,
  SUM(`t14`.`v2`) AS `m2_sum`,
  SUM(`t14`.`v2` * `t14`.`v2`) AS `m2_sum_squares`,
  SUM(`t14`.`d2`) AS `m2_sum_den`,
  SUM(`t14`.`d2` * `t14`.`d2`) AS `m2_sum_den_squares`,
  SUM(`t14`.`v2` * `t14`.`d2`) AS `m2_sum_num_den`,
  SUM(`t14`.`v3`) AS `m3_sum`,
  SUM(`t14`.`v3` * `t14`.`v3`) AS `m3_sum_squares`
FROM (
  SELECT
    `t9`.`variant`,
    `t9`.`platform`,
    DATE(`t9`.`first_seen`) AS `day`,
    COALESCE(`t13`.`future_facts`, 0) AS `future_facts`,
    COALESCE(`t13`.`v0`, 0) AS `v0`,
    COALESCE(`t13`.`v1`, 0) AS `v1`,
    COALESCE(`t13`.`x1`, 0) AS `x1`,
    COALESCE(`t13`.`v2`, 0) AS `v2`,
    COALESCE(`t13`.`d2`, 0) AS `d2`,
    COALESCE(`t13`.`v3`, 0) AS `v3`
  FROM (
    SELECT
      *
    FROM `t5` AS `t6`
    WHERE
      `t6`.`variants` = 1
      AND `t6`.`first_seen` >= DATETIME('2026-03-02T00:00:00')
      AND `t6`.`first_seen` < DATETIME('2026-03-16T00:00:00')
  ) AS `t9`
  LEFT OUTER JOIN (
    SELECT
      `t11`.`span_unit`,
      SUM(IF(`t11`.`timestamp` > DATETIME('2026-03-16T00:00:00'), 1, 0)) AS `future_facts`,
      MAX(
        IF(
          (
            `t11`.`timestamp` >= `t11`.`span_first`
          )
          AND (
            `t11`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t11`.`timestamp` < TIMESTAMP_ADD(`t11`.`span_first`, INTERVAL '7' DAY)
          ),
          1,
          0
        )
      ) AS `v0`,
      SUM(
        IF(
          (
            `t11`.`timestamp` >= `t11`.`span_first`
          )
          AND (
            `t11`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t11`.`timestamp` < TIMESTAMP_ADD(`t11`.`span_first`, INTERVAL '7' DAY)
          ),
          `t11`.`revenue`,
          0.0
        )
      ) AS `v1`,
      SUM(
        IF(
          (
            `t11`.`timestamp` >= TIMESTAMP_SUB(`t11`.`span_first`, INTERVAL '14' DAY)
          )
          AND (
            `t11`.`timestamp` < `t11`.`span_first`
          ),
          `t11`.`revenue`,
          0.0
        )
      ) AS `x1`,
      SUM(
        IF(
          (
            `t11`.`timestamp` >= `t11`.`span_first`
          )
          AND (
            `t11`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t11`.`timestamp` < TIMESTAMP_ADD(`t11`.`span_first`, INTERVAL '7' DAY)
          ),
          `t11`.`revenue`,
          0.0
        )
      ) AS `v2`,
      SUM(
        IF(
          (
            `t11`.`timestamp` >= `t11`.`span_first`
          )
          AND (
            `t11`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t11`.`timestamp` < TIMESTAMP_ADD(`t11`.`span_first`, INTERVAL '7' DAY)
          )
          AND (
            `t11`.`revenue` IS NOT NULL
          ),
          1,
          0
        )
      ) AS `d2`,
      SUM(
        IF(
          (
            `t11`.`timestamp` >= `t11`.`span_first`
          )
          AND (
            `t11`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t11`.`items` IS NOT NULL
          ),
          1,
          0
        )
      ) AS `v3`
    FROM (
      SELECT
        `t10`.`span_unit`,
        `t10`.`span_first`,
        `t4`.`fact_unit`,
        `t4`.`timestamp`,
        `t4`.`items`,
        `t4`.`revenue`
      FROM (
        SELECT
          `t6`.`unit_id` AS `span_unit`,
          `t6`.`first_seen` AS `span_first`
        FROM `t5` AS `t6`
        WHERE
          `t6`.`variants` = 1
          AND `t6`.`first_seen` >= DATETIME('2026-03-02T00:00:00')
          AND `t6`.`first_seen` < DATETIME('2026-03-16T00:00:00')
      ) AS `t10`
      INNER JOIN (
        SELECT
          `t1`.`unit_id` AS `fact_unit`,
          `t1`.`timestamp`,
          `t1`.`items`,
          `t1`.`revenue`
        FROM (
          SELECT
            user_id AS unit_id,
            ordered_at AS timestamp,
            revenue,
            items
          FROM analytics.orders
          WHERE
            status = 'paid'
        ) AS `t1`
        WHERE
          `t1`.`timestamp` >= DATETIME('2026-02-16T00:00:00')
          AND `t1`.`timestamp` < DATETIME('2026-03-16T00:00:00')
      ) AS `t4`
        ON `t10`.`span_unit` = `t4`.`fact_unit`
        AND `t4`.`timestamp` >= TIMESTAMP_SUB(`t10`.`span_first`, INTERVAL '14' DAY)
        AND `t4`.`timestamp` < DATETIME('2026-03-16T00:00:00')
    ) AS `t11`
    GROUP BY
      1
  ) AS `t13`
    ON `t9`.`unit_id` = `t13`.`span_unit`
) AS `t14`
GROUP BY
  1,
  2,
  3
LIMIT 100001