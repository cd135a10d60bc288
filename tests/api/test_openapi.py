"""The OpenAPI document states what the server enforces: patterns, bounds, responses, links."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

EXPERIMENT = "/api/v1/experiments/{experiment_id}"


@pytest.fixture(scope="module")
def document(shared_app: FastAPI) -> dict[str, Any]:
    # Without start-up (no `with`): the document needs no database, so none is checked.
    return dict(TestClient(shared_app).get("/openapi.json").json())


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in document["paths"].items()
            for method, op in item.items()]


def test_openapi_parameters_are_never_null(document: dict[str, Any]) -> None:
    for method, path, op in _operations(document):
        for parameter in op.get("parameters", []):
            schema = parameter["schema"]
            branches = [schema, *schema.get("anyOf", [])]
            assert all(b.get("type") != "null" for b in branches), (method, path, parameter)


def test_openapi_if_match_and_version_are_described(document: dict[str, Any]) -> None:
    patch = document["paths"][EXPERIMENT]["patch"]
    header = next(p for p in patch["parameters"] if p["name"] == "if-match")
    assert header["required"] is False
    schema = header["schema"]
    assert (schema["type"], schema["maxLength"]) == ("string", 64)
    assert schema["pattern"] == '^(W/)?"?[0-9]{1,10}"?$'  # what api.deps.if_match accepts
    body = document["components"]["schemas"]["ExperimentUpdate"]
    assert "version" in body["required"]
    assert body["properties"]["name"]["pattern"].startswith("^[^\\u0000]")
    assert "default" not in body["properties"]["name"]  # may be left out, never null
    assert body["properties"]["hypothesis"]["maxLength"] == 5_000


def test_openapi_every_v1_operation_documents_its_errors(document: dict[str, Any]) -> None:
    for method, path, op in _operations(document):
        if not path.startswith("/api/v1"):
            continue
        codes = set(op["responses"])
        assert {"400", "401", "503"} <= codes, (method, path)
        if method != "get" and "planner" not in path:
            assert {"403", "409", "422"} <= codes, (method, path)
        if "{" in path:
            assert {"404", "422"} <= codes, (method, path)
        for code, response in op["responses"].items():
            if code[0] in "45":
                assert list(response["content"]) == ["application/problem+json"]


def test_openapi_links_lead_from_a_created_experiment(document: dict[str, Any]) -> None:
    created = document["paths"]["/api/v1/experiments"]["post"]["responses"]["201"]["links"]
    update = created["UpdateExperiment"]
    assert update["parameters"] == {"path.experiment_id": "$response.body#/id"}
    assert update["requestBody"] == {"version": "$response.body#/version"}
    targets = {link["operationId"] for link in created.values()}
    ids = {op["operationId"] for _method, path, op in _operations(document)
           if path.startswith(EXPERIMENT)}
    assert targets <= ids and len(targets) == len(created) == 15
    # a new experiment has no results yet: its creation links not to them (its reads do)
    assert "LatestResults" not in created
    fetched = document["paths"][EXPERIMENT]["get"]["responses"]["200"]["links"]
    assert "LatestResults" in fetched
    report = document["paths"][f"{EXPERIMENT}/reports"]["post"]["responses"]["201"]["links"]
    assert report["DownloadReport"]["parameters"] == {"path.report_id": "$response.body#/id"}


def test_openapi_transitions_are_one_body_per_target_status(document: dict[str, Any]) -> None:
    op = document["paths"][f"{EXPERIMENT}/transitions"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["propertyName"] == "to_status"
    abandon = document["components"]["schemas"]["AbandonRequest"]
    assert set(abandon["required"]) == {"to_status", "reason", "version"}


def test_openapi_states_the_metric_rules_json_schema_cannot(document: dict[str, Any]) -> None:
    """POST /metrics refuses, with 422, a numerator or denominator on a metric that is not a
    ratio: the operation's description says so, beside the other rules between its fields."""
    description = " ".join(document["paths"]["/api/v1/metrics"]["post"]["description"].split())
    assert "only a ratio metric takes a numerator and a denominator" in description
    assert "a ratio metric names both" in description


def test_openapi_as_of_states_its_range_wherever_it_is_taken(document: dict[str, Any]) -> None:
    for method, path in (("post", f"{EXPERIMENT}/results/refresh"),
                         ("get", f"{EXPERIMENT}/results/series"),
                         ("get", f"{EXPERIMENT}/segments")):
        (as_of,) = [p for p in document["paths"][path][method]["parameters"]
                    if p["name"] == "as_of"]
        assert "from the experiment's start to today (UTC); 422 outside" in (
            as_of["description"]), path


def test_openapi_list_states_each_query_parameter_and_the_key(document: dict[str, Any]) -> None:
    # The list's query is validated as one model (api.schemas.ExperimentListQuery) and the key
    # resolved as one dependency (api.deps.ApiKeyAuth): the document still states each
    # parameter on its own and the scheme under its old name.
    listing = document["paths"]["/api/v1/experiments"]["get"]
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert list(parameters) == ["status", "owner", "tag", "q", "sort", "include_archived",
                                "page", "page_size", "if-none-match"]
    assert {p["in"] for name, p in parameters.items() if name != "if-none-match"} == {"query"}
    assert parameters["q"]["description"] == "Text in the name, hypothesis or learnings."
    assert parameters["q"]["schema"]["maxLength"] == 200
    assert parameters["owner"]["schema"]["maxLength"] == 120
    assert (parameters["page_size"]["schema"]["minimum"],
            parameters["page_size"]["schema"]["maximum"]) == (1, 500)
    assert parameters["sort"]["schema"]["default"] == "-updated_at"
    assert listing["security"] == [{"APIKeyHeader": []}]
    scheme = document["components"]["securitySchemes"]["APIKeyHeader"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
