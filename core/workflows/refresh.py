"""Scheduled refresh of running experiments, one data interval at a time.

The Airflow DAG ``experiment_refresh`` calls these services, one per task; anything else (a cron
job, a test) may call :func:`refresh_experiment`, which runs the same steps in order. A data
interval is a range of days ``[interval_start, interval_end)``, the end exclusive as in Airflow;
its last day ``interval_end - 1`` is the day being refreshed.

1. :func:`due_experiments` — the running experiments due on that day. An experiment's schedule
   (``refresh_every_days``, see :func:`set_refresh_schedule`) counts days from its start: with
   ``n`` it is due on its n-th, 2n-th... day and refreshes the ``n`` days since the last one; with
   none it is due every day.
2. :func:`ingest_interval` — the days of the refresh window (:func:`refresh_window`: the
   interval, widened to the days since the previous scheduled refresh) from the experiment's
   sources, each load upserting only those days:

   * **SQL push-down** — the experiment's metric source runs inside its database with
     ``:interval_start`` / ``:interval_end`` bound to the window's first and last day (see
     :mod:`core.data.metric_sources`), so a query that filters on them makes the warehouse scan only
     the window. Rows dated outside it are ignored; rows equal to what is stored are not
     written (no upsert, no audit entry).
   * **File drops** (:func:`ingest_drops`) — files in the artifact store (``ARTIFACTS_URL``, a
     folder or S3) under the key ``incoming/experiment-<id>/<YYYY-MM-DD>.csv`` or
     ``.parquet``, one per experiment and day (``<id>`` the experiment's id, the date the day
     the data belongs to), user-level or pre-aggregated as :func:`core.data.ingestion.ingest_file`
     accepts. A drop holds that day's data only: a user-level file without a ``date`` column
     is dated by its key, a row of another day is an error, and only that day is replaced.
     Each drop dated in the window is loaded, all or nothing, and its key and SHA-256 are
     recorded in the ``ingest_loads`` ledger in the same transaction; a drop whose ledger row
     has the same SHA-256 is skipped, a changed one is loaded again (it replaces the day, never
     adds to it). A bad drop is rejected with the ingestion's message and nothing of it is
     written; the other drops and the other steps go on, the outcome lists it, and the DAG fails
     the run at the end naming it. Two files for one day (``.csv`` and ``.parquet``) are both
     rejected. Keys that do not follow the convention are ignored, and so are drops dated
     outside the window (a late drop is loaded by re-running an interval whose window covers its
     day). Feed each metric from one source: where SQL and a drop both carry a metric's day,
     each load replaces the other's rows.

3. :func:`recompute_results` — results as of the last day of the interval. A snapshot is stored
   only when no snapshot of this experiment has the same input fingerprint (which covers the
   cut-off day, the settings and the data), so re-running a day never adds one. It raises the
   flags: ``srm``, ``guardrail_breach``, ``planned_sample_reached`` and, in sequential mode,
   ``primary_significant``; an experiment is ready for a decision when its plan is met (or a
   sequential primary result is significant) and its SRM check is not flagged.
4. :func:`report_if_ready` — the first time an experiment is ready for a decision, a report
   artifact is generated (:func:`core.reports.generate_report`) and the experiment is marked
   (``ready_for_decision_at``, ``ready_report_id`` naming the report; audited as
   ``ready_for_decision``); once it is marked (or a report by the scheduler exists), nothing
   more is written.

Nothing here reads the clock: every write is keyed on the data interval, so re-running a day
changes nothing, and a day whose source data changed is reloaded by running it again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DataError, ProgrammingError
from sqlalchemy.orm import Session

from core import spool
from core.analysis.snapshot import ResultsSnapshot
from core.auth import Actor
from core.errors import DomainError, InvalidInput, RuleViolation, WarehouseUnavailable
from core.registry.fields import MAX_REFRESH_EVERY_DAYS
from core.registry.listing import load_experiment
from core.transactions import transaction
from db import metric_repository as mrepo
from db import repositories as repo
from db import state_repository as state

if TYPE_CHECKING:
    from core.artifacts import ArtifactStore
    from core.warehouse.refresh import WarehouseRefreshReport

SCHEDULER = Actor(name="airflow", role="editor")
"""Who the scheduled refresh acts as (audit entries, snapshots and reports name it)."""
READY_ACTION = "ready_for_decision"
REFRESH_ACTION = "scheduled_refresh"
DROP_PREFIX = "incoming"
"""File drops live under ``incoming/experiment-<id>/<YYYY-MM-DD>.csv|.parquet``."""
_DROP_KEY = re.compile(
    rf"^{DROP_PREFIX}/experiment-(?P<id>[0-9]+)/(?P<day>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})"
    r"\.(?P<ext>csv|parquet)$"
)


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class DropsOutcome:
    """What loading the file drops of a window did (see :func:`ingest_drops`)."""

    loaded: tuple[str, ...] = ()
    """Keys loaded now (new, or changed since they were loaded)."""
    skipped: tuple[str, ...] = ()
    """Keys loaded before with the same SHA-256."""
    rejected: tuple[str, ...] = ()
    """One message per rejected drop: ``<key>: <the ingestion's message>``."""
    rows_read: int = 0
    stats_rows_written: int = 0


@dataclass(frozen=True)
class IngestOutcome:
    """What the ingestion step did for one experiment and one data interval."""

    experiment_id: int
    experiment_name: str
    window_start: date
    window_end: date
    """Last day loaded (inclusive)."""
    source: str
    """What was pulled, joined by "+": "sql" (push-down), "warehouse" (generated queries
    in the experiment's warehouse), "files" (drops); e.g. "warehouse+files"; or "none"
    (nothing to pull: data arrives by upload)."""
    rows_read: int
    """Rows read: the SQL query's (of the window), the warehouse's records and the
    drops'."""
    stats_rows_written: int
    changed: bool
    rows_ignored: int = 0
    """Query rows dated outside the window (0 when the query filters on the interval)."""
    files_loaded: tuple[str, ...] = ()
    files_skipped: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """What the warehouse refresh recomputed, and what it noticed (units in two variants)."""

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
    rejected: tuple[str, ...] = ()
    """The drops the interval's ingest rejected, passed through for the summary."""

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
    """A plain ``datetime.date`` from a date, a datetime (its own calendar day) or an ISO
    string. Subclasses (Airflow's ``pendulum.Date``) become plain dates: sqlite3 binds no
    other."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return date(value.year, value.month, value.day)
    return date.fromisoformat(str(value)[:10])


def is_permanent_failure(exc: BaseException) -> bool:
    """Whether running the same step again cannot succeed: a domain error (bad data, an
    experiment not found, a refused input, bad warehouse definitions) or a statement the
    database rejects as written (``ProgrammingError``, ``DataError``). Anything else — a
    database that is down or busy (``OperationalError``), a warehouse that cannot be reached
    or timed out (``WarehouseUnavailable``), a network fault — may pass on a retry."""
    if isinstance(exc, WarehouseUnavailable):
        return False
    return isinstance(exc, DomainError | ProgrammingError | DataError)


def _interval(interval_start: date | datetime | str, interval_end: date | datetime | str
              ) -> tuple[date, date]:
    start, end = as_day(interval_start), as_day(interval_end)
    if end <= start:
        raise InvalidInput(
            f"data interval: the end ({end}) must be after the start ({start}); the end is "
            "exclusive, so one day is [day, day + 1)"
        )
    return start, end - timedelta(days=1)


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
        exp = load_experiment(session, experiment_id=experiment_id)
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
        rows = repo.running_experiment_schedules(session)
    return [
        exp_id for exp_id, started, every in rows
        if started is not None and is_due(started=started, last_day=last, every_days=every)
    ]


# --------------------------------------------------------------------------- ingestion


def ingest_interval(
    session: Session,
    *,
    experiment_id: int,
    interval_start: date | datetime | str,
    interval_end: date | datetime | str,
    actor: Actor,
    store: ArtifactStore | None = None,
) -> IngestOutcome:
    """Load one data interval's refresh window from the experiment's SQL source (push-down,
    bound to the window) and its file drops, upserting only the window's days; and, for an
    experiment attached to a warehouse assignment source, refresh its fact-source metrics
    from the warehouse (:func:`core.warehouse.refresh.refresh_from_warehouse`: its days are
    the exposure days still open, not the window).

    Rows equal to the stored ones and drops loaded before are not written again, so re-running
    an interval leaves the database untouched. A bad drop is listed in ``rejected`` (nothing of
    it written); a failing query raises. ``store`` defaults to the configured artifact store.
    """
    from core.data.ingestion import ingest_records, same_as_stored
    from core.data.metric_sources import get_metric_source, row_day, run_metric_source
    from core.warehouse.refresh import refresh_from_warehouse

    actor.require("editor", "load metric data")
    start, last = _interval(interval_start, interval_end)
    with transaction(session):
        exp = load_experiment(session, experiment_id=experiment_id)
        if exp.actual_start is None:
            raise RuleViolation(f"'{exp.name}' has not launched: there is no data to refresh.")
        name = exp.name
        first, last = refresh_window(started=exp.actual_start, interval_start=start,
                                     last_day=last, every_days=exp.refresh_every_days)
        has_sql = get_metric_source(session, experiment_id=experiment_id) is not None
        has_warehouse = exp.assignment_source_id is not None
        returned = run_metric_source(session, experiment_id=experiment_id,
                                     interval_start=first, interval_end=last) if has_sql else []
        # An unreadable day is kept, for the ingestion to reject with its row number.
        rows = [r for r in returned if (d := row_day(r)) is None or first <= d <= last]
        sql_changed = bool(rows) and not same_as_stored(
            session, experiment_id=experiment_id, rows=rows, first=first, last=last)
    written = 0
    if sql_changed:
        written = ingest_records(
            session, experiment_id=experiment_id, rows=rows, actor=actor, kind="sql",
            label=f"sql source of '{name}', {first}..{last}",
        ).stats_rows_written
    pulled = refresh_from_warehouse(session, experiment_id=experiment_id, actor=actor
                                    ) if has_warehouse else None
    drops = ingest_drops(session, experiment_id=experiment_id, first=first, last=last,
                         actor=actor, store=store)
    has_files = bool(drops.loaded or drops.skipped or drops.rejected)
    source = "+".join(part for part, used in (("sql", has_sql), ("warehouse", has_warehouse),
                                              ("files", has_files)) if used) or "none"
    return IngestOutcome(
        experiment_id=experiment_id, experiment_name=name, window_start=first, window_end=last,
        source=source,
        rows_read=len(rows) + drops.rows_read + (pulled.rows_read if pulled else 0),
        stats_rows_written=written + drops.stats_rows_written + (
            pulled.stats_rows_written if pulled else 0),
        changed=sql_changed or bool(drops.loaded) or bool(pulled and pulled.changed),
        rows_ignored=len(returned) - len(rows),
        files_loaded=drops.loaded, files_skipped=drops.skipped, rejected=drops.rejected,
        notes=warehouse_notes(pulled) if pulled else (),
    )


def warehouse_notes(report: WarehouseRefreshReport) -> tuple[str, ...]:
    """A warehouse refresh in plain words, for the logs: the exposure days recomputed per
    fact source, what was stored, and the engine's own notes."""
    days = ", ".join(f"{fact} from {first}" for fact, first in sorted(report.open_from.items()))
    stored = (f"{report.stats_rows_written} daily rows stored" if report.changed
              else "nothing changed")
    return (f"warehouse ({report.assignment_source}): {report.units:,} units; exposure days "
            f"recomputed: {days or 'none'}; {stored}", *report.notes)


# --------------------------------------------------------------------------- file drops


def drop_key(experiment_id: int, day: date, ext: str = "csv") -> str:
    """The artifact key of an experiment's file drop for one day (``ext``: csv or parquet)."""
    return f"{DROP_PREFIX}/experiment-{experiment_id}/{day.isoformat()}.{ext}"


def _drops_in_window(store: ArtifactStore, experiment_id: int, first: date, last: date
                     ) -> dict[date, list[str]]:
    found: dict[date, list[str]] = {}
    for key in store.list(f"{DROP_PREFIX}/experiment-{experiment_id}/"):
        match = _DROP_KEY.match(key)
        if match is None or int(match["id"]) != experiment_id:
            continue
        try:
            day = date.fromisoformat(match["day"])
        except ValueError:
            continue
        if first <= day <= last:
            found.setdefault(day, []).append(key)
    return dict(sorted(found.items()))


def _fetch(store: ArtifactStore, key: str, dest: Path) -> str:
    """Copy a stored file to ``dest`` in chunks (memory stays bounded); return its SHA-256."""
    from core.artifacts import LocalArtifactStore, S3ArtifactStore

    digest = hashlib.sha256()
    with dest.open("wb") as out:
        if isinstance(store, LocalArtifactStore):
            with store.root.joinpath(*key.split("/")).open("rb") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        elif isinstance(store, S3ArtifactStore):
            name = f"{store.prefix}/{key}" if store.prefix else key
            body = store.client.get_object(Bucket=store.bucket, Key=name)["Body"]
            for chunk in body.iter_chunks(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        else:
            data = store.get(key)
            digest.update(data)
            out.write(data)
    return digest.hexdigest()


def ingest_drops(
    session: Session,
    *,
    experiment_id: int,
    first: date,
    last: date,
    actor: Actor,
    store: ArtifactStore | None = None,
) -> DropsOutcome:
    """Load the experiment's file drops dated ``first``..``last`` (inclusive), each all or
    nothing; skip those loaded before with the same SHA-256; list the rejected ones."""
    from core.artifacts import get_store
    from core.config import get_settings
    from core.data.ingestion import ingest_file

    actor.require("editor", "load metric data")
    store = store or get_store(get_settings())
    by_day = _drops_in_window(store, experiment_id, first, last)
    if not by_day:
        return DropsOutcome()
    with transaction(session):
        loaded_before = state.loaded_sha256(session, experiment_id=experiment_id,
                                            key_prefix=f"{DROP_PREFIX}/")
    loaded: list[str] = []
    skipped: list[str] = []
    rejected: list[str] = []
    rows_read = written = 0
    with spool.scratch_dir("drop-") as folder:
        for day, keys in by_day.items():
            if len(keys) > 1:
                rejected.extend(f"{key}: {len(keys)} files for {day} ({', '.join(keys)}); keep "
                                "one per day" for key in keys)
                continue
            key = keys[0]
            path = folder / key.rsplit("/", 1)[-1]
            sha = _fetch(store, key, path)
            if loaded_before.get(key) == sha:
                skipped.append(key)
                continue
            try:
                report = ingest_file(session, path=path, experiment_id=experiment_id,
                                     actor=actor, for_day=day, label=key, sha256=sha)
            except InvalidInput as exc:
                rejected.append(f"{key}: {exc}")
                continue
            finally:
                path.unlink(missing_ok=True)
            loaded.append(key)
            rows_read += report.rows_read
            written += report.stats_rows_written
    return DropsOutcome(tuple(loaded), tuple(skipped), tuple(rejected), rows_read, written)


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
    from core.analysis.results import check_as_of, compute_results, store_snapshot

    actor.require("editor", "refresh results")
    _start, as_of = _interval(interval_start, interval_end)
    # Computed once: the snapshot stored, its audit entry and the flags come from the same
    # computation, in one transaction.
    with transaction(session):
        exp = load_experiment(session, experiment_id=experiment_id)
        computed = compute_results(session, experiment_id=experiment_id, as_of=as_of)
        flags, ready = flags_of(computed)
        existing = mrepo.snapshot_id_with_fingerprint(
            session, experiment_id=experiment_id, fingerprint=computed.fingerprint)
        if existing is not None:
            snapshot_id: int = existing
        else:
            check_as_of(session, experiment_id=experiment_id, as_of=as_of)
            stored = store_snapshot(session, computed, experiment_id=experiment_id, actor=actor,
                                    as_of=as_of)
            assert stored.snapshot_id is not None
            snapshot_id = stored.snapshot_id
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
    """Whether the experiment was already found ready, and the key of the report written then.

    A report by the scheduler on an unmarked experiment means the mark's write failed after the
    report's: the experiment is marked with that report now."""
    found, key = state.ready_report(session, experiment_id=experiment_id)
    if found:
        return True, key
    earlier = state.first_report_by(session, experiment_id=experiment_id,
                                    created_by=actor.name)
    if earlier is None:
        return False, None
    state.mark_ready_for_decision(session, experiment_id=experiment_id, report_id=earlier[0])
    return True, earlier[1]


def report_if_ready(
    session: Session,
    *,
    experiment_id: int,
    interval_start: date | datetime | str,
    interval_end: date | datetime | str,
    ready_for_decision: bool,
    flags: tuple[str, ...] | list[str] = (),
    rejected: tuple[str, ...] | list[str] = (),
    actor: Actor,
) -> ReportOutcome:
    """Write the report artifact the first time an experiment is ready for a decision.

    ``rejected`` (the ingest step's rejected drops) is passed through to the outcome."""
    from core.reports import generate_report

    actor.require("editor", "generate reports")
    _start, as_of = _interval(interval_start, interval_end)
    with transaction(session):
        name = load_experiment(session, experiment_id=experiment_id).name
        found, earlier = (
            _ready_report(session, experiment_id, actor) if ready_for_decision else (False, None)
        )
    flags, rejected = tuple(flags), tuple(rejected)
    if not ready_for_decision:
        return ReportOutcome(experiment_id, name, False, None, False, flags, rejected)
    if found:
        return ReportOutcome(experiment_id, name, True, earlier, False, flags, rejected)
    report = generate_report(session, experiment_id=experiment_id, actor=actor)
    with transaction(session):
        state.mark_ready_for_decision(session, experiment_id=experiment_id, report_id=report.id)
        repo.add_audit(
            session, actor=actor.name, entity_type="experiment", entity_id=experiment_id,
            action=READY_ACTION,
            changes={"report": [None, report.key], "as_of": [None, as_of.isoformat()],
                     "flags": [None, list(flags)]},
        )
    return ReportOutcome(experiment_id, name, True, report.key, True, flags, rejected)


# --------------------------------------------------------------------------- all steps


def refresh_experiment(
    session: Session,
    *,
    experiment_id: int,
    interval_start: date | datetime | str,
    interval_end: date | datetime | str,
    actor: Actor = SCHEDULER,
    store: ArtifactStore | None = None,
) -> RefreshOutcome:
    """Ingest, recompute and report for one experiment and one data interval, in order."""
    ingested = ingest_interval(session, experiment_id=experiment_id,
                               interval_start=interval_start, interval_end=interval_end,
                               actor=actor, store=store)
    results = recompute_results(session, experiment_id=experiment_id,
                                interval_start=interval_start, interval_end=interval_end,
                                actor=actor)
    report = report_if_ready(session, experiment_id=experiment_id,
                             interval_start=interval_start, interval_end=interval_end,
                             ready_for_decision=results.ready_for_decision, flags=results.flags,
                             rejected=ingested.rejected, actor=actor)
    return RefreshOutcome(ingest=ingested, results=results, report=report)


def summarise(outcomes: list[dict[str, Any]]) -> list[str]:
    """One line per refreshed experiment (from :meth:`ReportOutcome.to_dict`), for the logs."""
    lines = []
    for o in outcomes:
        flags = ", ".join(o.get("flags") or []) or "no flags"
        ready = "ready for a decision" if o.get("ready_for_decision") else "not ready"
        report = f"; report {o['report_key']}" if o.get("report_key") else ""
        new = " (new)" if o.get("new_report") else ""
        rejected = "".join(f"; rejected {r}" for r in o.get("rejected") or [])
        lines.append(f"'{o['experiment_name']}' (id {o['experiment_id']}): {flags}; "
                     f"{ready}{report}{new}{rejected}")
    return lines
