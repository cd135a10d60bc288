"""Engine and session factory for the configured database.

Pool limits come from the settings (DATABASE_POOL_SIZE, DATABASE_POOL_TIMEOUT_SECONDS): a
process opens at most that many connections, so the API can admit exactly as many requests to
the database as it has connections (api/deps.py) and no request ever waits on the pool.

On PostgreSQL every statement is a round trip to a server process, so a read sends only its
queries: a pooled connection is pinged only after it sat idle (:data:`PING_AFTER_IDLE_SECONDS`),
and a :func:`reader` session sends no BEGIN and no ROLLBACK (autocommit).
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from core.config import get_settings

BEGIN_OPTION = "experimentos_begin"
"""Execution option naming how a SQLite transaction begins (see :func:`writer`)."""
READ_OPTION = "experimentos_read"
"""Execution option marking a session that only reads (see :func:`reader`)."""
PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled PostgreSQL connection idle in the pool longer than this is pinged (``SELECT 1``)
before use, and the pool replaced if the server does not answer. One used within the last
second is not: under load that ping was one of a read's four round trips, and a dead
connection still fails its request with 503 and replaces the pool (as HikariCP skips its
alive check for connections used in the last 500 ms)."""


def _json_dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def make_engine(url: str) -> Engine:
    """An engine for `url`, its pool sized by the settings; SQLite gets foreign keys on, a
    busy timeout and its folder created."""
    settings = get_settings()
    pool = {
        "pool_size": settings.database_pool_size,
        "max_overflow": 0,
        "pool_timeout": settings.database_pool_timeout_seconds,
    }
    if url.startswith("sqlite"):
        path = make_url(url).database or ""
        in_memory = path in ("", ":memory:") or "mode=memory" in url
        if not in_memory and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            json_serializer=_json_dumps,
            # in memory: one connection shared by every thread, else each thread would see its
            # own empty database
            **({"poolclass": StaticPool} if in_memory else pool),
        )
        busy_ms = int(settings.sqlite_busy_timeout_seconds * 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not pysqlite, issue BEGIN so SAVEPOINTs work (SQLAlchemy docs,
            # "Serializable isolation / Savepoints / Transactional DDL" for pysqlite).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql(conn.get_execution_options().get(BEGIN_OPTION, "BEGIN"))

        return engine
    engine = create_engine(
        url,
        json_serializer=_json_dumps,
        connect_args={"connect_timeout": settings.database_connect_timeout_seconds},
        **pool,
    )

    @event.listens_for(engine, "checkout")
    def _ping_after_idle(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        returned = record.info.get("returned_at")  # none on a new connection
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError(f"pinged after idling: {exc}") from exc

    @event.listens_for(engine, "begin")
    def _read_in_autocommit(conn):  # type: ignore[no-untyped-def]
        if conn.get_execution_options().get(READ_OPTION):
            conn.connection.dbapi_connection.autocommit = True

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection, record):  # type: ignore[no-untyped-def]
        if dbapi_connection is None or dbapi_connection.closed:  # invalidated
            return
        if dbapi_connection.autocommit:  # a reader's: no transaction open, so this sends nothing
            dbapi_connection.autocommit = False
        record.info["returned_at"] = time.monotonic()

    return engine


def reader(engine: Engine) -> Engine:
    """`engine` for sessions that only read: on PostgreSQL their statements run in autocommit.

    A PostgreSQL transaction at READ COMMITTED (the default) takes a new snapshot for every
    statement, so a read in autocommit sees exactly what it would inside one; it only skips
    the BEGIN and the ROLLBACK, two of the round trips of a one-query read. The connection
    is transactional again as it goes back to the pool. Elsewhere a no-op.
    """
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(**{READ_OPTION: True})


def writer(engine: Engine) -> Engine:
    """`engine` for transactions that will write: on SQLite they begin IMMEDIATE.

    A deferred SQLite transaction that reads and then writes cannot wait for a concurrent
    writer (SQLite refuses at once with "database is locked", busy timeout or not); one that
    takes the write lock at BEGIN waits up to SQLITE_BUSY_TIMEOUT_SECONDS, then sees the other
    writer's commit, so a stale version becomes a 409 rather than an error. Elsewhere a no-op.
    """
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{BEGIN_OPTION: "BEGIN IMMEDIATE"})


UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)
"""What SQLAlchemy raises when the database cannot serve a request now (down, unreachable,
busy, or every pooled connection taken)."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database could not serve the request (rather than a bug)."""
    return isinstance(exc, UNAVAILABLE) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's "database is locked" (another writer held on too long)."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for DATABASE_URL."""
    return make_engine(get_settings().database_url)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
