"""ratio metrics and segment slices: metrics.numerator/denominator, the denominator sums of
metric_daily_stats, and per-dimension-value daily stats and assignment counts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KIND = "kind IN ('binomial', 'mean')"
NEW_KIND = "kind IN ('binomial', 'mean', 'ratio')"
RATIO = "(kind = 'ratio') = (numerator IS NOT NULL AND denominator IS NOT NULL)"
NUMERATOR = 'Ratio metrics: the per-unit column summed above the line.'
DENOMINATOR = 'Ratio metrics: the per-unit column summed below the line.'


def _sqlite_checks(old: str, new: str) -> None:
    """SQLite cannot alter a CHECK, and rebuilding `metrics` would trip the foreign keys that
    point at it; its documented alternative for changes that leave the stored rows valid
    (sqlite.org/lang_altertable.html, "other kinds of table schema changes") is to edit the
    table's definition in place and bump the schema version."""
    bind = op.get_bind()
    version = bind.exec_driver_sql('PRAGMA schema_version').scalar()
    bind.exec_driver_sql('PRAGMA writable_schema = ON')
    bind.execute(sa.text("UPDATE sqlite_master SET sql = replace(sql, :old, :new) "
                         "WHERE type = 'table' AND name = 'metrics'"), {'old': old, 'new': new})
    bind.exec_driver_sql(f'PRAGMA schema_version = {int(version) + 1}')
    bind.exec_driver_sql('PRAGMA writable_schema = OFF')


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    op.add_column('metrics', sa.Column('numerator', sa.String(length=80), nullable=True,
                                       comment=NUMERATOR))
    op.add_column('metrics', sa.Column('denominator', sa.String(length=80), nullable=True,
                                       comment=DENOMINATOR))
    if sqlite:
        _sqlite_checks(f'CONSTRAINT ck_metrics_kind CHECK ({OLD_KIND})',
                       f'CONSTRAINT ck_metrics_kind CHECK ({NEW_KIND}), '
                       f'CONSTRAINT ck_metrics_ratio_columns CHECK ({RATIO})')
    else:
        op.drop_constraint(op.f('ck_metrics_kind'), 'metrics', type_='check')
        op.create_check_constraint(op.f('ck_metrics_kind'), 'metrics', NEW_KIND)
        op.create_check_constraint(op.f('ck_metrics_ratio_columns'), 'metrics', RATIO)
    for column in ('sum_den', 'sum_den_squares', 'sum_num_den'):
        op.add_column('metric_daily_stats', sa.Column(column, sa.Double(), nullable=True))

    op.create_table('metric_slice_daily_stats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.Column('metric_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('dimension', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=100), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('sum', sa.Double(), nullable=False),
    sa.Column('sum_squares', sa.Double(), nullable=False),
    sa.Column('sum_den', sa.Double(), nullable=True),
    sa.Column('sum_den_squares', sa.Double(), nullable=True),
    sa.Column('sum_num_den', sa.Double(), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False, comment='Where the numbers came from.'),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('n >= 0', name=op.f('ck_metric_slice_daily_stats_n')),
    sa.CheckConstraint('sum_squares >= 0', name=op.f('ck_metric_slice_daily_stats_sum_squares')),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_metric_slice_daily_stats_experiment_id_experiments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['metric_id'], ['metrics.id'], name=op.f('fk_metric_slice_daily_stats_metric_id_metrics'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['variant_id'], ['variants.id'], name=op.f('fk_metric_slice_daily_stats_variant_id_variants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_slice_daily_stats')),
    sa.UniqueConstraint('experiment_id', 'variant_id', 'metric_id', 'day', 'dimension', 'value', name='uq_metric_slice_daily_stats_key')
    )
    op.create_index('ix_metric_slice_daily_stats_day', 'metric_slice_daily_stats', ['experiment_id', 'day'], unique=False)
    op.create_table('assignment_slice_daily_counts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('dimension', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=100), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('units >= 0', name=op.f('ck_assignment_slice_daily_counts_units')),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_assignment_slice_daily_counts_experiment_id_experiments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['variant_id'], ['variants.id'], name=op.f('fk_assignment_slice_daily_counts_variant_id_variants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment_slice_daily_counts')),
    sa.UniqueConstraint('experiment_id', 'variant_id', 'day', 'dimension', 'value', name='uq_assignment_slice_daily_key')
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    op.drop_table('assignment_slice_daily_counts')
    op.drop_index('ix_metric_slice_daily_stats_day', table_name='metric_slice_daily_stats')
    op.drop_table('metric_slice_daily_stats')
    op.execute("DELETE FROM metrics WHERE kind = 'ratio'")
    for column in ('sum_num_den', 'sum_den_squares', 'sum_den'):
        if sqlite:
            with op.batch_alter_table('metric_daily_stats') as batch_op:
                batch_op.drop_column(column)
        else:
            op.drop_column('metric_daily_stats', column)
    if sqlite:
        _sqlite_checks(f'CONSTRAINT ck_metrics_kind CHECK ({NEW_KIND}), '
                       f'CONSTRAINT ck_metrics_ratio_columns CHECK ({RATIO})',
                       f'CONSTRAINT ck_metrics_kind CHECK ({OLD_KIND})')
    else:
        op.drop_constraint(op.f('ck_metrics_ratio_columns'), 'metrics', type_='check')
        op.drop_constraint(op.f('ck_metrics_kind'), 'metrics', type_='check')
        op.create_check_constraint(op.f('ck_metrics_kind'), 'metrics', OLD_KIND)
    op.drop_column('metrics', 'denominator')
    op.drop_column('metrics', 'numerator')
