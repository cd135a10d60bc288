"""When an exposure day's numbers are final (incremental refresh), and the definition checks
that run before any query (core.warehouse.compute)."""

from __future__ import annotations

from datetime import date

import pytest

from core.warehouse.compute import definition_key, definition_problems, final_through
from core.warehouse.definitions import (
    AssignmentSource,
    Connection,
    ExperimentSpec,
    FactSource,
    WarehouseMetric,
)

WH = Connection("wh", "duckdb:///warehouse.duckdb")
ASSIGN = AssignmentSource("exposures", WH, "SELECT * FROM exposures", ("platform",))
ORDERS = FactSource("orders", WH, "SELECT * FROM orders", ("revenue", "items"))


def spec(*metrics: WarehouseMetric, end: date = date(2026, 3, 31)) -> ExperimentSpec:
    return ExperimentSpec("exp-1", ("control", "treatment"), date(2026, 3, 1), end, ASSIGN,
                          (ORDERS,), metrics)


def revenue(window: int | None = 7, **kw: object) -> WarehouseMetric:
    return WarehouseMetric("revenue", "orders", "sum", "revenue", window_days=window, **kw)  # type: ignore[arg-type]


def test_final_through_waits_for_the_window_and_the_late_data_allowance() -> None:
    # Exposed on Mar 10: facts until Mar 18 00:00 (7-day window from any time on the 10th);
    # 2 days for late rows: final from Mar 20 on.
    s = spec(revenue(7))
    assert final_through(s, s.metrics, today=date(2026, 3, 20), late_data_days=2) == \
        date(2026, 3, 10)
    assert final_through(s, s.metrics, today=date(2026, 3, 19), late_data_days=2) == \
        date(2026, 3, 9)
    assert final_through(s, s.metrics, today=date(2026, 3, 10), late_data_days=2) is None


def test_final_through_takes_the_longest_window_of_the_source() -> None:
    s = spec(revenue(7), WarehouseMetric("orders", "orders", "count", window_days=14))
    assert final_through(s, s.metrics, today=date(2026, 3, 27), late_data_days=2) == \
        date(2026, 3, 10)


def test_final_through_without_a_window_waits_for_the_end() -> None:
    s = spec(revenue(None), end=date(2026, 3, 31))
    assert final_through(s, s.metrics, today=date(2026, 4, 2), late_data_days=2) is None
    assert final_through(s, s.metrics, today=date(2026, 4, 3), late_data_days=2) == \
        date(2026, 3, 31)


def test_final_through_caps_windows_at_the_analysis_end() -> None:
    # Ended Mar 31: every window stops there, so all days are final 2 days after it.
    s = spec(revenue(28), end=date(2026, 3, 31))
    assert final_through(s, s.metrics, today=date(2026, 4, 3), late_data_days=2) == \
        date(2026, 3, 31)


def test_definition_key_changes_with_any_definition_but_not_with_a_running_end() -> None:
    today = date(2026, 3, 20)
    base = definition_key(spec(revenue(7), end=today), ORDERS, [revenue(7)], today)
    assert base == definition_key(spec(revenue(7), end=date(2026, 3, 21)), ORDERS,
                                  [revenue(7)], date(2026, 3, 21))
    assert base != definition_key(spec(revenue(14), end=today), ORDERS, [revenue(14)], today)
    other = FactSource("orders", WH, "SELECT * FROM orders WHERE revenue > 0",
                       ("revenue", "items"))
    assert base != definition_key(spec(revenue(7), end=today), other, [revenue(7)], today)
    # An end in the past is fixed: it enters the key (windows are cut at it).
    assert base != definition_key(spec(revenue(7), end=date(2026, 3, 15)), ORDERS,
                                  [revenue(7)], today)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        (WarehouseMetric("m", "tickets", "sum", "x"), "fact source 'tickets' is not defined"),
        (WarehouseMetric("m", "orders", "sum"), "a sum metric needs a column"),
        (WarehouseMetric("m", "orders", "ratio", "revenue"),
         "a ratio metric needs a denominator"),
        (WarehouseMetric("m", "orders", "sum", "price"),
         "column 'price' is not a column of fact source 'orders' (revenue, items)"),
        (WarehouseMetric("m", "orders", "sum", "revenue", window_days=0),
         "window_days must be a positive number of days"),
    ],
)
def test_definition_problems_name_the_metric_and_what_to_fix(
    metric: WarehouseMetric, expected: str
) -> None:
    problems = definition_problems(spec(metric))
    assert any(expected in p and p.startswith("metric m:") for p in problems), problems
