"""Planner routes: the same numbers as core.stats, and clear 422s on impossible plans."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core import stats
from tests.api.conftest import headers

URL = "/api/v1/planner"


@pytest.fixture
def reader(keys: dict[str, str]) -> dict[str, str]:
    return headers(keys["read"])


def test_planner_sample_size_matches_core_stats(client: TestClient, reader: dict) -> None:
    binomial = client.post(f"{URL}/sample-size", headers=reader,
                           json={"kind": "binomial", "baseline": 0.05, "mde": 0.1})
    assert binomial.status_code == 200, binomial.text
    assert binomial.json() == {"sample_size": stats.sample_size_proportion(0.05, 0.1)}
    mean = client.post(f"{URL}/sample-size", headers=reader,
                       json={"kind": "mean", "sd": 10, "mde": 1, "alternative": "greater",
                             "variants": 3})
    assert mean.json() == {
        "sample_size": stats.sample_size_mean(10, 1, alternative="greater", variants=3)
    }


def test_planner_power_mde_and_duration(client: TestClient, reader: dict) -> None:
    power = client.post(f"{URL}/power", headers=reader,
                        json={"kind": "binomial", "baseline": 0.05, "mde": 0.1, "n": 31000})
    assert power.json()["power"] == pytest.approx(stats.power_proportion(0.05, 0.1, 31000))
    mde = client.post(f"{URL}/mde", headers=reader,
                      json={"kind": "binomial", "baseline": 0.05, "n": 31000})
    expected = stats.mde_proportion(0.05, 31000)
    assert mde.json() == pytest.approx({"mde": expected, "relative_mde": expected / 0.05})
    mean_mde = client.post(f"{URL}/mde", headers=reader, json={"kind": "mean", "sd": 3, "n": 500})
    assert mean_mde.json()["mde"] == pytest.approx(stats.mde_mean(3, 500))
    assert mean_mde.json()["relative_mde"] is None
    days = client.post(f"{URL}/duration", headers=reader,
                       json={"n_per_variant": 9000, "daily_units": 1000, "exposure": 0.5,
                             "variants": 3, "weights": [0.5, 0.25, 0.25]})
    assert days.json() == {"days": stats.duration_days(9000, 1000, exposure=0.5, variants=3,
                                                       weights=[0.5, 0.25, 0.25])}


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [("sample-size", {"kind": "binomial", "baseline": 1.5, "mde": 0.1}, "baseline"),
     ("sample-size", {"kind": "binomial", "baseline": 0.9, "mde": 0.5}, "use a smaller mde"),
     ("sample-size", {"kind": "binomial", "baseline": 0.05, "mde": 0.1, "alpha": 0.5,
                      "power": 0.3}, "must exceed alpha"),
     ("sample-size", {"kind": "mean", "sd": 1, "mde": 0.1, "relative": True},
      "needs baseline_mean"),
     ("sample-size", {"kind": "poisson", "mde": 0.1}, "kind"),
     ("sample-size", {"kind": "mean", "sd": 1e12, "mde": 1e-9}, "No finite answer"),
     ("power", {"kind": "mean", "sd": 1, "mde": 0.1, "n": 1}, "body.mean.n"),
     ("mde", {"kind": "binomial", "baseline": 0.5, "n": 2, "power": 0.999}, "No finite answer"),
     ("duration", {"n_per_variant": 100, "daily_units": 10, "weights": [0.9, 0.9]},
      "weights"),
     ("duration", {"n_per_variant": 100, "daily_units": 0}, "daily_units")],
)
def test_planner_impossible_plans_are_422(
    client: TestClient, reader: dict, path: str, body: dict, words: str
) -> None:
    response = client.post(f"{URL}/{path}", json=body, headers=reader)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.text
