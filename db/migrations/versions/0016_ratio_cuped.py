"""ratio CUPED: a fact source's mean or ratio metric may take cuped_days (its numerator's
pre-period sum, the first covariate of its regression adjustment); ck_metrics_warehouse_columns
no longer limits cuped_days to sum, count and any

Existing rows are untouched: every stored metric satisfies the wider rule.

Revision ID: 0016_ratio_cuped
Revises: 0015_warehouse_covariates
Create Date: 2026-12-08 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016_ratio_cuped'
down_revision: str | None = '0015_warehouse_covariates'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REST = (
    "(fact_source_id IS NOT NULL OR value_column IS NULL AND denominator_column IS NULL AND "
    "window_days IS NULL AND cuped_days IS NULL) AND "
    "(value_column IS NOT NULL OR aggregation IS NULL OR aggregation IN ('count', 'any')) AND "
    "(denominator_column IS NOT NULL) = (aggregation IS NOT NULL AND aggregation = 'ratio') AND "
    "(window_days IS NULL OR window_days >= 1) AND ")
OLD = _REST + "(cuped_days IS NULL OR cuped_days >= 1 AND aggregation IN ('sum', 'count', 'any'))"
NEW = _REST + "(cuped_days IS NULL OR cuped_days >= 1)"
NAME = 'ck_metrics_warehouse_columns'


def _sqlite_edit(old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the stored definition of `metrics` (as 0014 does: a
    rebuild of `metrics` would trip the foreign keys that point at it)."""
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


def _replace(old: str, new: str) -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _sqlite_edit(f'CONSTRAINT {NAME} CHECK ({old})', f'CONSTRAINT {NAME} CHECK ({new})')
        return
    op.drop_constraint(op.f(NAME), 'metrics', type_='check')
    op.create_check_constraint(op.f(NAME), 'metrics', new)


def upgrade() -> None:
    _replace(OLD, NEW)


def downgrade() -> None:
    op.execute("UPDATE metrics SET cuped_days = NULL WHERE aggregation IN ('mean', 'ratio')")
    _replace(NEW, OLD)
