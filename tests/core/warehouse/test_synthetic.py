"""The synthetic warehouse: seeded, holding the awkward cases the engine tests rely on, carrying
its known effects, and loaded alike into DuckDB, PostgreSQL and Spark."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sqlalchemy import create_engine, text

from core.warehouse.definitions import Connection
from core.warehouse.synthetic import EDGE_OFFSETS_DAYS, SyntheticWarehouse, generate_warehouse
from tests.core.warehouse.conftest import PG_SCHEMA


def test_synthetic_same_seed_same_tables_other_seed_other_tables() -> None:
    a, b = generate_warehouse(units=500, seed=3), generate_warehouse(units=500, seed=3)
    for name, frame in a.tables().items():
        assert_frame_equal(frame, b.tables()[name])
    c = generate_warehouse(units=500, seed=4)
    assert not a.orders["revenue"].equals(c.orders["revenue"])


def test_synthetic_exposures_hold_repeats_and_a_few_two_variant_units(
    warehouse: SyntheticWarehouse,
) -> None:
    for exp in warehouse.experiments:
        rows = warehouse.exposures[warehouse.exposures["experiment_key"] == exp.key]
        per_unit = rows.groupby("unit_id")
        assert (per_unit.size() > 1).sum() > 0.1 * per_unit.ngroups  # repeat exposures
        multi = (per_unit["variant"].nunique() > 1).sum()
        assert 0 < multi < 0.01 * per_unit.ngroups, exp.key  # below the 1% default
        assert set(rows["variant"]) == set(exp.variants)
        days = pd.to_datetime(rows["timestamp"]).dt.date
        assert days.min() == exp.start(warehouse.start)
        assert days.max() <= exp.end(warehouse.start)
        # No unit has two exposures at the same instant (its first exposure is unambiguous).
        assert not rows.duplicated(["unit_id", "timestamp"]).any()
        # Some repeat exposures come from another platform than the first.
        firsts = rows.sort_values("timestamp").groupby("unit_id")["platform"].first()
        assert (rows["platform"].to_numpy() != firsts.loc[rows["unit_id"]].to_numpy()).any()


def test_synthetic_facts_span_pre_period_and_after_windows_with_late_arrivals(
    warehouse: SyntheticWarehouse,
) -> None:
    for frame in (warehouse.orders, warehouse.sessions):
        days = pd.to_datetime(frame["timestamp"]).dt.date
        assert days.min() <= warehouse.start - timedelta(days=14)
        assert days.max() == warehouse.last_day
        lag = (pd.to_datetime(frame["arrival_day"]) - pd.to_datetime(days)).dt.days
        assert set(lag.unique()) == {0, 1, 2}
        assert frame["late"].equals(lag > 0)
        assert 0.1 < frame["late"].mean() < 0.2
    assert warehouse.orders["items"].isna().any()
    assert (warehouse.orders["discount"] == 0).mean() > 0.5


def test_synthetic_edge_units_have_facts_at_whole_days_from_first_exposure(
    warehouse: SyntheticWarehouse,
) -> None:
    exp = warehouse.experiments[0]
    rows = warehouse.exposures[warehouse.exposures["experiment_key"] == exp.key]
    first = rows.groupby("unit_id")["timestamp"].min()
    offsets = warehouse.orders.merge(first.rename("first"), left_on="unit_id", right_index=True)
    exact = offsets[(offsets["timestamp"] - offsets["first"]) % pd.Timedelta(days=1)
                    == pd.Timedelta(0)]
    found = set(((exact["timestamp"] - exact["first"]) / pd.Timedelta(days=1)).astype(int))
    assert set(EDGE_OFFSETS_DAYS) <= found


def test_synthetic_visible_on_replays_what_had_arrived(warehouse: SyntheticWarehouse) -> None:
    day = warehouse.start + timedelta(days=4)
    seen = warehouse.visible_on(day)
    assert pd.to_datetime(seen["exposures"]["timestamp"]).dt.date.max() == day
    assert (seen["orders"]["arrival_day"] <= day).all()
    late_then = warehouse.orders[(pd.to_datetime(warehouse.orders["timestamp"]).dt.date <= day)
                                 & (warehouse.orders["arrival_day"] > day)]
    assert len(late_then) > 0  # facts of that day or before that had not arrived yet
    assert len(seen["orders"]) + len(late_then) == (
        pd.to_datetime(warehouse.orders["timestamp"]).dt.date <= day).sum()


def _per_unit_in_window(
    warehouse: SyntheticWarehouse, key: str, facts: pd.DataFrame, days: int
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rows = warehouse.exposures[warehouse.exposures["experiment_key"] == key]
    first = rows.sort_values("timestamp").groupby("unit_id").first()
    joined = facts.merge(first[["timestamp"]].rename(columns={"timestamp": "first"}),
                         left_on="unit_id", right_index=True)
    since = joined["timestamp"] - joined["first"]
    post = joined[(since >= pd.Timedelta(0)) & (since < pd.Timedelta(days=days))]
    pre = joined[(since < pd.Timedelta(0)) & (since >= -pd.Timedelta(days=14))]
    post_count = post.groupby("unit_id").size().reindex(first.index, fill_value=0)
    pre_count = pre.groupby("unit_id").size().reindex(first.index, fill_value=0)
    return first, post_count, pre_count


@pytest.fixture(scope="module")
def big() -> SyntheticWarehouse:
    """Enough units for the effects to show through the noise."""
    return generate_warehouse(units=20_000, seed=5)


@pytest.mark.parametrize(
    ("key", "variant", "low", "high"),
    [
        # Lift(orders=1.15): orders per unit over 7 days, treatment / control.
        ("checkout_button", "treatment", 1.08, 1.23),
        # No effect.
        ("search_ranking", "treatment", 0.93, 1.07),
    ],
)
def test_synthetic_known_effect_is_recovered(big: SyntheticWarehouse, key: str, variant: str,
                                             low: float, high: float) -> None:
    first, post, pre = _per_unit_in_window(big, key, big.orders, 7)
    means = post.groupby(first["variant"]).mean()
    assert low < means[variant] / means["control"] < high
    # The pre-period is what CUPED needs: correlated with the outcome.
    assert np.corrcoef(pre, post)[0, 1] > 0.2


def _table_summary(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(round(float(v), 6) if isinstance(v, float) else v for v in r) for r in rows]


SUMMARY = {
    "exposures": "SELECT count(*), count(DISTINCT unit_id), min(timestamp), max(timestamp) "
                 "FROM {p}exposures",
    "orders": "SELECT count(*), count(items), sum(revenue), sum(discount), min(arrival_day) "
              "FROM {p}orders",
    "sessions": "SELECT count(*), sum(session_count), sum(page_views), max(timestamp) "
                "FROM {p}sessions",
}


def _expected_summary(warehouse: SyntheticWarehouse, table: str) -> tuple[Any, ...]:
    con = duckdb.connect()
    con.register(table, warehouse.tables()[table])
    out = con.execute(SUMMARY[table].format(p="")).fetchone()
    con.close()
    assert out is not None
    return tuple(out)


def test_synthetic_loads_into_duckdb(warehouse: SyntheticWarehouse,
                                     duckdb_connection: Connection) -> None:
    path = duckdb_connection.url.removeprefix("duckdb:///")
    con = duckdb.connect(path, read_only=True)
    try:
        for table, sql in SUMMARY.items():
            got = con.execute(sql.format(p="")).fetchall()
            assert _table_summary(got) == _table_summary([_expected_summary(warehouse, table)])
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'orders'").fetchall())
    finally:
        con.close()
    assert types["timestamp"] == "TIMESTAMP" and types["arrival_day"] == "DATE"


@pytest.mark.postgres
def test_synthetic_loads_into_postgres(warehouse: SyntheticWarehouse,
                                       postgres_connection: Connection,
                                       postgres_database: str) -> None:
    engine = create_engine(postgres_database)
    try:
        with engine.connect() as conn:
            for table, sql in SUMMARY.items():
                got = conn.execute(text(sql.format(p=f"{PG_SCHEMA}."))).all()
                assert _table_summary([tuple(r) for r in got]) == _table_summary(
                    [_expected_summary(warehouse, table)])
    finally:
        engine.dispose()
