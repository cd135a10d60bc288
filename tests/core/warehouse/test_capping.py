"""Capping in the warehouse path and the file path, checked against numpy on the same units.

The synthetic warehouse's per-unit values come from the pandas reference
(tests/core/warehouse/reference.py, written apart from the engine); the reference caps them
with ``numpy.percentile(method="linear")`` pooled over every kept unit (Hyndman & Fan type 7,
the definition of DuckDB's quantile_cont, PostgreSQL's percentile_cont and Spark's percentile)
and ``numpy.minimum``, then sums per variant and first-exposure day. The engine's records on
DuckDB, PostgreSQL (marker ``postgres``) and Spark (marker ``spark``) must equal those sums to
1e-9 relative. Then the same units, written as a user-level file and loaded through
core.data.ingestion into an experiment with the same capping plan (SQLite and PostgreSQL),
must give the warehouse's sums: the paths agree.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.data.ingestion import ingest_file
from core.errors import InvalidInput
from core.registry.listing import load_experiment
from core.stats.capping import CapRule
from core.warehouse.compute import compute, final_through
from core.warehouse.definitions import ExperimentSpec, Limits, WarehouseMetric, WarehouseResult
from core.warehouse.synthetic import SyntheticWarehouse
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.warehouse.conftest import SPARK_KEY, analysis_day, engine_for, midnight
from tests.core.warehouse.reference import first_exposures, unit_facts, unit_values
from tests.core.warehouse.specs import ORDERS, SESSIONS, experiment_spec, frames

P95, P90 = CapRule("percentile", 0.95), CapRule("percentile", 0.9)
CAPPED: tuple[WarehouseMetric, ...] = (
    WarehouseMetric("revenue", ORDERS, "sum", column="revenue", window_days=7, cuped_days=14,
                    cap=P95),
    WarehouseMetric("orders", ORDERS, "count", window_days=3, cap=CapRule("fixed", 1.0)),
    WarehouseMetric("order_value", ORDERS, "mean", column="revenue", window_days=7,
                    cap=CapRule("fixed", 40.0)),
    WarehouseMetric("views_per_session", SESSIONS, "ratio", column="page_views",
                    denominator="session_count", window_days=7, cap=P90),
)
STATS = ("sum", "sum_squares", "sum_x", "sum_x2", "sum_xy", "sum_den", "sum_den_squares",
         "sum_num_den")
Sums = dict[tuple[str, str, date], dict[str, float]]


def capped_reference(warehouse: SyntheticWarehouse, spec: ExperimentSpec
                     ) -> tuple[Sums, dict[str, tuple[float, float | None]], pd.DataFrame]:
    """numpy's capped sums per (metric, variant, day), each metric's (cap, denominator cap),
    and the kept units with their uncapped values (the user-level file)."""
    assignment, facts = frames(warehouse.tables())
    units, _ = first_exposures(assignment, spec)
    sums: Sums = {}
    caps: dict[str, tuple[float, float | None]] = {}
    table = units[["unit_id", "variant", "day"]].copy()
    for m in spec.metrics:
        assert m.cap is not None
        values = unit_values(units, unit_facts(units, facts[m.fact_source]), m, spec)
        v = values["value"].to_numpy(float)
        ratio = m.aggregation in ("mean", "ratio")
        d = values["den"].to_numpy(float)

        def cap_of(x: np.ndarray, rule: CapRule = m.cap) -> float:
            if rule.kind == "fixed":
                return rule.value
            return float(np.percentile(x, rule.value * 100, method="linear"))

        cap, den_cap = cap_of(v), (cap_of(d) if ratio else None)
        caps[m.name] = (cap, den_cap)
        table[m.name], table[f"{m.name}_den"] = v, d
        parts = {"sum": np.minimum(v, cap)}
        parts["sum_squares"] = parts["sum"] ** 2
        if m.cuped_days:
            x = values["x"].to_numpy(float)
            table[f"{m.name}_pre"] = x
            xc = np.minimum(x, cap)  # the covariate at the value's cap (GrowthBook)
            parts |= {"sum_x": xc, "sum_x2": xc * xc, "sum_xy": xc * parts["sum"]}
        if ratio:
            dc = np.minimum(d, den_cap)
            parts |= {"sum_den": dc, "sum_den_squares": dc * dc, "sum_num_den": dc * parts["sum"]}
        frame = pd.DataFrame(parts).assign(variant=units["variant"].to_numpy(),
                                           day=units["day"].dt.date.to_numpy())
        grouped = frame.groupby(["variant", "day"])
        for (variant, day), row in grouped.sum().iterrows():
            sums[(m.name, str(variant), day)] = {**row.to_dict(),
                                                 "n": float(grouped.size()[(variant, day)])}
    return sums, caps, table


def engine_sums(result: WarehouseResult) -> Sums:
    return {(r["metric"], str(r["variant"]), _day(r["day"])):
            {k: float(r[k]) for k in (*STATS, "n") if k in r}  # type: ignore[arg-type]
            for r in result.records if "dimension" not in r}


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def assert_same_sums(got: Sums, expected: Sums, what: str) -> None:
    assert got.keys() == expected.keys(), what
    for key, want in expected.items():
        for stat, value in want.items():
            assert_allclose(got[key][stat], value, rtol=1e-9, atol=1e-9,
                            err_msg=f"{what}: {key} {stat}")


_RESULTS: dict[tuple[str, str], WarehouseResult] = {}


def capped_result(request: pytest.FixtureRequest, warehouse: SyntheticWarehouse, name: str,
                  key: str) -> tuple[WarehouseResult, ExperimentSpec]:
    _, connection, prefix = engine_for(request, name)
    spec = experiment_spec(warehouse, key, connection, prefix, metrics=CAPPED)
    if (name, key) not in _RESULTS:
        today = analysis_day(warehouse)
        _RESULTS[name, key] = compute(spec, limits=Limits(), today=today, now=midnight(today))
    return _RESULTS[name, key], spec


@pytest.mark.parametrize(("engine_name", "key"), [
    pytest.param("duckdb", "checkout_button", id="duckdb"),
    pytest.param("postgresql", "checkout_button", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("spark", SPARK_KEY, id="spark", marks=pytest.mark.spark),
])
def test_capping_warehouse_sums_equal_numpy_capped_sums(
    engine_name: str, key: str, warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    result, spec = capped_result(request, warehouse, engine_name, key)
    expected, caps, _ = capped_reference(warehouse, spec)
    assert_same_sums(engine_sums(result), expected, engine_name)
    for metric, (cap, den_cap) in caps.items():
        applied = result.caps[metric]
        assert_allclose(applied.cap, cap, rtol=1e-12, err_msg=metric)
        if den_cap is None:
            assert applied.denominator_cap is None, metric
        else:
            assert applied.denominator_cap is not None
            assert_allclose(applied.denominator_cap, den_cap, rtol=1e-12, err_msg=metric)
    # The caps bite: some units lie above each, so capping changed the sums.
    plain = compute(replace(spec, metrics=tuple(replace(m, cap=None) for m in spec.metrics)),
                    limits=Limits(), today=analysis_day(warehouse),
                    now=midnight(analysis_day(warehouse))) if engine_name == "duckdb" else None
    if plain is not None:
        uncapped = engine_sums(plain)
        for metric in caps:
            total = sum(v["sum"] for k, v in uncapped.items() if k[0] == metric)
            assert sum(v["sum"] for k, v in expected.items() if k[0] == metric) < total, metric


def test_capping_a_percentile_cap_keeps_every_day_open_until_the_end(
    warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    """A pooled percentile moves with every new unit: a running experiment's capped source is
    recomputed from its first day; a fixed cap keeps the incremental refresh."""
    _, spec = capped_result(request, warehouse, "duckdb", "checkout_button")
    spec = replace(spec, end=spec.start + timedelta(days=30))
    running = spec.start + timedelta(days=20)
    sessions = [m for m in spec.metrics if m.fact_source == SESSIONS]
    fixed = [m for m in spec.metrics if m.cap is not None and m.cap.kind == "fixed"]
    uncapped = [replace(m, cap=None) for m in sessions]
    assert final_through(spec, uncapped, today=running, late_data_days=2) is not None
    assert final_through(spec, sessions, today=running, late_data_days=2) is None
    assert final_through(spec, fixed, today=running, late_data_days=2) == final_through(
        spec, [replace(m, cap=None) for m in fixed], today=running, late_data_days=2)
    # Once the experiment has ended and late data has arrived, every day is final.
    done = spec.end + timedelta(days=3)
    assert final_through(spec, sessions, today=done, late_data_days=2) == spec.end


def _capped_experiment(session: Session, spec: ExperimentSpec) -> int:
    for data in ({"name": "revenue", "kind": "mean"},
                 {"name": "views_per_session", "kind": "ratio", "numerator": "page_views",
                  "denominator": "session_count"}):
        catalogue.create_metric(session, data=data, actor=EDITOR)
    weight = 1.0 / len(spec.variants)
    view = registry.create_experiment(session, data={
        "name": "Capped", "owner": "t", "hypothesis": "h", "primary_metric": "revenue",
        "secondary_metrics": ["views_per_session"], "planned_sample_size": 100,
        "variants": [{"name": v, "weight": weight} for v in spec.variants],
        "capping": {"revenue": {"kind": "percentile", "value": 0.95},
                    "views_per_session": {"kind": "percentile", "value": 0.9}},
    }, actor=EDITOR)
    return registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=spec.start).id


@pytest.mark.parametrize("engine_name", [
    "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_capping_file_path_gives_the_warehouse_sums(
    engine_name: str, warehouse: SyntheticWarehouse, request: pytest.FixtureRequest,
    session: Session, tmp_path: Path
) -> None:
    result, spec = capped_result(request, warehouse, engine_name, "checkout_button")
    _, caps, units = capped_reference(warehouse, spec)
    exp = _capped_experiment(session, spec)
    path = tmp_path / "units.csv"
    pd.DataFrame({
        "unit_id": units["unit_id"], "variant": units["variant"],
        "date": units["day"].dt.date, "revenue": units["revenue"],
        "revenue_pre": units["revenue_pre"], "page_views": units["views_per_session"],
        "session_count": units["views_per_session_den"],
    }).to_csv(path, index=False)
    report = ingest_file(session, path=path, actor=EDITOR, experiment_id=exp)
    assert any("revenue: per-unit values capped at p95 (value" in n for n in report.notes)
    ids = {m.name: m.id for m in catalogue.list_metrics(session)}
    names = {i: n for n, i in ids.items()}
    variants = {v.id: v.name for v in load_experiment(session, experiment_id=exp).variants}
    stored: Sums = {}
    for row in mrepo.daily_stats(session, experiment_id=exp):
        stats = {k: getattr(row.stats, k) for k in STATS if getattr(row.stats, k) is not None}
        stored[(names[row.metric_id], variants[row.variant_id], row.day)] = {
            **stats, "n": float(row.stats.n)}
    warehouse_sums = {k: v for k, v in engine_sums(result).items()
                      if k[0] in ("revenue", "views_per_session")}
    assert_same_sums(stored, warehouse_sums, f"file path against {engine_name}")
    applied = mrepo.applied_caps(session, experiment_id=exp)
    assert_allclose(applied[ids["revenue"]].cap, caps["revenue"][0], rtol=1e-12)
    assert applied[ids["revenue"]].units == len(units)
    assert_allclose(applied[ids["views_per_session"]].cap, caps["views_per_session"][0],
                    rtol=1e-12)
    assert_allclose(applied[ids["views_per_session"]].denominator_cap,
                    caps["views_per_session"][1], rtol=1e-12)


def test_capping_pre_aggregated_rows_of_a_capped_metric_are_refused(
    warehouse: SyntheticWarehouse, request: pytest.FixtureRequest, session: Session,
    tmp_path: Path
) -> None:
    _, spec = capped_result(request, warehouse, "duckdb", "checkout_button")
    exp = _capped_experiment(session, spec)
    path = tmp_path / "agg.csv"
    path.write_text(f"variant,date,metric,n,sum,sum_squares\n"
                    f"{spec.variants[0]},{spec.start},revenue,10,100,2000\n")
    with pytest.raises(InvalidInput, match="metric revenue is capped at p95 in the plan of "
                                           "'Capped', and rows already summed cannot be capped"):
        ingest_file(session, path=path, actor=EDITOR, experiment_id=exp)
    assert mrepo.daily_stats(session, experiment_id=exp) == []
    assert mrepo.applied_caps(session, experiment_id=exp) == {}


def test_capping_a_daily_drop_cannot_hold_a_pooled_percentile(
    warehouse: SyntheticWarehouse, request: pytest.FixtureRequest, session: Session,
    tmp_path: Path
) -> None:
    _, spec = capped_result(request, warehouse, "duckdb", "checkout_button")
    exp = _capped_experiment(session, spec)
    path = tmp_path / "drop.csv"
    path.write_text(f"unit_id,variant,revenue\nu1,{spec.variants[0]},5\nu2,{spec.variants[1]},7\n")
    with pytest.raises(InvalidInput, match="one day's drop, and revenue is capped at a "
                                           "percentile of every unit"):
        ingest_file(session, path=path, actor=EDITOR, experiment_id=exp, for_day=spec.start)
    assert mrepo.daily_stats(session, experiment_id=exp) == []
