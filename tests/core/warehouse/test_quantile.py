"""Quantile metrics computed in the warehouse, checked against numpy on the same units.

The per-unit values come from the pandas reference (tests/core/warehouse/reference.py, written
apart from the engine). Per variant, the engine's QuantileStats must hold n (the kept units),
n_star = n, and at p and at core.stats.quantile_levels(p, n) the values
``numpy.quantile(values, level, method="inverted_cdf")`` (Hyndman & Fan type 1, the definition
core.stats.quantile uses and a user-level file gets from DuckDB's quantile_disc), to 1e-9
relative, on DuckDB, PostgreSQL (marker ``postgres``) and Spark local mode (marker ``spark``);
the quantile metric's daily sums equal the reference's records as a sum metric's. Then the same
units, written as a user-level file and loaded through core.data.ingestion (SQLite and
PostgreSQL app databases), must store the warehouse's QuantileStats: the paths agree.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.data.ingestion import ingest_file
from core.errors import InvalidInput
from core.registry.listing import load_experiment
from core.stats import QuantileStats, quantile_levels, quantile_stats
from core.stats.capping import CapRule
from core.warehouse.compute import compute, final_through
from core.warehouse.definitions import ExperimentSpec, Limits, WarehouseMetric, WarehouseResult
from core.warehouse.synthetic import SyntheticWarehouse
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.warehouse.conftest import SPARK_KEY, analysis_day, engine_for, midnight
from tests.core.warehouse.reference import (
    first_exposures,
    record_differences,
    reference,
    unit_facts,
    unit_values,
)
from tests.core.warehouse.specs import ORDERS, SESSIONS, experiment_spec, frames

QUANTILES: tuple[WarehouseMetric, ...] = (
    WarehouseMetric("revenue_p90", ORDERS, "sum", column="revenue", window_days=7,
                    quantile_p=0.9),
    WarehouseMetric("items_p50", ORDERS, "count", column="items", window_days=7,
                    quantile_p=0.5),
    WarehouseMetric("revenue", ORDERS, "sum", column="revenue", window_days=7),
    WarehouseMetric("sessions_p75", SESSIONS, "sum", column="session_count", quantile_p=0.75),
    # p99.9 needs floor(z^2 999) + 1 = 3,838 units per arm: every arm is too small (a note,
    # no record).
    WarehouseMetric("views_p999", SESSIONS, "sum", column="page_views", window_days=7,
                    quantile_p=0.999),
)
TESTED = ("revenue_p90", "items_p50", "sessions_p75")

_RESULTS: dict[tuple[str, str], tuple[WarehouseResult, ExperimentSpec]] = {}


def quantile_result(request: pytest.FixtureRequest, warehouse: SyntheticWarehouse, name: str,
                    key: str) -> tuple[WarehouseResult, ExperimentSpec]:
    """compute() of the quantile spec of ``key`` on engine ``name``, once per session."""
    if (name, key) not in _RESULTS:
        _, connection, prefix = engine_for(request, name)
        spec = experiment_spec(warehouse, key, connection, prefix, metrics=QUANTILES)
        today = analysis_day(warehouse)
        _RESULTS[name, key] = (compute(spec, limits=Limits(), today=today, now=midnight(today)),
                               spec)
    return _RESULTS[name, key]


def reference_units(warehouse: SyntheticWarehouse, spec: ExperimentSpec) -> pd.DataFrame:
    """The kept units (reference order): variant, day, and each metric's per-unit value."""
    assignment, facts = frames(warehouse.tables())
    units, _ = first_exposures(assignment, spec)
    table = units[["unit_id", "variant", "day"]].copy()
    for m in spec.metrics:
        values = unit_values(units, unit_facts(units, facts[m.fact_source]), m, spec)
        table[m.name] = values["value"].to_numpy(float)
    return table


@pytest.mark.parametrize(("engine_name", "key"), [
    pytest.param("duckdb", "checkout_button", id="duckdb"),
    pytest.param("postgresql", "checkout_button", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("spark", SPARK_KEY, id="spark", marks=pytest.mark.spark),
])
def test_quantile_warehouse_stats_equal_numpy_inverted_cdf(
    engine_name: str, key: str, warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    result, spec = quantile_result(request, warehouse, engine_name, key)
    units = reference_units(warehouse, spec)
    assert result.quantile_metrics == ("revenue_p90", "items_p50", "sessions_p75",
                                       "views_p999")
    assert set(result.quantiles) == {(v, m) for v in spec.variants for m in TESTED}
    for m in (m for m in spec.metrics if m.name in TESTED):
        assert m.quantile_p is not None
        for variant in spec.variants:
            x = units.loc[units["variant"] == variant, m.name].to_numpy(float)
            low, high = quantile_levels(m.quantile_p, len(x))
            want = np.quantile(x, [low, m.quantile_p, high], method="inverted_cdf")
            got = result.quantiles[(variant, m.name)]
            what = f"{engine_name} {m.name} {variant}"
            assert (got.n, got.n_star, got.p) == (len(x), len(x), m.quantile_p), what
            assert_allclose([got.lower, got.quantile, got.upper], want, rtol=1e-9, atol=1e-9,
                            err_msg=what)
            # ... which is core.stats.quantile_stats over the same values
            assert_allclose(got.key(), quantile_stats(x, m.quantile_p).key(), rtol=1e-9,
                            err_msg=what)
    # The sums vary around revenue's p90: a usable interval (not all tied).
    assert all(result.quantiles[(v, "revenue_p90")].upper
               > result.quantiles[(v, "revenue_p90")].lower for v in spec.variants)
    too_small = [n for n in result.notes if n.startswith("views_p999: no quantile for ")]
    assert len(too_small) == len(spec.variants) and "needs at least 3838 units" in too_small[0]
    # The quantile metrics' daily sums are a sum or count metric's.
    assignment, facts = frames(warehouse.tables())
    expected = reference(spec, assignment, facts)
    assert record_differences(result.records, expected.records) == []


def test_quantile_metric_keeps_its_fact_source_open_and_reads_every_unit(
    warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    """Quantiles do not add up over days: a running experiment's fact source with a quantile
    metric is recomputed from its first day (final_through None, an open_from is overridden),
    like a percentile cap; once the experiment has ended every day is final."""
    full, spec = quantile_result(request, warehouse, "duckdb", "checkout_button")
    orders = [m for m in spec.metrics if m.fact_source == ORDERS]
    plain = [m for m in orders if m.quantile_p is None]
    running = replace(spec, end=spec.start + timedelta(days=30))
    today = running.start + timedelta(days=20)
    assert final_through(running, plain, today=today, late_data_days=2) is not None
    assert final_through(running, orders, today=today, late_data_days=2) is None
    done = running.end + timedelta(days=3)
    assert final_through(running, orders, today=done, late_data_days=2) == running.end

    day = analysis_day(warehouse)
    later = compute(spec, limits=Limits(), today=day, now=midnight(day),
                    open_from={ORDERS: spec.start + timedelta(days=3)})
    assert later.open_from[ORDERS] == spec.start
    assert {k: q for k, q in later.quantiles.items() if k[1] != "sessions_p75"} == {
        k: q for k, q in full.quantiles.items() if k[1] != "sessions_p75"}
    # Its queries: the statistics, then the values at the order statistics.
    ran = [q.sql for q in later.queries if q.source == ORDERS]
    assert len(ran) == 2 and "quantiles at their order statistics" in ran[1]
    assert "ROW_NUMBER() OVER" in ran[1]


def test_quantile_metric_definitions_are_checked_before_any_query(
    warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    _, spec = quantile_result(request, warehouse, "duckdb", "checkout_button")
    bad = replace(spec, metrics=(
        WarehouseMetric("aov_p90", ORDERS, "mean", column="revenue", quantile_p=0.9),
        WarehouseMetric("rev_p90", ORDERS, "sum", column="revenue", quantile_p=0.9,
                        cuped_days=7, cap=CapRule("fixed", 10.0)),
        WarehouseMetric("rev_p100", ORDERS, "sum", column="revenue", quantile_p=1.0),
    ))
    with pytest.raises(InvalidInput) as excinfo:
        compute(bad, limits=Limits())
    assert excinfo.value.problems == [
        "metric aov_p90: a quantile metric takes the quantile of a per-unit sum or count, not "
        "of mean",
        "metric rev_p90: a quantile metric is never CUPED-adjusted: leave cuped_days out",
        "metric rev_p90: a quantile metric is never capped (a quantile is not moved by the "
        "values beyond it)",
        "metric rev_p100: quantile_p must be strictly between 0 and 1 (got 1.0)",
    ]


def _quantile_experiment(session: Session, spec: ExperimentSpec) -> int:
    catalogue.create_metric(session, data={"name": "revenue_p90", "kind": "quantile",
                                           "quantile_p": 0.9}, actor=EDITOR)
    weight = 1.0 / len(spec.variants)
    view = registry.create_experiment(session, data={
        "name": "Quantiles", "owner": "t", "hypothesis": "h", "primary_metric": "revenue_p90",
        "planned_sample_size": 100,
        "variants": [{"name": v, "weight": weight} for v in spec.variants],
    }, actor=EDITOR)
    return registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=spec.start).id


@pytest.mark.parametrize("engine_name", [
    "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_quantile_file_path_stores_the_warehouse_quantile_stats(
    engine_name: str, warehouse: SyntheticWarehouse, request: pytest.FixtureRequest,
    session: Session, tmp_path: Path
) -> None:
    result, spec = quantile_result(request, warehouse, engine_name, "checkout_button")
    units = reference_units(warehouse, spec)
    exp = _quantile_experiment(session, spec)
    path = tmp_path / "units.csv"
    pd.DataFrame({"unit_id": units["unit_id"], "variant": units["variant"],
                  "date": units["day"].dt.date, "revenue_p90": units["revenue_p90"]}
                 ).to_csv(path, index=False)
    ingest_file(session, path=path, actor=EDITOR, experiment_id=exp)
    variants = {v.id: v.name for v in load_experiment(session, experiment_id=exp).variants}
    stored: dict[str, QuantileStats] = {
        variants[r.variant_id]: r.stats for r in mrepo.quantile_stats(session, experiment_id=exp)}
    assert set(stored) == set(spec.variants)
    for variant, stats in stored.items():
        assert_allclose(stats.key(), result.quantiles[(variant, "revenue_p90")].key(),
                        rtol=1e-9, err_msg=f"file path against {engine_name}: {variant}")
