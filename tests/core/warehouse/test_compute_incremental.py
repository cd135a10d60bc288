"""Incremental refresh does not lie: replaying the synthetic warehouse day by day (on each
simulated day only the exposures up to it and the facts that had *arrived* by it are in the
warehouse; some facts arrive one or two days late), a refresh that recomputes only the exposure
days from the previous run's ``final_through + 1`` and keeps the earlier days' records ends
with exactly the records of one full recompute on the last day, and each run's records equal
the pandas reference on what was visible that day. The fact source with a metric without a
window (orders) recomputes fully while the experiment still takes facts. The store's rule is
followed: a stored ``final_through`` holds only while the fact source's definition key is
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.warehouse.compute import compute, read_stored_days, stored_days
from core.warehouse.definitions import Connection, Limits
from core.warehouse.synthetic import (
    Lift,
    SyntheticExperiment,
    SyntheticWarehouse,
    generate_warehouse,
    load_duckdb,
)
from tests.core.warehouse.reference import (
    final_through,
    index_records,
    record_differences,
    reference,
)
from tests.core.warehouse.specs import METRICS, ORDERS, SESSIONS, experiment_spec, frames

KEY = "checkout_button"
LIMITS = Limits(late_data_days=2, multi_variant_threshold=0.05)
"""Early days have few units: a couple of two-variant units must not refuse the refresh."""


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@pytest.fixture(scope="module")
def small_warehouse() -> SyntheticWarehouse:
    """One experiment over 18 days: long enough for days to become final (7-day windows plus
    2 late days) while later days are still open."""
    experiment = SyntheticExperiment(KEY, ("control", "treatment"), first_day=0, days=18,
                                     lifts={"treatment": Lift(orders=1.15)})
    return generate_warehouse(units=1000, days=18, seed=8, experiments=(experiment,))


def test_compute_incremental_refresh_equals_a_full_recompute(
    small_warehouse: SyntheticWarehouse, tmp_path: Path
) -> None:
    wh = small_warehouse
    path = tmp_path / "replay.duckdb"
    connection = Connection("replay", f"duckdb:///{path}")
    spec = experiment_spec(wh, KEY, connection)
    metric_source = {m.name: m.fact_source for m in METRICS}
    # Simulated days: before any day is final, while days become final one run after another,
    # once the analysis day and its late allowance have passed, and well after.
    days = [spec.start + timedelta(days=k) for k in (3, 8, 11, 14, 17, 20, 23)]
    last = days[-1]
    # By then every fact up to the analysis day has arrived (late ones come up to 2 days late).
    assert last > spec.end + timedelta(days=LIMITS.late_data_days + 1)

    stored: dict[tuple[Any, ...], dict[str, Any]] = {}  # the store: record key -> record
    final: dict[str, date | None] = {ORDERS: None, SESSIONS: None}
    keys: dict[str, str] = {}
    counted: dict[str, Any] | None = None  # the units per exposure day, as the store keeps them
    saw_partial = saw_counted = False
    for today in days:
        visible = wh.visible_on(today)
        load_duckdb(path, visible)
        now = _midnight(today + timedelta(days=1))
        open_from = {s: f + timedelta(days=1) for s, f in final.items() if f is not None}
        result = compute(spec, limits=LIMITS, open_from=open_from or None, today=today, now=now,
                         exposure_days=read_stored_days(counted))
        changed = {s for s, k in result.definition_keys.items() if keys.get(s, k) != k}
        if changed:
            # The store's rule: a stored final_through holds only while the definition key is
            # unchanged; otherwise the source is refreshed over its full range.
            open_from = {s: d for s, d in open_from.items() if s not in changed}
            result = compute(spec, limits=LIMITS, open_from=open_from or None, today=today,
                             now=now, exposure_days=read_stored_days(counted))
        # The units of the final days came from the store (not grouped again) from the first
        # run whose every fact source had final days.
        saw_counted |= all(result.open_from[s] > spec.start for s in (ORDERS, SESSIONS))
        expected_units = reference(spec, *frames(visible))
        assert result.exposure.by_day == expected_units.by_day, today
        assert result.exposure.units_by_variant == expected_units.units_by_variant, today
        counted = stored_days(result.exposure, spec.end)
        keys = result.definition_keys
        if today <= spec.end + timedelta(days=LIMITS.late_data_days):
            # While the experiment still takes facts, a metric without a window is never final.
            assert result.final_through[ORDERS] is None, today
        for source in (ORDERS, SESSIONS):
            assert result.open_from[source] == open_from.get(source, spec.start), (today, source)
            assert result.final_through[source] == final_through(
                spec, source, today=today, late_data_days=LIMITS.late_data_days), (today, source)
        # This run's records: only days from open_from on, and right for what was visible.
        expected = [
            r for r in reference(spec, *frames(visible)).records
            if r["day"] >= result.open_from[metric_source[str(r["metric"])]]
        ]
        problems = record_differences(result.records, expected)
        assert not problems, f"refresh on {today}:\n" + "\n".join(problems)
        # The store upserts the recomputed days of each fact source and keeps the rest.
        for key in list(stored):
            metric, day = key[0], key[2]
            if day >= result.open_from[metric_source[metric]]:
                del stored[key]
        stored |= index_records(result.records)
        saw_partial |= any(
            spec.start < result.open_from[s] <= spec.end for s in (ORDERS, SESSIONS)
        )
        final = dict(result.final_through)
    assert saw_partial, "no run recomputed only part of the experiment: the test proves nothing"
    assert saw_counted, "no run counted only the open days' units: the test proves nothing"
    assert final[SESSIONS] is not None and final[SESSIONS] >= spec.end

    full = compute(spec, limits=LIMITS, today=last, now=_midnight(last + timedelta(days=1)))
    problems = record_differences(list(stored_records(stored)), full.records)
    assert not problems, "incremental union != full recompute:\n" + "\n".join(problems)
    assert not record_differences(
        full.records, reference(spec, *frames(wh.visible_on(last))).records
    )


def stored_records(stored: dict[tuple[Any, ...], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The store's records back in record form (key fields and sums)."""
    for (metric, variant, day, dimension, value), sums in stored.items():
        record = {"metric": metric, "variant": variant, "day": day, **sums}
        if dimension is not None:
            record |= {"dimension": dimension, "dimension_value": value}
        yield record


def test_compute_incremental_takes_the_final_days_units_from_the_store(
    small_warehouse: SyntheticWarehouse, tmp_path: Path
) -> None:
    """The units of the days before the earliest open one come from what the previous refresh
    counted (five units more stored on the first day show in the totals), unless it did not
    count up to the day before (then every unit is grouped again)."""
    wh = small_warehouse
    path = tmp_path / "stored.duckdb"
    spec = experiment_spec(wh, KEY, Connection("stored", f"duckdb:///{path}"))
    today = spec.end + timedelta(days=30)
    load_duckdb(path, wh.visible_on(today))
    now = _midnight(today)
    full = compute(spec, limits=LIMITS, today=today, now=now)
    tampered = {d: dict(v) for d, v in full.exposure.by_day.items()}
    tampered[spec.start]["control"] += 5
    since = spec.start + timedelta(days=4)
    open_from = {ORDERS: since, SESSIONS: since}

    used = compute(spec, limits=LIMITS, today=today, now=now, open_from=open_from,
                   exposure_days=(tampered, spec.end))
    assert used.exposure.units == full.exposure.units + 5
    assert used.exposure.units_by_variant["control"] == \
        full.exposure.units_by_variant["control"] + 5
    assert used.exposure.by_day[since] == full.exposure.by_day[since]

    stale = compute(spec, limits=LIMITS, today=today, now=now, open_from=open_from,
                    exposure_days=(tampered, since - timedelta(days=2)))
    assert stale.exposure == full.exposure
