"""Shared fixtures: real databases (SQLite and PostgreSQL), migrated with Alembic.

PostgreSQL: a throwaway database is created on the server named by TEST_POSTGRES_URL
(default postgresql+psycopg2://postgres@127.0.0.1:5432/postgres) and dropped at the end.
Where no server answers the PostgreSQL tests are skipped — except in CI (CI=true), where
that is a failure (`.ci/run` starts a server first).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core import api_keys
from core.auth import Actor
from core.config import demo_warehouse_file
from core.demo import seed_demo
from db.migrate import upgrade
from db.session import make_engine, session_factory
from tests.apptest import use_database

ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"

EDITOR = Actor(name="erin.editor", role="editor")
VIEWER = Actor(name="victor.viewer", role="viewer")
ADMIN = Actor(name="ada.admin", role="admin")


def _postgres_admin_engine() -> Engine | None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        engine.dispose()
        if IN_CI:
            raise RuntimeError(
                f"PostgreSQL is required in CI but {ADMIN_URL} does not answer: {exc}"
            ) from exc
        return None
    return engine


def create_postgres_database(prefix: str = "experimentos_test") -> str | None:
    """Create an empty database on the test server; return its URL (None: no server)."""
    admin = _postgres_admin_engine()
    if admin is None:
        return None
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    """Drop the database, and the demo warehouse file seeding it may have written
    (data/demo-warehouse-<database>.duckdb)."""
    demo_warehouse_file(url).unlink(missing_ok=True)
    admin = _postgres_admin_engine()
    if admin is None:
        return
    name = make_url(url).database
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated throwaway PostgreSQL database for the whole test session."""
    url = create_postgres_database()
    if url is None:
        pytest.skip(f"no PostgreSQL answers at {ADMIN_URL} (required when CI=true)")
    upgrade(url)
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "test.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated engine, once per database kind."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = request.getfixturevalue("sqlite_url")
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def key_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The API key caches' clock (core.api_keys), moved by hand, over empty caches of the
    test's own (a revocation seen at a made-up time must not outlive the test)."""
    now = [1000.0]
    monkeypatch.setattr(api_keys.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(api_keys, "_accepted", {})
    monkeypatch.setattr(api_keys, "_revoked", {})
    monkeypatch.setattr(api_keys, "_revocation_seen", float("-inf"))
    return now


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test.

    Services commit as usual; with join_transaction_mode="create_savepoint" their commits
    only release savepoints, and the outer rollback leaves the database as it was.
    """
    connection = db_engine.connect()
    outer = connection.begin()
    sess = Session(bind=connection, join_transaction_mode="create_savepoint",
                   expire_on_commit=False)
    try:
        yield sess
    finally:
        sess.close()
        outer.rollback()
        connection.close()


# ----------------------------------------------------------------------- the demo app


@pytest.fixture(scope="session")
def demo_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("demo") / "demo.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        seed_demo(session)
    engine.dispose()
    return url


@pytest.fixture
def demo_session(demo_db_url: str) -> Iterator[Session]:
    """A session on the shared seeded demo database (with its metric data); rolled back."""
    engine = make_engine(demo_db_url)
    connection = engine.connect()
    outer = connection.begin()
    sess = Session(bind=connection, join_transaction_mode="create_savepoint",
                   expire_on_commit=False)
    try:
        yield sess
    finally:
        sess.close()
        outer.rollback()
        connection.close()
        engine.dispose()


@pytest.fixture
def demo_app(monkeypatch: pytest.MonkeyPatch, demo_db_url: str) -> Iterator[str]:
    """Point the app at the shared demo database (tests must not rely on others' writes)."""
    use_database(monkeypatch, demo_db_url)
    yield demo_db_url


@pytest.fixture
def fresh_demo_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A demo database of the test's own, for tests that write."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        seed_demo(session)
    engine.dispose()
    use_database(monkeypatch, url)
    yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database of the test's own, for tests that run real servers or
    several engines: a SQLite file, or a PostgreSQL database created here and dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'own.db'}"
        return
    url = create_postgres_database("experimentos_api_own")
    if url is None:
        pytest.skip("no PostgreSQL server answers")
    try:
        yield url
    finally:
        drop_postgres_database(url)
