"""Capping over the API: the plan's rule round-trips and is frozen at launch (a change is 409,
even with a reason); a bad rule is 422 naming the field; a user-level upload applies the cap and
the results say "capped at p90 (value …)" beside the metric, the value numpy's percentile
(method "linear") of every unit's value."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from tests.api.conftest import draft
from tests.api.test_experiments import URL, counts

P90 = {"kind": "percentile", "value": 0.9}


def test_experiments_capping_round_trips_applies_and_is_frozen(
    client: TestClient, writer: dict[str, str], metrics: list[str]
) -> None:
    created = client.post(URL, json=draft(capping={"latency": P90}), headers=writer)
    assert created.status_code == 201, created.text
    exp = created.json()
    assert exp["capping"] == {"latency": P90}
    launched = client.post(f"{URL}/{exp['id']}/transitions",
                           json={"to_status": "running", "version": 1}, headers=writer)
    assert launched.status_code == 200 and launched.json()["frozen_plan"]["capping"] == {
        "latency": P90}
    refused = client.patch(f"{URL}/{exp['id']}", headers=writer, json={
        "capping": {"latency": {"kind": "fixed", "value": 900}}, "version": 2,
        "reason": "tail"})
    assert refused.status_code == 409
    assert "capping was frozen at launch and cannot change" in refused.json()["detail"]

    rng = np.random.default_rng(3)
    latency = np.round(rng.lognormal(6.0, 0.8, 400), 1)
    variant = np.repeat(["control", "green"], 200)
    today = datetime.now(UTC).date().isoformat()
    csv = "unit_id,variant,date,latency,conversion\n" + "".join(
        f"u{i},{v},{today},{x},{i % 2}\n" for i, (v, x) in enumerate(zip(variant, latency,
                                                                      strict=True)))
    upload = client.post(f"{URL}/{exp['id']}/data", headers=writer,
                         files={"file": ("units.csv", csv.encode(), "text/csv")})
    assert upload.status_code == 200, upload.text
    snapshot = client.post(f"{URL}/{exp['id']}/results/refresh", headers=writer).json()
    row = next(c for c in snapshot["comparisons"] if c["metric"] == "latency")
    cap = np.percentile(latency, 90, method="linear")
    assert row["capping"] == f"capped at p90 (value {cap:.6g})"
    capped = np.minimum(latency, cap)
    assert_allclose(row["control_mean"], capped[:200].mean(), rtol=1e-12)
    assert_allclose(row["treatment_mean"], capped[200:].mean(), rtol=1e-12)
    other = next(c for c in snapshot["comparisons"] if c["metric"] == "conversion")
    assert other["capping"] is None


@pytest.mark.parametrize(("capping", "location"), [
    ({"latency": {"kind": "percentile", "value": 0.4}}, "body.capping.latency"),
    ({"latency": {"kind": "fixed", "value": -1}}, "body.capping.latency"),
    ({"latency": {"kind": "winsor", "value": 0.9}}, "body.capping.latency.kind"),
    ({"conversion": P90}, "\"location\":\"capping\""),
])
def test_experiments_capping_bad_rule_is_422_and_writes_nothing(
    client: TestClient, session: Session, writer: dict[str, str], metrics: list[str],
    capping: dict, location: str,
) -> None:
    before = counts(session)
    response = client.post(URL, json=draft(capping=capping), headers=writer)
    assert response.status_code == 422, response.text
    assert location in response.text
    assert counts(session) == before
