"""The plan's test settings over the API: a one-sided alternative, guardrail margins and the
Gaussian prior round-trip (create, get, patch with a reason after launch, audit); bad values
are 422 naming the field, writing nothing; the OpenAPI document states their ranges."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.api.conftest import draft
from tests.api.test_experiments import URL, counts

PLAN = {"alternative": "greater", "guardrail_margins": {"latency": 0.015},
        "prior_lift_mean": 0.01, "prior_lift_sd": 0.05, "post_stratify_on": "platform"}


def test_experiments_plan_settings_round_trip(
    client: TestClient, writer: dict[str, str], metrics: list[str]
) -> None:
    created = client.post(URL, json=draft(**PLAN), headers=writer)
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in PLAN} == PLAN
    fetched = client.get(f"{URL}/{body['id']}", headers=writer).json()
    assert {k: fetched[k] for k in PLAN} == PLAN
    launched = client.post(f"{URL}/{body['id']}/transitions",
                           json={"to_status": "running", "version": 1}, headers=writer)
    assert launched.status_code == 200, launched.text
    frozen = launched.json()["frozen_plan"]
    assert {k: frozen[k] for k in PLAN} == PLAN
    refused = client.patch(f"{URL}/{body['id']}", json={"alternative": "two-sided",
                                                        "version": 2}, headers=writer)
    assert refused.status_code == 409 and "needs a reason" in refused.json()["detail"]
    patched = client.patch(f"{URL}/{body['id']}", headers=writer, json={
        "alternative": "two-sided", "guardrail_margins": {}, "prior_lift_mean": None,
        "prior_lift_sd": None, "version": 2, "reason": "Two-sided after all"})
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert (after["alternative"], after["guardrail_margins"], after["prior_lift_sd"]) == (
        "two-sided", {}, None)
    history = client.get(f"{URL}/{body['id']}/audit", headers=writer).json()
    assert history[-1]["action"] == "plan_deviation" and history[-1]["is_deviation"]
    assert history[-1]["changes"]["guardrail_margins"] == [{"latency": 0.015}, {}]


@pytest.mark.parametrize(("overrides", "location"), [
    ({"alternative": "larger"}, "body.alternative"),
    ({"guardrail_margins": {"latency": 1.5}}, "body.guardrail_margins.latency"),
    ({"guardrail_margins": {"latency": -0.01}}, "body.guardrail_margins.latency"),
    ({"guardrail_margins": {"revenue": 0.01}}, "body.guardrail_margins"),
    ({"prior_lift_mean": 0.0}, "body.prior_lift_sd"),
    ({"prior_lift_mean": 0.0, "prior_lift_sd": 0}, "body.prior_lift_sd"),
    ({"alternative": "less"}, "body.alternative"),
])
def test_experiments_plan_bad_settings_are_422_and_write_nothing(
    client: TestClient, session: Session, writer: dict[str, str], metrics: list[str],
    overrides: dict, location: str,
) -> None:
    before = counts(session)
    response = client.post(URL, json=draft(**overrides), headers=writer)
    assert response.status_code == 422, response.text
    # schema errors are located in the body, the registry's cross-field rules by field
    found = [e["location"].removeprefix("body.") for e in response.json()["errors"]]
    assert location.removeprefix("body.") in found, response.text
    assert counts(session) == before


def test_experiments_plan_openapi_states_the_ranges(client: TestClient) -> None:
    props = client.get("/openapi.json").json()["components"]["schemas"][
        "ExperimentCreate"]["properties"]
    assert props["alternative"]["enum"] == ["two-sided", "greater", "less"]
    margin = next(iter(props["guardrail_margins"]["patternProperties"].values()))
    assert (margin["exclusiveMinimum"], margin["exclusiveMaximum"]) == (0, 1)
    assert props["guardrail_margins"]["maxProperties"] == 20
    sd = next(b for b in props["prior_lift_sd"]["anyOf"] if b.get("type") == "number")
    assert sd["exclusiveMinimum"] == 0
