"""segment slices keyed by dimension first: the unique keys of metric_slice_daily_stats and
assignment_slice_daily_counts put (dimension, value, metric, variant) before the day, so the
sums per slice over the days (core.analysis.segments) read the key's index in order instead
of sorting every row (issue 25)

Revision ID: 0008_slice_keys
Revises: 0007_warehouse
Create Date: 2026-12-15 10:00:00.000000
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_slice_keys'
down_revision: str | None = '0007_warehouse'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = {
    'metric_slice_daily_stats': (
        'uq_metric_slice_daily_stats_key',
        ['experiment_id', 'variant_id', 'metric_id', 'day', 'dimension', 'value'],
        ['experiment_id', 'dimension', 'value', 'metric_id', 'variant_id', 'day'],
    ),
    'assignment_slice_daily_counts': (
        'uq_assignment_slice_daily_key',
        ['experiment_id', 'variant_id', 'day', 'dimension', 'value'],
        ['experiment_id', 'dimension', 'value', 'variant_id', 'day'],
    ),
}


def _rekey(new: bool) -> None:
    with warnings.catch_warnings():
        # SQLite's batch mode reflects the tables, and with them experiments' expression index
        # (lower(name)), which SQLAlchemy cannot reflect and says so; that index is untouched.
        warnings.filterwarnings('ignore', 'Skipped unsupported reflection',
                                category=sa.exc.SAWarning)
        for table, (name, old_columns, new_columns) in KEYS.items():
            with op.batch_alter_table(table) as batch:
                batch.drop_constraint(name, type_='unique')
                batch.create_unique_constraint(name, new_columns if new else old_columns)


def upgrade() -> None:
    _rekey(new=True)


def downgrade() -> None:
    _rekey(new=False)
