"""metric data: daily sufficient statistics, assignment counts, SQL sources, result snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:57:21.344173
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('metric_sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('updated_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_metric_sources_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_sources')),
    sa.UniqueConstraint('experiment_id', name=op.f('uq_metric_sources_experiment_id'))
    )
    op.create_table('result_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('computed_by', sa.String(length=120), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=True, comment='Cut-off day; NULL = all data.'),
    sa.Column('data_through', sa.Date(), nullable=True, comment='Last day with data.'),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_result_snapshots_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_snapshots'))
    )
    with op.batch_alter_table('result_snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_result_snapshots_experiment', ['experiment_id', 'computed_at'], unique=False)

    op.create_table('assignment_daily_counts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('units >= 0', name=op.f('ck_assignment_daily_counts_units')),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_assignment_daily_counts_experiment_id_experiments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['variant_id'], ['variants.id'], name=op.f('fk_assignment_daily_counts_variant_id_variants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment_daily_counts')),
    sa.UniqueConstraint('experiment_id', 'variant_id', 'day', name='uq_assignment_daily_key')
    )
    op.create_table('metric_daily_stats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.Column('metric_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('sum', sa.Double(), nullable=False),
    sa.Column('sum_squares', sa.Double(), nullable=False),
    sa.Column('cov_sum', sa.Double(), nullable=True),
    sa.Column('cov_sum_squares', sa.Double(), nullable=True),
    sa.Column('cov_sum_products', sa.Double(), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False, comment='Where the numbers came from.'),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('n >= 0', name=op.f('ck_metric_daily_stats_n')),
    sa.CheckConstraint('sum_squares >= 0', name=op.f('ck_metric_daily_stats_sum_squares')),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_metric_daily_stats_experiment_id_experiments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['metric_id'], ['metrics.id'], name=op.f('fk_metric_daily_stats_metric_id_metrics'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['variant_id'], ['variants.id'], name=op.f('fk_metric_daily_stats_variant_id_variants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_daily_stats')),
    sa.UniqueConstraint('experiment_id', 'variant_id', 'metric_id', 'day', name='uq_metric_daily_stats_key')
    )


def downgrade() -> None:
    op.drop_table('metric_daily_stats')
    op.drop_table('assignment_daily_counts')
    with op.batch_alter_table('result_snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_result_snapshots_experiment')

    op.drop_table('result_snapshots')
    op.drop_table('metric_sources')
