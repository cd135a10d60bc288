"""Run Alembic programmatically (used by the CLI and the tests), and tell whether a database's
schema is at the latest migration (checked by the app and the API before they start).

Migrations run in one place: ``python -m core.cli migrate`` (``make run``, the compose
``migrate`` service). The app and the API never change the schema; on a database that is not at
the latest migration they refuse to start, naming that command.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

from core.config import PROJECT_ROOT

MIGRATE_COMMAND = "python -m core.cli migrate"
"""The one command that brings a database to the latest schema."""


class SchemaNotCurrent(RuntimeError):
    """The database is not at the latest migration; the message says what to run."""


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "db" / "migrations"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revisions() -> set[str]:
    """The latest revision(s) of this code's migration scripts."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def _missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL that does not exist yet (connecting would create it empty)."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" \
            or name.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    path = Path(name)
    return None if path.exists() else path


def schema_problem(engine: Engine) -> str | None:
    """None when the database behind ``engine`` is at the latest migration; otherwise what is
    wrong and the command to run. Reads ``alembic_version`` only; changes nothing.

    A SQLite file that does not exist is reported without being created. Connection errors
    (the database down) propagate: the caller decides whether that stops it."""
    url = engine.url.render_as_string(hide_password=True)
    missing = _missing_sqlite_file(engine.url.render_as_string(hide_password=False))
    if missing is not None:
        return (f"There is no database at {missing}. Create it with `{MIGRATE_COMMAND}` "
                "(with the same DATABASE_URL), then start again.")
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    if current == heads:
        return None
    if not current:
        return (f"The database at {url} has no schema yet (no Alembic revision). Create it "
                f"with `{MIGRATE_COMMAND}` (with the same DATABASE_URL), then start again.")
    unknown = sorted(r for r in current if not _known(script, r))
    if unknown:
        return (f"The database at {url} is at revision {', '.join(unknown)}, which this version "
                "of ExperimentOS does not know (a newer version migrated it): deploy that "
                "version, or restore a backup taken before it.")
    return (f"The database at {url} is at revision {', '.join(sorted(current))}, older than "
            f"this version's schema ({', '.join(sorted(heads))}). Upgrade it with "
            f"`{MIGRATE_COMMAND}` (with the same DATABASE_URL), then start again.")


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:  # "Can't locate revision identified by ..."
        return False

