"""quantile metrics: metrics.quantile_p, the kind 'quantile', and metric_quantile_stats (one
row per experiment, variant and metric: n, p, the quantile and its order-statistic bounds)

Existing rows are untouched: no metric had the kind 'quantile' before this revision.

Revision ID: 0011_quantile_metrics
Revises: 0010_plan_inputs
Create Date: 2026-12-07 10:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011_quantile_metrics'
down_revision: str | None = '0010_plan_inputs'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KIND = "kind IN ('binomial', 'mean', 'ratio')"
NEW_KIND = "kind IN ('binomial', 'mean', 'ratio', 'quantile')"
QUANTILE = ("(kind = 'quantile') = (quantile_p IS NOT NULL) AND "
            "(quantile_p IS NULL OR quantile_p > 0 AND quantile_p < 1)")
OLD_SQL = f'CONSTRAINT ck_metrics_kind CHECK ({OLD_KIND})'
NEW_SQL = (f'CONSTRAINT ck_metrics_kind CHECK ({NEW_KIND}), '
           f'CONSTRAINT ck_metrics_quantile_p CHECK ({QUANTILE})')
COMMENT = "Quantile metrics: the level p in (0, 1) of the per-unit value's quantile (0.9 = p90)."


def _sqlite_edit(old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the stored definition of `metrics`, SQLite's documented way
    for schema changes the stored rows already satisfy (sqlite.org/lang_altertable.html, "other
    kinds of table schema changes"; as 0004 and 0007 do): rebuilding `metrics` would trip the
    foreign keys that point at it."""
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'metrics'")).scalar_one()
    if sql.count(old) != 1:
        raise RuntimeError(f"metrics: its definition does not hold {old!r} as expected")
    version = bind.exec_driver_sql('PRAGMA schema_version').scalar()
    bind.exec_driver_sql('PRAGMA writable_schema = ON')
    bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql "
                         "WHERE type = 'table' AND name = 'metrics'"),
                 {'sql': sql.replace(old, new)})
    bind.exec_driver_sql(f'PRAGMA schema_version = {int(version) + 1}')
    bind.exec_driver_sql('PRAGMA writable_schema = OFF')


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    op.add_column('metrics', sa.Column('quantile_p', sa.Double(), nullable=True, comment=COMMENT))
    if sqlite:
        _sqlite_edit(OLD_SQL, NEW_SQL)
    else:
        op.drop_constraint(op.f('ck_metrics_kind'), 'metrics', type_='check')
        op.create_check_constraint(op.f('ck_metrics_kind'), 'metrics', NEW_KIND)
        op.create_check_constraint(op.f('ck_metrics_quantile_p'), 'metrics', QUANTILE)
    op.create_table('metric_quantile_stats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.Column('metric_id', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('p', sa.Double(), nullable=False),
    sa.Column('quantile', sa.Double(), nullable=False),
    sa.Column('lower', sa.Double(), nullable=False, comment='The quantile at p - z sqrt(p (1-p) / n_star).'),
    sa.Column('upper', sa.Double(), nullable=False, comment='The quantile at p + z sqrt(p (1-p) / n_star).'),
    sa.Column('n_star', sa.Integer(), nullable=False, comment="The count the bounds' levels were set for."),
    sa.Column('source', sa.String(length=200), nullable=False, comment='Where the numbers came from.'),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('n >= 1 AND n_star >= 1', name=op.f('ck_metric_quantile_stats_n')),
    sa.CheckConstraint('p > 0 AND p < 1', name=op.f('ck_metric_quantile_stats_p')),
    sa.CheckConstraint('lower <= quantile AND quantile <= upper', name=op.f('ck_metric_quantile_stats_bounds')),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_metric_quantile_stats_experiment_id_experiments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['metric_id'], ['metrics.id'], name=op.f('fk_metric_quantile_stats_metric_id_metrics'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['variant_id'], ['variants.id'], name=op.f('fk_metric_quantile_stats_variant_id_variants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_quantile_stats')),
    sa.UniqueConstraint('experiment_id', 'variant_id', 'metric_id', name='uq_metric_quantile_stats_key')
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    op.drop_table('metric_quantile_stats')
    op.execute("DELETE FROM metrics WHERE kind = 'quantile'")
    if sqlite:
        _sqlite_edit(NEW_SQL, OLD_SQL)
        # a plain DROP COLUMN (the CHECK naming it is gone): a batch rebuild would trip the
        # foreign keys that point at `metrics`
        op.get_bind().exec_driver_sql("ALTER TABLE metrics DROP COLUMN quantile_p")
        return
    op.drop_constraint(op.f('ck_metrics_quantile_p'), 'metrics', type_='check')
    op.drop_constraint(op.f('ck_metrics_kind'), 'metrics', type_='check')
    op.create_check_constraint(op.f('ck_metrics_kind'), 'metrics', OLD_KIND)
    op.drop_column('metrics', 'quantile_p')
