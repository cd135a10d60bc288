"""Regression adjustment on several covariates from the warehouse: the assignment source
declares a numeric unit attribute (``tenure_days``, NULL for some units) and every metric's
records carry the cross-products of its covariates (its own pre-period, the attribute's value
at the first exposure with 0 for NULL, and the missingness indicator).

References: the per-unit values of the pandas reference (tests/core/warehouse/reference.py,
written apart from the engine), capped as tests/core/warehouse/test_capping.py caps them
(``numpy.percentile(method="linear")`` pooled over the kept units, ``numpy.minimum``), then
``X.T @ X``, ``X.T @ y`` and ``X.T @ den`` per variant and first-exposure day with numpy
(core.stats.covariate_sums): the engine's sums on DuckDB, PostgreSQL (marker ``postgres``) and
Spark (marker ``spark``) equal them to 1e-9 relative. The same units loaded as a user-level
file (its ``revenue_pre`` and ``cov_*`` columns) give the same stored sums and the same
regression-adjusted results (Lin 2013) as the warehouse's records, to 1e-9.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.analysis.results import compute_results
from core.data.ingestion import ingest_file, write_records
from core.errors import InvalidInput
from core.registry.listing import load_experiment
from core.stats import CovariateSums, covariate_sums
from core.stats.capping import CapRule
from core.warehouse.compute import compute, definition_key, definition_problems, to_records
from core.warehouse.definitions import (
    ExperimentSpec,
    Limits,
    WarehouseMetric,
    WarehouseResult,
    covariate_names,
)
from core.warehouse.synthetic import SyntheticWarehouse
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.warehouse.conftest import SPARK_KEY, analysis_day, engine_for, midnight
from tests.core.warehouse.reference import (
    first_exposures,
    record_differences,
    unit_facts,
    unit_values,
)
from tests.core.warehouse.specs import ORDERS, SESSIONS, experiment_spec, frames, with_sources

ATTRIBUTE = "tenure_days"
P95, P90 = CapRule("percentile", 0.95), CapRule("percentile", 0.9)
METRICS: tuple[WarehouseMetric, ...] = (
    WarehouseMetric("revenue", ORDERS, "sum", column="revenue", window_days=7, cuped_days=14,
                    cap=P95),
    WarehouseMetric("orders", ORDERS, "count", window_days=3, cuped_days=7),
    WarehouseMetric("conversion", ORDERS, "any", window_days=7),
    WarehouseMetric("order_value", ORDERS, "mean", column="revenue", window_days=7,
                    cap=CapRule("fixed", 40.0)),
    WarehouseMetric("views_per_session", SESSIONS, "ratio", column="page_views",
                    denominator="session_count", window_days=7, cap=P90),
    WarehouseMetric("sessions", SESSIONS, "sum", column="session_count", window_days=7,
                    cuped_days=14),
)
Vectors = dict[tuple[str, str, date], CovariateSums]


def covariate_spec(warehouse: SyntheticWarehouse, key: str, engine: tuple[str, Any, str]
                   ) -> ExperimentSpec:
    """The synthetic experiment ``key`` with ``tenure_days`` declared a covariate."""
    _, connection, prefix = engine
    spec = experiment_spec(warehouse, key, connection, prefix, metrics=METRICS)
    spec = with_sources(spec, assignment_sql=(
        "SELECT unit_id, timestamp, experiment_key, variant, platform, country, tenure_days "
        f"FROM {prefix}exposures"))
    return replace(spec, assignment=replace(spec.assignment, covariates=(ATTRIBUTE,)))


def reference_units(warehouse: SyntheticWarehouse, spec: ExperimentSpec) -> pd.DataFrame:
    """Per kept unit: variant, day, the attribute at the first exposure (NULL kept) and each
    metric's capped value, denominator and pre-period (``<m>``, ``<m>_den``, ``<m>_pre``)
    beside the uncapped ones (``<m>_raw``, ``<m>_den_raw``, ``<m>_pre_raw``)."""
    assignment, facts = frames(warehouse.tables())
    units, _ = first_exposures(assignment, spec)
    table = units[["unit_id", "variant", "day", ATTRIBUTE]].copy()
    for m in spec.metrics:
        values = unit_values(units, unit_facts(units, facts[m.fact_source]), m, spec)
        v, d = values["value"].to_numpy(float), values["den"].to_numpy(float)

        def cap_of(x: np.ndarray, rule: CapRule | None = m.cap) -> float:
            if rule is None:
                return np.inf
            if rule.kind == "fixed":
                return rule.value
            return float(np.percentile(x, rule.value * 100, method="linear"))

        cap = cap_of(v)
        table[f"{m.name}_raw"], table[m.name] = v, np.minimum(v, cap)
        table[f"{m.name}_den_raw"] = d
        table[f"{m.name}_den"] = np.minimum(d, cap_of(d)) if m.aggregation in (
            "mean", "ratio") else d
        if m.cuped_days:
            x = values["x"].to_numpy(float)
            table[f"{m.name}_pre_raw"], table[f"{m.name}_pre"] = x, np.minimum(x, cap)
    return table


def numpy_vectors(table: pd.DataFrame, spec: ExperimentSpec) -> Vectors:
    """numpy's CovariateSums per (metric, variant, day) over the reference units."""
    tenure = pd.to_numeric(table[ATTRIBUTE]).to_numpy(float)
    missing = np.isnan(tenure).astype(float)
    out: Vectors = {}
    for m in spec.metrics:
        columns = ([table[f"{m.name}_pre"].to_numpy(float)] if m.cuped_days else []) + [
            np.nan_to_num(tenure, nan=0.0), missing]
        x = np.column_stack(columns)
        ratio = m.aggregation in ("mean", "ratio")
        names = covariate_names(m, spec.assignment)
        for (variant, day), rows in table.groupby(["variant", "day"]).indices.items():
            out[(m.name, str(variant), day.date())] = covariate_sums(
                x[rows], table[m.name].to_numpy(float)[rows], names,
                table[f"{m.name}_den"].to_numpy(float)[rows] if ratio else None)
    return out


def engine_vectors(result: WarehouseResult, spec: ExperimentSpec) -> Vectors:
    kinds = {m.name: m.aggregation for m in spec.metrics}
    out: Vectors = {}
    for r in result.records:
        if "dimension" in r:
            assert not any(k.startswith("sum_x__") for k in r), "a slice carries covariates"
            continue
        vec = CovariateSums.from_columns(r, ratio=kinds[str(r["metric"])] in ("mean", "ratio"))  # type: ignore[arg-type]
        assert vec is not None, r
        day = r["day"] if isinstance(r["day"], date) else date.fromisoformat(str(r["day"]))
        out[(str(r["metric"]), str(r["variant"]), day)] = vec
    return out


def assert_same_vectors(got: Vectors, want: Vectors, what: str) -> None:
    assert got.keys() == want.keys(), what
    for key, vec in want.items():
        assert got[key].names == vec.names, f"{what}: {key}"
        for field in ("sum_x", "sum_xx", "sum_xy", "sum_xden"):
            expected = getattr(vec, field)
            if expected is None:
                assert getattr(got[key], field) is None, f"{what}: {key} {field}"
                continue
            assert_allclose(getattr(got[key], field), expected, rtol=1e-9, atol=1e-9,
                            err_msg=f"{what}: {key} {field}")


_RESULTS: dict[tuple[str, str], tuple[WarehouseResult, ExperimentSpec]] = {}


def covariate_result(request: pytest.FixtureRequest, warehouse: SyntheticWarehouse, name: str,
                     key: str) -> tuple[WarehouseResult, ExperimentSpec]:
    if (name, key) not in _RESULTS:
        spec = covariate_spec(warehouse, key, engine_for(request, name))
        today = analysis_day(warehouse)
        _RESULTS[name, key] = (compute(spec, limits=Limits(), today=today, now=midnight(today)),
                               spec)
    return _RESULTS[name, key]


@pytest.mark.parametrize(("engine_name", "key"), [
    pytest.param("duckdb", "checkout_button", id="duckdb"),
    pytest.param("postgresql", "checkout_button", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("spark", SPARK_KEY, id="spark", marks=pytest.mark.spark),
])
def test_covariates_warehouse_cross_products_equal_numpy(
    engine_name: str, key: str, warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    result, spec = covariate_result(request, warehouse, engine_name, key)
    table = reference_units(warehouse, spec)
    assert table[ATTRIBUTE].isna().any() and table[ATTRIBUTE].notna().any()
    assert_same_vectors(engine_vectors(result, spec), numpy_vectors(table, spec), engine_name)
    # The caps bite (capped and uncapped sums differ), and the value counts at the first
    # exposure: some units' attribute is larger on a later exposure row.
    assert (table["revenue_raw"] > table["revenue"]).any()
    assert (table["revenue_pre_raw"] > table["revenue_pre"]).any()
    exposures = frames(warehouse.tables())[0]
    latest = exposures[exposures["experiment_key"] == key].groupby("unit_id")[ATTRIBUTE].max()
    later = latest.reindex(table["unit_id"]).to_numpy(float) > pd.to_numeric(
        table[ATTRIBUTE]).to_numpy(float)
    assert later.any()


def test_covariates_without_declared_attributes_the_records_are_unchanged(
    warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    """No declared covariate: no flat covariate column, the one-covariate CUPED sums stay;
    the definition key of a source without covariates is what it was before them."""
    result, spec = covariate_result(request, warehouse, "duckdb", "checkout_button")
    plain_spec = replace(spec, assignment=replace(spec.assignment, covariates=()))
    today = analysis_day(warehouse)
    plain = compute(plain_spec, limits=Limits(), today=today, now=midnight(today))
    assert not any(k.startswith("sum_x") and "__" in k for r in plain.records for k in r)
    strip = [{k: v for k, v in r.items() if "__" not in k} for r in result.records]
    assert [sorted(r) for r in strip] == [sorted(r) for r in plain.records]
    assert record_differences(strip, plain.records, rtol=1e-12) == []
    facts = {f.name: f for f in spec.facts}
    metrics = [m for m in spec.metrics if m.fact_source == ORDERS]
    assert definition_key(spec, facts[ORDERS], metrics, today) != definition_key(
        plain_spec, facts[ORDERS], metrics, today)


def _experiment(session: Session, spec: ExperimentSpec, name: str) -> int:
    if catalogue.list_metrics(session) == []:
        for data in ({"name": "revenue", "kind": "mean"},
                     {"name": "views_per_session", "kind": "ratio", "numerator": "page_views",
                      "denominator": "session_count"}):
            catalogue.create_metric(session, data=data, actor=EDITOR)
    weight = 1.0 / len(spec.variants)
    view = registry.create_experiment(session, data={
        "name": name, "owner": "t", "hypothesis": "h", "primary_metric": "revenue",
        "secondary_metrics": ["views_per_session"], "planned_sample_size": 100,
        "variants": [{"name": v, "weight": weight} for v in spec.variants],
        "capping": {"revenue": {"kind": "percentile", "value": 0.95},
                    "views_per_session": {"kind": "percentile", "value": 0.9}},
    }, actor=EDITOR)
    return registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=spec.start).id


def stored_vectors(session: Session, exp: int) -> Vectors:
    """The experiment's stored covariate vectors by (metric, variant, day)."""
    names = {m.id: m.name for m in catalogue.list_metrics(session)}
    variants = {v.id: v.name for v in load_experiment(session, experiment_id=exp).variants}
    out = {}
    for r in mrepo.daily_stats(session, experiment_id=exp):
        assert r.stats.covariates is not None
        out[(names[r.metric_id], variants[r.variant_id], r.day)] = r.stats.covariates
    return out


@pytest.mark.parametrize("engine_name", [
    "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_covariates_file_path_gives_the_warehouse_adjusted_results(
    engine_name: str, warehouse: SyntheticWarehouse, request: pytest.FixtureRequest,
    session: Session, tmp_path: Path
) -> None:
    result, spec = covariate_result(request, warehouse, engine_name, "checkout_button")
    table = reference_units(warehouse, spec)
    tenure = pd.to_numeric(table[ATTRIBUTE])
    from_file = _experiment(session, spec, "From a user-level file")
    path = tmp_path / "units.csv"
    pd.DataFrame({
        "unit_id": table["unit_id"], "variant": table["variant"], "date": table["day"].dt.date,
        "revenue": table["revenue_raw"], "revenue_pre": table["revenue_pre_raw"],
        "page_views": table["views_per_session_raw"],
        "session_count": table["views_per_session_den_raw"],
        # the warehouse's rule for a NULL attribute, written out: 0 and an indicator
        "cov_tenure_days": tenure.fillna(0.0), "cov_tenure_days_missing": tenure.isna() * 1,
    }).to_csv(path, index=False)
    ingest_file(session, path=path, actor=EDITOR, experiment_id=from_file)

    from_warehouse = _experiment(session, spec, "From the warehouse")
    wanted = {"revenue", "views_per_session"}
    write_records(session, experiment_id=from_warehouse, actor=EDITOR, kind="warehouse",
                  label="warehouse", rows=[r for r in result.records if r["metric"] in wanted],
                  caps={m: c for m, c in result.caps.items() if m in wanted})
    assert_same_vectors(stored_vectors(session, from_warehouse), stored_vectors(session, from_file),
                        f"{engine_name} against the file path")

    by_file = {c.metric: c for c in compute_results(session, experiment_id=from_file).comparisons}
    by_warehouse = {c.metric: c for c in compute_results(
        session, experiment_id=from_warehouse).comparisons}
    for metric, test in (("revenue", "regression_adjusted"),
                         ("views_per_session", "ratio_regression_adjusted")):
        got = by_warehouse[metric]
        assert got.test == by_file[metric].test == test and got.cuped, metric
        for field in ("diff", "diff_ci_low", "diff_ci_high", "p_value", "lift",
                      "variance_reduction"):
            assert_allclose(getattr(got, field), getattr(by_file[metric], field),
                            rtol=1e-9, err_msg=f"{metric} {field}")
    revenue = by_warehouse["revenue"]
    assert revenue.adjustment == f"CUPED: −{revenue.variance_reduction:.0%} variance"


def test_covariates_definition_problems_and_bad_values(
    warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    result, spec = covariate_result(request, warehouse, "duckdb", "checkout_button")
    both = replace(spec, assignment=replace(spec.assignment, covariates=("platform",)))
    assert any("platform declared both a dimension and a covariate" in p
               for p in definition_problems(both))
    many = replace(spec, assignment=replace(spec.assignment,
                                            covariates=tuple(f"c{i}" for i in range(5))))
    assert any("metric revenue: 11 covariates" in p for p in definition_problems(many))
    # A non-numeric attribute is refused before any fact query, naming the column.
    text = with_sources(spec, assignment_sql=(
        "SELECT unit_id, timestamp, experiment_key, variant, platform, country, "
        "CAST(tenure_days AS VARCHAR) AS tenure_days FROM exposures"))
    today = analysis_day(warehouse)
    with pytest.raises(InvalidInput, match="column tenure_days is string, not a number"):
        compute(text, limits=Limits(), today=today, now=midnight(today))
    # NaN sums (a NaN attribute instead of NULL) are refused, naming the metric.
    frame = pd.DataFrame([{"variant": "control", "day": spec.start, "platform": "ios",
                           "country": "DE", "n": 2, "future_facts": 0}])
    metric = replace(METRICS[2], name="conversion")
    for col in ("m0_sum", "m0_sum_squares", "_x___c0", "_x___m0", "_xx___c0___c0",
                "_xx___c0___m0", "_xx___m0___m0", "_xy0___c0", "_xy0___m0"):
        frame[col] = 1.0
    frame["_x___c0"] = np.nan
    with pytest.raises(InvalidInput, match="metric conversion: its covariates "
                                           r"\(cov_tenure_days, cov_tenure_days_missing\)"):
        to_records(frame, [metric], ["platform", "country"], assignment=spec.assignment)
