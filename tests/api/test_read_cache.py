"""The API's read caches (api/read_cache.py): what they serve is what the database holds.

Changes made behind the API's back (another process: the app, the CLI, a DAG) are stood in for
by calling the core services on the test's session directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from api.schemas import ExperimentOut
from core import registry
from db import metric_repository as mrepo
from tests.api.conftest import draft, make_app
from tests.api.test_data_results_backlog import aggregate_csv
from tests.conftest import EDITOR

URL = "/api/v1/experiments"


def _statements(session: Session) -> list[str]:
    """Every SQL statement run on the test's connection from now on."""
    seen: list[str] = []
    connection = session.connection()

    @event.listens_for(connection, "before_cursor_execute")
    def _count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    return seen


def test_read_cache_experiment_same_document_as_the_schema_and_follows_changes(
    client: TestClient, session: Session, writer: dict[str, str], metrics: list[str]
) -> None:
    created = client.post(URL, json=draft(), headers=writer).json()
    one = f"{URL}/{created['id']}"
    first = client.get(one, headers=writer)
    assert first.status_code == 200 and first.headers["etag"] == '"1"'
    view = registry.get_experiment(session, experiment_id=created["id"])
    assert first.json() == json.loads(ExperimentOut.model_validate(view).model_dump_json())
    # Changed behind the API's back: the next read shows it (the stamp moved).
    registry.update_experiment(session, experiment_id=created["id"], changes={"owner": "sam"},
                               expected_version=1, actor=EDITOR)
    second = client.get(one, headers=writer)
    assert second.json()["owner"] == "sam" and second.headers["etag"] == '"2"'
    assert client.get(f"{URL}/999999", headers=writer).status_code == 404


@pytest.fixture
def cached_client(session: Session) -> Iterator[TestClient]:
    """The app with results cached for an hour, over the test's session."""
    with TestClient(make_app(session, api_results_cache_seconds=3600)) as test_client:
        yield test_client


def test_read_cache_results_served_without_the_database_until_a_write_through_the_api(
    cached_client: TestClient, session: Session, writer: dict[str, str], metrics: list[str]
) -> None:
    client = cached_client
    created = client.post(URL, json=draft(), headers=writer).json()
    one = f"{URL}/{created['id']}"
    client.post(f"{one}/transitions", json={"to_status": "running", "version": 1},
                headers=writer)
    client.post(f"{one}/data", headers=writer,
                files={"file": ("daily.csv", aggregate_csv(), "text/csv")})
    stored = client.post(f"{one}/results/refresh", headers=writer).json()
    assert client.get(f"{one}/results", headers=writer).json() == stored

    statements = _statements(session)
    again = client.get(f"{one}/results", headers=writer)
    assert again.json() == stored
    assert statements == []  # the key and the snapshot both came from memory

    # Stored behind the API's back: not seen while the cached pointer is fresh …
    payload = {**stored, "fingerprint": "newer"}
    mrepo.add_snapshot(session, experiment_id=created["id"], computed_by="elsewhere",
                       computed_at=datetime.now(UTC), as_of=None, data_through=None,
                       fingerprint="newer", payload=payload)
    session.commit()
    assert client.get(f"{one}/results", headers=writer).json()["snapshot_id"] == (
        stored["snapshot_id"])
    # … and seen at once after a write on the experiment through this process.
    client.patch(one, json={"owner": "sam", "version": 2}, headers=writer)
    newest = client.get(f"{one}/results", headers=writer).json()
    assert newest["snapshot_id"] > stored["snapshot_id"]
    assert newest["computed_by"] == "elsewhere"


def test_read_cache_results_newer_snapshot_seen_once_the_pointer_expires(
    client: TestClient, session: Session, writer: dict[str, str], metrics: list[str]
) -> None:
    client.app.state.snapshots.ttl = 0.0  # type: ignore[attr-defined]
    try:
        created = client.post(URL, json=draft(), headers=writer).json()
        one = f"{URL}/{created['id']}"
        client.post(f"{one}/transitions", json={"to_status": "running", "version": 1},
                    headers=writer)
        client.post(f"{one}/data", headers=writer,
                    files={"file": ("daily.csv", aggregate_csv(), "text/csv")})
        stored = client.post(f"{one}/results/refresh", headers=writer).json()
        assert client.get(f"{one}/results", headers=writer).json() == stored
        mrepo.add_snapshot(session, experiment_id=created["id"], computed_by="elsewhere",
                           computed_at=datetime.now(UTC), as_of=None, data_through=None,
                           fingerprint="newer", payload={**stored, "fingerprint": "newer"})
        session.commit()
        newest = client.get(f"{one}/results", headers=writer).json()
        assert newest["computed_by"] == "elsewhere"
    finally:
        client.app.state.snapshots.ttl = 2.0  # type: ignore[attr-defined]
