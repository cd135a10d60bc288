"""Quantile metrics through the API: the catalogue route takes and returns quantile_p (p in
(0, 1), 422 otherwise), and a user-level upload of a quantile metric gives the results' order-
statistic comparison (the same service as the page: core.stats.quantile_test on the stored
QuantileStats, checked against core.stats.quantile_stats over the uploaded rows)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core.stats import quantile_stats, quantile_test
from tests.api.conftest import headers
from tests.core.data.test_ingestion import write_parquet
from tests.core.data.test_ingestion_quantile import quantile_experiment, quantile_units

URL = "/api/v1"


def test_api_quantile_metric_create_and_refuse_a_level_outside_0_1(
        client: TestClient, keys: dict[str, str]) -> None:
    body = {"name": "p99_load_ms", "kind": "quantile", "quantile_p": 0.99, "unit": "ms",
            "higher_is_better": False}
    made = client.post(f"{URL}/metrics", json=body, headers=headers(keys["write"]))
    assert made.status_code == 201, made.text
    assert made.json()["kind"] == "quantile" and made.json()["quantile_p"] == 0.99
    got = client.get(f"{URL}/metrics/p99_load_ms", headers=headers(keys["read"])).json()
    assert got["quantile_p"] == 0.99
    for bad in ({**body, "name": "p_bad", "quantile_p": 1.5},
                {**body, "name": "p_bad", "quantile_p": None}):
        refused = client.post(f"{URL}/metrics", json=bad, headers=headers(keys["write"]))
        assert refused.status_code == 422 and "quantile_p" in refused.text
    assert client.get(f"{URL}/metrics/p_bad", headers=headers(keys["read"])).status_code == 404


def test_api_quantile_metric_upload_then_results(
        client: TestClient, session: Session, keys: dict[str, str], tmp_path: Path) -> None:
    exp = quantile_experiment(session)
    cols = quantile_units(1500, 1500, slower=1.1)
    path = write_parquet(tmp_path / "q.parquet", cols)
    writer = headers(keys["write"])
    upload = client.post(f"{URL}/experiments/{exp}/data", headers=writer,
                         files={"file": ("q.parquet", path.read_bytes(),
                                         "application/octet-stream")})
    assert upload.status_code == 200, upload.text
    snapshot = client.post(f"{URL}/experiments/{exp}/results/refresh", headers=writer).json()
    row = next(c for c in snapshot["comparisons"] if c["metric"] == "p90_load_ms")
    assert (row["kind"], row["test"]) == ("quantile", "quantile_woodruff")
    x, arm = cols["p90_load_ms"].astype(float), cols["variant"]
    ref = quantile_test(quantile_stats(x[arm == "control"], 0.9),
                        quantile_stats(x[arm == "treatment"], 0.9), alternative="greater")
    assert_allclose([row["lift"], row["lift_ci_low"], row["p_value"]],
                    [ref.lift, ref.lift_ci_low, ref.p_value], rtol=1e-9)


def test_api_warehouse_quantile_metric_create_refresh_and_results(
        client: TestClient, session: Session, keys: dict[str, str], tmp_path: Path) -> None:
    """POST /metrics takes a fact source's quantile metric (kind inferred from quantile_p); a
    warehouse refresh stores its arms and the results test them with core.stats.quantile_test
    on those stored arms (the same table a file fills)."""
    from core.registry.listing import load_experiment
    from db import metric_repository as mrepo
    from tests.core.warehouse import duckdb_warehouse as wh

    path = tmp_path / "shop.duckdb"
    wh.write_warehouse(path, *wh.tables())
    wh.define(session, path, name="Setup")
    writer = headers(keys["write"])
    made = client.post(f"{URL}/metrics", headers=writer, json={
        "name": "wh_revenue_p90", "fact_source": "orders", "aggregation": "sum",
        "value_column": "revenue", "window_days": 7, "quantile_p": 0.9})
    assert made.status_code == 201, made.text
    assert (made.json()["kind"], made.json()["quantile_p"]) == ("quantile", 0.9)
    refused = client.post(f"{URL}/metrics", headers=writer, json={
        "name": "wh_buyers_p90", "fact_source": "orders", "aggregation": "any",
        "quantile_p": 0.9})
    assert refused.status_code == 422 and "sum or count" in refused.text
    exp = wh.define(session, path, name="Quantile checkout", secondaries=("wh_revenue_p90",))
    refreshed = client.post(f"{URL}/experiments/{exp}/warehouse/refresh", headers=writer)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["final_through"] == {"orders": None}
    snapshot = client.post(f"{URL}/experiments/{exp}/results/refresh", headers=writer).json()
    row = next(c for c in snapshot["comparisons"] if c["metric"] == "wh_revenue_p90")
    names = {v.id: v.name for v in load_experiment(session, experiment_id=exp).variants}
    arms = {names[r.variant_id]: r.stats for r in mrepo.quantile_stats(session,
                                                                       experiment_id=exp)}
    ref = quantile_test(arms["control"], arms["treatment"])
    assert (row["kind"], row["test"]) == ("quantile", "quantile_woodruff")
    assert_allclose([row["control_mean"], row["diff"], row["p_value"]],
                    [ref.control_mean, ref.diff, ref.p_value], rtol=1e-12)
