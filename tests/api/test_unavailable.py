"""503 answers with Retry-After for faults outside the API process (issue 24 item 7): an
artifact store that is full or read-only (a real tmpfs, tests/filesystems.py) has problem types
of its own and nothing is recorded; /health with the database down says when to retry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import get_session
from api.errors import RETRY_DOWN_SECONDS, RETRY_STORAGE_SECONDS
from db.models import AuditEntry, ReportArtifact
from db.session import make_engine, session_factory
from tests.api.conftest import draft, headers, make_app
from tests.filesystems import fill, tmpfs

URL = "/api/v1/experiments"


def _client(session: Session, artifacts: Path) -> TestClient:
    return TestClient(make_app(session, artifacts_url=str(artifacts)))


def _generate(client: TestClient, keys: dict[str, str]) -> tuple[int, httpx.Response]:
    created = client.post(URL, json=draft(), headers=headers(keys["write"]))
    assert created.status_code == 201, created.text
    experiment = created.json()["id"]
    return experiment, client.post(f"{URL}/{experiment}/reports", headers=headers(keys["write"]))


def _nothing_recorded(session: Session, experiment: int) -> None:
    assert session.scalar(select(func.count()).select_from(ReportArtifact)) == 0
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.entity_id == experiment, AuditEntry.action == "report")) == 0


@pytest.mark.parametrize(("read_only", "kind", "cause"), [
    (False, "storage-full", "ENOSPC"), (True, "storage-read-only", "EROFS")])
def test_report_on_a_full_or_read_only_store_is_503_of_its_kind(
    session: Session, keys: dict[str, str], metrics: list[str], tmp_path: Path,
    caplog: pytest.LogCaptureFixture, read_only: bool, kind: str, cause: str,
) -> None:
    with tmpfs(tmp_path / "store", read_only=read_only) as mount:
        if not read_only:
            fill(mount)
        with _client(session, mount / "artifacts") as client, \
                caplog.at_level(logging.WARNING, logger="api"):
            experiment, response = _generate(client, keys)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(RETRY_STORAGE_SECONDS)
    problem = response.json()
    assert problem["type"] == f"urn:experimentos:problem:{kind}"
    assert cause in problem["detail"] and "nothing was recorded" in problem["detail"]
    assert "database" not in problem["detail"]
    _nothing_recorded(session, experiment)
    logged = [r for r in caplog.records if r.name == "api" and "Artifact store" in r.message]
    assert logged and isinstance(logged[0].exc_info[1], OSError)  # type: ignore[index]
    assert logged[0].exc_info[1].errno is not None  # type: ignore[index]


@pytest.fixture
def dead_database() -> Iterator[Session]:
    """A session on a PostgreSQL address where nothing listens."""
    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none")
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


def test_health_database_down_is_503_with_retry_after(
    session: Session, dead_database: Session
) -> None:
    app = make_app(session)
    app.dependency_overrides[get_session] = lambda: dead_database
    with TestClient(app) as client:
        response = client.get("/health")
        assert client.get("/health/live").status_code == 200
    assert response.status_code == 503
    assert response.json()["type"].endswith("database-unavailable")
    assert response.headers["retry-after"] == str(RETRY_DOWN_SECONDS)
