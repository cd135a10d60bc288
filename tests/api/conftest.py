"""API fixtures: the app over the rolled-back test session, keys of every scope, a client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.deps import get_session
from api.main import create_app
from api.routers import experiments as experiments_router
from core import api_keys, catalogue
from core.config import Settings
from tests.conftest import ADMIN

METRICS = [("conversion", "binomial"), ("revenue", "mean"), ("latency", "mean")]


def make_app(session: Session, **settings: Any) -> FastAPI:
    """The app with every request inside the test's rolled-back transaction."""
    app = create_app(Settings(**settings))
    app.dependency_overrides[get_session] = lambda: session
    experiments_router.list_pages.clear()  # see the client fixture
    return app


@pytest.fixture
def keys(session: Session) -> dict[str, str]:
    """Plaintext keys by scope: `read`, `write`, `admin` (named reader, writer, admin)."""
    names = {"read": "reader", "write": "writer", "admin": "admin"}
    return {
        scope: api_keys.create_api_key(session, name=name, scope=scope).key
        for scope, name in names.items()
    }


@pytest.fixture
def metrics(session: Session) -> list[str]:
    for name, kind in METRICS:
        catalogue.create_metric(session, data={"name": name, "kind": kind}, actor=ADMIN)
    return [name for name, _ in METRICS]


@pytest.fixture(scope="session")
def shared_app() -> FastAPI:
    """One app for the run (building one takes a while); each test points it at its session."""
    return create_app(Settings())


@pytest.fixture
def client(shared_app: FastAPI, session: Session) -> Iterator[TestClient]:
    # Rolled-back tests give ids back, so a list page's stamp may come back with other
    # content: start each test with no kept pages.
    experiments_router.list_pages.clear()
    shared_app.dependency_overrides[get_session] = lambda: session
    try:
        with TestClient(shared_app) as test_client:
            yield test_client
    finally:
        shared_app.dependency_overrides.clear()


@pytest.fixture
def writer(keys: dict[str, str]) -> dict[str, str]:
    return headers(keys["write"])


@pytest.fixture
def running(client: TestClient, writer: dict[str, str], metrics: list[str]) -> int:
    """A launched experiment (the `draft`), through the API; its id."""
    exp = client.post("/api/v1/experiments", json=draft(), headers=writer).json()
    launched = client.post(f"/api/v1/experiments/{exp['id']}/transitions",
                           json={"to_status": "running", "version": 1}, headers=writer)
    assert launched.status_code == 200, launched.text
    return int(exp["id"])


def headers(key: str, **extra: str) -> dict[str, str]:
    return {"X-API-Key": key, **extra}


def draft(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Green button",
        "owner": "maria",
        "hypothesis": "A green button lifts conversion.",
        "primary_metric": "conversion",
        "guardrail_metrics": ["latency"],
        "variants": [{"name": "control", "weight": 0.5}, {"name": "green", "weight": 0.5}],
        "planned_sample_size": 1000,
        "mde": 0.05,
        "tags": ["ui"],
    }
    data.update(overrides)
    return data
