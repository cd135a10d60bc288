"""Metric-data queries on SQLite and PostgreSQL: upserts replace on their key, reads filter."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from core.stats import EMPTY_STATS, MetricStats
from db import metric_repository as mrepo
from db.models import Experiment
from tests.core.data.test_ingestion import make_experiment

DAY = date(2026, 3, 3)


def _ids(session: Session) -> tuple[int, int, int]:
    exp_id = make_experiment(session)
    exp = session.get(Experiment, exp_id)
    assert exp is not None and exp.primary_metric_id is not None
    return exp_id, exp.variants[0].id, exp.primary_metric_id


def test_upsert_daily_stats_replaces_on_the_same_key(session: Session) -> None:
    exp, variant, metric = _ids(session)
    first = mrepo.DailyStatRow(variant, metric, DAY, MetricStats(100, 10.0, 10.0))
    other_day = mrepo.DailyStatRow(variant, metric, DAY + timedelta(days=1),
                                   MetricStats(50, 5.0, 5.0))
    mrepo.upsert_daily_stats(session, experiment_id=exp, rows=[first, other_day], source="t")
    replaced = mrepo.DailyStatRow(variant, metric, DAY,
                                  MetricStats(120, 15.0, 15.0, 1.0, 2.0, 3.0))
    mrepo.upsert_daily_stats(session, experiment_id=exp, rows=[replaced], source="t2")
    rows = mrepo.daily_stats(session, experiment_id=exp)
    assert rows == [replaced, other_day]
    assert mrepo.daily_stats(session, experiment_id=exp, through=DAY) == [replaced]
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 2
    assert mrepo.delete_daily_stats(session, experiment_id=exp, metric_ids=[metric]) == 2
    assert mrepo.daily_stats(session, experiment_id=exp) == []


def test_upsert_assignments_replaces_on_the_same_key(session: Session) -> None:
    exp, variant, _metric = _ids(session)
    mrepo.upsert_assignments(session, experiment_id=exp,
                             rows=[mrepo.AssignmentRow(variant, DAY, 10)])
    mrepo.upsert_assignments(session, experiment_id=exp,
                             rows=[mrepo.AssignmentRow(variant, DAY, 12)])
    assert mrepo.assignments(session, experiment_id=exp) == [mrepo.AssignmentRow(variant, DAY, 12)]
    assert mrepo.delete_assignments(session, experiment_id=exp) == 1


def test_snapshots_are_listed_newest_first(session: Session) -> None:
    exp, _variant, _metric = _ids(session)
    now = datetime.now(UTC)
    for i in range(3):
        mrepo.add_snapshot(session, experiment_id=exp, computed_by="t",
                           computed_at=now + timedelta(minutes=i), as_of=None,
                           data_through=DAY, fingerprint=f"f{i}", payload={"i": i})
    assert [s.fingerprint for s in mrepo.snapshots(session, experiment_id=exp)] == [
        "f2", "f1", "f0"]
    assert [s.fingerprint for s in mrepo.snapshots(session, experiment_id=exp, limit=1)] == ["f2"]
    latest = mrepo.latest_snapshot(session, experiment_id=exp)
    assert latest is not None and latest.payload == {"i": 2}


def test_metric_source_is_saved_once_per_experiment(session: Session) -> None:
    exp, _variant, _metric = _ids(session)
    mrepo.save_metric_source(session, experiment_id=exp, url=None, query="SELECT 1",
                             updated_by="a")
    mrepo.save_metric_source(session, experiment_id=exp, url="sqlite:///x.db",
                             query="SELECT 2", updated_by="b")
    source = mrepo.get_metric_source(session, experiment_id=exp)
    assert source is not None and (source.url, source.query, source.updated_by) == (
        "sqlite:///x.db", "SELECT 2", "b")


def _approx(stats: MetricStats) -> object:
    """Equal to ``stats`` up to the order of float additions (a database adds in its own)."""

    class Approx:
        def __eq__(self, other: object) -> bool:
            return isinstance(other, MetricStats) and all(
                (a is None and b is None) or (a is not None and b is not None
                                              and a == pytest.approx(b, rel=1e-12, abs=1e-300))
                for a, b in zip(other.key(), stats.key(), strict=True))

        def __repr__(self) -> str:
            return f"approx({stats!r})"

    return Approx()


def _pool_by_day(rows: list[mrepo.SliceStatRow]) -> dict[tuple[str, str, int, int], MetricStats]:
    pooled: dict[tuple[str, str, int, int], MetricStats] = {}
    for r in rows:
        key = (r.dimension, r.value, r.metric_id, r.variant_id)
        pooled[key] = pooled.get(key, EMPTY_STATS) + r.stats
    return pooled


def test_slice_totals_in_sql_equal_pooling_the_days_with_plus(session: Session) -> None:
    """Segment drill-down sums slices in the database (issue 25): the same numbers as adding the
    daily rows with ``MetricStats.__add__``, including its rule for the ratio sums (unknown when
    a day with units lacks them; a day without units does not count)."""
    exp, control, metric = _ids(session)
    treatment = session.get(Experiment, exp).variants[1].id  # type: ignore[union-attr]
    ratio = MetricStats(40, 12.5, 9.25, sum_den=80.0, sum_den_squares=170.0, sum_num_den=26.0)
    plain = MetricStats(30, 3.0, 3.0)
    empty = MetricStats(0, 0.0, 0.0)
    rows = [
        mrepo.SliceStatRow(control, metric, DAY, "country", "DE", ratio),
        mrepo.SliceStatRow(control, metric, DAY + timedelta(days=1), "country", "DE", ratio),
        mrepo.SliceStatRow(control, metric, DAY + timedelta(days=2), "country", "DE", empty),
        mrepo.SliceStatRow(treatment, metric, DAY, "country", "DE", ratio),
        mrepo.SliceStatRow(treatment, metric, DAY + timedelta(days=1), "country", "DE", plain),
        mrepo.SliceStatRow(control, metric, DAY, "country", "FR", plain),
        mrepo.SliceStatRow(control, metric, DAY + timedelta(days=1), "platform", "ios", ratio),
        # written by COPY on PostgreSQL: its escapes, an empty value and exact floats survive
        mrepo.SliceStatRow(control, metric, DAY, "platform", "a\tb\\c\nd \u00e9\\N", plain),
        mrepo.SliceStatRow(control, metric, DAY, "platform", "", MetricStats(3, 0.1 + 0.2, 1e-300)),
    ]
    mrepo.replace_slice_stats(session, experiment_id=exp, metric_ids=[metric], days=None,
                              rows=rows, source="t")
    assert mrepo.daily_slice_stats(session, experiment_id=exp) == sorted(
        rows, key=lambda r: (r.dimension, r.value, r.day, r.metric_id, r.variant_id))
    for through in (None, DAY):
        for dimension in (None, "country"):
            daily = mrepo.daily_slice_stats(session, experiment_id=exp, through=through,
                                            dimension=dimension)
            totals = mrepo.slice_stat_totals(session, experiment_id=exp, through=through,
                                             dimension=dimension)
            assert {(t.dimension, t.value, t.metric_id, t.variant_id): t.stats
                    for t in totals} == {k: _approx(v) for k, v in _pool_by_day(daily).items()}
            assert [(t.dimension, t.value) for t in totals] == sorted(
                (t.dimension, t.value) for t in totals)
    everything = {(t.value, t.variant_id): t.stats
                  for t in mrepo.slice_stat_totals(session, experiment_id=exp)}
    assert everything[("DE", control)] == MetricStats(
        80, 25.0, 18.5, sum_den=160.0, sum_den_squares=340.0, sum_num_den=52.0)
    assert everything[("DE", treatment)] == MetricStats(70, 15.5, 12.25)  # a day lacks the ratio
    assignments = [mrepo.SliceAssignmentRow(control, DAY + timedelta(days=d), "country", "DE",
                                            10 + d) for d in range(3)]
    mrepo.replace_slice_assignments(session, experiment_id=exp, days=None, rows=assignments)
    assert mrepo.slice_assignment_totals(session, experiment_id=exp) == [
        mrepo.SliceAssignmentRow(control, DAY + timedelta(days=2), "country", "DE", 33)]
    assert mrepo.slice_assignment_totals(session, experiment_id=exp, through=DAY) == [
        mrepo.SliceAssignmentRow(control, DAY, "country", "DE", 10)]


def test_stat_totals_in_sql_equal_pooling_the_days_with_plus(session: Session) -> None:
    """The results add each arm's days up in the database (issue 25): the same sums as
    ``MetricStats.__add__`` over the daily rows, the CUPED and ratio parts included, with the
    span of days each arm covers."""
    exp, control, metric = _ids(session)
    treatment = session.get(Experiment, exp).variants[1].id  # type: ignore[union-attr]
    cuped = MetricStats(40, 12.5, 9.25, sum_x=3.0, sum_x2=5.0, sum_xy=2.5)
    ratio = MetricStats(40, 12.5, 9.25, sum_den=80.0, sum_den_squares=170.0, sum_num_den=26.0)
    plain = MetricStats(30, 0.1 + 0.2, 1e-300)
    rows = [
        mrepo.DailyStatRow(control, metric, DAY, cuped),
        mrepo.DailyStatRow(control, metric, DAY + timedelta(days=3), cuped),
        mrepo.DailyStatRow(control, metric, DAY + timedelta(days=4), MetricStats(0, 0.0, 0.0)),
        mrepo.DailyStatRow(treatment, metric, DAY, ratio),
        mrepo.DailyStatRow(treatment, metric, DAY + timedelta(days=1), plain),
    ]
    mrepo.upsert_daily_stats(session, experiment_id=exp, rows=rows, source="t")
    for through in (None, DAY, DAY + timedelta(days=3)):
        daily = mrepo.daily_stats(session, experiment_id=exp, through=through)
        pooled: dict[tuple[int, int], MetricStats] = {}
        days: dict[tuple[int, int], list[date]] = {}
        for r in daily:
            key = (r.variant_id, r.metric_id)
            pooled[key] = pooled.get(key, EMPTY_STATS) + r.stats
            days.setdefault(key, []).append(r.day)
        totals = mrepo.stat_totals(session, experiment_id=exp, through=through)
        assert {(t.variant_id, t.metric_id): t.stats for t in totals} == {
            k: _approx(v) for k, v in pooled.items()}
        assert {(t.variant_id, t.metric_id): (t.first_day, t.last_day) for t in totals} == {
            k: (min(v), max(v)) for k, v in days.items()}
    whole = {t.variant_id: t.stats for t in mrepo.stat_totals(session, experiment_id=exp)}
    assert whole[control] == MetricStats(80, 25.0, 18.5, sum_x=6.0, sum_x2=10.0, sum_xy=5.0)
    assert whole[treatment] == _approx(MetricStats(70, 12.8, 9.25))  # a day lacks the ratio


def test_upsert_quantile_stats_replaces_on_the_same_key_and_refuses_bad_rows(
        session: Session) -> None:
    from sqlalchemy.exc import IntegrityError

    from core.stats import QuantileStats
    from db.models import MetricQuantileStat

    exp, variant, metric = _ids(session)
    first = mrepo.QuantileStatRow(variant, metric, QuantileStats(1000, 0.9, 800.0, 780.0, 825.0))
    mrepo.upsert_quantile_stats(session, experiment_id=exp, rows=[first], source="t")
    again = mrepo.QuantileStatRow(
        variant, metric, QuantileStats(1500, 0.9, 790.5, 771.0, 812.25, n_star=1200))
    mrepo.upsert_quantile_stats(session, experiment_id=exp, rows=[again], source="t2")
    assert mrepo.quantile_stats(session, experiment_id=exp) == [again]
    other = session.get(Experiment, exp).variants[1].id  # type: ignore[union-attr]
    with pytest.raises(IntegrityError, match="bounds"), session.begin_nested():
        session.add(MetricQuantileStat(experiment_id=exp, variant_id=other, metric_id=metric,
                                       n=10, p=0.5, quantile=1.0, lower=2.0, upper=3.0,
                                       n_star=10, source="bad"))
        session.flush()
