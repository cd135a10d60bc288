"""Covariates and post-stratification through the app (SQLite and PostgreSQL app databases, a
DuckDB warehouse): an assignment source's declared covariates are validated, audited, checked
by the preview and read by the refresh; the stored daily stats carry each metric's covariate
cross-products and the results regression-adjust on them; a refresh that finds the same
numbers writes nothing. Without covariates, the plan's post-stratification dimension, declared
on the assignment source, post-stratifies the warehouse metrics from the stored slices.

References: numpy's ``X.T @ X`` per variant and day over the units the pandas computation of
tests/core/warehouse/duckdb_warehouse.py keeps (covariates), and the post-stratified estimate
of Miratrix, Sekhon & Yu (2013), sum_h w_h (ybar_th - ybar_ch) with pooled stratum shares and
variance sum_h w_h^2 (s2_ch/n_ch + s2_th/n_th), on the same units (1e-9).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core.analysis.results import compute_results
from core.errors import InvalidInput
from core.stats import covariate_sums
from core.warehouse import catalog
from core.warehouse.refresh import build_spec, refresh_from_warehouse
from db import metric_repository as mrepo
from db import repositories as repo
from db.models import Experiment
from tests.conftest import EDITOR
from tests.core.warehouse import duckdb_warehouse as wh
from tests.core.warehouse.test_refresh_capping import _unit_revenue

ATTRIBUTE_SQL = ("SELECT unit_id, ts AS timestamp, exp_key AS experiment_key, variant, platform, "
                 "CASE WHEN platform = 'ios' THEN NULL "
                 "ELSE CAST(substr(unit_id, 2) AS DOUBLE) END AS tenure FROM exposures")
"""The assignment source with a numeric attribute, NULL for the iOS units."""


@pytest.fixture
def warehouse_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.duckdb"
    wh.write_warehouse(path, *wh.tables())
    return path


def test_refresh_covariates_are_declared_checked_and_audited(session: Session,
                                                             warehouse_file: Path) -> None:
    wh.define(session, warehouse_file)
    with pytest.raises(InvalidInput) as err:
        catalog.update_assignment_source(session, name="exposures", actor=EDITOR, changes={
            "covariates": ["platform", "Tenure", "variant"]})
    problems = err.value.problems
    assert any("platform is declared a dimension too" in p for p in problems), problems
    assert any("lower_snake_case" in p and "'Tenure'" in p for p in problems), problems
    assert any("variant is always returned" in p for p in problems), problems
    with pytest.raises(InvalidInput, match="cov_age_missing would name two covariates"):
        catalog.update_assignment_source(session, name="exposures", actor=EDITOR, changes={
            "covariates": ["age", "age_missing"]})
    with pytest.raises(InvalidInput, match="covariates: List should have at most 4 items"):
        catalog.update_assignment_source(session, name="exposures", actor=EDITOR, changes={
            "covariates": [f"c{i}" for i in range(catalog.MAX_COVARIATE_COLUMNS + 1)]})
    assert catalog.get_assignment_source(session, name="exposures").covariates == ()

    view = catalog.update_assignment_source(session, name="exposures", actor=EDITOR, changes={
        "sql": ATTRIBUTE_SQL, "covariates": ["tenure"]})
    assert view.covariates == ("tenure",) and view.dimensions == ("platform",)
    entry = repo.audit_entries(session, entity_type="assignment_source", entity_id=view.id)[-1]
    assert entry.changes["covariates"] == [None, ["tenure"]]
    assert catalog.preview_source(session, name="exposures", actor=EDITOR).problems == ()
    catalog.update_assignment_source(session, name="exposures", actor=EDITOR, changes={
        "sql": ATTRIBUTE_SQL.replace("AS DOUBLE", "AS VARCHAR")})
    (problem,) = catalog.preview_source(session, name="exposures", actor=EDITOR).problems
    assert problem.startswith("assignment source 'exposures': column tenure is string, "
                              "not a number")
    with pytest.raises(InvalidInput, match="is declared a dimension too"):
        catalog.update_assignment_source(session, name="exposures", actor=EDITOR,
                                         changes={"dimensions": ["platform", "tenure"]})


def test_refresh_covariates_reach_the_store_and_the_results(session: Session,
                                                            warehouse_file: Path) -> None:
    exp = wh.define(session, warehouse_file)
    catalog.update_assignment_source(session, name="exposures", actor=EDITOR, changes={
        "sql": ATTRIBUTE_SQL, "covariates": ["tenure"]})
    spec = build_spec(session, exp, today=wh.utc_today())
    assert spec.assignment.covariates == ("tenure",)
    refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)

    exposures, orders = wh.tables()
    units = _unit_revenue(exposures, orders, window_days=7)
    first = exposures[exposures["exp_key"] == wh.KEY].sort_values("ts").groupby(
        "unit_id").first()
    tenure = np.where(first.loc[units.index, "platform"] == "ios", np.nan,
                      [float(u[1:]) for u in units.index])
    joined = orders.merge(units[["first"]], left_on="unit_id", right_index=True)
    before = joined[(joined["ts"] >= joined["first"] - pd.Timedelta(days=14))
                    & (joined["ts"] < joined["first"])]
    pre = before.groupby("unit_id")["revenue"].sum().reindex(units.index).fillna(0.0)
    x = np.column_stack([pre.to_numpy(), np.nan_to_num(tenure), np.isnan(tenure).astype(float)])
    revenue = repo.get_metric_by_name(session, name="wh_revenue")
    variants = {v.id: v.name for v in repo.get_experiment(  # type: ignore[union-attr]
        session, experiment_id=exp).variants}
    rows = [r for r in mrepo.daily_stats(session, experiment_id=exp)
            if r.metric_id == revenue.id]  # type: ignore[union-attr]
    assert rows
    for r in rows:
        mask = ((units["variant"] == variants[r.variant_id])
                & (units["day"] == r.day)).to_numpy()
        vec = r.stats.covariates
        assert vec is not None
        assert vec.names == ("wh_revenue_pre", "cov_tenure", "cov_tenure_missing")
        want = covariate_sums(x[mask], units["value"].to_numpy()[mask], vec.names)
        assert_allclose(vec.sum_xx, want.sum_xx, rtol=1e-9)
        assert_allclose(vec.sum_xy, want.sum_xy, rtol=1e-9)

    comparisons = {c.metric: c for c in compute_results(session, experiment_id=exp).comparisons}
    assert comparisons["wh_revenue"].test == "regression_adjusted"
    assert comparisons["wh_order_value"].test == "ratio_regression_adjusted"
    again = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    assert not again.changed and again.stats_rows_written == 0


def test_refresh_post_stratifies_on_the_assignment_sources_dimension(
        session: Session, warehouse_file: Path) -> None:
    exp = wh.define(session, warehouse_file)
    row = session.get(Experiment, exp)
    assert row is not None
    row.post_stratify_on = "platform"
    session.flush()
    refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    comparisons = {c.metric: c for c in compute_results(session, experiment_id=exp).comparisons}

    exposures, orders = wh.tables()
    units = _unit_revenue(exposures, orders, window_days=7)
    first = exposures[exposures["exp_key"] == wh.KEY].sort_values("ts").groupby(
        "unit_id").first()
    units["platform"] = first.loc[units.index, "platform"]
    joined = orders.merge(units[["first"]], left_on="unit_id", right_index=True)
    inside = joined[(joined["ts"] >= joined["first"])
                    & (joined["ts"] < joined["first"] + pd.Timedelta(days=7))]
    units["buyer"] = units.index.isin(inside["unit_id"]).astype(float)
    for metric, column in (("wh_buyers", "buyer"), ("wh_revenue", "value")):
        got = comparisons[metric]
        if metric == "wh_revenue":  # its CUPED covariate adjusts it instead
            assert got.test == "welch_cuped"
            continue
        assert got.test == "post_stratified", metric
        y, v, h = units[column].to_numpy(), units["variant"].to_numpy(), units["platform"]
        strata = sorted(set(h))
        w = np.array([(h == s).mean() for s in strata])
        d = np.array([y[(h == s) & (v == "treatment")].mean()
                      - y[(h == s) & (v == "control")].mean() for s in strata])
        var = np.array([sum(y[(h == s) & (v == a)].var(ddof=1) / ((h == s) & (v == a)).sum()
                            for a in ("control", "treatment")) for s in strata])
        assert_allclose(got.diff, w @ d, rtol=1e-9, err_msg=metric)
        half = (got.diff_ci_high - got.diff_ci_low) / 2  # two-sided z interval
        assert_allclose(half, 1.959963984540054 * np.sqrt((w * w) @ var), rtol=1e-9,
                        err_msg=metric)
        assert got.adjustment is not None and got.adjustment.startswith("Post-stratified")
    assert comparisons["wh_order_value"].test == "ratio_post_stratified"
