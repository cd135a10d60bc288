"""The warehouse refresh with a quantile metric (SQLite and PostgreSQL app databases, a DuckDB
warehouse): the catalogue metric's level reaches the query, the stored QuantileStats are
numpy's ``quantile(method="inverted_cdf")`` of each unit's 7-day revenue at p and at
core.stats.quantile_levels(p, n), in the table a user-level file fills (metric_quantile_stats),
the Results compare them with core.stats.quantile_test, the fact source stays open while the
experiment runs, and a second refresh writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core import catalogue
from core.analysis.results import compute_results
from core.registry.listing import load_experiment
from core.stats import quantile_levels, quantile_test
from core.warehouse.refresh import build_spec, latest_runs, refresh_from_warehouse
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.warehouse import duckdb_warehouse as wh
from tests.core.warehouse.test_refresh_capping import _unit_revenue

P90 = {"name": "wh_revenue_p90", "fact_source": "orders", "aggregation": "sum",
       "value_column": "revenue", "window_days": 7, "quantile_p": 0.9, "unit": "EUR"}


def test_refresh_quantile_stores_numpy_inverted_cdf_stats_and_results_test_them(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "shop.duckdb"
    exposures, orders = wh.tables()
    wh.write_warehouse(path, exposures, orders)
    wh.define(session, path, name="Setup")  # the connection, sources and metrics
    catalogue.create_metric(session, data=P90, actor=EDITOR)
    exp = wh.define(session, path, name="Quantile checkout", secondaries=("wh_revenue_p90",))
    spec = build_spec(session, exp, today=wh.utc_today())
    assert {m.name: m.quantile_p for m in spec.metrics} == {"wh_buyers": None,
                                                            "wh_revenue_p90": 0.9}

    report = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    assert report.final_through == {"orders": None}
    assert report.changed

    units = _unit_revenue(exposures, orders, window_days=7)
    metric = catalogue.get_metric(session, name="wh_revenue_p90").id
    stored = {r.variant_id: r.stats for r in mrepo.quantile_stats(session, experiment_id=exp)
              if r.metric_id == metric}
    variants = {v.id: v.name for v in load_experiment(session, experiment_id=exp).variants}
    by_name = {variants[vid]: s for vid, s in stored.items()}
    assert set(by_name) == {"control", "treatment"}
    for arm, s in by_name.items():
        x = units.loc[units["variant"] == arm, "value"].to_numpy(float)
        low, high = quantile_levels(0.9, len(x))
        want = np.quantile(x, [low, 0.9, high], method="inverted_cdf")
        assert (s.n, s.n_star, s.p) == (len(x), len(x), 0.9)
        assert_allclose([s.lower, s.quantile, s.upper], want, rtol=1e-9, err_msg=arm)

    results = compute_results(session, experiment_id=exp)
    row = next(c for c in results.comparisons if c.metric == "wh_revenue_p90")
    expected = quantile_test(by_name["control"], by_name["treatment"])
    assert (row.kind, row.test) == ("quantile", "quantile_woodruff")
    assert_allclose([row.control_mean, row.treatment_mean, row.diff, row.p_value],
                    [expected.control_mean, expected.treatment_mean, expected.diff,
                     expected.p_value], rtol=1e-12)
    # Both queries of the fact source are recorded under its name.
    orders_run = next(r for r in latest_runs(session, exp) if r.source == "orders")
    assert orders_run.sql.count(";") == 2 and "quantiles at their order statistics" in \
        orders_run.sql

    again = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    assert (again.changed, again.stats_rows_written) == (False, 0)
    assert {r.variant_id: r.stats for r in mrepo.quantile_stats(session, experiment_id=exp)
            if r.metric_id == metric} == stored
