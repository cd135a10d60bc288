"""Data upload, SQL refresh, results (latest, history, series, refresh) and backlog routes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.analysis import results
from core.analysis.snapshot import ResultsSnapshot
from core.backlog import knowledge
from core.data.metric_sources import set_metric_source
from core.demo import seed_demo
from db import metric_repository as mrepo
from db.models import MetricDailyStat
from tests.api.conftest import draft, headers, make_app
from tests.conftest import EDITOR

URL = "/api/v1/experiments"


def aggregate_csv() -> bytes:
    today = datetime.now(UTC).date().isoformat()
    rows = ["variant,date,metric,n,sum,sum_squares"]
    for variant, conversions in [("control", 100), ("green", 130)]:
        rows.append(f"{variant},{today},conversion,1000,{conversions},{conversions}")
        rows.append(f"{variant},{today},latency,1000,250000,65000000")
    return ("\n".join(rows) + "\n").encode()


def stat_rows(session: Session) -> int | None:
    return session.scalar(select(func.count()).select_from(MetricDailyStat))


def test_data_upload_then_results(
    client: TestClient, session: Session, writer: dict[str, str], running: int
) -> None:
    upload = client.post(f"{URL}/{running}/data", headers=writer,
                         files={"file": ("daily.csv", aggregate_csv(), "text/csv")})
    assert upload.status_code == 200, upload.text
    report = upload.json()
    assert report["stats_rows_written"] == 4 and report["source"] == "daily.csv"
    refreshed = client.post(f"{URL}/{running}/results/refresh", headers=writer)
    assert refreshed.status_code == 200, refreshed.text
    snapshot = refreshed.json()
    assert snapshot["computed_by"] == "api:writer"
    assert {c["metric"] for c in snapshot["comparisons"]} == {"conversion", "latency"}
    latest = client.get(f"{URL}/{running}/results", headers=writer).json()
    assert latest["snapshot_id"] == snapshot["snapshot_id"]
    history = client.get(f"{URL}/{running}/results/history", headers=writer).json()
    assert [h["snapshot_id"] for h in history] == [snapshot["snapshot_id"]]
    series = client.get(f"{URL}/{running}/results/series", params={"metric": "conversion"},
                        headers=writer)
    assert series.status_code == 200
    assert {p["metric"] for p in series.json()} == {"conversion"}
    assert client.get(f"{URL}/{running}/results/series", params={"metric": "nope"},
                      headers=writer).status_code == 404


def test_data_upload_leaves_a_fresh_results_snapshot_like_the_page(
    client: TestClient, session: Session, writer: dict[str, str], running: int
) -> None:
    # the Results page loads a file through core.workflows.loads.load_upload, which stores a
    # snapshot of the data just loaded; the API's upload is the same service
    assert results.latest_snapshot(session, experiment_id=running) is None
    upload = client.post(f"{URL}/{running}/data", headers=writer,
                         files={"file": ("daily.csv", aggregate_csv(), "text/csv")})
    assert upload.status_code == 200, upload.text
    stored = results.latest_snapshot(session, experiment_id=running)
    assert stored is not None and stored.computed_by == "api:writer"
    assert stored.fingerprint == results.compute_results(session, experiment_id=running).fingerprint
    assert {c.metric for c in stored.comparisons} == {"conversion", "latency"}
    latest = client.get(f"{URL}/{running}/results", headers=writer)
    assert latest.status_code == 200 and latest.json()["snapshot_id"] == stored.snapshot_id


@pytest.mark.parametrize(
    ("content", "name"),
    [(b"", "empty.csv"), (b"variant,date,metric,n,sum,sum_squares\nblue,2020-01-01,x,1,1,1\n",
                          "bad.csv"), (b"\x00\x01\x02binary", "blob.bin")],
)
def test_data_bad_upload_is_422_and_writes_nothing(
    client: TestClient, session: Session, writer: dict[str, str], running: int,
    content: bytes, name: str,
) -> None:
    before = stat_rows(session)
    response = client.post(f"{URL}/{running}/data", headers=writer,
                           files={"file": (name, content, "text/csv")})
    assert response.status_code == 422, response.text
    assert response.json()["errors"]
    assert stat_rows(session) == before


def test_data_upload_needs_write_key_and_a_file(
    client: TestClient, keys: dict[str, str], running: int
) -> None:
    files = {"file": ("daily.csv", aggregate_csv(), "text/csv")}
    assert client.post(f"{URL}/{running}/data", files=files,
                       headers=headers(keys["read"])).status_code == 403
    assert client.post(f"{URL}/{running}/data", headers=headers(keys["write"])).status_code == 422
    assert client.post(f"{URL}/99999/data", files=files,
                       headers=headers(keys["write"])).status_code == 404


def test_data_upload_over_the_limit_is_413(
    session: Session, keys: dict[str, str], metrics: list[str]
) -> None:
    client = TestClient(make_app(session, api_max_upload_mb=1))
    big = b"variant,date,metric,n,sum,sum_squares\n" + b"x" * (1024 * 1024 + 1)
    response = client.post(f"{URL}/1/data", headers=headers(keys["write"]),
                           files={"file": ("big.csv", big, "text/csv")})
    assert response.status_code == 413


def test_data_sql_refresh_without_source_is_409(
    client: TestClient, writer: dict[str, str], running: int
) -> None:
    response = client.post(f"{URL}/{running}/data/sql-refresh", headers=writer)
    assert response.status_code == 409
    assert "no SQL metric source" in response.json()["detail"]
    missing = client.post(f"{URL}/424242/data/sql-refresh", headers=writer)
    assert missing.status_code == 404


def test_data_sql_refresh_leaves_a_fresh_results_snapshot_like_the_page(
    client: TestClient, session: Session, writer: dict[str, str], running: int
) -> None:
    query = " UNION ALL ".join(
        f"SELECT '{variant}' AS variant, :end AS day, 'conversion' AS metric, 1000 AS n, "
        f"{conversions} AS sum, {conversions} AS sum_squares"
        for variant, conversions in [("control", 100), ("green", 130)])
    set_metric_source(session, experiment_id=running, url=None, query=query, actor=EDITOR)
    response = client.post(f"{URL}/{running}/data/sql-refresh", headers=writer)
    assert response.status_code == 200, response.text
    stored = results.latest_snapshot(session, experiment_id=running)
    assert stored is not None and stored.computed_by == "api:writer"
    conversion = next(c for c in stored.comparisons if c.metric == "conversion")
    assert (conversion.control_n, conversion.treatment_n) == (1000, 1000)


@pytest.mark.parametrize("as_of", ["0", "0076-01-01", "3010-01-01", "1970-01-01", "tomorrow"])
def test_results_refresh_as_of_outside_the_run_is_422_and_stores_nothing(
    client: TestClient, session: Session, writer: dict[str, str], running: int, as_of: str
) -> None:
    today = datetime.now(UTC).date()
    if as_of == "tomorrow":
        as_of = (today + timedelta(days=1)).isoformat()
    response = client.post(f"{URL}/{running}/results/refresh", params={"as_of": as_of},
                           headers=writer)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["location"] in ("as_of", "query.as_of")
    if as_of != "0":
        assert f"give a day from {today} (the start of 'Green button') to {today}" in (
            problem["detail"])
    assert mrepo.snapshots(session, experiment_id=running) == []


def test_results_refresh_as_of_today_is_stored(
    client: TestClient, session: Session, writer: dict[str, str], running: int
) -> None:
    today = datetime.now(UTC).date().isoformat()
    response = client.post(f"{URL}/{running}/results/refresh", params={"as_of": today},
                           headers=writer)
    assert response.status_code == 200, response.text
    assert response.json()["as_of"] == today
    assert len(mrepo.snapshots(session, experiment_id=running)) == 1


def test_results_series_as_of_must_be_an_iso_day(
    client: TestClient, writer: dict[str, str], running: int
) -> None:
    for bad in ("0", "1700000000", "2026-03-09T00:00:00"):
        response = client.get(f"{URL}/{running}/results/series", params={"as_of": bad},
                              headers=writer)
        assert response.status_code == 422 and "YYYY-MM-DD" in response.text


def test_results_of_missing_experiment_is_404(client: TestClient, writer: dict) -> None:
    for path in ("results", "results/history", "results/series"):
        response = client.get(f"{URL}/77777/{path}", headers=writer)
        assert response.status_code == 404
        if path != "results/series":
            assert response.json()["detail"] == "No experiment with id 77777."


def test_results_history_of_experiment_without_results_is_empty(
    client: TestClient, writer: dict[str, str], running: int
) -> None:
    response = client.get(f"{URL}/{running}/results/history", headers=writer)
    assert response.status_code == 200 and response.json() == []
    assert "has no results yet" in client.get(f"{URL}/{running}/results",
                                              headers=writer).json()["detail"]


def test_results_latest_is_the_snapshot_as_its_schema_serialises_it(
    client: TestClient, session: Session, writer: dict[str, str], running: int
) -> None:
    client.post(f"{URL}/{running}/data", headers=writer,
                files={"file": ("daily.csv", aggregate_csv(), "text/csv")})
    assert client.post(f"{URL}/{running}/results/refresh", headers=writer).status_code == 200
    response = client.get(f"{URL}/{running}/results", headers=writer)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    stored = results.latest_snapshot(session, experiment_id=running)
    assert stored is not None
    expected = TypeAdapter(ResultsSnapshot).dump_json(stored)
    assert response.json() == json.loads(expected)
    assert list(response.json()) == list(json.loads(expected))
    assert response.json()["computed_at"].endswith("Z")


def test_results_latest_serves_non_finite_numbers_as_null(
    client: TestClient, session: Session, writer: dict[str, str], running: int
) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL's json type refuses NaN, so such a payload cannot be stored")
    client.post(f"{URL}/{running}/data", headers=writer,
                files={"file": ("daily.csv", aggregate_csv(), "text/csv")})
    snapshot = client.post(f"{URL}/{running}/results/refresh", headers=writer).json()
    payload = {**snapshot, "fingerprint": "nan", "alpha": math.nan, "progress": math.inf}
    mrepo.add_snapshot(session, experiment_id=running, computed_by="test",
                       computed_at=datetime.now(UTC), as_of=None, data_through=None,
                       fingerprint="nan", payload=payload)
    session.commit()
    latest = client.get(f"{URL}/{running}/results", headers=writer).json()
    assert latest["fingerprint"] == "nan" and latest["computed_by"] == "test"
    assert latest["alpha"] is None and latest["progress"] is None


# ----------------------------------------------------------------------------- backlog


def test_backlog_create_rank_rescore_promote(
    client: TestClient, writer: dict[str, str], metrics: list[str]
) -> None:
    for name, reach in [("Small idea", 100), ("Big idea", 10000)]:
        created = client.post("/api/v1/backlog", headers=writer, json=draft(
            name=name, reach=reach, impact=1, confidence=50, effort=2))
        assert created.status_code == 201, created.text
    ranked = client.get("/api/v1/backlog", headers=writer).json()
    assert [(i["rank"], i["experiment"]["name"]) for i in ranked] == [
        (1, "Big idea"), (2, "Small idea")]
    small = ranked[1]["experiment"]
    rescored = client.patch(f"/api/v1/backlog/{small['id']}",
                            json={"reach": 1_000_000, "version": small["version"]},
                            headers={**writer, "If-Match": f'"{small["version"]}"'})
    assert rescored.status_code == 200, rescored.text
    assert rescored.json()["rice_score"] == pytest.approx(1_000_000 * 1 * 0.5 / 2)
    stale = client.patch(f"/api/v1/backlog/{small['id']}",
                         json={"reach": 5, "version": small["version"]}, headers=writer)
    assert stale.status_code == 409
    assert client.get("/api/v1/backlog", headers=writer).json()[0]["experiment"]["name"] == (
        "Small idea")
    promoted = client.post(f"/api/v1/backlog/{small['id']}/promote",
                           json={"version": rescored.json()["version"]}, headers=writer)
    assert promoted.status_code == 200, promoted.text
    again = client.post(f"/api/v1/backlog/{small['id']}/promote",
                        json={"version": promoted.json()["version"]},
                        headers={**writer, "If-Match": str(promoted.json()["version"])})
    assert again.status_code == 409 and "already promoted" in again.json()["detail"]
    assert [i["experiment"]["name"] for i in client.get(
        "/api/v1/backlog", headers=writer).json()] == ["Big idea"]


def test_backlog_knowledge_serves_raw_and_shrunk_lifts_like_the_service(
    client: TestClient, session: Session, keys: dict[str, str]
) -> None:
    """The knowledge base route returns the service's numbers (core.backlog.knowledge):
    each lift raw and shrunk by empirical Bayes, and the programme impact, for any search."""
    seed_demo(session)
    kb = knowledge.knowledge_base(session)
    response = client.get("/api/v1/knowledge", headers=headers(keys["read"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["experiments"]) == 4
    for row in body["experiments"]:
        x = kb.impact.lift_of(row["id"])
        assert x is not None
        assert row["lift"] == pytest.approx(x.lift, rel=1e-12)
        assert row["lift_shrunk"] == pytest.approx(x.shrunk_lift, rel=1e-12)
        assert row["lift_se"] == pytest.approx(x.lift_se, rel=1e-12)
        assert 0 < row["shrinkage_weight"] < 1
    impact = body["programme_impact"]
    assert impact["applied"] is True and impact["reason"] is None
    assert "empirical Bayes" in impact["method"] and "DerSimonian–Laird" in impact["method"]
    assert impact["population"] == 4 and impact["shipped"] == 2
    assert impact["raw_sum"] == pytest.approx(kb.impact.shipped.raw_sum, rel=1e-12)
    assert impact["shrunk_sum"] == pytest.approx(kb.impact.shipped.shrunk_sum, rel=1e-12)
    assert impact["shrunk_sum"] < impact["raw_sum"]
    assert impact["tau"] == pytest.approx(kb.impact.shrinkage.tau, rel=1e-12)
    # a search narrows the list, never the population the shrinkage is estimated from
    found = client.get("/api/v1/knowledge", params={"search": "dark mode"},
                       headers=headers(keys["read"])).json()
    assert [e["name"] for e in found["experiments"]] == ["Dark mode default"]
    assert found["programme_impact"] == impact
    assert client.get("/api/v1/knowledge").status_code == 401


@pytest.mark.parametrize(
    "body", [{"reach": -1, "version": 1}, {"impact": 7, "version": 1}, {"colour": 1},
             {"reach": 5}, {"version": 1}, {"reach": None, "version": 1},
             {"confidence": True, "version": 1}, {"impact": "1", "version": 1}]
)
def test_backlog_bad_rescore_is_422(
    client: TestClient, writer: dict[str, str], metrics: list[str], body: dict
) -> None:
    idea = client.post("/api/v1/backlog", headers=writer, json=draft(reach=5, impact=1,
                                                                     confidence=50, effort=1))
    response = client.patch(f"/api/v1/backlog/{idea.json()['id']}", json=body, headers=writer)
    assert response.status_code == 422, response.text


def test_results_show_a_metric_without_variation_as_not_testable(
    client: TestClient, writer: dict[str, str], running: int
) -> None:
    """Issue 22, item 5: a guardrail whose every unit has the same latency (250 ms) reads
    "cannot be tested: no variation" in the served snapshot, with no effect or p-value."""
    today = datetime.now(UTC).date().isoformat()
    rows = ["variant,date,metric,n,sum,sum_squares"]
    for variant, conversions in [("control", 100), ("green", 130)]:
        rows.append(f"{variant},{today},conversion,1000,{conversions},{conversions}")
        rows.append(f"{variant},{today},latency,1000,250000,62500000")  # 250 in every unit
    upload = client.post(f"{URL}/{running}/data", headers=writer, files={
        "file": ("flat.csv", ("\n".join(rows) + "\n").encode(), "text/csv")})
    assert upload.status_code == 200, upload.text
    assert client.post(f"{URL}/{running}/results/refresh", headers=writer).status_code == 200
    served = client.get(f"{URL}/{running}/results", headers=writer).json()
    latency = next(c for c in served["comparisons"] if c["metric"] == "latency")
    assert latency["decision_state"] == "not_testable"
    assert latency["untestable"] == "no_variation"
    assert latency["reason"].startswith(
        "latency cannot be tested: no variation: every unit has the value 250 in both arms")
    assert latency["control_mean"] == latency["treatment_mean"] == 250
    assert all(latency[k] is None for k in ("lift", "lift_ci_low", "lift_ci_high", "p_value",
                                            "lift_p_value", "adjusted_p_value", "bayesian"))
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    states = schema["MetricComparison"]["properties"]["decision_state"]["enum"]
    assert "not_testable" in states


@pytest.mark.parametrize("route", ["results/series", "segments"])
@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31", "tomorrow"])
def test_results_series_and_segments_refuse_as_of_outside_the_run(
    client: TestClient, writer: dict[str, str], running: int, route: str, as_of: str
) -> None:
    """The rule the refresh keeps (from the start to today, UTC) holds for the series and the
    segments too: 422 naming the allowed days."""
    today = datetime.now(UTC).date()
    if as_of == "tomorrow":
        as_of = (today + timedelta(days=1)).isoformat()
    response = client.get(f"{URL}/{running}/{route}", params={"as_of": as_of}, headers=writer)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["location"] == "as_of"
    assert f"give a day from {today} (the start of 'Green button') to {today}" in (
        problem["detail"])
    assert client.get(f"{URL}/{running}/{route}", params={"as_of": today.isoformat()},
                      headers=writer).status_code == 200


def test_data_sql_refresh_errors_do_not_show_the_source_database(
    client: TestClient, session: Session, writer: dict[str, str], running: int,
    tmp_path: Path,
) -> None:
    """A write key learns that the experiment's SQL source failed and why the query did, never
    where the source lives (host, port, database, file): that is an admin's business."""
    from tests.api.live_server import free_port

    port = free_port()  # nothing listens there: the connection is refused
    set_metric_source(session, experiment_id=running, query="SELECT 1 AS variant",
                      url=f"postgresql+psycopg2://reader:pw@127.0.0.1:{port}/secret_db",
                      actor=EDITOR)
    refused = client.post(f"{URL}/{running}/data/sql-refresh", headers=writer)
    assert refused.status_code == 422, refused.text
    assert "could not connect to the experiment's SQL source" in refused.json()["detail"]
    secret = tmp_path / "secret_folder" / "secret.db"
    secret.parent.mkdir()
    set_metric_source(session, experiment_id=running, query="SELECT * FROM no_such_table",
                      url=f"sqlite:///{secret}", actor=EDITOR)
    failed = client.post(f"{URL}/{running}/data/sql-refresh", headers=writer)
    assert failed.status_code == 422, failed.text
    assert "no such table: no_such_table" in failed.json()["detail"]  # what to fix, still
    for response in (refused, failed):
        for secret_part in ("127.0.0.1", str(port), "secret_db", "reader", "secret_folder",
                            "secret.db"):
            assert secret_part not in response.text
    assert stat_rows(session) == 0
