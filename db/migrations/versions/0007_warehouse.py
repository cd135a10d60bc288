"""warehouse-native metrics: warehouse_connections, assignment_sources, fact_sources, the
fact-source fields of metrics, an experiment's assignment source and key, warehouse_runs, and
'warehouse' loads in the ingest_loads ledger

Revision ID: 0007_warehouse
Revises: 0006_state_tables
Create Date: 2026-12-14 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007_warehouse'
down_revision: str | None = '0006_state_tables'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_RATIO = "(kind = 'ratio') = (numerator IS NOT NULL AND denominator IS NOT NULL)"
RATIO = ("fact_source_id IS NOT NULL AND numerator IS NULL AND denominator IS NULL OR "
         "fact_source_id IS NULL AND "
         "(kind = 'ratio') = (numerator IS NOT NULL AND denominator IS NOT NULL)")
AGGREGATION = ("(aggregation IS NULL) = (fact_source_id IS NULL) AND (aggregation IS NULL OR "
               "aggregation IN ('sum', 'count') AND kind = 'mean' OR "
               "aggregation = 'any' AND kind = 'binomial' OR "
               "aggregation IN ('mean', 'ratio') AND kind = 'ratio')")
WAREHOUSE_COLUMNS = (
    "(fact_source_id IS NOT NULL OR value_column IS NULL AND denominator_column IS NULL AND "
    "window_days IS NULL AND cuped_days IS NULL) AND "
    "(value_column IS NOT NULL OR aggregation IS NULL OR aggregation IN ('count', 'any')) AND "
    "(denominator_column IS NOT NULL) = (aggregation IS NOT NULL AND aggregation = 'ratio') AND "
    "(window_days IS NULL OR window_days >= 1) AND "
    "(cuped_days IS NULL OR cuped_days >= 1 AND aggregation IN ('sum', 'count', 'any'))")
EXPERIMENT_WAREHOUSE = "(assignment_source_id IS NULL) = (experiment_key IS NULL)"
OLD_KINDS = "kind IN ('user_file', 'aggregate_file', 'sql')"
KINDS = "kind IN ('user_file', 'aggregate_file', 'sql', 'warehouse')"

METRIC_FK = 'fk_metrics_fact_source_id_fact_sources'
EXPERIMENT_FK = 'fk_experiments_assignment_source_id_assignment_sources'
METRIC_FK_SQL = (f'CONSTRAINT {METRIC_FK} FOREIGN KEY(fact_source_id) REFERENCES '
                 'fact_sources (id)')
EXPERIMENT_FK_SQL = (f'CONSTRAINT {EXPERIMENT_FK} FOREIGN KEY(assignment_source_id) '
                     'REFERENCES assignment_sources (id)')
OLD_RATIO_SQL = f'CONSTRAINT ck_metrics_ratio_columns CHECK ({OLD_RATIO})'
METRIC_CHECKS_SQL = (f'CONSTRAINT ck_metrics_ratio_columns CHECK ({RATIO}), '
                     f'CONSTRAINT ck_metrics_aggregation CHECK ({AGGREGATION}), '
                     f'CONSTRAINT ck_metrics_warehouse_columns CHECK ({WAREHOUSE_COLUMNS})')
EXPERIMENT_TAIL_SQL = (f', \n\t{EXPERIMENT_FK_SQL}, \n\t'
                       f'CONSTRAINT ck_experiments_warehouse CHECK ({EXPERIMENT_WAREHOUSE})\n)')

METRIC_COLUMNS: tuple[tuple[str, sa.types.TypeEngine, str], ...] = (
    ('fact_source_id', sa.Integer(), 'Warehouse metrics: the fact source it is computed from; '
     'NULL = loaded from files or a SQL source.'),
    ('aggregation', sa.String(length=8),
     'Warehouse metrics: sum, count, any, mean or ratio, per unit.'),
    ('value_column', sa.String(length=80),
     "Warehouse metrics: the fact source's column aggregated."),
    ('denominator_column', sa.String(length=80),
     "Warehouse ratio metrics: the fact source's column below the line."),
    ('window_days', sa.Integer(), "Warehouse metrics: days after a unit's first exposure "
     'counted; NULL = up to the analysis day.'),
    ('cuped_days', sa.Integer(), 'Warehouse metrics: days before first exposure aggregated as '
     'the CUPED covariate; NULL = no CUPED.'),
)
EXPERIMENT_COLUMNS: tuple[tuple[str, sa.types.TypeEngine, str], ...] = (
    ('assignment_source_id', sa.Integer(),
     'Warehouse: the assignment source its exposures come from; NULL = none.'),
    ('experiment_key', sa.String(length=200),
     'Warehouse: the experiment_key its exposures carry there.'),
)


def _sqlite_edit(table: str, old: str, new: str, *, at_end: bool = False) -> None:
    """Replace ``old`` by ``new`` in the table's stored definition (at its end with
    ``at_end``), SQLite's documented way for schema changes the stored rows already satisfy
    (sqlite.org/lang_altertable.html, "other kinds of table schema changes"; as 0004 and 0006
    do): rebuilding `metrics` or `experiments` would trip the foreign keys that point at them
    and drop the expression index of `experiments`."""
    bind = op.get_bind()
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                               "AND name = :name"), {'name': table}).scalar_one()
    if (not sql.endswith(old)) if at_end else (sql.count(old) != 1):
        raise RuntimeError(f"{table}: its definition does not hold {old!r} as expected")
    edited = sql[: -len(old)] + new if at_end else sql.replace(old, new)
    version = bind.exec_driver_sql('PRAGMA schema_version').scalar()
    bind.exec_driver_sql('PRAGMA writable_schema = ON')
    bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql "
                         "WHERE type = 'table' AND name = :name"),
                 {'sql': edited, 'name': table})
    bind.exec_driver_sql(f'PRAGMA schema_version = {int(version) + 1}')
    bind.exec_driver_sql('PRAGMA writable_schema = OFF')


def _audit_columns() -> list[sa.Column]:
    return [
        sa.Column('created_by', sa.String(length=120), nullable=False),
        sa.Column('updated_by', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    ]


def _source_table(name: str, listed: str) -> None:
    op.create_table(
        name,
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('connection_id', sa.Integer(), nullable=False),
        sa.Column('sql', sa.Text(), nullable=False),
        sa.Column(listed, sa.JSON(), nullable=False),
        *_audit_columns(),
        sa.ForeignKeyConstraint(['connection_id'], ['warehouse_connections.id'],
                                name=op.f(f'fk_{name}_connection_id_warehouse_connections')),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{name}')),
        sa.UniqueConstraint('name', name=op.f(f'uq_{name}_name')),
    )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    op.create_table(
        'warehouse_connections',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('allow_app_database', sa.Boolean(), nullable=False,
                  comment="An admin's consent to point it at the app's own database."),
        *_audit_columns(),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_warehouse_connections')),
        sa.UniqueConstraint('name', name=op.f('uq_warehouse_connections_name')),
    )
    _source_table('assignment_sources', 'dimensions')
    _source_table('fact_sources', 'columns')
    op.create_table(
        'warehouse_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('experiment_id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=80), nullable=False, comment="The source's name."),
        sa.Column('role', sa.String(length=16), nullable=False, comment='assignment or fact.'),
        sa.Column('sql', sa.Text(), nullable=False, comment='The exact SQL that ran.'),
        sa.Column('rows_returned', sa.Integer(), nullable=False),
        sa.Column('rows_scanned', sa.Integer(), nullable=True,
                  comment='Where the engine reports it; NULL otherwise.'),
        sa.Column('seconds', sa.Double(), nullable=False),
        sa.Column('ran_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column('ran_by', sa.String(length=120), nullable=False),
        sa.Column('open_from', sa.Date(), nullable=True,
                  comment='Fact sources: the first exposure day recomputed.'),
        sa.Column('final_through', sa.Date(), nullable=True,
                  comment='Fact sources: the last exposure day whose values are final.'),
        sa.Column('definition_key', sa.String(length=64), nullable=True,
                  comment="A hash of what the stored state depends on (a fact source's "
                          "numbers, the assignment source's units per day)."),
        sa.Column('units', sa.Integer(), nullable=True,
                  comment='Assignment source: units kept (each in one variant).'),
        sa.Column('multi_variant_units', sa.Integer(), nullable=True,
                  comment='Assignment source: units seen in more than one variant, excluded.'),
        sa.Column('exposure_days', sa.JSON(), nullable=True,
                  comment='Assignment source: units per first-exposure day and variant (null: '
                          'in more than one) through the last day counted, under '
                          'definition_key; an incremental refresh counts only the days after '
                          'its final ones.'),
        sa.CheckConstraint("role IN ('assignment', 'fact')", name=op.f('ck_warehouse_runs_role')),
        sa.CheckConstraint('rows_returned >= 0', name=op.f('ck_warehouse_runs_rows_returned')),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'],
                                name=op.f('fk_warehouse_runs_experiment_id_experiments'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_warehouse_runs')),
        sa.UniqueConstraint('experiment_id', 'source', name='uq_warehouse_runs_source'),
    )
    # Plain ADD COLUMNs on SQLite too, their constraints written into the table's definition
    # (see _sqlite_edit): every stored row has NULL in them and satisfies the new CHECKs.
    for column, type_, comment in METRIC_COLUMNS:
        op.add_column('metrics', sa.Column(column, type_, nullable=True, comment=comment))
    for column, type_, comment in EXPERIMENT_COLUMNS:
        op.add_column('experiments', sa.Column(column, type_, nullable=True, comment=comment))
    if sqlite:
        _sqlite_edit('metrics', OLD_RATIO_SQL, METRIC_CHECKS_SQL)
        _sqlite_edit('metrics', '\n)', f', \n\t{METRIC_FK_SQL}\n)', at_end=True)
        _sqlite_edit('experiments', '\n)', EXPERIMENT_TAIL_SQL, at_end=True)
        _sqlite_edit('ingest_loads', f'CHECK ({OLD_KINDS})', f'CHECK ({KINDS})')
        return
    op.create_foreign_key(METRIC_FK, 'metrics', 'fact_sources', ['fact_source_id'], ['id'])
    op.drop_constraint(op.f('ck_metrics_ratio_columns'), 'metrics', type_='check')
    op.create_check_constraint(op.f('ck_metrics_ratio_columns'), 'metrics', RATIO)
    op.create_check_constraint(op.f('ck_metrics_aggregation'), 'metrics', AGGREGATION)
    op.create_check_constraint(op.f('ck_metrics_warehouse_columns'), 'metrics',
                               WAREHOUSE_COLUMNS)
    op.create_foreign_key(EXPERIMENT_FK, 'experiments', 'assignment_sources',
                          ['assignment_source_id'], ['id'])
    op.create_check_constraint(op.f('ck_experiments_warehouse'), 'experiments',
                               EXPERIMENT_WAREHOUSE)
    op.drop_constraint(op.f('ck_ingest_loads_kind'), 'ingest_loads', type_='check')
    op.create_check_constraint(op.f('ck_ingest_loads_kind'), 'ingest_loads', KINDS)


def _forget_warehouse_data() -> None:
    """What cannot exist before 0007 goes: warehouse loads in the ledger, and ratio metrics
    computed from a fact source (no numerator/denominator columns) with their data and their
    places in experiments. Sum, count and any metrics stay, as plain mean and binomial ones."""
    op.execute("DELETE FROM ingest_loads WHERE kind = 'warehouse'")
    gone = "SELECT id FROM metrics WHERE fact_source_id IS NOT NULL AND kind = 'ratio'"
    for table in ('metric_daily_stats', 'metric_slice_daily_stats', 'experiment_metrics'):
        op.execute(f'DELETE FROM {table} WHERE metric_id IN ({gone})')
    op.execute(f'UPDATE experiments SET primary_metric_id = NULL '
               f'WHERE primary_metric_id IN ({gone})')
    op.execute('DELETE FROM metrics WHERE fact_source_id IS NOT NULL AND kind = \'ratio\'')


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    _forget_warehouse_data()
    if sqlite:
        _sqlite_edit('ingest_loads', f'CHECK ({KINDS})', f'CHECK ({OLD_KINDS})')
        _sqlite_edit('experiments', EXPERIMENT_TAIL_SQL, '\n)', at_end=True)
        _sqlite_edit('metrics', f', \n\t{METRIC_FK_SQL}\n)', '\n)', at_end=True)
        _sqlite_edit('metrics', METRIC_CHECKS_SQL, OLD_RATIO_SQL)
    else:
        op.drop_constraint(op.f('ck_ingest_loads_kind'), 'ingest_loads', type_='check')
        op.create_check_constraint(op.f('ck_ingest_loads_kind'), 'ingest_loads', OLD_KINDS)
        op.drop_constraint(op.f('ck_experiments_warehouse'), 'experiments', type_='check')
        op.drop_constraint(EXPERIMENT_FK, 'experiments', type_='foreignkey')
        op.drop_constraint(op.f('ck_metrics_warehouse_columns'), 'metrics', type_='check')
        op.drop_constraint(op.f('ck_metrics_aggregation'), 'metrics', type_='check')
        op.drop_constraint(op.f('ck_metrics_ratio_columns'), 'metrics', type_='check')
        op.create_check_constraint(op.f('ck_metrics_ratio_columns'), 'metrics', OLD_RATIO)
        op.drop_constraint(METRIC_FK, 'metrics', type_='foreignkey')
    for column, _type, _comment in reversed(EXPERIMENT_COLUMNS):
        op.drop_column('experiments', column)
    for column, _type, _comment in reversed(METRIC_COLUMNS):
        op.drop_column('metrics', column)
    op.drop_table('warehouse_runs')
    op.drop_table('fact_sources')
    op.drop_table('assignment_sources')
    op.drop_table('warehouse_connections')
