"""Report routes: generate (write scope), list, download (PDF, ETag = SHA-256), errors.

The app's settings point ARTIFACTS_URL at a temporary folder, so the routes reach the local
artifact store through `get_store` as in production. Generating a report takes ~0.5 s: each
database generates one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import get_session
from api.main import create_app
from core.config import Settings
from db.models import AuditEntry, ReportArtifact
from tests.api.conftest import draft, headers

URL = "/api/v1/experiments"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report-artifacts")


@pytest.fixture(scope="module")
def reports_app(artifacts: Path) -> FastAPI:
    return create_app(Settings(artifacts_url=str(artifacts)))


@pytest.fixture
def client(reports_app: FastAPI, session: Session) -> Iterator[TestClient]:
    reports_app.dependency_overrides[get_session] = lambda: session
    try:
        with TestClient(reports_app) as test_client:
            yield test_client
    finally:
        reports_app.dependency_overrides.clear()


@pytest.fixture
def experiment(client: TestClient, keys: dict[str, str], metrics: list[str]) -> int:
    created = client.post(URL, json=draft(), headers=headers(keys["write"]))
    assert created.status_code == 201, created.text
    return created.json()["id"]


def report_rows(session: Session) -> int | None:
    return session.scalar(select(func.count()).select_from(ReportArtifact))


def test_reports_generate_list_and_download(
    client: TestClient, session: Session, keys: dict[str, str], experiment: int,
    artifacts: Path,
) -> None:
    generated = client.post(f"{URL}/{experiment}/reports", headers=headers(keys["write"]))
    assert generated.status_code == 201, generated.text
    report = generated.json()
    assert set(report) == {"id", "experiment_id", "experiment_name", "key", "size_bytes",
                           "sha256", "created_at", "created_by"}
    assert report["experiment_id"] == experiment and report["created_by"] == "api:writer"
    assert report["key"].startswith(f"reports/experiment-{experiment}/")
    assert report["created_at"].endswith(("Z", "+00:00"))
    assert generated.headers["location"] == f"/api/v1/reports/{report['id']}"
    stored = (artifacts / report["key"]).read_bytes()  # in the folder ARTIFACTS_URL names
    assert len(stored) == report["size_bytes"]
    assert hashlib.sha256(stored).hexdigest() == report["sha256"]
    audit = session.scalars(select(AuditEntry).where(
        AuditEntry.entity_id == experiment, AuditEntry.action == "report")).one()
    assert audit.actor == "api:writer"

    listed = client.get(f"{URL}/{experiment}/reports", headers=headers(keys["read"]))
    assert listed.status_code == 200 and listed.json() == [report]

    download = client.get(generated.headers["location"], headers=headers(keys["read"]))
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert download.content == stored and download.content.startswith(b"%PDF")
    assert download.headers["etag"] == f'"{report["sha256"]}"'
    day = report["created_at"][:10]  # <experiment-slug>-<date>.pdf
    assert download.headers["content-disposition"] == (
        f'attachment; filename="green-button-{day}.pdf"')

    (artifacts / report["key"]).write_bytes(stored + b"tampered")
    corrupt = client.get(generated.headers["location"], headers=headers(keys["read"]))
    assert corrupt.status_code == 500
    assert corrupt.headers["content-type"] == "application/problem+json"
    assert "checksum" in corrupt.json()["detail"] and "Traceback" not in corrupt.text


def test_reports_list_is_empty_before_any_report(
    client: TestClient, keys: dict[str, str], experiment: int
) -> None:
    listed = client.get(f"{URL}/{experiment}/reports", headers=headers(keys["read"]))
    assert listed.status_code == 200 and listed.json() == []


def test_reports_need_a_key_and_generating_needs_write_scope(
    client: TestClient, session: Session, keys: dict[str, str], experiment: int,
    artifacts: Path,
) -> None:
    for method, path in [("POST", f"{URL}/{experiment}/reports"),
                         ("GET", f"{URL}/{experiment}/reports"), ("GET", "/api/v1/reports/1")]:
        response = client.request(method, path)
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
    before = report_rows(session), sorted(artifacts.rglob("*.pdf"))
    refused = client.post(f"{URL}/{experiment}/reports", headers=headers(keys["read"]))
    assert refused.status_code == 403
    assert "write scope" in refused.json()["detail"]
    assert (report_rows(session), sorted(artifacts.rglob("*.pdf"))) == before


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", f"{URL}/999999/reports", 404),
        ("GET", f"{URL}/999999/reports", 404),
        ("GET", "/api/v1/reports/999999", 404),
        ("POST", f"{URL}/0/reports", 422),
        ("GET", f"{URL}/abc/reports", 422),
        ("GET", "/api/v1/reports/0", 422),
        ("GET", "/api/v1/reports/99999999999999999999", 422),
    ],
)
def test_reports_unknown_or_bad_ids_are_problems(
    client: TestClient, session: Session, keys: dict[str, str], method: str, path: str,
    status: int,
) -> None:
    before = report_rows(session)
    response = client.request(method, path, headers=headers(keys["write"]))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
    assert report_rows(session) == before
