"""Experiment stamps read beside the pool (db/stamps.py), on SQLite and PostgreSQL: they follow
every commit of another connection, never wait for a lock, batch concurrent questions and
recover when their connection is lost."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from core import registry
from db import metric_repository as mrepo
from db import stamps
from db.migrate import upgrade
from db.session import make_engine, session_factory
from db.stamps import PostgresStamps, SqliteStamps, Stamp, stamp_reader
from tests.conftest import EDITOR, create_postgres_database, drop_postgres_database
from tests.core.data.test_ingestion import make_experiment


@contextmanager
def _own_database(kind: str, folder: Path) -> Iterator[Engine]:
    """A migrated database of the test's own (commits must be seen by other connections)."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'stamps.db'}"
    else:
        found = create_postgres_database("experimentos_stamps")
        if found is None:
            pytest.skip("no PostgreSQL server answers")
        url = found
    try:
        upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
    finally:
        if kind == "postgresql":
            drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with _own_database(request.param, tmp_path) as engine:
        yield engine


@pytest.fixture
def postgres_engine(tmp_path: Path) -> Iterator[Engine]:
    with _own_database("postgresql", tmp_path) as engine:
        yield engine


def _experiment(engine: Engine, name: str = "Button test") -> int:
    with session_factory(engine)() as session:
        return make_experiment(session, name=name, end=None)


def _snapshot(engine: Engine, experiment_id: int) -> int:
    with session_factory(engine)() as session:
        row = mrepo.add_snapshot(session, experiment_id=experiment_id, computed_by="test",
                                 computed_at=datetime.now(UTC), as_of=None, data_through=None,
                                 fingerprint="f", payload={})
        session.commit()
        return row.id


def _stamp_now(reader: stamps.StampReader, experiment_id: int) -> Stamp | None:
    return asyncio.run(reader.stamp(experiment_id))


def test_stamps_follow_commits_of_another_connection(engine: Engine) -> None:
    experiment_id = _experiment(engine)
    reader = stamp_reader(engine)
    assert reader is not None
    try:
        first = _stamp_now(reader, experiment_id)
        assert first is not None and first.snapshot_id is None
        with session_factory(engine)() as session:
            version = registry.get_experiment(session, experiment_id=experiment_id).version
            assert first.version == version
            registry.update_experiment(session, experiment_id=experiment_id,
                                       changes={"owner": "sam"}, expected_version=version,
                                       actor=EDITOR)
        changed = _stamp_now(reader, experiment_id)
        assert changed is not None and changed.version == version + 1
        snapshot_id = _snapshot(engine, experiment_id)
        assert _stamp_now(reader, experiment_id) == changed._replace(snapshot_id=snapshot_id)
        newer = _snapshot(engine, experiment_id)
        stamped = _stamp_now(reader, experiment_id)
        assert stamped is not None and stamped.snapshot_id == newer
        assert _stamp_now(reader, experiment_id + 1000) is None  # no such experiment
    finally:
        reader.close()


def test_stamps_none_for_an_in_memory_sqlite_database() -> None:
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite:///file:db?mode=memory&uri=true"):
        assert stamp_reader(create_engine(url, poolclass=StaticPool)) is None


def test_stamps_sqlite_cannot_tell_while_a_writer_commits_and_never_waits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    upgrade(url)
    engine = make_engine(url)
    experiment_id = _experiment(engine)
    reader = SqliteStamps(str(tmp_path / "locked.db"))
    writer = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    try:
        before = reader.read(experiment_id)
        assert before is not None
        writer.execute("BEGIN EXCLUSIVE")  # as a commit in progress holds it
        # With a busy timeout this single-threaded test would wait; it answers at once.
        assert reader.read(experiment_id) is None
        writer.execute("UPDATE experiments SET owner = 'sam', version = version + 1")
        writer.execute("COMMIT")
        after = reader.read(experiment_id)
        assert after is not None and after.version == before.version + 1
        # The reader holds no lock between reads: a writer gets the database at once.
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("COMMIT")
    finally:
        writer.close()
        reader.close()
        engine.dispose()


class CountedStamps(PostgresStamps):
    """The real reader, counting the queries it sends."""

    queries = 0

    async def _query(self, experiment_ids: list[int]) -> dict[int, Stamp] | None:
        self.queries += 1
        return await super()._query(experiment_ids)


def _postgres(engine: Engine) -> CountedStamps:
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    return CountedStamps(*cargs, application_name=stamps.APPLICATION_NAME, **cparams)


@pytest.mark.postgres
def test_stamps_postgres_concurrent_questions_share_queries(postgres_engine: Engine) -> None:
    engine = postgres_engine
    ids = [_experiment(engine, name=f"Test {n}") for n in range(3)]
    snapshot_id = _snapshot(engine, ids[1])
    reader = _postgres(engine)

    async def ask() -> list[Stamp | None]:
        return await asyncio.gather(*(reader.stamp(i) for i in [*ids, *ids, 999_999] * 10))

    try:
        answers = asyncio.run(ask())
    finally:
        reader.close()
    by_id = dict(zip([*ids, *ids, 999_999] * 10, answers, strict=True))
    assert by_id[999_999] is None
    assert [by_id[i].snapshot_id for i in ids] == [None, snapshot_id, None]  # type: ignore[union-attr]
    # 70 questions asked at once: the first query, then one for all that came meanwhile.
    assert reader.queries <= 2


@pytest.mark.postgres
def test_stamps_postgres_connection_lost_then_back(postgres_engine: Engine) -> None:
    engine = postgres_engine
    experiment_id = _experiment(engine)
    reader = _postgres(engine)

    async def scenario() -> list[Stamp | None]:
        seen = [await reader.stamp(experiment_id)]
        with engine.connect() as conn:
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ), {"name": stamps.APPLICATION_NAME}).scalar_one()
        assert killed == 1
        await asyncio.sleep(0.2)
        seen.append(await reader.stamp(experiment_id))  # its connection is gone: cannot tell
        seen.append(await reader.stamp(experiment_id))  # and it waits before reconnecting
        await asyncio.sleep(stamps.RECONNECT_SECONDS + 0.1)
        seen.append(await reader.stamp(experiment_id))
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        reader.close()
    assert seen[0] is not None and seen[1] is None and seen[2] is None
    assert seen[3] == seen[0]


def test_stamps_sqlite_read_by_the_session_matches(tmp_path: Path) -> None:
    """The reader's query names the snapshot db.metric_repository calls the latest."""
    url = f"sqlite:///{tmp_path / 'order.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        experiment_id = _experiment(engine)
        _snapshot(engine, experiment_id)
        _snapshot(engine, experiment_id)
        reader = SqliteStamps(str(tmp_path / "order.db"))
        stamp = reader.read(experiment_id)
        reader.close()
        with Session(engine) as session:
            latest = mrepo.latest_snapshot_id(session, experiment_id=experiment_id)
        assert stamp is not None and stamp.snapshot_id == latest
    finally:
        engine.dispose()
