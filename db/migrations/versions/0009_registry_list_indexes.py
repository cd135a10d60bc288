"""registry list indexes: one per sort key (ties by id), the owner filter's, the
experiment_tags table (filled from experiments.tags) and, on PostgreSQL where pg_trgm can be
created, trigram indexes for the word search

Revision ID: 0009_registry_list_indexes
Revises: 0008_slice_keys
Create Date: 2026-12-07 05:00:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_registry_list_indexes'
down_revision: str | None = '0008_slice_keys'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger("alembic.runtime.migration")

SORT_INDEXES = {
    'ix_experiments_updated_at': ['updated_at', 'id'],
    'ix_experiments_created_at': ['created_at', 'id'],
    'ix_experiments_name': ['name', 'id'],
    'ix_experiments_owner': ['owner', 'id'],
    'ix_experiments_status': ['status', 'id'],
    'ix_experiments_rice_score': ['rice_score', 'id'],
    'ix_experiments_archived_at': ['archived_at'],
}
OWNER_LOWER = 'ix_experiments_owner_lower'
SEARCHED = ('name', 'hypothesis', 'learnings')
"""The columns the registry's word search reads (db.repositories.list_experiments)."""
TRIGRAM_INDEXES = {f'ix_experiments_{column}_trgm': column for column in SEARCHED}

FILL_TAGS = {
    'postgresql': "INSERT INTO experiment_tags (experiment_id, tag) "
                  "SELECT DISTINCT e.id, t.tag FROM experiments e "
                  "CROSS JOIN LATERAL json_array_elements_text(e.tags) AS t(tag) "
                  "WHERE json_typeof(e.tags) = 'array'",
    'sqlite': "INSERT INTO experiment_tags (experiment_id, tag) "
              "SELECT DISTINCT e.id, j.value FROM experiments e, json_each(e.tags) j "
              "WHERE json_type(e.tags) = 'array' AND j.type = 'text'",
}


def _create_trigram_indexes() -> None:
    """pg_trgm's GIN indexes on lower(name), lower(hypothesis) and lower(learnings), which
    serve ``lower(column) LIKE '%word%'``. Creating the extension needs a superuser or, since
    PostgreSQL 13 (pg_trgm is a trusted extension), a role with CREATE on the database; where
    it cannot be created the word search scans the table (slower, same answers) and this
    migration says so in the log. Tried inside a savepoint so a refusal aborts nothing else."""
    bind = op.get_bind()
    savepoint = bind.begin_nested()
    try:
        bind.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        logger.warning("pg_trgm could not be created (%s): the registry's word search will "
                       "scan the experiments table. docs/operations.md ('Registry search') "
                       "gives the statements a superuser can run to add its indexes.",
                       str(exc.orig).strip())
        return
    savepoint.commit()
    for name, column in TRIGRAM_INDEXES.items():
        op.execute(f'CREATE INDEX {name} ON experiments USING gin '
                   f'(lower({column}) gin_trgm_ops)')


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, columns in SORT_INDEXES.items():
        op.create_index(name, 'experiments', columns)
    op.create_index(OWNER_LOWER, 'experiments',
                    [sa.text('lower(owner)'), 'status', 'updated_at', 'id'])
    op.create_table(
        'experiment_tags',
        sa.Column('experiment_id', sa.Integer(), nullable=False),
        sa.Column('tag', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE',
                                name=op.f('fk_experiment_tags_experiment_id_experiments')),
        sa.PrimaryKeyConstraint('experiment_id', 'tag', name=op.f('pk_experiment_tags')),
    )
    op.create_index('ix_experiment_tags_tag', 'experiment_tags', ['tag', 'experiment_id'])
    op.execute(FILL_TAGS[dialect])
    if dialect == 'postgresql':
        _create_trigram_indexes()


def downgrade() -> None:
    """Drops what upgrade made, except the pg_trgm extension (other schemas may use it)."""
    if op.get_bind().dialect.name == 'postgresql':
        for name in TRIGRAM_INDEXES:
            op.execute(f'DROP INDEX IF EXISTS {name}')
    op.drop_index('ix_experiment_tags_tag', table_name='experiment_tags')
    op.drop_table('experiment_tags')
    op.drop_index(OWNER_LOWER, table_name='experiments')
    for name in reversed(SORT_INDEXES):
        op.drop_index(name, table_name='experiments')
