"""A small embedded DuckDB warehouse for the store's tests: seeded exposures and orders, the
definitions on it (connection, assignment source, fact source, four metrics) and a launched
experiment attached to it; and the sums a metric should have, computed with pandas."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.warehouse import catalog
from tests.conftest import ADMIN, EDITOR

UNITS = 400
EXPOSURE_DAYS = 12
KEY = "checkout-v2"
DIMENSIONS: list[str] = ["platform"]
ASSIGNMENT_SQL = ("SELECT unit_id, ts AS timestamp, exp_key AS experiment_key, variant, platform "
                  "FROM exposures")
ORDERS_SQL = "SELECT unit_id, ts AS timestamp, revenue, items FROM orders"
METRICS = {
    "wh_buyers": {"aggregation": "any", "window_days": 7},
    "wh_revenue": {"aggregation": "sum", "value_column": "revenue", "window_days": 7,
                   "cuped_days": 14},
    "wh_order_value": {"aggregation": "mean", "value_column": "revenue"},
    "wh_revenue_per_item": {"aggregation": "ratio", "value_column": "revenue",
                            "denominator_column": "items", "window_days": 3},
}


def utc_today() -> date:
    return datetime.now(UTC).date()


def start_day() -> date:
    """The experiment's first day: far enough back that the early exposure days are final."""
    return utc_today() - timedelta(days=EXPOSURE_DAYS + 4)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def tables(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(exposures, orders): each unit exposed one to three times from its first exposure day
    in control or treatment (two units in both), orders from two weeks before exposure up to
    yesterday (treatment buys a little more)."""
    rng = np.random.default_rng(seed)
    start = start_day()
    yesterday_end = _midnight(utc_today())
    exposures, orders = [], []
    for i in range(UNITS):
        unit = f"u{i:04d}"
        variant = "treatment" if i % 2 else "control"
        first = _midnight(start + timedelta(days=int(rng.integers(EXPOSURE_DAYS)))) + timedelta(
            seconds=int(rng.integers(86_400)))
        platform = str(rng.choice(["ios", "android", "web"]))
        for k in range(int(rng.integers(1, 4))):
            seen = first + timedelta(hours=6 * k)
            exposures.append((unit, seen, KEY, variant, platform))
        if i in (5, 6):  # seen in the other variant too
            exposures.append((unit, first + timedelta(hours=1), KEY,
                              "control" if i % 2 else "treatment", platform))
        rate = 0.25 if variant == "treatment" else 0.2
        for _ in range(int(rng.poisson(rate * 34 / 7))):
            ts = first + timedelta(seconds=int(rng.integers(-14 * 86_400, 20 * 86_400)))
            if ts < yesterday_end:
                orders.append((unit, ts, float(np.round(rng.lognormal(3, 0.5), 2)),
                               int(rng.integers(1, 4))))
    exposures.append(("v0001", _midnight(start) + timedelta(hours=3), "another-test", "a",
                      "web"))
    return (pd.DataFrame(exposures, columns=["unit_id", "ts", "exp_key", "variant", "platform"]),
            pd.DataFrame(orders, columns=["unit_id", "ts", "revenue", "items"]))


def write_warehouse(path: Path, exposures: pd.DataFrame, orders: pd.DataFrame) -> None:
    """Create (or replace) the warehouse file's two tables (``con.register`` + CREATE TABLE
    AS: duckdb 1.4 cannot create a table straight from a pandas frame through Ibis)."""
    con = duckdb.connect(str(path))
    try:
        for name, frame in (("exposures", exposures), ("orders", orders)):
            con.register(f"{name}_frame", frame)
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {name}_frame")
            con.unregister(f"{name}_frame")
    finally:
        con.close()


ALL_SECONDARIES = ("wh_revenue", "wh_order_value", "wh_revenue_per_item")
WINDOWED_SECONDARIES = ("wh_revenue", "wh_revenue_per_item")
"""Metrics that all have a window: their exposure days become final."""


def define(session: Session, path: Path, *, name: str = "Checkout v2",
           secondaries: tuple[str, ...] = ALL_SECONDARIES, start: date | None = None) -> int:
    """The connection, sources and metrics on the warehouse file, and an experiment launched
    on ``start`` (default :func:`start_day`) attached to it (primary wh_buyers); its id."""
    if not catalog.list_connections(session):
        catalog.create_connection(session, data={"name": "shop", "url": f"duckdb:///{path}"},
                                  actor=ADMIN)
        catalog.create_assignment_source(session, data={
            "name": "exposures", "connection": "shop", "sql": ASSIGNMENT_SQL,
            "dimensions": DIMENSIONS}, actor=EDITOR)
        catalog.create_fact_source(session, data={
            "name": "orders", "connection": "shop", "sql": ORDERS_SQL,
            "columns": ["revenue", "items"]}, actor=EDITOR)
        for metric, fields in METRICS.items():
            catalogue.create_metric(session, data={"name": metric, "fact_source": "orders",
                                                   **fields}, actor=EDITOR)
    view = registry.create_experiment(session, data={
        "name": name, "owner": "tester", "hypothesis": "A shorter checkout sells more.",
        "primary_metric": "wh_buyers",
        "secondary_metrics": list(secondaries),
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        "planned_sample_size": 1000, "assignment_source": "exposures", "experiment_key": KEY,
    }, actor=EDITOR)
    view = registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=start or start_day())
    return view.id


def expected_sums(exposures: pd.DataFrame, orders: pd.DataFrame, *, window_days: int
                  ) -> pd.DataFrame:
    """Per variant and first-exposure day: units (n), and the sum and sum of squares of each
    unit's revenue over [first exposure, first exposure + window) — units seen in two
    variants left out. Written here, apart from the engine."""
    mine = exposures[exposures["exp_key"] == KEY]
    variants = mine.groupby("unit_id")["variant"].nunique()
    kept = mine[mine["unit_id"].isin(variants[variants == 1].index)]
    first = kept.groupby("unit_id").agg(first=("ts", "min"), variant=("variant", "first"))
    joined = orders.merge(first, left_on="unit_id", right_index=True)
    inside = joined[(joined["ts"] >= joined["first"])
                    & (joined["ts"] < joined["first"] + pd.Timedelta(days=window_days))]
    value = inside.groupby("unit_id")["revenue"].sum()
    first["value"] = value.reindex(first.index).fillna(0.0)
    first["day"] = first["first"].dt.date
    first["square"] = first["value"] ** 2
    return (first.groupby(["variant", "day"])
            .agg(n=("value", "size"), sum=("value", "sum"), sum_squares=("square", "sum"))
            .reset_index())
