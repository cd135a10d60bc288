"""refresh schedule: experiments.refresh_every_days

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 16:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = 'Scheduled refresh: every N days counted from the start; NULL = every day.'


def upgrade() -> None:
    # A plain ADD COLUMN on both dialects: a batch rebuild of `experiments` on SQLite would drop
    # its expression index (uq_experiments_name_lower). The CHECK is added where ALTER allows it.
    op.add_column(
        'experiments',
        sa.Column('refresh_every_days', sa.Integer(), nullable=True, comment=COMMENT),
    )
    if op.get_bind().dialect.name != 'sqlite':
        op.create_check_constraint(
            op.f('ck_experiments_refresh_every_days'),
            'experiments',
            'refresh_every_days IS NULL OR refresh_every_days >= 1',
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint(op.f('ck_experiments_refresh_every_days'), 'experiments', type_='check')
    op.drop_column('experiments', 'refresh_every_days')
