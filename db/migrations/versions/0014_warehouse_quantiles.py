"""warehouse quantile metrics: a fact source's sum or count metric may be a quantile metric
(ck_metrics_aggregation allows kind 'quantile' beside 'mean' for those two aggregations)

Existing rows are untouched: every stored fact-source metric satisfies the wider rule.

Revision ID: 0014_warehouse_quantiles
Revises: 0013_capping
Create Date: 2026-12-07 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_warehouse_quantiles'
down_revision: str | None = '0013_capping'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("(aggregation IS NULL) = (fact_source_id IS NULL) AND (aggregation IS NULL OR "
       "aggregation IN ('sum', 'count') AND kind = 'mean' OR "
       "aggregation = 'any' AND kind = 'binomial' OR "
       "aggregation IN ('mean', 'ratio') AND kind = 'ratio')")
NEW = ("(aggregation IS NULL) = (fact_source_id IS NULL) AND (aggregation IS NULL OR "
       "aggregation IN ('sum', 'count') AND kind IN ('mean', 'quantile') OR "
       "aggregation = 'any' AND kind = 'binomial' OR "
       "aggregation IN ('mean', 'ratio') AND kind = 'ratio')")
OLD_SQL = f'CONSTRAINT ck_metrics_aggregation CHECK ({OLD})'
NEW_SQL = f'CONSTRAINT ck_metrics_aggregation CHECK ({NEW})'


def _sqlite_edit(old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the stored definition of `metrics`, SQLite's documented way
    for schema changes the stored rows already satisfy (sqlite.org/lang_altertable.html, "other
    kinds of table schema changes"; as 0011 does): rebuilding `metrics` would trip the foreign
    keys that point at it."""
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


def _replace(old: str, new: str, old_sql: str, new_sql: str) -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _sqlite_edit(old_sql, new_sql)
        return
    op.drop_constraint(op.f('ck_metrics_aggregation'), 'metrics', type_='check')
    op.create_check_constraint(op.f('ck_metrics_aggregation'), 'metrics', new)


def upgrade() -> None:
    _replace(OLD, NEW, OLD_SQL, NEW_SQL)


def downgrade() -> None:
    op.execute("DELETE FROM metrics WHERE kind = 'quantile' AND aggregation IS NOT NULL")
    _replace(NEW, OLD, NEW_SQL, OLD_SQL)
