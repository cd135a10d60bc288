"""regression adjustment on several covariates: metric_daily_stats.covariate_sums (the
cross-products of the covariates, core.stats.covariates.CovariateSums as JSON)

Existing rows keep every value; their covariate_sums is NULL (no multi-covariate sums).

Revision ID: 0011_multi_covariate
Revises: 0010_plan_inputs
Create Date: 2026-12-07 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011_multi_covariate'
down_revision: str | None = '0010_plan_inputs'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = ("Regression adjustment: cross-products of several covariates "
           "(core.stats.covariates.CovariateSums as JSON); NULL = none.")


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # a plain ADD COLUMN (no batch rebuild of a table that may hold many rows)
        op.get_bind().exec_driver_sql(
            "ALTER TABLE metric_daily_stats ADD COLUMN covariate_sums JSON")
        return
    op.add_column('metric_daily_stats', sa.Column('covariate_sums', sa.JSON(), nullable=True,
                                                  comment=COMMENT))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.get_bind().exec_driver_sql("ALTER TABLE metric_daily_stats DROP COLUMN covariate_sums")
        return
    op.drop_column('metric_daily_stats', 'covariate_sums')
