"""the registry's word search indexed on SQLite: an FTS5 table with the trigram tokenizer over
experiments' name, hypothesis and learnings (external content, kept by triggers), the SQLite
counterpart of 0009's pg_trgm indexes

The word search is ``lower(column) LIKE '%word%'`` over three columns; SQLite has no index for
it and read the whole table (65 ms at 100,000 experiments, issue 25 item 1). An FTS5 trigram
table answers a phrase of three characters or more as a substring search, so the listing
first takes its candidate rows from it and keeps the LIKE as the final test (the same answers;
db.repositories._listing_statements). Where SQLite lacks FTS5 this migration logs that and
adds nothing: the search scans, as before. PostgreSQL: nothing to do (0009).

Revision ID: 0018_sqlite_word_search
Revises: 0017_slice_foreign_keys
Create Date: 2026-12-09 12:00:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018_sqlite_word_search'
down_revision: str | None = '0017_slice_foreign_keys'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger('alembic.runtime.migration')

TABLE = 'experiments_search'
COLUMNS = 'name, hypothesis, learnings'
OLD = "old.id, old.name, old.hypothesis, old.learnings"
NEW = "new.id, new.name, new.hypothesis, new.learnings"
TRIGGERS = {
    f'{TABLE}_insert': f"AFTER INSERT ON experiments BEGIN "
                       f"INSERT INTO {TABLE} (rowid, {COLUMNS}) VALUES ({NEW}); END",
    f'{TABLE}_delete': f"AFTER DELETE ON experiments BEGIN "
                       f"INSERT INTO {TABLE} ({TABLE}, rowid, {COLUMNS}) "
                       f"VALUES ('delete', {OLD}); END",
    f'{TABLE}_update': f"AFTER UPDATE OF {COLUMNS} ON experiments BEGIN "
                       f"INSERT INTO {TABLE} ({TABLE}, rowid, {COLUMNS}) "
                       f"VALUES ('delete', {OLD}); "
                       f"INSERT INTO {TABLE} (rowid, {COLUMNS}) VALUES ({NEW}); END",
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    savepoint = bind.begin_nested()
    try:
        bind.exec_driver_sql(f"CREATE VIRTUAL TABLE {TABLE} USING fts5({COLUMNS}, "
                             f"content='experiments', content_rowid='id', "
                             f"tokenize='trigram')")
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        logger.warning("SQLite's FTS5 trigram tokenizer is not available (%s): the registry's "
                       "word search will scan the experiments table.", str(exc.orig).strip())
        return
    savepoint.commit()
    for name, body in TRIGGERS.items():
        bind.exec_driver_sql(f"CREATE TRIGGER {name} {body}")
    bind.exec_driver_sql(f"INSERT INTO {TABLE} ({TABLE}) VALUES ('rebuild')")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    for name in TRIGGERS:
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    bind.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
