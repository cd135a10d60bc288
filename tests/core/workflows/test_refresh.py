"""The scheduled-refresh service: schedule arithmetic, the per-experiment schedule, and one full
refresh of the demo portfolio on SQLite, run twice for the same interval."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core import registry
from core.config import get_settings
from core.demo import seed_demo
from core.demo_data import DEMO_TRUTH, generate_units
from core.errors import InvalidInput, PermissionDenied
from core.reports import generate_report
from core.workflows import refresh
from db import repositories as repo
from db import state_repository
from db.migrate import upgrade
from db.models import (
    AuditEntry,
    Experiment,
    MetricDailyStat,
    ReportArtifact,
    ResultSnapshot,
)
from db.session import make_engine, session_factory
from tests.conftest import EDITOR, VIEWER
from tests.core.data.test_ingestion import make_experiment


@pytest.mark.parametrize(
    ("last", "every", "due"),
    [
        (date(2026, 1, 1), None, True),   # day 1, daily
        (date(2026, 1, 7), 7, True),      # day 7 of a weekly schedule
        (date(2026, 1, 8), 7, False),
        (date(2026, 1, 14), 7, True),
        (date(2025, 12, 31), None, False),  # before the start
    ],
)
def test_refresh_is_due_counts_days_from_the_start(last: date, every: int | None,
                                                   due: bool) -> None:
    assert refresh.is_due(started=date(2026, 1, 1), last_day=last, every_days=every) is due


def test_refresh_window_covers_the_days_since_the_last_scheduled_refresh() -> None:
    start = date(2026, 1, 1)
    assert refresh.refresh_window(started=start, interval_start=date(2026, 1, 14),
                                  last_day=date(2026, 1, 14), every_days=7) == (
        date(2026, 1, 8), date(2026, 1, 14))
    assert refresh.refresh_window(started=start, interval_start=date(2026, 1, 14),
                                  last_day=date(2026, 1, 14), every_days=None) == (
        date(2026, 1, 14), date(2026, 1, 14))
    assert refresh.refresh_window(started=start, interval_start=date(2026, 1, 3),
                                  last_day=date(2026, 1, 3), every_days=7) == (
        start, date(2026, 1, 3))


def test_refresh_as_day_returns_a_plain_date_sqlite_can_bind() -> None:
    """Airflow hands tasks pendulum datetimes; their ``.date()`` is a ``pendulum.Date``,
    which sqlite3 refuses to bind ("type 'Date' is not supported")."""
    import sqlite3

    import pendulum

    for value in (pendulum.datetime(2026, 3, 4, 23, 30, tz="UTC"), pendulum.date(2026, 3, 4),
                  datetime(2026, 3, 4, 1, 0, tzinfo=UTC), "2026-03-04T00:00:00+00:00"):
        day = refresh.as_day(value)
        assert type(day) is date and day == date(2026, 3, 4)
        assert sqlite3.connect(":memory:").execute("SELECT ?", (day,)).fetchone() == (
            "2026-03-04",)


def test_refresh_permanent_failures_are_domain_errors_and_rejected_statements() -> None:
    from sqlalchemy.exc import DataError, OperationalError, ProgrammingError

    from core.errors import NotFound, RuleViolation

    for exc in (InvalidInput("bad"), NotFound("gone"), RuleViolation("no"),
                ProgrammingError("SELECT ?", {}, Exception("type 'Date' is not supported")),
                DataError("SELECT 1/0", {}, Exception("division by zero"))):
        assert refresh.is_permanent_failure(exc), exc
    for exc in (OperationalError("SELECT 1", {}, Exception("server closed the connection")),
                ConnectionError("reset"), TimeoutError()):
        assert not refresh.is_permanent_failure(exc), exc


def test_refresh_interval_must_end_after_it_starts(session: Session) -> None:
    with pytest.raises(InvalidInput, match="exclusive"):
        refresh.due_experiments(session, interval_start="2026-01-02", interval_end="2026-01-02")


def test_refresh_set_schedule_validates_audits_and_bumps_the_version(session: Session) -> None:
    view = registry.create_experiment(session, data={"name": "Sched", "owner": "o"},
                                      actor=EDITOR)
    with pytest.raises(PermissionDenied):
        refresh.set_refresh_schedule(session, experiment_id=view.id, every_days=7, actor=VIEWER)
    for bad in (0, refresh.MAX_REFRESH_EVERY_DAYS + 1):
        with pytest.raises(InvalidInput, match="every_days"):
            refresh.set_refresh_schedule(session, experiment_id=view.id, every_days=bad,
                                         actor=EDITOR)
    refresh.set_refresh_schedule(session, experiment_id=view.id, every_days=7, actor=EDITOR)
    refresh.set_refresh_schedule(session, experiment_id=view.id, every_days=7, actor=EDITOR)
    after = registry.get_experiment(session, experiment_id=view.id)
    assert after.version == view.version + 1  # the unchanged second call wrote nothing
    entries = session.scalars(select(AuditEntry).where(
        AuditEntry.entity_id == view.id, AuditEntry.action == "set_refresh_schedule")).all()
    assert [e.changes for e in entries] == [{"refresh_every_days": [None, 7]}]


def drop_demo_day(session: Session, artifacts: Path, name: str, day: date) -> str:
    """Remove a file-fed demo experiment's stats of ``day`` and drop that day's unit rows (the
    seed's own, regenerated) as a file under the artifact store; returns the drop's key."""
    exp = session.scalars(select(Experiment).where(Experiment.name == name)).one()
    assert exp.actual_start is not None
    cols = generate_units(name, DEMO_TRUTH[name], start=exp.actual_start, last=day)
    mask = cols["date"] == np.datetime64(day)
    key = refresh.drop_key(exp.id, day, "parquet")
    path = artifacts.joinpath(*key.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: v[mask] for k, v in cols.items()}), path)
    session.execute(delete(MetricDailyStat).where(
        MetricDailyStat.experiment_id == exp.id, MetricDailyStat.day == day))
    session.commit()
    return key


def test_refresh_ready_trigger_comes_from_the_experiment_not_the_audit_log(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first ready report marks the experiment (ready_for_decision_at, ready_report_id);
    with the `ready_for_decision` entries deleted it is still not reported twice, a forged
    entry on another experiment does not stop its report, and a scheduler's report left
    without the mark is adopted instead of written again."""
    monkeypatch.setenv("ARTIFACTS_URL", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    marked, forged, orphan = (make_experiment(session, name=n, end=None)
                              for n in ("Ready marked", "Ready forged", "Ready orphan"))

    def ready(exp: int) -> refresh.ReportOutcome:
        return refresh.report_if_ready(session, experiment_id=exp, interval_start="2026-03-05",
                                       interval_end="2026-03-06", ready_for_decision=True,
                                       actor=EDITOR)

    try:
        first = ready(marked)
        assert first.new_report and first.report_key is not None
        # The mark is a bulk UPDATE: re-read the row, not an Experiment the session still holds.
        row = session.get(Experiment, marked, populate_existing=True)
        assert row is not None and row.ready_for_decision_at is not None
        report = session.get(ReportArtifact, row.ready_report_id)
        assert report is not None and report.key == first.report_key
        assert state_repository.ready_report(session, experiment_id=marked) == (
            True, first.report_key)

        session.execute(delete(AuditEntry).where(AuditEntry.action == refresh.READY_ACTION))
        repo.add_audit(session, actor="x", entity_type="experiment", entity_id=forged,
                       action=refresh.READY_ACTION, changes={"report": [None, "reports/x.pdf"]})
        session.commit()
        again = ready(marked)
        assert (again.new_report, again.report_key) == (False, first.report_key)
        assert ready(forged).new_report

        left = generate_report(session, experiment_id=orphan, actor=EDITOR)
        adopted = ready(orphan)
        assert (adopted.new_report, adopted.report_key) == (False, left.key)
        assert state_repository.ready_report(session, experiment_id=orphan) == (True, left.key)
        assert session.scalar(select(func.count()).select_from(ReportArtifact).where(
            ReportArtifact.experiment_id == orphan)) == 1
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
def test_refresh_recompute_computes_the_results_once_when_it_stores_them(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25: storing a new snapshot computed the results a second time; the snapshot stored
    is the computation the flags came from (same fingerprint), and a second recompute over the
    same data stores nothing and still computes once."""
    from core.analysis import results

    exp = make_experiment(session, name="Computed once", end=None)
    calls: list[int] = []
    compute = results.compute_results

    def counted(*args: object, **kwargs: object) -> results.ResultsSnapshot:
        calls.append(1)
        return compute(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(results, "compute_results", counted)
    first = refresh.recompute_results(session, experiment_id=exp, interval_start="2026-03-05",
                                      interval_end="2026-03-06", actor=EDITOR)
    assert first.new_snapshot and len(calls) == 1
    stored = results.latest_snapshot(session, experiment_id=exp)
    assert stored is not None and stored.snapshot_id == first.snapshot_id
    audit = session.scalars(select(AuditEntry).where(
        AuditEntry.entity_id == exp, AuditEntry.action == refresh.REFRESH_ACTION)).all()
    assert [a.changes["snapshot"][1] for a in audit] == [first.snapshot_id]
    again = refresh.recompute_results(session, experiment_id=exp, interval_start="2026-03-05",
                                      interval_end="2026-03-06", actor=EDITOR)
    assert (again.new_snapshot, again.snapshot_id, len(calls)) == (False, first.snapshot_id, 2)


def test_refresh_experiment_twice_for_one_interval_writes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_URL", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    url = f"sqlite:///{tmp_path / 'refresh.db'}"
    upgrade(url)
    engine = make_engine(url)
    today = datetime.now(UTC).date()
    day = today - timedelta(days=1)
    try:
        with session_factory(engine)() as session:
            seed_demo(session, today=today)
            search = registry.get_experiment_by_name(session, name="Search ranking v2").id
            session.execute(delete(MetricDailyStat).where(
                MetricDailyStat.experiment_id == search, MetricDailyStat.day == day))
            session.commit()
            checkout_id = registry.get_experiment_by_name(
                session, name="Checkout button colour").id

            def checkout_day() -> list[tuple]:
                return [tuple(r) for r in session.execute(
                    select(MetricDailyStat.variant_id, MetricDailyStat.metric_id,
                           MetricDailyStat.n, MetricDailyStat.sum, MetricDailyStat.sum_squares)
                    .where(MetricDailyStat.experiment_id == checkout_id,
                           MetricDailyStat.day == day)
                    .order_by(MetricDailyStat.variant_id, MetricDailyStat.metric_id))]

            seeded = checkout_day()
            key = drop_demo_day(session, tmp_path / "artifacts", "Checkout button colour", day)

            def run() -> list[refresh.RefreshOutcome]:
                ids = refresh.due_experiments(session, interval_start=day, interval_end=today)
                return [refresh.refresh_experiment(session, experiment_id=i, interval_start=day,
                                                   interval_end=today) for i in ids]

            def counts() -> tuple[int, ...]:
                return tuple(session.scalar(select(func.count()).select_from(t)) or 0
                             for t in (ResultSnapshot, ReportArtifact, AuditEntry,
                                       MetricDailyStat))

            first = run()
            written = counts()
            assert len(seeded) == 6 and checkout_day() == seeded  # the drop restored the day
            second = run()
            assert counts() == written
    finally:
        engine.dispose()
        get_settings.cache_clear()

    by_name = {o.ingest.experiment_name: o for o in first}
    search_ingest = by_name["Search ranking v2"].ingest
    assert search_ingest.changed and search_ingest.stats_rows_written == 6
    assert (search_ingest.window_start, search_ingest.window_end) == (day, day)
    assert search_ingest.rows_read == 6 and search_ingest.rows_ignored == 0  # pushed down
    checkout = by_name["Checkout button colour"].ingest
    assert checkout.source == "files" and checkout.files_loaded == (key,)
    assert checkout.stats_rows_written == 6  # 2 variants x 3 metrics
    assert all(o.results.new_snapshot for o in first)
    assert by_name["Onboarding checklist"].results.flags[0] == "srm"
    assert not by_name["Onboarding checklist"].report.ready_for_decision
    assert "guardrail_breach" in by_name["Free shipping threshold"].results.flags
    reported = {n for n, o in by_name.items() if o.report.new_report}
    assert reported == {"Checkout button colour", "Search ranking v2",
                        "Free shipping threshold", "Recommendations carousel",
                        "Infinite scroll on search", "Mobile express checkout",
                        # fed from the demo warehouse
                        "One-tap reorder", "Search filters v2", "Product bundles"}
    assert all((tmp_path / "artifacts" / by_name[n].report.report_key).is_file()
               for n in reported)
    assert not any(o.ingest.changed or o.results.new_snapshot or o.report.new_report
                   for o in second)
    assert {o.ingest.experiment_name: o.ingest.files_skipped for o in second
            if o.ingest.files_skipped} == {"Checkout button colour": (key,)}
    assert [o.results.snapshot_id for o in second] == [o.results.snapshot_id for o in first]
    assert [o.report.report_key for o in second] == [o.report.report_key for o in first]


def test_refresh_schedule_cli_sets_and_clears_the_schedule(tmp_path: Path) -> None:
    from tests.core.test_cli import run_cli

    db = tmp_path / "cli.db"
    assert run_cli("migrate", db=db).returncode == 0
    engine = make_engine(f"sqlite:///{db}")
    with session_factory(engine)() as session:
        exp = registry.create_experiment(session, data={"name": "Weekly", "owner": "o"},
                                         actor=EDITOR)
    weekly = run_cli("refresh-schedule", "--experiment", "Weekly", "--every-days", "7", db=db)
    assert weekly.returncode == 0, weekly.stderr
    assert "every 7 days" in weekly.stdout
    bad = run_cli("refresh-schedule", "--experiment", "Weekly", "--every-days", "0", db=db)
    assert bad.returncode == 2 and bad.stderr.startswith("error: every_days")
    daily = run_cli("refresh-schedule", "--experiment", "Weekly", "--daily", db=db)
    assert daily.returncode == 0 and "every day" in daily.stdout
    with session_factory(engine)() as session:
        changes = [e.changes["refresh_every_days"] for e in session.scalars(
            select(AuditEntry).where(AuditEntry.entity_id == exp.id,
                                     AuditEntry.action == "set_refresh_schedule"))]
    engine.dispose()
    assert changes == [[None, 7], [7, None]]
