"""Engine and session factory for the configured database.

Pool limits come from the settings (DATABASE_POOL_SIZE, DATABASE_POOL_TIMEOUT_SECONDS): a
process opens at most that many connections, so the API can admit exactly as many requests to
the database as it has connections (api/deps.py) and no request ever waits on the pool.

The API's engine (:func:`get_api_engine`) bounds every round trip to PostgreSQL by
DATABASE_TIMEOUT_SECONDS, so a database that is stuck (frozen, unreachable, or just too slow)
costs a request a bounded wait and a 503, never a hang (:func:`make_engine`'s ``timeout``).
The other engines (the app's, the CLI's with its migrations and seeding, the DAGs') have no
such bound: their long work is legitimate.

On PostgreSQL every statement is a round trip to a server process, so a read sends only its
queries: a pooled connection is pinged only after it sat idle (:data:`PING_AFTER_IDLE_SECONDS`),
and a :func:`reader` session sends no BEGIN and no ROLLBACK (autocommit).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

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


WATCHDOG_GRACE_SECONDS = 1.0
"""How long past its timeout a round trip may still take before the watchdog closes its
connection: PostgreSQL's own statement_timeout, at the timeout, answers first when it can."""
WATCHDOG_TICK_SECONDS = 0.1


def _json_dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


class _Watchdog:
    """One thread per process that closes the socket of any PostgreSQL connection whose round
    trip (a statement, a commit, a rollback) has run past its deadline.

    A server that is frozen (SIGSTOP, a paused VM) still has its kernel acknowledge every
    packet, so no TCP timeout fires and libpq would wait forever; the statement_timeout it
    was given is the server's to enforce. Shutting the socket down makes libpq's wait end at
    once with "server closed the connection", an OperationalError that SQLAlchemy treats as a
    disconnect (the connection is dropped, the pool replaced) and the API answers with 503.
    """

    def __init__(self) -> None:
        self._armed: dict[int, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, connection: Any, seconds: float) -> Iterator[None]:
        key = id(connection)
        with self._lock:
            self._armed[key] = (time.monotonic() + seconds, connection)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-watchdog",
                                                daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._armed.pop(key, None)

    def _run(self) -> None:
        while True:
            time.sleep(WATCHDOG_TICK_SECONDS)
            now = time.monotonic()
            with self._lock:
                late = [(key, conn) for key, (deadline, conn) in self._armed.items()
                        if deadline <= now]
                for key, _conn in late:
                    del self._armed[key]
            for _key, conn in late:
                conn.timed_out = True
                try:
                    # a duplicate of the descriptor: shutting it down ends libpq's wait on the
                    # shared socket; closing the duplicate leaves libpq's own to libpq
                    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                        sock.shutdown(socket.SHUT_RDWR)
                except (OSError, ValueError):  # closed meanwhile: nothing left to end
                    pass


_WATCHDOG = _Watchdog()


def _watched_connection_class(seconds: float) -> type:
    """A psycopg2 connection class whose statements, commits and rollbacks each end within
    ``seconds`` (the watchdog's :data:`WATCHDOG_GRACE_SECONDS` after the server's own
    statement_timeout); past it they raise OperationalError and the connection is closed."""
    import psycopg2
    import psycopg2.extensions

    limit = seconds + WATCHDOG_GRACE_SECONDS

    @contextmanager
    def bounded(conn: Any) -> Iterator[None]:
        try:
            with _WATCHDOG.watch(conn, limit):
                yield
        except psycopg2.Error:
            if not conn.timed_out:
                raise
            conn.close()
            raise psycopg2.OperationalError(
                f"the database did not answer within {limit:g} s "
                "(DATABASE_TIMEOUT_SECONDS): its connection was closed"
            ) from None

    class WatchedCursor(psycopg2.extensions.cursor):
        def execute(self, query: Any, vars: Any = None) -> Any:  # noqa: A002 - DBAPI's name
            with bounded(self.connection):
                return super().execute(query, vars)

        def executemany(self, query: Any, vars_list: Any) -> Any:
            with bounded(self.connection):
                return super().executemany(query, vars_list)

    class WatchedConnection(psycopg2.extensions.connection):
        timed_out = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cursor_factory = WatchedCursor

        def commit(self) -> None:
            with bounded(self):
                super().commit()

        def rollback(self) -> None:
            with bounded(self):
                super().rollback()

    return WatchedConnection


def _bounded_connect_args(url: str, seconds: float) -> dict[str, Any]:
    """libpq settings that bound a PostgreSQL connection's waits by ``seconds``: the server
    cancels a statement running longer (``statement_timeout``: QueryCanceled), the kernel
    drops a connection whose sent data goes unacknowledged that long (``tcp_user_timeout``)
    or whose peer stops answering keepalives, and the watchdog ends any other wait."""
    ms = max(1, int(seconds * 1000))
    given = make_url(url).query.get("options")
    options = " ".join(o for o in ((given if isinstance(given, str) else None),
                                   f"-c statement_timeout={ms}") if o)
    idle = max(1, int(seconds))
    return {
        "options": options,
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": ms,
        "connection_factory": _watched_connection_class(seconds),
    }


def make_engine(url: str, *, timeout: float | None = None) -> Engine:
    """An engine for `url`, its pool sized by the settings; SQLite gets foreign keys on, a
    busy timeout and its folder created.

    With `timeout` (seconds; the API's DATABASE_TIMEOUT_SECONDS), every round trip to a
    PostgreSQL server ends within it, or a second later when the server cannot even cancel
    (module docstring): the request gets OperationalError, the API a 503. SQLite's waits
    are bounded by its busy timeout already."""
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
            # on the driver's connection: through exec_driver_sql this one word cost as much
            # Python as a query (an execution context, events, a result), on every request
            conn.connection.driver_connection.execute(
                conn.get_execution_options().get(BEGIN_OPTION, "BEGIN")
            )

        return engine
    connect_args: dict[str, Any] = {"connect_timeout": settings.database_connect_timeout_seconds}
    if timeout is not None:
        connect_args |= _bounded_connect_args(url, timeout)
    engine = create_engine(url, json_serializer=_json_dumps, connect_args=connect_args, **pool)

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
    """The process-wide engine for DATABASE_URL (the app's, the CLI's, the DAGs')."""
    return make_engine(get_settings().database_url)


@lru_cache
def get_api_engine() -> Engine:
    """The API's engine for DATABASE_URL: every round trip bounded by
    DATABASE_TIMEOUT_SECONDS (:func:`make_engine`)."""
    settings = get_settings()
    return make_engine(settings.database_url, timeout=settings.database_timeout_seconds)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
