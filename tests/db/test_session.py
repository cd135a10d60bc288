"""Engines from `db.session.make_engine`: SQLite files and in-memory databases alike."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.exc import DBAPIError

import db.session
from db.session import make_engine, reader, session_factory, writer


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_make_engine_in_memory_sqlite_takes_no_pool_sizing(url: str) -> None:
    # An in-memory database lives in one connection (SQLAlchemy's SingletonThreadPool, which
    # refuses queue-pool arguments such as max_overflow): the engine must not pass them.
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        engine.dispose()


def test_make_engine_file_sqlite_creates_its_folder_and_sizes_its_pool(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "folder" / "app.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() > 0
        assert db.exists()
        assert engine.pool.size() > 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_sqlite_sessions_begin_their_transaction_on_the_driver(tmp_path: Path) -> None:
    # A read opens a transaction (one snapshot for all its statements), a write begins
    # IMMEDIATE (it holds the write lock from the start); the BEGIN goes straight to the
    # driver, so SQLAlchemy executes the session's own statements only.
    path = tmp_path / "begin.db"
    engine = make_engine(f"sqlite:///{path}")
    executed: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_: executed.append(statement))
    try:
        with session_factory(reader(engine))() as session:
            session.execute(text("SELECT 1"))
            assert session.connection().connection.driver_connection.in_transaction
        with session_factory(writer(engine))() as session:
            session.execute(text("SELECT 2"))
            other = sqlite3.connect(path, timeout=0)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
        assert executed == ["SELECT 1", "SELECT 2"]
    finally:
        engine.dispose()


def test_make_engine_in_memory_sqlite_is_one_database_for_every_thread() -> None:
    engine = make_engine("sqlite://")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (7)"))

        def read() -> int:
            with engine.connect() as conn:
                return int(conn.execute(text("SELECT x FROM t")).scalar_one())

        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(read).result() == 7
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- PostgreSQL


def _backend_pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


def test_postgres_reader_sends_no_begin_and_gives_back_a_transactional_connection(
    postgres_url: str,
) -> None:
    # Two statements of a READ COMMITTED transaction share its start time; in autocommit each
    # statement is a transaction of its own (no BEGIN, no ROLLBACK: fewer round trips).
    started = text("SELECT transaction_timestamp()")
    engine = make_engine(postgres_url)
    try:
        with session_factory(reader(engine))() as session:
            first = session.execute(started).scalar_one()
            time.sleep(0.01)
            assert session.execute(started).scalar_one() > first
        with session_factory(engine)() as session:  # the same pooled connection
            first = session.execute(started).scalar_one()
            time.sleep(0.01)
            assert session.execute(started).scalar_one() == first
        assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_postgres_connection_that_died_while_idle_is_replaced_before_use(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db.session, "PING_AFTER_IDLE_SECONDS", 0.05)
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            dead = _backend_pid(conn)
        _terminate(postgres_url, dead)
        time.sleep(0.1)  # idle past the threshold: pinged, found dead, replaced
        with engine.connect() as conn:
            assert _backend_pid(conn) != dead
    finally:
        engine.dispose()


def test_postgres_connection_that_died_just_after_use_fails_once_then_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Used a moment ago, so not pinged: the request that finds it dead fails with an error the
    # API answers 503 (db.session.is_unavailable), and the pool is replaced for the next one.
    monkeypatch.setattr(db.session, "PING_AFTER_IDLE_SECONDS", 60.0)
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            dead = _backend_pid(conn)
        _terminate(postgres_url, dead)
        with pytest.raises(DBAPIError) as failed, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert db.session.is_unavailable(failed.value)
        with engine.connect() as conn:
            assert _backend_pid(conn) != dead
    finally:
        engine.dispose()


def test_postgres_api_engine_cancels_a_statement_past_its_timeout_and_keeps_the_connection(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url, timeout=0.5)
    plain = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            pid = _backend_pid(conn)
            started = time.monotonic()
            with pytest.raises(DBAPIError, match="statement timeout") as failed:
                conn.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - started < 3.0  # 0.5 s, on a loaded machine
            assert db.session.is_unavailable(failed.value)  # the API answers 503
            conn.rollback()
            assert _backend_pid(conn) == pid  # the server cancelled it: the connection lives
        with plain.connect() as conn:  # the app's, the CLI's and the DAGs' engines: no limit
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "0"
    finally:
        engine.dispose()
        plain.dispose()


def test_postgres_api_engine_closes_a_connection_its_server_does_not_answer(
    postgres_url: str,
) -> None:
    """A server that cannot cancel (frozen; tests/api/test_faults.py freezes one) is stood in
    for by one told not to: the watchdog closes the connection a second past the timeout."""
    engine = make_engine(postgres_url, timeout=0.5)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET statement_timeout = 0"))
            dead = _backend_pid(conn)
            started = time.monotonic()
            with pytest.raises(DBAPIError, match="did not answer within 1.5 s") as failed:
                conn.execute(text("SELECT pg_sleep(5)"))
            took = time.monotonic() - started
            assert db.session.is_unavailable(failed.value)
            assert failed.value.connection_invalidated
        assert 1.5 <= took < 4.0, took
        with engine.connect() as conn:  # a new connection, bounded again
            assert _backend_pid(conn) != dead
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "500ms"
    finally:
        engine.dispose()
