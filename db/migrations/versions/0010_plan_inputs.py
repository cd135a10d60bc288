"""the Planner's inputs saved with a plan: experiments.plan_inputs (baseline, sd, effect, alpha,
power, test, split, daily traffic and exposure the planned sample size was sized from)

Existing rows keep every value; their plan_inputs is NULL (the inputs of a plan saved before
this revision were never stored).

Revision ID: 0010_plan_inputs
Revises: 0009_registry_list_indexes
Create Date: 2026-12-07 05:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_plan_inputs'
down_revision: str | None = '0009_registry_list_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = "The Planner's inputs the planned sample size was sized from; NULL = not recorded."


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # a plain ADD COLUMN: a batch rebuild of `experiments` would drop its expression index
        op.get_bind().exec_driver_sql("ALTER TABLE experiments ADD COLUMN plan_inputs JSON")
        return
    op.add_column('experiments', sa.Column('plan_inputs', sa.JSON(), nullable=True,
                                           comment=COMMENT))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.get_bind().exec_driver_sql("ALTER TABLE experiments DROP COLUMN plan_inputs")
        return
    op.drop_column('experiments', 'plan_inputs')
