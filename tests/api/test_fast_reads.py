"""Cached reads served in front of the routes (api/fast_reads.py), on SQLite and PostgreSQL.

The app runs on a database of the test's own, through its own engine, as deployed (no session
override); writes "behind its back" go through a second engine, standing in for another process
(the Streamlit app, the CLI, a DAG, another API worker). The last test runs two real uvicorn
workers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from api import deps
from api.main import create_app
from core import api_keys, catalogue, registry
from core.config import Settings, get_settings
from db import metric_repository as mrepo
from db.migrate import upgrade
from db.session import get_engine, make_engine, session_factory
from tests.api.live_server import draft, migrate_with_keys, seed_through_api, uvicorn_server
from tests.api.test_data_results_backlog import aggregate_csv
from tests.conftest import ADMIN, EDITOR

URL = "/api/v1/experiments"


def _forget_engines() -> None:
    get_settings.cache_clear()
    get_engine.cache_clear()
    deps._sessions.cache_clear()


@pytest.fixture
def other(own_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The migrated database with the metrics and keys the tests use; the app's process-wide
    engine points at it, and the engine yielded is another one (another process's)."""
    upgrade(own_database)
    monkeypatch.setenv("DATABASE_URL", own_database)
    _forget_engines()
    engine = make_engine(own_database)
    with session_factory(engine)() as session:
        for name, kind in [("conversion", "binomial"), ("latency", "mean")]:
            catalogue.create_metric(session, data={"name": name, "kind": kind}, actor=ADMIN)
    try:
        yield engine
    finally:
        engine.dispose()
        get_engine().dispose()
        monkeypatch.undo()
        _forget_engines()


@pytest.fixture
def key(other: Engine) -> str:
    with session_factory(other)() as session:
        return api_keys.create_api_key(session, name="fast-writer", scope="write").key


@pytest.fixture
def client(other: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as test_client:
        yield test_client


@pytest.fixture
def pool_statements(client: TestClient) -> list[str]:
    """Every statement the app runs through its engine (the pool) from now on."""
    seen: list[str] = []

    @event.listens_for(get_engine(), "before_cursor_execute")
    def _count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    return seen


def _running_with_results(client: TestClient, key: str) -> tuple[int, dict[str, Any]]:
    writer = {"X-API-Key": key}
    created = client.post(URL, json=draft("Green button"), headers=writer).json()
    one = f"{URL}/{created['id']}"
    client.post(f"{one}/transitions", json={"to_status": "running", "version": 1},
                headers=writer).raise_for_status()
    client.post(f"{one}/data", headers=writer,
                files={"file": ("daily.csv", aggregate_csv(), "text/csv")}).raise_for_status()
    stored = client.post(f"{one}/results/refresh", headers=writer)
    stored.raise_for_status()
    return created["id"], stored.json()


def _without_date(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "date"]


def test_fast_reads_hit_same_bytes_and_headers_as_the_route_and_no_pool_statement(
    client: TestClient, key: str, pool_statements: list[str]
) -> None:
    experiment_id, _stored = _running_with_results(client, key)
    for path in (f"{URL}/{experiment_id}", f"{URL}/{experiment_id}/results"):
        pool_statements.clear()
        built = client.get(path, headers={"X-API-Key": key})  # by the route: builds, stores
        assert built.status_code == 200 and pool_statements
        pool_statements.clear()
        hit = client.get(path, headers={"X-API-Key": key})
        assert pool_statements == []  # the key and the document from memory, the stamp beside
        assert hit.content == built.content
        assert _without_date(hit) == _without_date(built)
    assert built.headers["content-type"] == "application/json"


def test_fast_reads_experiment_changed_by_another_engine_seen_by_the_next_read(
    client: TestClient, key: str, other: Engine
) -> None:
    reader = {"X-API-Key": key}
    experiment_id, _stored = _running_with_results(client, key)
    one = f"{URL}/{experiment_id}"
    for _ in range(2):
        cached = client.get(one, headers=reader)
    version = cached.json()["version"]
    with session_factory(other)() as session:
        registry.update_experiment(session, experiment_id=experiment_id,
                                   changes={"owner": "sam"}, expected_version=version,
                                   actor=EDITOR)
    changed = client.get(one, headers=reader)
    assert changed.json()["owner"] == "sam"
    assert changed.headers["etag"] == f'"{version + 1}"'
    again = client.get(one, headers=reader)  # now cached in its turn
    assert again.content == changed.content


def test_fast_reads_results_stored_by_another_engine_seen_by_the_next_read(
    client: TestClient, key: str, other: Engine
) -> None:
    reader = {"X-API-Key": key}
    experiment_id, stored = _running_with_results(client, key)
    results = f"{URL}/{experiment_id}/results"
    for _ in range(2):
        assert client.get(results, headers=reader).json() == stored
    with session_factory(other)() as session:
        newer = mrepo.add_snapshot(
            session, experiment_id=experiment_id, computed_by="elsewhere",
            computed_at=datetime.now(UTC), as_of=None, data_through=None, fingerprint="newer",
            payload={**stored, "fingerprint": "newer"},
        ).id
        session.commit()
    served = client.get(results, headers=reader).json()
    assert (served["snapshot_id"], served["computed_by"]) == (newer, "elsewhere")
    assert client.get(results, headers=reader).json() == served


def test_fast_reads_everything_else_answered_by_the_routes(
    client: TestClient, key: str, pool_statements: list[str]
) -> None:
    experiment_id, _stored = _running_with_results(client, key)
    one = f"{URL}/{experiment_id}"
    client.get(one, headers={"X-API-Key": key})  # cached from now on
    unknown = client.get(one, headers={"X-API-Key": "eos_" + "x" * 40})
    assert unknown.status_code == 401
    assert unknown.headers["content-type"] == "application/problem+json"
    missing = client.get(f"{URL}/999999", headers={"X-API-Key": key})
    assert missing.status_code == 404 and missing.json()["status"] == 404
    invalid = client.get(f"{URL}/0", headers={"X-API-Key": key})
    assert invalid.status_code == 422
    pool_statements.clear()
    queried = client.get(f"{one}?page=1", headers={"X-API-Key": key})
    assert queried.status_code == 200 and pool_statements  # a query string: the route
    no_results = client.post(URL, json=draft("Other"),
                             headers={"X-API-Key": key}).json()
    none_yet = client.get(f"{URL}/{no_results['id']}/results", headers={"X-API-Key": key})
    assert none_yet.status_code == 404 and "no results yet" in none_yet.json()["detail"]


@pytest.mark.slow
def test_fast_reads_two_workers_every_read_after_a_write_sees_it(own_database: str) -> None:
    read_key, write_key = migrate_with_keys(own_database)
    with uvicorn_server(own_database, workers=2) as base:
        seeded = seed_through_api(base, read_key, write_key)
        one = f"{base}{URL}/{seeded.experiment_id}"
        reader = {"X-API-Key": read_key}
        version = httpx.get(one, headers=reader, timeout=10).json()["version"]
        for round_ in range(15):
            # Fresh connections land on either worker: both hold the current version cached.
            for _ in range(6):
                assert httpx.get(one, headers=reader, timeout=10).headers["etag"] == (
                    f'"{version}"')
            patched = httpx.patch(one, json={"owner": f"owner-{round_}", "version": version},
                                  headers={"X-API-Key": write_key}, timeout=10)
            assert patched.status_code == 200, patched.text
            version += 1
            for _ in range(6):
                read = httpx.get(one, headers=reader, timeout=10)
                assert read.headers["etag"] == f'"{version}"'
                assert read.json()["owner"] == f"owner-{round_}"
        results = f"{one}/results"
        before = httpx.get(results, headers=reader, timeout=10).json()["snapshot_id"]
        refreshed = httpx.post(f"{results}/refresh", params={"as_of": _today()},
                               headers={"X-API-Key": write_key}, timeout=60)
        assert refreshed.status_code == 200, refreshed.text
        newest = json.loads(refreshed.content)["snapshot_id"]
        assert newest != before
        for _ in range(6):
            assert httpx.get(results, headers=reader, timeout=10).json()["snapshot_id"] == newest


def _today() -> str:
    return datetime.now(UTC).date().isoformat()
