"""Engines from `db.session.make_engine`: SQLite files and in-memory databases alike."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from db.session import make_engine


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
