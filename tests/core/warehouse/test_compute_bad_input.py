"""Bad input gets a clear error naming the source and the column, on DuckDB and PostgreSQL:
each case below changes one thing of a good spec (its SQL, its dimensions, its metrics, its
limits or the clock) and expects :class:`core.errors.InvalidInput` whose message names the
source and the column (or the value) at fault. compute() writes nothing, so "nothing is
written" holds by construction. A warehouse that does not answer raises
:class:`core.errors.WarehouseUnavailable`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest

from core.errors import InvalidInput, WarehouseUnavailable
from core.warehouse.compute import compute
from core.warehouse.definitions import Connection, ExperimentSpec, Limits, WarehouseResult
from core.warehouse.synthetic import SyntheticWarehouse
from tests.core.warehouse.reference import Reference
from tests.core.warehouse.specs import (
    ASSIGNMENT,
    ORDERS,
    SESSIONS,
    experiment_spec,
    with_sources,
)

KEY = "checkout_button"
EXPOSURE_COLUMNS = "unit_id, timestamp, experiment_key, variant, platform, country"


@dataclass(frozen=True)
class Case:
    """One bad input: how it changes the spec (given the table prefix), the limits and the
    clock, and the words the error must contain (case-insensitive)."""

    change: Callable[[ExperimentSpec, str], ExperimentSpec]
    words: tuple[str, ...]
    limits: Limits = Limits()
    now_offset_days: int | None = None
    """The clock, in days after the experiment's start (None: after everything)."""


def _assignment(sql: str) -> Callable[[ExperimentSpec, str], ExperimentSpec]:
    return lambda spec, p: with_sources(spec, assignment_sql=sql.format(p=p))


def _fact(name: str, sql: str) -> Callable[[ExperimentSpec, str], ExperimentSpec]:
    return lambda spec, p: with_sources(spec, fact_sql={name: sql.format(p=p)})


CASES = {
    "assignment_sql_fails": Case(
        _assignment("SELECT * FROM {p}no_such_table"), (ASSIGNMENT,)),
    "fact_sql_fails": Case(
        _fact(ORDERS, "SELECT unit_id, timestamp, revenue FROM {p}orders WHERE"), (ORDERS,)),
    "assignment_missing_variant": Case(
        _assignment("SELECT unit_id, timestamp, experiment_key, platform, country "
                    "FROM {p}exposures"),
        (ASSIGNMENT, "variant")),
    "fact_missing_unit_id": Case(
        _fact(SESSIONS, "SELECT timestamp, session_count, page_views FROM {p}sessions"),
        (SESSIONS, "unit_id")),
    "assignment_timestamp_is_text": Case(
        _assignment("SELECT unit_id, CAST(timestamp AS VARCHAR) AS timestamp, experiment_key, "
                    "variant, platform, country FROM {p}exposures"),
        (ASSIGNMENT, "timestamp")),
    "fact_timestamp_is_text": Case(
        _fact(SESSIONS, "SELECT unit_id, CAST(timestamp AS VARCHAR) AS timestamp, "
                        "session_count, page_views FROM {p}sessions"),
        (SESSIONS, "timestamp")),
    "fact_value_is_text": Case(
        _fact(ORDERS, "SELECT unit_id, timestamp, CAST(revenue AS VARCHAR) AS revenue, items, "
                      "discount FROM {p}orders"),
        (ORDERS, "revenue")),
    "assignment_null_unit_ids": Case(
        _assignment("SELECT CASE WHEN unit_id < 'u000100' THEN NULL ELSE unit_id END AS unit_id, "
                    "timestamp, experiment_key, variant, platform, country FROM {p}exposures"),
        (ASSIGNMENT, "unit_id")),
    "assignment_timestamps_in_the_future": Case(
        lambda spec, p: spec, (ASSIGNMENT, "timestamp", "future"), now_offset_days=5),
    "assignment_before_the_start": Case(
        lambda spec, p: replace(spec, start=spec.start + timedelta(days=2)),
        (ASSIGNMENT, "timestamp")),
    "variant_not_in_the_experiment": Case(
        lambda spec, p: replace(spec, variants=("control",)),
        (ASSIGNMENT, "variant", "treatment")),
    "empty_result_for_the_key": Case(
        lambda spec, p: replace(spec, experiment_key="no_such_experiment"),
        (ASSIGNMENT, "no_such_experiment")),
    "dimension_column_missing": Case(
        lambda spec, p: with_sources(spec, dimensions=("platform", "browser")),
        (ASSIGNMENT, "browser")),
    "metric_column_missing_from_the_sql": Case(
        _fact(ORDERS, "SELECT unit_id, timestamp, revenue, items FROM {p}orders"),
        (ORDERS, "discount")),
    "metric_column_not_declared": Case(
        lambda spec, p: with_sources(spec, fact_columns={ORDERS: ("revenue", "items")}),
        (ORDERS, "discount")),
    "result_row_cap_exceeded": Case(
        lambda spec, p: spec, ("10",), limits=Limits(max_result_rows=10)),
}

ENGINES = [
    pytest.param(("duckdb_connection", ""), id="duckdb"),
    pytest.param(("postgres_connection", "wh."), id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=ENGINES)
def bad_engine(request: pytest.FixtureRequest) -> tuple[str, Connection, str]:
    fixture, prefix = request.param
    return fixture.split("_")[0], request.getfixturevalue(fixture), prefix


def _run(spec: ExperimentSpec, warehouse: SyntheticWarehouse, *, limits: Limits = Limits(),
         now_offset_days: int | None = None) -> WarehouseResult:
    if now_offset_days is None:
        today = warehouse.last_day + timedelta(days=3)
        now = datetime(today.year, today.month, today.day)
    else:
        now = datetime.combine(spec.start + timedelta(days=now_offset_days), datetime.min.time())
        today = now.date() - timedelta(days=1)
    return compute(spec, limits=limits, today=today, now=now)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_compute_bad_input_is_refused_naming_source_and_column(
    bad_engine: tuple[str, Connection, str], warehouse: SyntheticWarehouse, case: str
) -> None:
    name, connection, prefix = bad_engine
    bad = CASES[case]
    spec = bad.change(experiment_spec(warehouse, KEY, connection, prefix), prefix)
    with pytest.raises(InvalidInput) as caught:
        _run(spec, warehouse, limits=bad.limits, now_offset_days=bad.now_offset_days)
    message = str(caught.value).lower()
    missing = [w for w in bad.words if w.lower() not in message]
    assert not missing, f"{name}: the message lacks {missing}: {caught.value}"


def _says_threshold(message: str, threshold: float) -> bool:
    """Does ``message`` write ``threshold`` as a share (0.001) or a percentage (0.1%, 0.10 %)?"""
    shares = [float(x) for x in re.findall(r"(?<![\d.])(0\.\d+)(?![\d%])", message)]
    percents = [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)\s?%", message)]
    return any(math.isclose(s, threshold) for s in shares) or any(
        math.isclose(p, threshold * 100) for p in percents)


def test_compute_two_variant_units_above_the_threshold_refuse(
    bad_engine: tuple[str, Connection, str],
    warehouse: SyntheticWarehouse,
    expected_of: Callable[[str], Reference],
) -> None:
    name, connection, prefix = bad_engine
    spec = experiment_spec(warehouse, KEY, connection, prefix)
    multi = expected_of(KEY).multi_variant_units
    assert multi > 0
    threshold = 0.001
    with pytest.raises(InvalidInput) as caught:
        _run(spec, warehouse, limits=Limits(multi_variant_threshold=threshold))
    message = str(caught.value)
    assert ASSIGNMENT in message and str(multi) in message, f"{name}: {message}"
    assert _says_threshold(message, threshold), f"{name}: {message}"


def test_compute_two_variant_units_below_the_threshold_are_excluded_and_reported(
    bad_engine: tuple[str, Connection, str],
    warehouse: SyntheticWarehouse,
    expected_of: Callable[[str], Reference],
) -> None:
    name, connection, prefix = bad_engine
    spec = experiment_spec(warehouse, KEY, connection, prefix)
    expected = expected_of(KEY)
    assert 0 < expected.multi_variant_units < 0.01 * (expected.units + expected.multi_variant_units)
    result = _run(spec, warehouse)
    assert result.exposure.multi_variant_units == expected.multi_variant_units, name
    assert result.exposure.units == expected.units, name
    notes = " ".join(result.notes)
    assert str(expected.multi_variant_units) in notes, f"{name}: {notes!r}"


def test_compute_unreachable_warehouse_raises_warehouse_unavailable(
    warehouse: SyntheticWarehouse,
) -> None:
    # Port 1 on the loopback: nothing listens there, the connection is refused at once.
    down = Connection("down", "postgresql://postgres@127.0.0.1:1/warehouse")
    spec = experiment_spec(warehouse, KEY, down, "wh.")
    with pytest.raises(WarehouseUnavailable):
        _run(spec, warehouse)
