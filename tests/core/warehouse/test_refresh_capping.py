"""The warehouse refresh with a capped metric (SQLite and PostgreSQL app databases, a DuckDB
warehouse): the plan's percentile cap reaches the query, the stored sums are numpy's capped
sums (numpy.percentile, method "linear", over every kept unit, then numpy.minimum), the cap is
recorded, and the capped source stays open (recomputed from the first day) while running."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.warehouse.refresh import build_spec, refresh_from_warehouse
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.warehouse import duckdb_warehouse as wh
from tests.core.warehouse.test_refresh import _stored


def _unit_revenue(exposures: pd.DataFrame, orders: pd.DataFrame, window_days: int
                  ) -> pd.DataFrame:
    """Per kept unit: variant, first-exposure day and revenue in its window (as
    duckdb_warehouse.expected_sums, before the sums)."""
    mine = exposures[exposures["exp_key"] == wh.KEY]
    variants = mine.groupby("unit_id")["variant"].nunique()
    kept = mine[mine["unit_id"].isin(variants[variants == 1].index)]
    first = kept.groupby("unit_id").agg(first=("ts", "min"), variant=("variant", "first"))
    joined = orders.merge(first, left_on="unit_id", right_index=True)
    inside = joined[(joined["ts"] >= joined["first"])
                    & (joined["ts"] < joined["first"] + pd.Timedelta(days=window_days))]
    first["value"] = inside.groupby("unit_id")["revenue"].sum().reindex(first.index).fillna(0.0)
    first["day"] = first["first"].dt.date
    return first


def test_refresh_capping_stores_numpy_capped_sums_and_the_cap(session: Session,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    exposures, orders = wh.tables()
    wh.write_warehouse(path, exposures, orders)
    wh.define(session, path)  # the connection, sources and metrics
    view = registry.create_experiment(session, data={
        "name": "Capped checkout", "owner": "t", "hypothesis": "h", "primary_metric": "wh_buyers",
        "secondary_metrics": ["wh_revenue"], "planned_sample_size": 1000,
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        "assignment_source": "exposures", "experiment_key": wh.KEY,
        "capping": {"wh_revenue": {"kind": "percentile", "value": 0.9}},
    }, actor=EDITOR)
    exp = registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=wh.start_day()).id
    spec = build_spec(session, exp, today=wh.utc_today())
    assert {m.name: m.cap for m in spec.metrics}["wh_revenue"].value == 0.9  # type: ignore[union-attr]

    report = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    assert report.final_through == {"orders": None}

    units = _unit_revenue(exposures, orders, window_days=7)
    cap = np.percentile(units["value"], 90, method="linear")
    assert (units["value"] > cap).any()
    units["capped"] = np.minimum(units["value"], cap)
    units["square"] = units["capped"] ** 2
    expected = (units.groupby(["variant", "day"])
                .agg(n=("capped", "size"), sum=("capped", "sum"), sum_squares=("square", "sum"))
                .reset_index())
    stored = _stored(session, exp, "wh_revenue")
    assert stored[["variant", "day", "n"]].values.tolist() == expected[
        ["variant", "day", "n"]].values.tolist()
    assert_allclose(stored["sum"], expected["sum"], rtol=1e-9)
    assert_allclose(stored["sum_squares"], expected["sum_squares"], rtol=1e-9)
    metric = catalogue.get_metric(session, name="wh_revenue").id
    applied = mrepo.applied_caps(session, experiment_id=exp)[metric]
    assert_allclose(applied.cap, cap, rtol=1e-12)
    assert applied.units == len(units)
