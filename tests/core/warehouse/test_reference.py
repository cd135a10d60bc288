"""The pandas reference (tests/core/warehouse/reference.py) on a table small enough to compute
by hand: the expected sums below are worked out in the comments, from the semantics of the
warehouse design, not from any code."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd
import pytest

from core.warehouse.definitions import (
    AssignmentSource,
    Connection,
    ExperimentSpec,
    FactSource,
    WarehouseMetric,
)
from tests.core.warehouse.reference import (
    final_through,
    record_differences,
    reference,
)

CON = Connection("hand", "duckdb:///:memory:")


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


ASSIGNMENT = pd.DataFrame(
    [
        # u1: control, first at 01-01 10:00 on ios; again a day later on web (same variant).
        ("u1", _ts("2026-01-01 10:00:00"), "exp", "control", "ios"),
        ("u1", _ts("2026-01-02 08:00:00"), "exp", "control", "web"),
        ("u2", _ts("2026-01-01 23:00:00"), "exp", "treatment", "android"),
        # u3: both variants, excluded and counted.
        ("u3", _ts("2026-01-01 12:00:00"), "exp", "control", "ios"),
        ("u3", _ts("2026-01-02 12:00:00"), "exp", "treatment", "ios"),
        ("u4", _ts("2026-01-02 00:30:00"), "exp", "treatment", "ios"),
        # u5: another experiment only.
        ("u5", _ts("2026-01-01 11:00:00"), "other", "control", "web"),
        # u6: no facts at all.
        ("u6", _ts("2026-01-01 15:00:00"), "exp", "control", "web"),
        # u7: exposed on the analysis day: its window is cut at the end of that day.
        ("u7", _ts("2026-01-05 20:00:00"), "exp", "treatment", "ios"),
    ],
    columns=["unit_id", "timestamp", "experiment_key", "variant", "platform"],
)

ORDERS = pd.DataFrame(
    [
        ("u1", _ts("2025-12-25 09:59:59"), 100.0, 1),  # 1 s before the 7-day pre-period: out
        ("u1", _ts("2025-12-25 10:00:00"), 7.0, 1),  # first day of the pre-period: in
        ("u1", _ts("2025-12-31 10:00:00"), 5.0, 1),  # pre
        ("u1", _ts("2026-01-01 09:59:59"), 1.0, 1),  # pre, 1 s before exposure
        ("u1", _ts("2026-01-01 10:00:00"), 10.0, 2),  # at exposure: in
        ("u1", _ts("2026-01-04 09:59:59"), 20.0, None),  # last second of a 3-day window
        ("u1", _ts("2026-01-04 10:00:00"), 40.0, 1),  # end of the 3-day window: out
        ("u1", _ts("2026-01-05 23:59:59"), 2.0, 1),  # last second of the analysis (end 01-05)
        ("u1", _ts("2026-01-06 00:00:00"), 1000.0, 1),  # after the analysis day: never counts
        ("u2", _ts("2026-01-02 05:00:00"), 8.0, 1),
        ("u3", _ts("2026-01-01 13:00:00"), 50.0, 1),  # an excluded unit's
        ("u4", _ts("2026-01-03 23:59:59"), 30.0, 3),
        ("u5", _ts("2026-01-01 12:00:00"), 60.0, 1),  # not exposed to "exp"
        ("u7", _ts("2026-01-05 21:00:00"), 4.0, 1),
        ("u7", _ts("2026-01-06 00:00:00"), 9.0, 1),  # inside its window, after the analysis
    ],
    columns=["unit_id", "timestamp", "revenue", "items"],
).astype({"items": "Int64"})

METRICS = (
    WarehouseMetric("rev", "orders", "sum", column="revenue", window_days=3, cuped_days=7),
    WarehouseMetric("rev_all", "orders", "sum", column="revenue"),
    WarehouseMetric("items", "orders", "count", column="items", window_days=3),
    WarehouseMetric("conv", "orders", "any", window_days=3),
    WarehouseMetric("aov", "orders", "mean", column="revenue", window_days=3),
    WarehouseMetric("big", "orders", "any", column="revenue", window_days=3),
)

SPEC = ExperimentSpec(
    experiment_key="exp",
    variants=("control", "treatment"),
    start=date(2026, 1, 1),
    end=date(2026, 1, 5),
    assignment=AssignmentSource("a", CON, "SELECT 1", dimensions=("platform",)),
    facts=(FactSource("orders", CON, "SELECT 1", columns=("revenue", "items")),),
    metrics=METRICS,
)

D1, D2, D5 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 5)


def _records(metric: str) -> list[dict[str, object]]:
    ref = reference(SPEC, ASSIGNMENT, {"orders": ORDERS})
    return [r for r in ref.records if r["metric"] == metric]


def test_reference_exposure_counts_units_once_and_excludes_two_variant_units() -> None:
    ref = reference(SPEC, ASSIGNMENT, {"orders": ORDERS})
    # u1, u2, u4, u6, u7 kept; u3 seen in both variants; u5 belongs to another experiment.
    assert ref.units == 5
    assert ref.multi_variant_units == 1
    assert ref.units_by_variant == {"control": 2, "treatment": 3}


def test_reference_sum_with_window_and_cuped() -> None:
    # rev (window 3 days, pre-period 7 days), per unit:
    # u1 (control, 01-01): window [01-01 10:00, 01-04 10:00) -> 10 + 20 = 30;
    #     pre [12-25 10:00, 01-01 10:00) -> 7 + 5 + 1 = 13
    # u6 (control, 01-01): 0, pre 0
    # u2 (treatment, 01-01): 8, pre 0;  u4 (treatment, 01-02): 30, pre 0
    # u7 (treatment, 01-05): window [01-05 20:00, 01-08 20:00) cut at the end of the analysis
    #     day (01-06 00:00) -> 4 (9 at 01-06 00:00 is out), pre 0
    expected = [
        {"metric": "rev", "variant": "control", "day": D1, "n": 2, "sum": 30.0,
         "sum_squares": 900.0, "sum_x": 13.0, "sum_x2": 169.0, "sum_xy": 390.0},
        {"metric": "rev", "variant": "treatment", "day": D1, "n": 1, "sum": 8.0,
         "sum_squares": 64.0, "sum_x": 0.0, "sum_x2": 0.0, "sum_xy": 0.0},
        {"metric": "rev", "variant": "treatment", "day": D2, "n": 1, "sum": 30.0,
         "sum_squares": 900.0, "sum_x": 0.0, "sum_x2": 0.0, "sum_xy": 0.0},
        {"metric": "rev", "variant": "treatment", "day": D5, "n": 1, "sum": 4.0,
         "sum_squares": 16.0, "sum_x": 0.0, "sum_x2": 0.0, "sum_xy": 0.0},
        # Dimension rows: the platform at the first exposure (u1: ios, not web), no CUPED sums.
        {"metric": "rev", "variant": "control", "day": D1, "dimension": "platform",
         "dimension_value": "ios", "n": 1, "sum": 30.0, "sum_squares": 900.0},
        {"metric": "rev", "variant": "control", "day": D1, "dimension": "platform",
         "dimension_value": "web", "n": 1, "sum": 0.0, "sum_squares": 0.0},
        {"metric": "rev", "variant": "treatment", "day": D1, "dimension": "platform",
         "dimension_value": "android", "n": 1, "sum": 8.0, "sum_squares": 64.0},
        {"metric": "rev", "variant": "treatment", "day": D2, "dimension": "platform",
         "dimension_value": "ios", "n": 1, "sum": 30.0, "sum_squares": 900.0},
        {"metric": "rev", "variant": "treatment", "day": D5, "dimension": "platform",
         "dimension_value": "ios", "n": 1, "sum": 4.0, "sum_squares": 16.0},
    ]
    assert record_differences(_records("rev"), expected) == []


def test_reference_windows_end_with_the_analysis_day() -> None:
    # rev_all: [first exposure, 01-06 00:00): u1 10 + 20 + 40 + 2 = 72 (1000 at 01-06 00:00
    # is after the analysis day), u6 0; u2 8; u4 30; u7 4.
    overall = [r for r in _records("rev_all") if "dimension" not in r]
    expected = [
        {"metric": "rev_all", "variant": "control", "day": D1, "n": 2, "sum": 72.0,
         "sum_squares": 5184.0},
        {"metric": "rev_all", "variant": "treatment", "day": D1, "n": 1, "sum": 8.0,
         "sum_squares": 64.0},
        {"metric": "rev_all", "variant": "treatment", "day": D2, "n": 1, "sum": 30.0,
         "sum_squares": 900.0},
        {"metric": "rev_all", "variant": "treatment", "day": D5, "n": 1, "sum": 4.0,
         "sum_squares": 16.0},
    ]
    assert record_differences(overall, expected) == []


def test_reference_count_of_a_column_skips_nulls_and_any_is_zero_or_one() -> None:
    # items: u1's window rows have items 2 and null -> 1; u6 0 -> control 01-01 n 2, sum 1.
    # conv: u1 1, u6 0; big (revenue > 0): the same.
    for metric in ("items", "conv", "big"):
        control = [r for r in _records(metric)
                   if r["variant"] == "control" and "dimension" not in r]
        assert record_differences(control, [
            {"metric": metric, "variant": "control", "day": D1, "n": 2, "sum": 1.0,
             "sum_squares": 1.0}]) == []


def test_reference_mean_is_a_ratio_of_sum_over_rows() -> None:
    # aov: u1 numerator 30 over 2 rows; u6 0 over 0; u2 8 over 1; u4 30 over 1; u7 4 over 1.
    overall = [r for r in _records("aov") if "dimension" not in r]
    expected = [
        {"metric": "aov", "variant": "control", "day": D1, "n": 2, "sum": 30.0,
         "sum_squares": 900.0, "sum_den": 2.0, "sum_den_squares": 4.0, "sum_num_den": 60.0},
        {"metric": "aov", "variant": "treatment", "day": D1, "n": 1, "sum": 8.0,
         "sum_squares": 64.0, "sum_den": 1.0, "sum_den_squares": 1.0, "sum_num_den": 8.0},
        {"metric": "aov", "variant": "treatment", "day": D2, "n": 1, "sum": 30.0,
         "sum_squares": 900.0, "sum_den": 1.0, "sum_den_squares": 1.0, "sum_num_den": 30.0},
        {"metric": "aov", "variant": "treatment", "day": D5, "n": 1, "sum": 4.0,
         "sum_squares": 16.0, "sum_den": 1.0, "sum_den_squares": 1.0, "sum_num_den": 4.0},
    ]
    assert record_differences(overall, expected) == []


def test_reference_final_through_follows_the_design() -> None:
    # today - max window (3) - late days (2) - 1, never past the end (01-05).
    windowed = replace(SPEC, metrics=METRICS[:1], end=date(2026, 1, 31))
    assert final_through(windowed, "orders", today=date(2026, 1, 10),
                         late_data_days=2) == date(2026, 1, 4)
    assert final_through(windowed, "orders", today=date(2026, 1, 6), late_data_days=2) is None
    short = replace(SPEC, metrics=METRICS[:1])
    assert final_through(short, "orders", today=date(2026, 1, 7),
                         late_data_days=2) == date(2026, 1, 1)
    assert final_through(short, "orders", today=date(2026, 1, 30),
                         late_data_days=2) == date(2026, 1, 5)
    # rev_all has no window: nothing is final until the analysis day (01-05) and its 2 late
    # days have passed; then every day is.
    assert final_through(SPEC, "orders", today=date(2026, 1, 7), late_data_days=2) is None
    assert final_through(SPEC, "orders", today=date(2026, 1, 8),
                         late_data_days=2) == date(2026, 1, 5)


def test_reference_differences_name_the_key_and_the_field() -> None:
    base = {"metric": "m", "variant": "control", "day": "2026-01-01", "n": 2, "sum": 1.0,
            "sum_squares": 1.0}
    assert record_differences([base], [dict(base, day=D1)]) == []
    assert record_differences([dict(base, sum=1.0 + 1e-12)], [base]) == []
    (problem,) = record_differences([dict(base, sum=1.1)], [base])
    assert "sum: expected 1.0, got 1.1" in problem and "'control'" in problem
    (missing,) = record_differences([], [base])
    assert missing.startswith("missing ('m', 'control', datetime.date(2026, 1, 1)")
    (extra,) = record_differences([dict(base, sum_x=0.0)], [base])
    assert "sum_x: expected None, got 0.0" in extra
    with pytest.raises(AssertionError, match="repeated"):
        record_differences([base, base], [base])
