"""state in tables: experiments.promoted_at / promoted_rice, experiments.ready_for_decision_at /
ready_report_id and the ingest_loads ledger, filled from the audit entries that held them

Revision ID: 0006_state_tables
Revises: 0005
Create Date: 2026-12-09 10:00:00.000000
"""

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0006_state_tables'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROMOTED_AT = "Backlog: when the idea was promoted to the registry; NULL = still an idea."
PROMOTED_RICE = "Backlog: reach, impact, confidence, effort and rice_score at promotion."
READY_AT = "Scheduled refresh: when it first found the experiment ready for a decision."
READY_REPORT = "The report the scheduled refresh wrote when it found it ready."
READY_FK = 'fk_experiments_ready_report_id_report_artifacts'
READY_FK_SQL = (f'CONSTRAINT {READY_FK} FOREIGN KEY(ready_report_id) REFERENCES '
                'report_artifacts (id) ON DELETE SET NULL')
KINDS = ('user_file', 'aggregate_file', 'sql')
SCHEDULER = 'airflow'
"""Who the scheduled refresh acted as (core.data.refresh.SCHEDULER) up to this revision."""

_audit = sa.table(
    'audit_log',
    sa.column('id', sa.Integer()), sa.column('at', sa.DateTime(timezone=True)),
    sa.column('actor', sa.String()), sa.column('entity_type', sa.String()),
    sa.column('entity_id', sa.Integer()), sa.column('action', sa.String()),
    sa.column('changes', sa.JSON()),
)
_reports = sa.table(
    'report_artifacts',
    sa.column('id', sa.Integer()), sa.column('experiment_id', sa.Integer()),
    sa.column('key', sa.String()), sa.column('created_at', sa.DateTime(timezone=True)),
    sa.column('created_by', sa.String()),
)


def _sqlite_experiments_sql(old: str, new: str) -> None:
    """Replace the end of the `experiments` table's definition in place, SQLite's documented way
    for schema changes the stored rows already satisfy (sqlite.org/lang_altertable.html, "other
    kinds of table schema changes"; as 0004 does for `metrics`)."""
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'experiments'")).scalar_one()
    if not sql.endswith(old):
        raise RuntimeError(f"experiments: its definition does not end with {old!r}")
    version = bind.exec_driver_sql('PRAGMA schema_version').scalar()
    bind.exec_driver_sql('PRAGMA writable_schema = ON')
    bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql "
                         "WHERE type = 'table' AND name = 'experiments'"),
                 {'sql': sql[: -len(old)] + new})
    bind.exec_driver_sql(f'PRAGMA schema_version = {int(version) + 1}')
    bind.exec_driver_sql('PRAGMA writable_schema = OFF')


def _experiments() -> sa.TableClause:
    return sa.table(
        'experiments',
        sa.column('id', sa.Integer()),
        sa.column('promoted_at', sa.DateTime(timezone=True)),
        sa.column('promoted_rice', sa.JSON()),
        sa.column('ready_for_decision_at', sa.DateTime(timezone=True)),
        sa.column('ready_report_id', sa.Integer()),
    )


def _after(changes: Any, field: str) -> Any:
    """The "after" value of an audit entry's ``{field: [before, after]}``."""
    pair = (changes or {}).get(field) if isinstance(changes, dict) else None
    return pair[1] if isinstance(pair, list) and len(pair) == 2 else None


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _backfill(loads: sa.Table) -> None:
    """Carry the state the audit log held over: the latest promotion, the first
    ready-for-decision entry (else the scheduler's first report, as the old code read it) and
    the latest ingest of each source."""
    bind = op.get_bind()
    experiments = _experiments()
    known = set(bind.scalars(sa.select(experiments.c.id)))
    entries = bind.execute(
        sa.select(_audit)
        .where(_audit.c.entity_type == 'experiment',
               _audit.c.action.in_(('promote', 'ready_for_decision', 'ingest')))
        .order_by(_audit.c.id)
    ).all()
    report_ids = {key: rid for rid, key in bind.execute(sa.select(_reports.c.id, _reports.c.key))}
    promoted: dict[int, dict[str, Any]] = {}
    ready: dict[int, dict[str, Any]] = {}
    ingested: dict[tuple[int, str], dict[str, Any]] = {}
    for e in entries:
        if e.entity_id not in known:
            continue
        if e.action == 'promote':
            rice = _after(e.changes, 'rice_at_promotion')
            promoted[e.entity_id] = {
                'b_id': e.entity_id, 'b_at': e.at,
                'b_rice': rice if isinstance(rice, dict) else None,
            }
        elif e.action == 'ready_for_decision':
            ready.setdefault(e.entity_id, {
                'b_id': e.entity_id, 'b_at': e.at,
                'b_report': report_ids.get(str(_after(e.changes, 'report'))),
            })
        else:
            kind, _, key = str(_after(e.changes, 'source') or '').partition(':')
            if kind not in KINDS or not key:
                continue
            first, _, last = str(_after(e.changes, 'days') or '').partition('..')
            metrics = _after(e.changes, 'metrics')
            written = _after(e.changes, 'rows_written')
            ingested[(e.entity_id, key)] = {
                'experiment_id': e.entity_id, 'key': key[:500], 'kind': kind,
                'sha256': _after(e.changes, 'sha256') or None,
                'first_day': _day(first), 'last_day': _day(last),
                'metrics': [str(m) for m in metrics] if isinstance(metrics, list) else [],
                'rows_read': None, 'rows_written': written if isinstance(written, int) else 0,
                'loaded_at': e.at, 'loaded_by': e.actor,
            }
    for rid, exp_id, at in bind.execute(
        sa.select(_reports.c.id, _reports.c.experiment_id, _reports.c.created_at)
        .where(_reports.c.created_by == SCHEDULER).order_by(_reports.c.id)
    ):
        if exp_id in known:
            ready.setdefault(exp_id, {'b_id': exp_id, 'b_at': at, 'b_report': rid})
    if promoted:
        bind.execute(
            experiments.update().where(experiments.c.id == sa.bindparam('b_id'))
            .values(promoted_at=sa.bindparam('b_at'), promoted_rice=sa.bindparam('b_rice')),
            list(promoted.values()))
    if ready:
        bind.execute(
            experiments.update().where(experiments.c.id == sa.bindparam('b_id'))
            .values(ready_for_decision_at=sa.bindparam('b_at'),
                    ready_report_id=sa.bindparam('b_report')),
            list(ready.values()))
    if ingested:
        op.bulk_insert(loads, list(ingested.values()))


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    # Plain ADD COLUMNs on SQLite too: a batch rebuild of `experiments` would drop its
    # expression index (uq_experiments_name_lower, see 0003), and dropping the old table would
    # cascade to every row that references it. The foreign key is written into the table's
    # definition instead (see _sqlite_experiments_sql); every stored row has NULL there.
    op.add_column('experiments', sa.Column('promoted_at', sa.DateTime(timezone=True),
                                           nullable=True, comment=PROMOTED_AT))
    op.add_column('experiments', sa.Column('promoted_rice', sa.JSON(), nullable=True,
                                           comment=PROMOTED_RICE))
    op.add_column('experiments', sa.Column('ready_for_decision_at', sa.DateTime(timezone=True),
                                           nullable=True, comment=READY_AT))
    op.add_column('experiments', sa.Column('ready_report_id', sa.Integer(), nullable=True,
                                           comment=READY_REPORT))
    if sqlite:
        _sqlite_experiments_sql('\n)', f', \n\t{READY_FK_SQL}\n)')
    else:
        op.create_foreign_key(READY_FK, 'experiments', 'report_artifacts',
                              ['ready_report_id'], ['id'], ondelete='SET NULL')
    loads = op.create_table(
        'ingest_loads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('experiment_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=500), nullable=False,
                  comment='File name, drop key or SQL window.'),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('first_day', sa.Date(), nullable=True),
        sa.Column('last_day', sa.Date(), nullable=True),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.Column('rows_read', sa.Integer(), nullable=True,
                  comment='NULL for loads from before 0006.'),
        sa.Column('rows_written', sa.Integer(), nullable=False,
                  comment='Daily statistics rows upserted.'),
        sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column('loaded_by', sa.String(length=120), nullable=False),
        sa.CheckConstraint("kind IN ('user_file', 'aggregate_file', 'sql')",
                           name=op.f('ck_ingest_loads_kind')),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'],
                                name=op.f('fk_ingest_loads_experiment_id_experiments'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_loads')),
        sa.UniqueConstraint('experiment_id', 'key', name='uq_ingest_loads_key'),
    )
    _backfill(loads)


def downgrade() -> None:
    op.drop_table('ingest_loads')
    if op.get_bind().dialect.name == 'sqlite':
        _sqlite_experiments_sql(f', \n\t{READY_FK_SQL}\n)', '\n)')
    else:
        op.drop_constraint(READY_FK, 'experiments', type_='foreignkey')
    for column in ('ready_report_id', 'ready_for_decision_at', 'promoted_rice', 'promoted_at'):
        op.drop_column('experiments', column)
