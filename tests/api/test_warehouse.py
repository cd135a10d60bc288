"""The warehouse routes through a TestClient: connections need an admin key, sources a write key
to change; an experiment's refresh from a real DuckDB warehouse file and the SQL that ran; the
errors as problem details (422 naming every problem, 409, 503 with Retry-After)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.api.conftest import headers
from tests.core.warehouse import duckdb_warehouse as wh

CONNECTIONS = "/api/v1/warehouse/connections"
ASSIGNMENT_SOURCES = "/api/v1/warehouse/assignment-sources"
FACT_SOURCES = "/api/v1/warehouse/fact-sources"


@pytest.fixture
def warehouse_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.duckdb"
    wh.write_warehouse(path, *wh.tables())
    return path


def test_warehouse_connections_need_an_admin_key(client: TestClient, keys: dict[str, str],
                                                 warehouse_file: Path) -> None:
    admin, writer = headers(keys["admin"]), headers(keys["write"])
    body = {"name": "shop", "url": f"duckdb:///{warehouse_file}"}
    assert client.get(CONNECTIONS, headers=writer).status_code == 403
    assert client.post(CONNECTIONS, json=body, headers=writer).status_code == 403
    created = client.post(CONNECTIONS, json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{CONNECTIONS}/shop"
    assert created.json()["url"] == body["url"] and created.json()["created_by"] == "api:admin"
    assert client.post(CONNECTIONS, json=body, headers=admin).status_code == 409
    assert [c["name"] for c in client.get(CONNECTIONS, headers=admin).json()] == ["shop"]
    patched = client.patch(f"{CONNECTIONS}/shop", json={"url": "duckdb://"}, headers=admin)
    assert patched.status_code == 200 and patched.json()["url"] == "duckdb://"
    assert client.get(f"{CONNECTIONS}/nope", headers=admin).status_code == 404
    assert client.delete(f"{CONNECTIONS}/shop", headers=writer).status_code == 403
    deleted = client.delete(f"{CONNECTIONS}/shop", headers=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"{CONNECTIONS}/shop", headers=admin).status_code == 404


def test_warehouse_connection_with_a_password_is_refused_in_plain_words(
    client: TestClient, keys: dict[str, str]
) -> None:
    refused = client.post(CONNECTIONS, headers=headers(keys["admin"]), json={
        "name": "analytics", "url": "oracle://analyst:s3cret@db/analytics"})
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["type"] == "urn:experimentos:problem:invalid-input"
    messages = [e["message"] for e in problem["errors"]]
    assert [e["location"] for e in problem["errors"]] == ["url", "url"]
    assert any("is not a warehouse ExperimentOS connects to" in m for m in messages)
    assert any("holds a password" in m and "${NAME}" in m for m in messages)
    assert client.post(CONNECTIONS, headers=headers(keys["admin"]), json={
        "name": "analytics", "url": "duckdb://", "extra": 1}).status_code == 422


def test_warehouse_sources_read_with_any_key_change_with_a_write_key(
    client: TestClient, keys: dict[str, str], warehouse_file: Path
) -> None:
    reader, writer = headers(keys["read"]), headers(keys["write"])
    client.post(CONNECTIONS, json={"name": "shop", "url": f"duckdb:///{warehouse_file}"},
                headers=headers(keys["admin"]))
    body = {"name": "exposures", "connection": "shop", "sql": wh.ASSIGNMENT_SQL,
            "dimensions": ["platform"]}
    assert client.post(ASSIGNMENT_SOURCES, json=body, headers=reader).status_code == 403
    created = client.post(ASSIGNMENT_SOURCES, json=body, headers=writer)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{ASSIGNMENT_SOURCES}/exposures"
    assert created.json()["dimensions"] == ["platform"] and created.json()["experiments"] == []
    bad = client.post(FACT_SOURCES, headers=writer, json={
        "name": "orders", "connection": "nowhere", "sql": "UPDATE orders SET revenue = 0",
        "columns": ["Revenue", "unit_id"]})
    assert bad.status_code == 422
    assert [e["location"] for e in bad.json()["errors"]] == ["sql", "connection", "columns",
                                                             "columns"]
    clash = client.post(FACT_SOURCES, headers=writer, json={
        "name": "exposures", "connection": "shop", "sql": wh.ORDERS_SQL, "columns": ["revenue"]})
    assert clash.status_code == 409
    orders = client.post(FACT_SOURCES, headers=writer, json={
        "name": "orders", "connection": "shop", "sql": wh.ORDERS_SQL,
        "columns": ["revenue", "items"]})
    assert orders.status_code == 201, orders.text
    assert [s["name"] for s in client.get(FACT_SOURCES, headers=reader).json()] == ["orders"]
    assert client.get(f"{FACT_SOURCES}/orders", headers=reader).json()["columns"] == [
        "revenue", "items"]
    patched = client.patch(f"{ASSIGNMENT_SOURCES}/exposures", headers=writer,
                           json={"dimensions": []})
    assert patched.status_code == 200 and patched.json()["dimensions"] == []
    assert patched.json()["covariates"] == []
    adjusted = client.patch(f"{ASSIGNMENT_SOURCES}/exposures", headers=writer,
                            json={"covariates": ["tenure"]})
    assert adjusted.status_code == 200 and adjusted.json()["covariates"] == ["tenure"]
    both = client.patch(f"{ASSIGNMENT_SOURCES}/exposures", headers=writer,
                        json={"dimensions": ["tenure"]})
    assert both.status_code == 422 and "declared a dimension too" in both.text
    metric = client.post("/api/v1/metrics", headers=writer, json={
        "name": "spend", "fact_source": "orders", "aggregation": "sum",
        "value_column": "revenue", "window_days": 7, "cuped_days": 14})
    assert metric.status_code == 201, metric.text
    assert (metric.json()["kind"], metric.json()["fact_source"], metric.json()["cuped_days"]) == (
        "mean", "orders", 14)
    assert client.get("/api/v1/metrics/spend", headers=reader).json()["window_days"] == 7
    in_use = client.delete(f"{FACT_SOURCES}/orders", headers=writer)
    assert in_use.status_code == 409 and "spend" in in_use.json()["detail"]
    assert client.delete(f"{CONNECTIONS}/shop", headers=headers(keys["admin"])
                         ).status_code == 409
    assert client.delete(f"{ASSIGNMENT_SOURCES}/exposures", headers=writer).status_code == 204
    assert client.get(f"{ASSIGNMENT_SOURCES}/Bad Name", headers=reader).status_code == 422


def test_warehouse_refresh_runs_the_generated_sql_and_shows_it(
    client: TestClient, session: Session, keys: dict[str, str], warehouse_file: Path
) -> None:
    exp = wh.define(session, warehouse_file)
    writer, reader = headers(keys["write"]), headers(keys["read"])
    url = f"/api/v1/experiments/{exp}/warehouse"
    assert client.get(f"{url}/runs", headers=reader).json() == []
    assert client.post(f"{url}/refresh", headers=reader).status_code == 403
    refreshed = client.post(f"{url}/refresh", headers=writer)
    assert refreshed.status_code == 200, refreshed.text
    report = refreshed.json()
    assert report["changed"] and report["stats_rows_written"] > 0
    assert (report["units"], report["multi_variant_units"]) == (wh.UNITS - 2, 2)
    assert report["open_from"] == {"orders": wh.start_day().isoformat()}
    assert [r["source"] for r in report["runs"]] == ["exposures", "orders"]
    runs = client.get(f"{url}/runs", headers=reader).json()
    assert [(r["source"], r["role"]) for r in runs] == [("exposures", "assignment"),
                                                        ("orders", "fact")]
    assert "exposures" in runs[0]["sql"] and runs[1]["rows_returned"] > 0
    assert runs[1]["seconds"] > 0 and runs[1]["ran_by"] == "api:writer"
    assert client.get(f"/api/v1/experiments/{exp}/results", headers=reader).status_code == 200
    again = client.post(f"{url}/refresh", headers=writer, params={"full": "true"}).json()
    assert again["full"] and not again["changed"] and again["stats_rows_written"] == 0
    experiment = client.get(f"/api/v1/experiments/{exp}", headers=reader).json()
    assert (experiment["assignment_source"], experiment["experiment_key"]) == ("exposures",
                                                                              wh.KEY)
    assert client.get("/api/v1/experiments/999999/warehouse/runs",
                      headers=reader).status_code == 404


def test_warehouse_refresh_errors_are_409_422_and_503_with_retry_after(
    client: TestClient, session: Session, keys: dict[str, str], warehouse_file: Path,
    running: int,
) -> None:
    exp = wh.define(session, warehouse_file)
    writer, admin = headers(keys["write"]), headers(keys["admin"])
    unattached = client.post(f"/api/v1/experiments/{running}/warehouse/refresh", headers=writer)
    assert unattached.status_code == 409 and "attach" in unattached.json()["detail"]
    client.patch(f"{FACT_SOURCES}/orders", headers=writer, json={
        "sql": "SELECT unit_id, ts AS timestamp, revenue FROM orders"})  # items went missing
    refused = client.post(f"/api/v1/experiments/{exp}/warehouse/refresh", headers=writer)
    assert refused.status_code == 422 and "items" in refused.json()["detail"]
    client.patch(f"{FACT_SOURCES}/orders", headers=writer, json={"sql": wh.ORDERS_SQL})
    client.patch(f"{CONNECTIONS}/shop", headers=admin, json={
        "url": f"duckdb:///{warehouse_file.with_name('moved.duckdb')}"})
    down = client.post(f"/api/v1/experiments/{exp}/warehouse/refresh", headers=writer)
    assert down.status_code == 503 and down.headers["Retry-After"] == "60"
    assert down.json()["type"] == "urn:experimentos:problem:warehouse-unavailable"
    assert client.get(f"/api/v1/experiments/{exp}/warehouse/runs",
                      headers=writer).json() == []  # nothing written
