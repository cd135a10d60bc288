"""Metrics catalogue routes: list, get, create; validation and scope."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Metric
from tests.api.conftest import headers

URL = "/api/v1/metrics"


def test_metrics_list_and_get(
    client: TestClient, keys: dict[str, str], metrics: list[str]
) -> None:
    listed = client.get(URL, headers=headers(keys["read"]))
    assert listed.status_code == 200
    assert [m["name"] for m in listed.json()] == sorted(metrics)
    one = client.get(f"{URL}/revenue", headers=headers(keys["read"]))
    assert one.status_code == 200 and one.json()["kind"] == "mean"
    assert client.get(f"{URL}/nothing_here", headers=headers(keys["read"])).status_code == 404
    assert client.get(f"{URL}/Bad-Name", headers=headers(keys["read"])).status_code == 422


def test_metrics_create_returns_201_and_audits_the_key(
    client: TestClient, keys: dict[str, str]
) -> None:
    body = {"name": "signup_rate", "kind": "binomial", "unit": "%", "description": "Signups."}
    response = client.post(URL, json=body, headers=headers(keys["write"]))
    assert response.status_code == 201, response.text
    assert response.json() | body == response.json()
    assert response.headers["location"] == f"{URL}/signup_rate"


@pytest.mark.parametrize(
    ("body", "words"),
    [({"name": "Signup Rate", "kind": "binomial"}, "lower_snake_case"),
     ({"name": "signups", "kind": "median"}, "kind"),
     ({"name": "signups", "kind": "ratio"}, "needs a numerator and a denominator"),
     ({"name": "signups"}, "kind"),
     ({"name": "signups", "kind": "mean", "unit": "x" * 33}, "unit"),
     ({"name": "signups", "kind": "mean", "owner": "me"}, "owner"),
     ({"name": "signups", "kind": "mean", "higher_is_better": 0}, "higher_is_better"),
     ({"name": "signups", "kind": "mean", "higher_is_better": "true"}, "higher_is_better"),
     ({"name": "signups", "kind": "mean", "description": "d" * 2_001}, "description"),
     ({"name": "signups", "kind": "mean", "description": "nul\u0000"}, "NUL")],
)
def test_metrics_create_invalid_is_422_and_writes_nothing(
    client: TestClient, session: Session, keys: dict[str, str], metrics: list[str],
    body: dict, words: str,
) -> None:
    before = session.scalar(select(func.count()).select_from(Metric))
    response = client.post(URL, json=body, headers=headers(keys["write"]))
    assert response.status_code == 422
    assert words in response.text
    assert session.scalar(select(func.count()).select_from(Metric)) == before


def test_metrics_create_taken_name_is_409_and_writes_nothing(
    client: TestClient, session: Session, keys: dict[str, str], metrics: list[str]
) -> None:
    before = session.scalar(select(func.count()).select_from(Metric))
    response = client.post(URL, json={"name": "conversion", "kind": "binomial"},
                           headers=headers(keys["write"]))
    assert response.status_code == 409
    assert "already has a metric named 'conversion'" in response.json()["detail"]
    assert session.scalar(select(func.count()).select_from(Metric)) == before
