"""warehouse covariates: assignment_sources.covariates (numeric unit-attribute columns every
metric of an experiment on the source is regression-adjusted on)

Existing assignment sources keep every value; their covariates are NULL (none).

Revision ID: 0015_warehouse_covariates
Revises: 0014_warehouse_quantiles
Create Date: 2026-12-08 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015_warehouse_covariates'
down_revision: str | None = '0014_warehouse_quantiles'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = ("Numeric unit-attribute columns every metric is regression-adjusted on (each "
           "unit's value at its first exposure); NULL = none.")


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.get_bind().exec_driver_sql("ALTER TABLE assignment_sources ADD COLUMN covariates JSON")
        return
    op.add_column('assignment_sources', sa.Column('covariates', sa.JSON(), nullable=True,
                                                  comment=COMMENT))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.get_bind().exec_driver_sql("ALTER TABLE assignment_sources DROP COLUMN covariates")
        return
    op.drop_column('assignment_sources', 'covariates')
