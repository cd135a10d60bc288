"""Metric-data queries on SQLite and PostgreSQL: upserts replace on their key, reads filter."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from core.stats import MetricStats
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
