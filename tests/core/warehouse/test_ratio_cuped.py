"""A warehouse mean or ratio metric's own pre-period (``cuped_days``) as a covariate: its
numerator's sum over the days before the first exposure (``<column>_pre``, the name and value
a user-level file gives a ratio metric's pre-period numerator, ``<numerator>_pre``), capped
at the numerator's cap, first in its covariate vector, then the declared unit attributes'
value and missingness pairs; with no declared attribute the vector holds it alone (a ratio
has no one-covariate CUPED sums).

References: the per-unit values of the pandas reference (tests/core/warehouse/reference.py,
written apart from the engine), capped with ``numpy.percentile(method="linear")`` pooled
over the kept units and ``numpy.minimum`` (tests/core/warehouse/test_covariates.py
.reference_units), then ``X.T @ X``, ``X.T @ y`` and ``X.T @ den`` per variant and
first-exposure day with numpy (core.stats.covariate_sums): the engine's sums on DuckDB,
PostgreSQL (marker ``postgres``) and Spark (marker ``spark``) equal them to 1e-9 relative.
The same units loaded as a user-level file (its ``page_views_pre`` and ``cov_*`` columns)
give the same stored sums and the same ratio regression-adjusted result (Lin 2013 with the
delta method) as the warehouse's records, to 1e-9.
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
from core.stats import CovariateSums, MetricStats, covariate_sums, regression_adjusted_test
from core.stats.capping import CapRule
from core.warehouse.compute import compute, definition_problems
from core.warehouse.definitions import (
    ExperimentSpec,
    Limits,
    WarehouseMetric,
    WarehouseResult,
    covariate_names,
)
from core.warehouse.synthetic import SyntheticWarehouse
from tests.conftest import EDITOR
from tests.core.warehouse.conftest import SPARK_KEY, analysis_day, engine_for, midnight
from tests.core.warehouse.specs import ORDERS, SESSIONS, experiment_spec, with_sources
from tests.core.warehouse.test_covariates import (
    ATTRIBUTE,
    assert_same_vectors,
    engine_vectors,
    reference_units,
    stored_vectors,
)

METRICS: tuple[WarehouseMetric, ...] = (
    WarehouseMetric("views_per_session", SESSIONS, "ratio", column="page_views",
                    denominator="session_count", window_days=7, cuped_days=14,
                    cap=CapRule("percentile", 0.9)),
    WarehouseMetric("pages_per_visit", SESSIONS, "ratio", column="page_views",
                    denominator="session_count", window_days=5, cuped_days=7),
    WarehouseMetric("order_value", ORDERS, "mean", column="revenue", window_days=7,
                    cuped_days=14, cap=CapRule("fixed", 40.0)),
    WarehouseMetric("revenue", ORDERS, "sum", column="revenue", window_days=7, cuped_days=14),
)
Vectors = dict[tuple[str, str, date], CovariateSums]


def ratio_spec(warehouse: SyntheticWarehouse, key: str, engine: tuple[str, Any, str],
               *, attributes: bool) -> ExperimentSpec:
    """The synthetic experiment ``key`` with :data:`METRICS`, ``tenure_days`` declared a
    covariate when ``attributes``."""
    _, connection, prefix = engine
    spec = experiment_spec(warehouse, key, connection, prefix, metrics=METRICS)
    spec = with_sources(spec, assignment_sql=(
        "SELECT unit_id, timestamp, experiment_key, variant, platform, country, tenure_days "
        f"FROM {prefix}exposures"))
    return replace(spec, assignment=replace(
        spec.assignment, covariates=(ATTRIBUTE,) if attributes else ()))


def numpy_vectors(table: pd.DataFrame, spec: ExperimentSpec) -> Vectors:
    """numpy's CovariateSums per (metric, variant, day) of every metric with a vector: the
    pre-period numerator (capped), then the attribute (0 for NULL) and its indicator."""
    tenure = pd.to_numeric(table[ATTRIBUTE]).to_numpy(float)
    attributes = ([np.nan_to_num(tenure, nan=0.0), np.isnan(tenure).astype(float)]
                  if spec.assignment.covariates else [])
    out: Vectors = {}
    for m in spec.metrics:
        names = covariate_names(m, spec.assignment)
        if not names:
            continue
        x = np.column_stack([table[f"{m.name}_pre"].to_numpy(float), *attributes])
        ratio = m.aggregation in ("mean", "ratio")
        for (variant, day), rows in table.groupby(["variant", "day"]).indices.items():
            out[(m.name, str(variant), day.date())] = covariate_sums(
                x[rows], table[m.name].to_numpy(float)[rows], names,
                table[f"{m.name}_den"].to_numpy(float)[rows] if ratio else None)
    return out


_RESULTS: dict[tuple[str, str, bool], tuple[WarehouseResult, ExperimentSpec]] = {}


def ratio_result(request: pytest.FixtureRequest, warehouse: SyntheticWarehouse, name: str,
                 key: str, *, attributes: bool) -> tuple[WarehouseResult, ExperimentSpec]:
    if (name, key, attributes) not in _RESULTS:
        spec = ratio_spec(warehouse, key, engine_for(request, name), attributes=attributes)
        today = analysis_day(warehouse)
        _RESULTS[name, key, attributes] = (
            compute(spec, limits=Limits(), today=today, now=midnight(today)), spec)
    return _RESULTS[name, key, attributes]


def test_ratio_cuped_names_and_definitions(warehouse: SyntheticWarehouse,
                                           request: pytest.FixtureRequest) -> None:
    """A mean or ratio metric with cuped_days is no longer refused, and its vector names its
    numerator's pre-period first; a sum metric without attributes keeps no vector."""
    spec = ratio_spec(warehouse, "checkout_button", engine_for(request, "duckdb"),
                      attributes=False)
    assert definition_problems(spec) == []
    plain = spec.assignment
    declared = replace(plain, covariates=(ATTRIBUTE,))
    ratio, _, mean, total = METRICS
    assert covariate_names(ratio, plain) == ("page_views_pre",)
    assert covariate_names(mean, plain) == ("revenue_pre",)
    assert covariate_names(total, plain) == ()
    assert covariate_names(ratio, declared) == (
        "page_views_pre", "cov_tenure_days", "cov_tenure_days_missing")
    assert covariate_names(replace(ratio, cuped_days=None), plain) == ()


@pytest.mark.parametrize("attributes", [False, True], ids=["alone", "with_attributes"])
@pytest.mark.parametrize(("engine_name", "key"), [
    pytest.param("duckdb", "checkout_button", id="duckdb"),
    pytest.param("postgresql", "checkout_button", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("spark", SPARK_KEY, id="spark", marks=pytest.mark.spark),
])
def test_ratio_cuped_cross_products_equal_numpy(
    engine_name: str, key: str, attributes: bool, warehouse: SyntheticWarehouse,
    request: pytest.FixtureRequest
) -> None:
    result, spec = ratio_result(request, warehouse, engine_name, key, attributes=attributes)
    # the reference reads the attribute only where declared; the per-unit values are the same
    table = reference_units(warehouse, replace(spec, assignment=replace(
        spec.assignment, covariates=(ATTRIBUTE,))))
    got = engine_vectors_of(result, spec)
    assert_same_vectors(got, numpy_vectors(table, spec), engine_name)
    assert {m for m, _, _ in got} == (
        {"views_per_session", "pages_per_visit", "order_value"}
        | ({"revenue"} if attributes else set()))
    # The numerator's cap bites on the pre-period; the ratio records carry no CUPED sums.
    assert (table["views_per_session_pre_raw"] > table["views_per_session_pre"]).any()
    assert (table["order_value_pre_raw"] > table["order_value_pre"]).any()
    ratios = {"views_per_session", "pages_per_visit", "order_value"}
    assert not any("sum_x" in r for r in result.records if r["metric"] in ratios)
    assert all("sum_x" in r for r in result.records
               if r["metric"] == "revenue" and "dimension" not in r)


def engine_vectors_of(result: WarehouseResult, spec: ExperimentSpec) -> Vectors:
    """The engine's vectors of the metrics that have one (the others' records are kept out)."""
    with_vector = {m.name for m in spec.metrics if covariate_names(m, spec.assignment)}
    kept = replace(result, records=[r for r in result.records if r["metric"] in with_vector])
    return engine_vectors(kept, spec)


def _experiment(session: Session, spec: ExperimentSpec, name: str) -> int:
    if not any(m.name == "views_per_session" for m in catalogue.list_metrics(session)):
        catalogue.create_metric(session, data={
            "name": "views_per_session", "kind": "ratio", "numerator": "page_views",
            "denominator": "session_count"}, actor=EDITOR)
    weight = 1.0 / len(spec.variants)
    view = registry.create_experiment(session, data={
        "name": name, "owner": "t", "hypothesis": "h", "primary_metric": "views_per_session",
        "planned_sample_size": 100,
        "variants": [{"name": v, "weight": weight} for v in spec.variants],
        "capping": {"views_per_session": {"kind": "percentile", "value": 0.9}},
    }, actor=EDITOR)
    return registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=spec.start).id


@pytest.mark.parametrize("engine_name", [
    "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_ratio_cuped_file_path_gives_the_warehouse_adjusted_result(
    engine_name: str, warehouse: SyntheticWarehouse, request: pytest.FixtureRequest,
    session: Session, tmp_path: Path
) -> None:
    result, spec = ratio_result(request, warehouse, engine_name, "checkout_button",
                                attributes=True)
    table = reference_units(warehouse, spec)
    tenure = pd.to_numeric(table[ATTRIBUTE])
    from_file = _experiment(session, spec, "From a user-level file")
    path = tmp_path / "units.csv"
    pd.DataFrame({
        "unit_id": table["unit_id"], "variant": table["variant"], "date": table["day"].dt.date,
        "page_views": table["views_per_session_raw"],
        "session_count": table["views_per_session_den_raw"],
        "page_views_pre": table["views_per_session_pre_raw"],
        "cov_tenure_days": tenure.fillna(0.0), "cov_tenure_days_missing": tenure.isna() * 1,
    }).to_csv(path, index=False)
    ingest_file(session, path=path, actor=EDITOR, experiment_id=from_file)

    from_warehouse = _experiment(session, spec, "From the warehouse")
    write_records(session, experiment_id=from_warehouse, actor=EDITOR, kind="warehouse",
                  label="warehouse",
                  rows=[r for r in result.records if r["metric"] == "views_per_session"],
                  caps={m: c for m, c in result.caps.items() if m == "views_per_session"})
    stored = stored_vectors(session, from_warehouse)
    assert_same_vectors(stored, stored_vectors(session, from_file),
                        f"{engine_name} against the file path")
    assert {v.names for v in stored.values()} == {
        ("page_views_pre", "cov_tenure_days", "cov_tenure_days_missing")}

    by_file = compute_results(session, experiment_id=from_file).comparisons
    by_warehouse = compute_results(session, experiment_id=from_warehouse).comparisons
    assert len(by_file) == len(by_warehouse) == len(spec.variants) - 1
    for got, want in zip(by_warehouse, by_file, strict=True):
        assert got.metric == want.metric == "views_per_session"
        assert got.test == want.test == "ratio_regression_adjusted" and got.cuped
        for field in ("diff", "diff_ci_low", "diff_ci_high", "p_value", "lift",
                      "variance_reduction"):
            assert_allclose(getattr(got, field), getattr(want, field), rtol=1e-9,
                            err_msg=field)


def test_ratio_cuped_alone_is_regression_adjusted_on_its_pre_period(
    warehouse: SyntheticWarehouse, request: pytest.FixtureRequest, session: Session
) -> None:
    """Without declared attributes a ratio metric's stored vector is its pre-period alone,
    and the result is the ratio regression adjustment of numpy's per-arm sums over the
    reference's units (core.stats.regression_adjusted_test on them, to 1e-9)."""
    result, spec = ratio_result(request, warehouse, "duckdb", "checkout_button",
                                attributes=False)
    table = reference_units(warehouse, replace(spec, assignment=replace(
        spec.assignment, covariates=(ATTRIBUTE,))))
    exp = _experiment(session, spec, "From the warehouse, no attributes")
    write_records(session, experiment_id=exp, actor=EDITOR, kind="warehouse",
                  label="warehouse",
                  rows=[r for r in result.records if r["metric"] == "views_per_session"],
                  caps={m: c for m, c in result.caps.items() if m == "views_per_session"})
    assert {v.names for v in stored_vectors(session, exp).values()} == {("page_views_pre",)}

    def arm(variant: str) -> MetricStats:
        rows = table[table["variant"] == variant]
        y = rows["views_per_session"].to_numpy(float)
        d = rows["views_per_session_den"].to_numpy(float)
        x = rows[["views_per_session_pre"]].to_numpy(float)
        return MetricStats(
            n=len(rows), sum=y.sum(), sum_squares=y @ y, sum_den=d.sum(),
            sum_den_squares=d @ d, sum_num_den=y @ d,
            covariates=covariate_sums(x, y, ("page_views_pre",), d))

    comparisons = compute_results(session, experiment_id=exp).comparisons
    control = spec.variants[0]
    assert [c.treatment for c in comparisons] == list(spec.variants[1:])
    for got in comparisons:
        assert got.control == control
        want = regression_adjusted_test(arm(control), arm(got.treatment))
        assert got.test == "ratio_regression_adjusted" and got.cuped
        assert_allclose([got.diff, got.diff_ci_low, got.diff_ci_high, got.p_value],
                        [want.diff, want.diff_ci_low, want.diff_ci_high, want.p_value], rtol=1e-9)
