"""API keys at the HTTP boundary: 401 without a valid key, 403 for a read key on writes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import api_keys
from db.models import ApiKey, AuditEntry, Experiment, Metric
from tests.api.conftest import draft, headers

READS = [
    ("GET", "/api/v1/experiments"),
    ("GET", "/api/v1/experiments/1"),
    ("GET", "/api/v1/experiments/1/audit"),
    ("GET", "/api/v1/experiments/1/audit.csv"),
    ("GET", "/api/v1/metrics"),
    ("POST", "/api/v1/planner/duration"),
]
WRITES = [
    ("POST", "/api/v1/experiments", draft()),
    ("PATCH", "/api/v1/experiments/1", {"owner": "sam", "version": 1}),
    ("POST", "/api/v1/experiments/1/transitions", {"to_status": "running", "version": 1}),
    ("POST", "/api/v1/metrics", {"name": "signups", "kind": "binomial"}),
]


def test_health_answers_without_key(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert client.get("/health/live").json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path"), READS + [(m, p) for m, p, _ in WRITES])
def test_auth_missing_key_is_401_problem(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("APIKey")
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized"
    assert "X-API-Key" in body["detail"]


@pytest.mark.parametrize("key", ["nonsense", "eos_" + "x" * 43, "eos_" + "y" * 500])
def test_auth_unknown_key_is_401(client: TestClient, keys: dict[str, str], key: str) -> None:
    response = client.get("/api/v1/experiments", headers=headers(key))
    assert response.status_code == 401
    assert response.json()["type"].endswith("invalid-api-key")


def test_auth_revoked_key_is_401(
    client: TestClient, session: Session, keys: dict[str, str]
) -> None:
    assert client.get("/api/v1/metrics", headers=headers(keys["read"])).status_code == 200
    api_keys.revoke_api_key(session, name="reader")
    response = client.get("/api/v1/metrics", headers=headers(keys["read"]))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_auth_key_revoked_elsewhere_is_refused_within_the_cache_time(
    client: TestClient, session: Session, keys: dict[str, str], key_clock: list[float]
) -> None:
    """A revocation by another process (no in-process eviction) holds at most
    AUTH_CACHE_SECONDS later."""
    now = key_clock
    assert client.get("/api/v1/metrics", headers=headers(keys["read"])).status_code == 200
    session.execute(
        update(ApiKey).where(ApiKey.name == "reader").values(revoked_at=func.now())
    )
    session.commit()
    now[0] += api_keys.AUTH_CACHE_SECONDS - 0.1
    assert client.get("/api/v1/metrics", headers=headers(keys["read"])).status_code == 200
    now[0] += 0.2
    response = client.get("/api/v1/metrics", headers=headers(keys["read"]))
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_auth_cache_keeps_hashes_not_keys(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get("/api/v1/metrics", headers=headers(keys["read"])).status_code == 200
    assert api_keys.hash_key(keys["read"]) in api_keys._accepted
    assert keys["read"] not in api_keys._accepted


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_auth_read_key_cannot_write_403(
    client: TestClient, session: Session, keys: dict[str, str], metrics: list[str],
    method: str, path: str, body: dict,
) -> None:
    def counts() -> tuple[int | None, ...]:
        return tuple(
            session.scalar(select(func.count()).select_from(m))
            for m in (Experiment, Metric, AuditEntry)
        )

    before = counts()
    response = client.request(method, path, json=body, headers=headers(keys["read"]))
    assert response.status_code == 403
    assert "write scope" in response.json()["detail"]
    assert counts() == before


def test_auth_read_key_can_read_and_plan(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/planner/duration", json={"n_per_variant": 1000, "daily_units": 100},
        headers=headers(keys["read"]),
    )
    assert response.status_code == 200
    assert response.json() == {"days": 20}


def test_auth_audit_records_the_keys_owner(
    client: TestClient, keys: dict[str, str], metrics: list[str]
) -> None:
    created = client.post("/api/v1/experiments", json=draft(), headers=headers(keys["write"]))
    assert created.status_code == 201
    history = client.get(
        f"/api/v1/experiments/{created.json()['id']}/audit", headers=headers(keys["read"])
    ).json()
    assert [(h["actor"], h["action"]) for h in history] == [("api:writer", "create")]


def test_auth_cors_is_off_unless_configured(session: Session) -> None:
    from tests.api.conftest import make_app

    preflight = {
        "Origin": "https://tools.example.com",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "X-API-Key",
    }
    off = TestClient(make_app(session)).options("/api/v1/experiments", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    on = TestClient(
        make_app(session, api_cors_origins=["https://tools.example.com"])
    ).options("/api/v1/experiments", headers=preflight)
    assert on.status_code == 200
    assert on.headers["access-control-allow-origin"] == "https://tools.example.com"
