/* ExperimentOS Checkout button colour: fact source 'orders', exposure days 2026-03-02..2026-03-15 */
SELECT
  `t10`.`variant`,
  `t10`.`day`,
  `t10`.`platform`,
  COUNT(*) AS `n`,
  SUM(`t10`.`future_facts`) AS `future_facts`,
  SUM(`t10`.`v0`) AS `m0_sum`,
  SUM(`t10`.`v0` * `t10`.`v0`) AS `m0_sum_squares`,
  SUM(`t10`.`v1`) AS `m1_sum`,
  SUM(`t10`.`v1` * `t10`.`v1`) AS `m1_sum_squares`,
  SUM(`t10`.`x1`) AS `m1_sum_x`,
  SUM(`t10`.`x1` * `t10`.`x1`) AS `m1_sum_x2`,
  SUM(`t10`.`x1` * `t10`.`v1`) AS `m1_sum_xy`,
  SUM(`t10`.`v2`) AS `m2_sum`,
  SUM(`t10`.`v2` * `t10`.`v2`) AS `m2_sum_squares`,
  SUM(`t10`.`d2`) AS `m2_sum_den`,
  SUM(`t10`.`d2` * `t10`.`d2`) AS `m2_sum_den_squares`,
  SUM(`t10`.`v2` * `t10`.`d2`) AS `m2_sum_num_den`,
  SUM(`t10`.`v3`) AS `m3_sum`,
  SUM(`t10`.`v3` * `t10`.`v3`) AS `m3_sum_squares`
FROM (
  SELECT
    `t9`.`variant`,
    `t9`.`platform`,
    DATE(`t9`.`first_seen`) AS `day`,
    COALESCE(`t9`.`future_facts`, 0) AS `future_facts`,
    COALESCE(`t9`.`v0`, 0) AS `v0`,
    COALESCE(`t9`.`v1`, 0) AS `v1`,
    COALESCE(`t9`.`x1`, 0) AS `x1`,
    COALESCE(`t9`.`v2`, 0) AS `v2`,
    COALESCE(`t9`.`d2`, 0) AS `d2`,
    COALESCE(`t9`.`v3`, 0) AS `v3`
  FROM (
    SELECT
      `t8`.`unit_id`,
      `t8`.`first_seen`,
      `t8`.`variant`,
      `t8`.`platform`,
      SUM(IF(`t8`.`timestamp` > DATETIME('2026-03-16T00:00:00'), 1, 0)) AS `future_facts`,
      MAX(
        IF(
          (
            `t8`.`timestamp` >= `t8`.`first_seen`
          )
          AND (
            `t8`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t8`.`timestamp` < TIMESTAMP_ADD(`t8`.`first_seen`, INTERVAL '7' DAY)
          ),
          1,
          0
        )
      ) AS `v0`,
      SUM(
        IF(
          (
            `t8`.`timestamp` >= `t8`.`first_seen`
          )
          AND (
            `t8`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t8`.`timestamp` < TIMESTAMP_ADD(`t8`.`first_seen`, INTERVAL '7' DAY)
          ),
          `t8`.`revenue`,
          0.0
        )
      ) AS `v1`,
      SUM(
        IF(
          (
            `t8`.`timestamp` >= TIMESTAMP_SUB(`t8`.`first_seen`, INTERVAL '14' DAY)
          )
          AND (
            `t8`.`timestamp` < `t8`.`first_seen`
          ),
          `t8`.`revenue`,
          0.0
        )
      ) AS `x1`,
      SUM(
        IF(
          (
            `t8`.`timestamp` >= `t8`.`first_seen`
          )
          AND (
            `t8`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t8`.`timestamp` < TIMESTAMP_ADD(`t8`.`first_seen`, INTERVAL '7' DAY)
          ),
          `t8`.`revenue`,
          0.0
        )
      ) AS `v2`,
      SUM(
        IF(
          (
            `t8`.`timestamp` >= `t8`.`first_seen`
          )
          AND (
            `t8`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t8`.`timestamp` < TIMESTAMP_ADD(`t8`.`first_seen`, INTERVAL '7' DAY)
          )
          AND (
            `t8`.`revenue` IS NOT NULL
          ),
          1,
          0
        )
      ) AS `d2`,
      SUM(
        IF(
          (
            `t8`.`timestamp` >= `t8`.`first_seen`
          )
          AND (
            `t8`.`timestamp` < DATETIME('2026-03-16T00:00:00')
          )
          AND (
            `t8`.`items` IS NOT NULL
          ),
          1,
          0
        )
      ) AS `v3`
    FROM (
      SELECT
        `t7`.`unit_id`,
        `t7`.`first_seen`,
        `t7`.`variants`,
        `t7`.`variant`,
        `t7`.`platform`,
        `t4`.`fact_unit`,
        `t4`.`timestamp`,
        `t4`.`items`,
        `t4`.`revenue`
      FROM (
        SELECT
          *
        FROM (
          SELECT
            `t3`.`unit_id`,
            MIN(`t3`.`timestamp`) AS `first_seen`,
            IF(MIN(`t3`.`variant`) = MAX(`t3`.`variant`), 1, 2) AS `variants`,
            MIN(`t3`.`variant`) AS `variant`,
            COALESCE(MIN_BY(`t3`.`platform`, `t3`.`timestamp`), '(none)') AS `platform`
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
            ) AS `t1`
            WHERE
              `t1`.`experiment_key` = 'checkout_button' AND `t1`.`unit_id` IS NOT NULL
          ) AS `t3`
          GROUP BY
            1
        ) AS `t5`
        WHERE
          `t5`.`variants` = 1
          AND `t5`.`first_seen` >= DATETIME('2026-03-02T00:00:00')
          AND `t5`.`first_seen` < DATETIME('2026-03-16T00:00:00')
      ) AS `t7`
      LEFT OUTER JOIN (
        SELECT
          `t0`.`unit_id` AS `fact_unit`,
          `t0`.`timestamp`,
          `t0`.`items`,
          `t0`.`revenue`
        FROM (
          SELECT
            user_id AS unit_id,
            ordered_at AS timestamp,
            revenue,
            items
          FROM analytics.orders
          WHERE
            status = 'paid'
        ) AS `t0`
        WHERE
          `t0`.`timestamp` >= DATETIME('2026-02-16T00:00:00')
          AND `t0`.`timestamp` < DATETIME('2026-03-16T00:00:00')
      ) AS `t4`
        ON `t7`.`unit_id` = `t4`.`fact_unit`
        AND `t4`.`timestamp` >= TIMESTAMP_SUB(`t7`.`first_seen`, INTERVAL '14' DAY)
        AND `t4`.`timestamp` < DATETIME('2026-03-16T00:00:00')
    ) AS `t8`
    GROUP BY
      1,
      2,
      3,
      4
  ) AS `t9`
) AS `t10`
GROUP BY
  1,
  2,
  3
LIMIT 100001