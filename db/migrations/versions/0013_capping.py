"""capping of mean and ratio metrics: experiments.capping (the plan's rule per metric, frozen at
launch) and applied_caps (the cap each load of unit-level data applied, per experiment and
metric)

Existing experiments keep every value; their capping is NULL (no metric capped).

Revision ID: 0013_capping
Revises: 0012_multi_covariate
Create Date: 2026-12-07 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013_capping'
down_revision: str | None = '0012_multi_covariate'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = ("Capping rule per mean or ratio metric, {metric: {kind: fixed|percentile, value}}; "
           "NULL = no metric capped.")


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # a plain ADD COLUMN: a batch rebuild of `experiments` would drop its expression index
        op.get_bind().exec_driver_sql("ALTER TABLE experiments ADD COLUMN capping JSON")
    else:
        op.add_column('experiments', sa.Column('capping', sa.JSON(), nullable=True,
                                               comment=COMMENT))
    op.create_table(
        'applied_caps',
        sa.Column('experiment_id', sa.Integer(), nullable=False),
        sa.Column('metric_id', sa.Integer(), nullable=False),
        sa.Column('cap', sa.Double(), nullable=False,
                  comment='Per-unit values above it counted as it.'),
        sa.Column('denominator_cap', sa.Double(), nullable=True,
                  comment="A ratio metric's cap of the per-unit denominator."),
        sa.Column('units', sa.Integer(), nullable=False,
                  comment='Units the cap was computed over.'),
        sa.Column('source', sa.String(length=200), nullable=False,
                  comment='The load that computed it.'),
        sa.Column('loaded_at', sa.DateTime(timezone=True),
                  server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'],
                                name=op.f('fk_applied_caps_experiment_id_experiments'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['metric_id'], ['metrics.id'],
                                name=op.f('fk_applied_caps_metric_id_metrics'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('experiment_id', 'metric_id', name=op.f('pk_applied_caps')),
    )


def downgrade() -> None:
    op.drop_table('applied_caps')
    if op.get_bind().dialect.name == 'sqlite':
        op.get_bind().exec_driver_sql("ALTER TABLE experiments DROP COLUMN capping")
        return
    op.drop_column('experiments', 'capping')
