"""Scheduled refresh of running experiments, one data interval at a time.

The Airflow DAG ``experiment_refresh`` calls these services, one per task; anything else (a cron
job, a test) may call :func:`refresh_experiment`, which runs the same steps in order. A data
interval is a range of days ``[interval_start, interval_end)``, the end exclusive as in Airflow;
its last day ``interval_end - 1`` is the day being refreshed.

1. :func:`due_experiments` — the running experiments due on that day. An experiment's schedule
   (``refresh_every_days``, see :func:`set_refresh_schedule`) counts days from its start: with
   ``n`` it is due on its n-th, 2n-th... day and refreshes the ``n`` days since the last one; with
   none it is due every day.
2. :func:`ingest_interval` — SQL push-down: the experiment's metric source runs inside its
   database, and the per-variant, per-day rows of the refresh window are upserted. When they
   equal what is stored nothing is written (no upsert, no audit entry).
3. :func:`recompute_results` — results as of the last day of the interval. A snapshot is stored
   only when no snapshot of this experiment has the same input fingerprint (which covers the
   cut-off day, the settings and the data), so re-running a day never adds one. It raises the
   flags: ``srm``, ``guardrail_breach``, ``planned_sample_reached`` and, in sequential mode,
   ``primary_significant``; an experiment is ready for a decision when its plan is met (or a
   sequential primary result is significant) and its SRM check is not flagged.
4. :func:`report_if_ready` — the first time an experiment is ready for a decision, a report
   artifact is generated (:func:`core.reports.generate_report`) and an audit entry
   ``ready_for_decision`` names it; once that entry (or a report by the scheduler) exists,
   nothing more is written.

Nothing here reads the clock: every write is keyed on the data interval, so re-running a day
changes nothing, and a day whose source data changed is reloaded by running it again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.auth import Actor
from core.errors import InvalidInput, NotFound, RuleViolation
from core.registry import transaction
from core.results import ResultsSnapshot
from db import metric_repository as mrepo
from db import repositories as repo
from db.models import AuditEntry, Experiment, ReportArtifact, ResultSnapshot

SCHEDULER = Actor(name="airflow", role="editor")
"""Who the scheduled refresh acts as (audit entries, snapshots and reports name it)."""
MAX_REFRESH_EVERY_DAYS = 90
READY_ACTION = "ready_for_decision"
REFRESH_ACTION = "scheduled_refresh"
_FLOAT_TOLERANCE = 1e-9


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class IngestOutcome:
    """What the ingestion step did for one experiment and one data interval."""

    experiment_id: int
    experiment_name: str
    window_start: date
    window_end: date
    """Last day loaded (inclusive)."""
    source: str
    """"sql" (push-down) or "none" (data arrives by upload: nothing to pull)."""
    rows_read: int
    stats_rows_written: int
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class RecomputeOutcome:
    """The results step: which snapshot holds the interval's results, and the flags raised."""

    experiment_id: int
    experiment_name: str
    as_of: date
    snapshot_id: int
    new_snapshot: bool
    data_through: date | None
    progress: float | None
    flags: tuple[str, ...]
    ready_for_decision: bool

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class ReportOutcome:
    """The report step: the artifact key of the ready-for-decision report, if any."""

    experiment_id: int
    experiment_name: str
    ready_for_decision: bool
    report_key: str | None
    new_report: bool
    flags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class RefreshOutcome:
    """Everything one refresh of one experiment did (see :func:`refresh_experiment`)."""

    ingest: IngestOutcome
    results: RecomputeOutcome
    report: ReportOutcome

    def to_dict(self) -> dict[str, Any]:
        return {"ingest": self.ingest.to_dict(), "results": self.results.to_dict(),
                "report": self.report.to_dict()}


def _plain(value: Any) -> Any:
    """JSON-safe (for XCom): dates as ISO strings, tuples as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------- plumbing


@contextmanager
def open_session() -> Iterator[Session]:
    """A session on the configured database (``DATABASE_URL``), closed afterwards."""
    from db.session import session_factory

    session = session_factory()()
    try:
        yield session
    finally:
        session.close()


def as_day(value: date | datetime | str) -> date:
    """A day from a date, a datetime (its own calendar day) or an ISO string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _interval(interval_start: date | datetime | str, interval_end: date | datetime | str
              ) -> tuple[date, date]:
    start, end = as_day(interval_start), as_day(interval_end)
    if end <= start:
        raise InvalidInput(
            f"data interval: the end ({end}) must be after the start ({start}); the end is "
            "exclusive, so one day is [day, day + 1)"
        )
    return start, end - timedelta(days=1)


def _experiment(session: Session, experiment_id: int) -> Experiment:
    exp = session.get(Experiment, experiment_id)
    if exp is None:
        raise NotFound(f"No experiment with id {experiment_id}.")
    return exp


# --------------------------------------------------------------------------- schedule


def is_due(*, started: date, last_day: date, every_days: int | None) -> bool:
    """Whether an experiment started on ``started`` refreshes on ``last_day``."""
    if last_day < started:
        return False
    n = every_days or 1
    return ((last_day - started).days + 1) % n == 0


def refresh_window(
    *, started: date, interval_start: date, last_day: date, every_days: int | None
) -> tuple[date, date]:
    """The days a refresh on ``last_day`` loads: the interval, widened to the ``every_days``
    since the previous scheduled refresh, never before the start."""
    n = every_days or 1
    first = min(interval_start, last_day - timedelta(days=n - 1))
    return max(first, started), last_day


def set_refresh_schedule(
    session: Session, *, experiment_id: int, every_days: int | None, actor: Actor
) -> int | None:
    """Refresh an experiment every ``every_days`` days (None: every day). Audited."""
    actor.require("editor", "change refresh schedules")
    if every_days is not None and not 1 <= every_days <= MAX_REFRESH_EVERY_DAYS:
        raise InvalidInput(
            f"every_days: {every_days} is out of range; refresh every 1 to "
            f"{MAX_REFRESH_EVERY_DAYS} days, or leave it empty for every day"
        )
    with transaction(session):
        exp = _experiment(session, experiment_id)
        before = exp.refresh_every_days
        if before != every_days:
            exp.refresh_every_days = every_days
            exp.version = exp.version + 1
            repo.add_audit(
                session, actor=actor.name, entity_type="experiment", entity_id=exp.id,
                action="set_refresh_schedule",
                changes={"refresh_every_days": [before, every_days]},
            )
    return every_days


def due_experiments(
    session: Session, *, interval_start: date | datetime | str,
    interval_end: date | datetime | str,
) -> list[int]:
    """Ids of the running experiments due for a refresh on the interval's last day."""
    _start, last = _interval(interval_start, interval_end)
    with transaction(session):
        rows = session.execute(
            select(Experiment.id, Experiment.actual_start, Experiment.refresh_every_days)
            .where(Experiment.status == "running", Experiment.actual_start.is_not(None))
            .order_by(Experiment.id)
        ).all()
    return [
        exp_id for exp_id, started, every in rows
        if started is not None and is_due(started=started, last_day=last, every_days=every)
    ]


# --------------------------------------------------------------------------- ingestion


def _row_day(row: dict[str, Any]) -> date | None:
    lowered = {str(k).lower(): v for k, v in row.items()}
    value = lowered.get("day", lowered.get("date"))
    if value is None:
        return None
    try:
        return as_day(value)
    except ValueError:
        return None


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=_FLOAT_TOLERANCE, abs_tol=_FLOAT_TOLERANCE)


def _same_as_stored(
    session: Session, experiment_id: int, rows: list[dict[str, Any]], first: date, last: date
) -> bool:
    """Whether the source rows equal the stored daily stats and assignments of the window."""
    from core.ingestion import aggregate_records, experiment_context

    ctx = experiment_context(session, experiment_id=experiment_id)
    agg = aggregate_records(ctx, rows, label="sql source")
    fresh = {
        (ctx.variants[c.variant], ctx.metrics[c.metric].id, c.day):
            (c.n, c.sum, c.sum_squares, c.cov_sum, c.cov_sum_squares, c.cov_sum_products)
        for c in agg.cells
    }
    stored = {
        (r.variant_id, r.metric_id, r.day):
            (r.n, r.sum, r.sum_squares, r.cov_sum, r.cov_sum_squares, r.cov_sum_products)
        for r in mrepo.daily_stats(session, experiment_id=experiment_id, through=last)
        if r.day >= first and r.metric_id in {ctx.metrics[m].id for m in agg.metrics}
    }
    # Only what the source returns is compared: a load upserts and never deletes.
    if not all(
        key in stored and all(_close(x, y) for x, y in zip(values, stored[key], strict=True))
        for key, values in fresh.items()
    ):
        return False
    held = {
        (a.variant_id, a.day): a.units
        for a in mrepo.assignments(session, experiment_id=experiment_id, through=last)
        if a.day >= first
    }
    return all(
        held.get((ctx.variants[v], d)) == units for (v, d), units in agg.assignments.items()
    )


def ingest_interval(
    session: Session,
    *,
    experiment_id: int,
    interval_start: date | datetime | str,
    interval_end: date | datetime | str,
    actor: Actor,
) -> IngestOutcome:
    """Pull one data interval from the experiment's SQL source (push-down) and upsert it.

    The query runs inside the source database with its documented parameters; only the rows of
    the refresh window (:func:`refresh_window`) are kept. Rows equal to the stored ones are not
    written again, so re-running an interval leaves the database untouched.
    """
    from core.ingestion import ingest_records
    from core.metric_sources import get_metric_source, run_metric_source

    actor.require("editor", "load metric data")
    start, last = _interval(interval_start, interval_end)
    with transaction(session):
        exp = _experiment(session, experiment_id)
        if exp.actual_start is None:
            raise RuleViolation(f"'{exp.name}' has not launched: there is no data to refresh.")
        name = exp.name
        first, last = refresh_window(started=exp.actual_start, interval_start=start,
                                     last_day=last, every_days=exp.refresh_every_days)
        if get_metric_source(session, experiment_id=experiment_id) is None:
            return IngestOutcome(experiment_id, name, first, last, "none", 0, 0, False)
        rows = [r for r in run_metric_source(session, experiment_id=experiment_id)
                if (d := _row_day(r)) is not None and first <= d <= last]
        if not rows or _same_as_stored(session, experiment_id, rows, first, last):
            return IngestOutcome(experiment_id, name, first, last, "sql", len(rows), 0, False)
    report = ingest_records(
        session, experiment_id=experiment_id, rows=rows, actor=actor, kind="sql",
        label=f"sql source of '{name}', {first}..{last}",
    )
    return IngestOutcome(experiment_id, name, first, last, "sql", report.rows_read,
                         report.stats_rows_written, True)


# --------------------------------------------------------------------------- results


def flags_of(snapshot: ResultsSnapshot) -> tuple[tuple[str, ...], bool]:
    """The flags a snapshot raises, and whether the experiment is ready for a decision."""
    flags: list[str] = []
    srm = snapshot.srm is not None and snapshot.srm.flagged
    if srm:
        flags.append("srm")
    if any(c.decision_state == "guardrail_breach" for c in snapshot.comparisons):
        flags.append("guardrail_breach")
    if snapshot.progress is not None and snapshot.plan_met:
        flags.append("planned_sample_reached")
    sequential_win = snapshot.analysis_mode == "sequential" and any(
        c.role == "primary" and c.decision_state == "significant" for c in snapshot.comparisons
    )
    if sequential_win:
        flags.append("primary_significant")
    ready = not srm and ("planned_sample_reached" in flags or sequential_win)
    return tuple(flags), ready


def recompute_results(
    session: Session,
    *,
    experiment_id: int,
    interval_start: date | datetime | str,
    interval_end: date | datetime | str,
    actor: Actor,
) -> RecomputeOutcome:
    """Results as of the interval's last day, stored unless a snapshot with the same inputs
    exists; the flags raised. A new snapshot is audited (``scheduled_refresh``, with flags)."""
    from core.results import compute_results, refresh_results

    actor.require("editor", "refresh results")
    _start, as_of = _interval(interval_start, interval_end)
    with transaction(session):
        exp = _experiment(session, experiment_id)
        computed = compute_results(session, experiment_id=experiment_id, as_of=as_of)
        existing = session.scalar(
            select(ResultSnapshot.id)
            .where(ResultSnapshot.experiment_id == experiment_id,
                   ResultSnapshot.fingerprint == computed.fingerprint)
            .order_by(ResultSnapshot.id)
            .limit(1)
        )
    flags, ready = flags_of(computed)
    if existing is not None:
        snapshot_id: int = existing
    else:
        stored = refresh_results(session, experiment_id=experiment_id, actor=actor, as_of=as_of)
        assert stored.snapshot_id is not None
        snapshot_id = stored.snapshot_id
        with transaction(session):
            repo.add_audit(
                session, actor=actor.name, entity_type="experiment", entity_id=experiment_id,
                action=REFRESH_ACTION,
                changes={"snapshot": [None, snapshot_id], "as_of": [None, as_of.isoformat()],
                         "flags": [None, list(flags)]},
            )
    return RecomputeOutcome(
        experiment_id=experiment_id, experiment_name=exp.name, as_of=as_of,
        snapshot_id=snapshot_id, new_snapshot=existing is None,
        data_through=computed.data_through, progress=computed.progress, flags=flags,
        ready_for_decision=ready,
    )


# --------------------------------------------------------------------------- reports


def _ready_report(session: Session, experiment_id: int, actor: Actor
                  ) -> tuple[bool, str | None]:
    """Whether the experiment was already found ready, and the report key recorded then."""
    entry = session.scalar(
        select(AuditEntry)
        .where(AuditEntry.entity_type == "experiment", AuditEntry.entity_id == experiment_id,
               AuditEntry.action == READY_ACTION)
        .order_by(AuditEntry.id)
        .limit(1)
    )
    if entry is not None:
        return True, (entry.changes.get("report") or [None, None])[1]
    # A report by the scheduler without the entry: the entry's write failed after the report's.
    key = session.scalar(
        select(ReportArtifact.key)
        .where(ReportArtifact.experiment_id == experiment_id,
               ReportArtifact.created_by == actor.name)
        .order_by(ReportArtifact.id)
        .limit(1)
    )
    return key is not None, key


def report_if_ready(
    session: Session,
    *,
    experiment_id: int,
    interval_start: date | datetime | str,
    interval_end: date | datetime | str,
    ready_for_decision: bool,
    flags: tuple[str, ...] | list[str] = (),
    actor: Actor,
) -> ReportOutcome:
    """Write the report artifact the first time an experiment is ready for a decision."""
    from core.reports import generate_report

    actor.require("editor", "generate reports")
    _start, as_of = _interval(interval_start, interval_end)
    with transaction(session):
        name = _experiment(session, experiment_id).name
        found, earlier = (
            _ready_report(session, experiment_id, actor) if ready_for_decision else (False, None)
        )
    flags = tuple(flags)
    if not ready_for_decision:
        return ReportOutcome(experiment_id, name, False, None, False, flags)
    if found:
        return ReportOutcome(experiment_id, name, True, earlier, False, flags)
    report = generate_report(session, experiment_id=experiment_id, actor=actor)
    with transaction(session):
        repo.add_audit(
            session, actor=actor.name, entity_type="experiment", entity_id=experiment_id,
            action=READY_ACTION,
            changes={"report": [None, report.key], "as_of": [None, as_of.isoformat()],
                     "flags": [None, list(flags)]},
        )
    return ReportOutcome(experiment_id, name, True, report.key, True, flags)


# --------------------------------------------------------------------------- all steps


def refresh_experiment(
    session: Session,
    *,
    experiment_id: int,
    interval_start: date | datetime | str,
    interval_end: date | datetime | str,
    actor: Actor = SCHEDULER,
) -> RefreshOutcome:
    """Ingest, recompute and report for one experiment and one data interval, in order."""
    ingested = ingest_interval(session, experiment_id=experiment_id,
                               interval_start=interval_start, interval_end=interval_end,
                               actor=actor)
    results = recompute_results(session, experiment_id=experiment_id,
                                interval_start=interval_start, interval_end=interval_end,
                                actor=actor)
    report = report_if_ready(session, experiment_id=experiment_id,
                             interval_start=interval_start, interval_end=interval_end,
                             ready_for_decision=results.ready_for_decision, flags=results.flags,
                             actor=actor)
    return RefreshOutcome(ingest=ingested, results=results, report=report)


def summarise(outcomes: list[dict[str, Any]]) -> list[str]:
    """One line per refreshed experiment (from :meth:`ReportOutcome.to_dict`), for the logs."""
    lines = []
    for o in outcomes:
        flags = ", ".join(o.get("flags") or []) or "no flags"
        ready = "ready for a decision" if o.get("ready_for_decision") else "not ready"
        report = f"; report {o['report_key']}" if o.get("report_key") else ""
        new = " (new)" if o.get("new_report") else ""
        lines.append(f"'{o['experiment_name']}' (id {o['experiment_id']}): {flags}; "
                     f"{ready}{report}{new}")
    return lines
