"""regression adjustment on several covariates and post-stratification:
metric_daily_stats.covariate_sums (the cross-products of the covariates,
core.stats.covariates.CovariateSums as JSON) and experiments.post_stratify_on (the plan's
post-stratification dimension)

Existing rows keep every value; the new columns are NULL (no multi-covariate sums, no
post-stratification).

Revision ID: 0012_multi_covariate
Revises: 0011_quantile_metrics
Create Date: 2026-12-07 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012_multi_covariate'
down_revision: str | None = '0011_quantile_metrics'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = ("Regression adjustment: cross-products of several covariates "
           "(core.stats.covariates.CovariateSums as JSON); NULL = none.")
STRATA_COMMENT = ("Plan: the pre-exposure dimension the results post-stratify on (a dimension "
                  "column of the metric data); NULL = none.")


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # plain ADD COLUMNs: a batch rebuild of `experiments` would drop its expression index
        op.get_bind().exec_driver_sql(
            "ALTER TABLE metric_daily_stats ADD COLUMN covariate_sums JSON")
        op.get_bind().exec_driver_sql(
            "ALTER TABLE experiments ADD COLUMN post_stratify_on VARCHAR(200)")
        return
    op.add_column('metric_daily_stats', sa.Column('covariate_sums', sa.JSON(), nullable=True,
                                                  comment=COMMENT))
    op.add_column('experiments', sa.Column('post_stratify_on', sa.String(200), nullable=True,
                                           comment=STRATA_COMMENT))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.get_bind().exec_driver_sql("ALTER TABLE experiments DROP COLUMN post_stratify_on")
        op.get_bind().exec_driver_sql("ALTER TABLE metric_daily_stats DROP COLUMN covariate_sums")
        return
    op.drop_column('experiments', 'post_stratify_on')
    op.drop_column('metric_daily_stats', 'covariate_sums')
