"""SQL push-down metric sources: a SQLAlchemy URL and a parameterised query, run inside the source
database or warehouse so that only per-variant, per-day aggregates ever leave it.

The query must return the columns ``variant, day (or date), metric, n, sum, sum_squares`` and may
add ``sum_x, sum_x2, sum_xy`` (CUPED covariate sums), ``sum_den, sum_den_squares, sum_num_den``
(a ratio metric's denominator sums) and ``dimension, dimension_value`` (rows of one segment), as
:mod:`core.data.aggregates` describes. It may use these bound parameters:

* ``:experiment_id`` and ``:experiment`` (the name);
* ``:interval_start`` and ``:interval_end`` — the first and last day (inclusive dates) to load.
  The scheduled refresh (:mod:`core.workflows.refresh`) binds its refresh window, so a query
  that filters on them makes the warehouse scan only the new days (e.g. ``WHERE day BETWEEN
  :interval_start AND :interval_end``); a load outside the refresh (upload page, CLI, demo)
  binds the experiment's first day and its last day so far (its end, or today while it runs);
* ``:start`` and ``:end`` — always the experiment's first and last day so far, whatever the
  window (for look-backs such as a CUPED pre-period before ``:start``).

Rows dated outside the window are ignored by the refresh, so a query that does not use the
interval parameters stays correct, only slower. The query runs in a read-only transaction
(PostgreSQL ``SET TRANSACTION READ ONLY``, SQLite ``PRAGMA query_only``). A source without a URL
queries the app's own database on the caller's session, inside a savepoint that is always
rolled back. One SELECT (or WITH ... SELECT) statement only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from core.auth import Actor
from core.data.aggregates import parse_day
from core.data.ingestion import (
    COVARIATE_COLUMNS,
    RATIO_COLUMNS,
    SLICE_COLUMNS,
    IngestionReport,
    ProgressCallback,
    experiment_context,
    ingest_records,
    no_progress,
)
from core.errors import InvalidInput, RuleViolation
from core.registry.listing import require_experiment
from core.transactions import transaction
from db import metric_repository as mrepo
from db import repositories as repo
from db.session import make_engine

PARAMETERS: tuple[str, ...] = (
    "experiment_id", "experiment", "interval_start", "interval_end", "start", "end",
)
RESULT_COLUMNS: tuple[str, ...] = ("variant", "day", "metric", "n", "sum", "sum_squares")
MAX_RESULT_ROWS = 1_000_000
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSourceView:
    experiment_id: int
    url: str | None
    """The URL with any password masked; None = the app's own database."""
    query: str
    updated_by: str
    updated_at: datetime | None


def _masked(url: str | None) -> str | None:
    return None if url is None else make_url(url).render_as_string(hide_password=True)


_LEADING = re.compile(r"^(?:\s+|\(|--[^\n]*(?:\n|$)|/\*.*?\*/)+", re.DOTALL)


def _first_word(body: str) -> str:
    """The statement's first keyword, past comments, blanks and opening parentheses."""
    words = _LEADING.sub("", body).split(None, 1)
    return words[0] if words else ""


def select_problem(query: str, *, field: str = "query") -> str | None:
    """Why ``query`` is not one SELECT (or WITH ... SELECT) statement, worded for people and
    prefixed with ``field``; None when it is. A trailing semicolon is allowed."""
    body = query.strip().rstrip(";").strip()
    if not body:
        return f"{field}: the SQL query is empty"
    if ";" in body:
        return f"{field}: give one SELECT statement (the query contains ';')"
    first = _first_word(body)
    if first.lower() not in ("select", "with"):
        return (f"{field}: give one SELECT statement ("
                + (f"it starts with {first!r})" if first else "it holds no statement)"))
    return None


def _check(url: str | None, query: str) -> list[str]:
    problems = []
    if url is not None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            problems.append(f"url: '{url}' is not a SQLAlchemy URL (e.g. postgresql+psycopg2://"
                            "user@host/db)")
        else:
            if parsed.get_backend_name() not in ("sqlite", "postgresql"):
                problems.append(
                    f"url: {parsed.get_backend_name()} is not supported; use a sqlite:/// or "
                    "postgresql+psycopg2:// URL"
                )
    problem = select_problem(query)
    if problem:
        problems.append(problem)
    else:
        used = set(text(query).compile().params)
        unknown = sorted(used - set(PARAMETERS))
        if unknown:
            problems.append(
                f"query: unknown parameter(s) {', '.join(':' + p for p in unknown)}; available: "
                + ", ".join(":" + p for p in PARAMETERS)
            )
    return problems


def set_metric_source(
    session: Session, *, experiment_id: int, query: str, actor: Actor, url: str | None = None
) -> MetricSourceView:
    """Define (or replace) the SQL source of an experiment. Audited."""
    actor.require("editor", "define metric sources")
    url = url.strip() if url and url.strip() else None
    problems = _check(url, query)
    if problems:
        raise InvalidInput(problems)
    with transaction(session):
        require_experiment(session, experiment_id=experiment_id)
        before = mrepo.get_metric_source(session, experiment_id=experiment_id)
        old = None if before is None else {"url": _masked(before.url), "query": before.query}
        source = mrepo.save_metric_source(
            session, experiment_id=experiment_id, url=url,
            query=query.strip().rstrip(";").strip(),
            updated_by=actor.name,
        )
        repo.add_audit(
            session,
            actor=actor.name,
            entity_type="experiment",
            entity_id=experiment_id,
            action="set_metric_source",
            changes={"metric_source": [old, {"url": _masked(url), "query": source.query}]},
        )
        view = _view(source)
    return view


def _view(source: Any) -> MetricSourceView:
    return MetricSourceView(
        experiment_id=source.experiment_id,
        url=_masked(source.url),
        query=source.query,
        updated_by=source.updated_by,
        updated_at=source.updated_at,
    )


def get_metric_source(session: Session, *, experiment_id: int) -> MetricSourceView | None:
    source = mrepo.get_metric_source(session, experiment_id=experiment_id)
    return None if source is None else _view(source)


class _Unreachable(Exception):
    """The source database could not be connected to (its error names where it lives)."""


def _connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except SQLAlchemyError as exc:
        raise _Unreachable(str(exc.orig if isinstance(exc, DBAPIError) else exc)) from exc


def _run_read_only(engine: Engine, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with _connect(engine) as conn:
        sqlite = conn.dialect.name == "sqlite"
        try:
            with conn.begin():
                if sqlite:
                    conn.exec_driver_sql("PRAGMA query_only = ON")
                else:
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                result = conn.execute(text(query), params)
                if not result.returns_rows:
                    raise InvalidInput("query: it returned no result set (it must be a SELECT)")
                rows = [dict(r) for r in result.mappings().fetchmany(MAX_RESULT_ROWS + 1)]
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA query_only = OFF")
    return rows


def _run_in_session(session: Session, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run on the session's own connection inside a savepoint that is always rolled back, so
    the query sees the session's data and can change nothing."""
    nested = session.begin_nested()
    try:
        result = session.connection().execute(text(query), params)
        if not result.returns_rows:
            raise InvalidInput("query: it returned no result set (it must be a SELECT)")
        return [dict(r) for r in result.mappings().fetchmany(MAX_RESULT_ROWS + 1)]
    finally:
        nested.rollback()


def query_parameters(
    session: Session,
    *,
    experiment_id: int,
    interval_start: date | None = None,
    interval_end: date | None = None,
) -> dict[str, Any]:
    """The values bound to a query's parameters (see the module docstring).

    The window defaults to the experiment's first day and its last day so far; it must lie
    within them, first day before last."""
    ctx = experiment_context(session, experiment_id=experiment_id)
    first = ctx.start if interval_start is None else interval_start
    last = ctx.end if interval_end is None else interval_end
    if first > last:
        raise InvalidInput(
            f"interval: the first day ({first}) is after the last ({last}); both are inclusive"
        )
    if first < ctx.start or last > ctx.end:
        raise InvalidInput(
            f"interval: {first}..{last} is outside '{ctx.name}' ({ctx.start} to {ctx.end})"
        )
    return {
        "experiment_id": ctx.id, "experiment": ctx.name, "interval_start": first,
        "interval_end": last, "start": ctx.start, "end": ctx.end,
    }


def run_metric_source(
    session: Session,
    *,
    experiment_id: int,
    interval_start: date | None = None,
    interval_end: date | None = None,
) -> list[dict[str, Any]]:
    """Run the experiment's query inside its source database; return the aggregate rows.

    ``interval_start``/``interval_end`` (inclusive) are bound to ``:interval_start`` and
    ``:interval_end``; by default the whole run so far."""
    source = mrepo.get_metric_source(session, experiment_id=experiment_id)
    if source is None:
        require_experiment(session, experiment_id=experiment_id)
        raise RuleViolation(
            f"Experiment {experiment_id} has no SQL metric source: define one first "
            "(python -m core.cli set-source), or upload its data instead."
        )
    wanted = set(text(source.query).compile().params)
    values = query_parameters(session, experiment_id=experiment_id,
                              interval_start=interval_start, interval_end=interval_end)
    params = {k: v for k, v in values.items() if k in wanted}
    own = source.url is None
    engine = None if own else make_engine(source.url)  # type: ignore[arg-type]
    # Where the source lives (host, port, database, file) is for those who manage it, never in
    # an error shown to whoever ran the refresh: that goes to the log.
    where = "the app database" if own else "the experiment's SQL source"
    try:
        if engine is None:
            rows = _run_in_session(session, source.query, params)
        else:
            rows = _run_read_only(engine, source.query, params)
    except _Unreachable as exc:
        logger.warning("Experiment %s: could not connect to its SQL source %s: %s",
                       experiment_id, _masked(source.url), exc)
        raise InvalidInput(
            f"query: could not connect to {where} database; check that it is up and that the "
            "source's URL and credentials are right (python -m core.cli set-source)"
        ) from None
    except DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise InvalidInput(f"query: failed in {where}: {first}") from None
    except SQLAlchemyError as exc:
        raise InvalidInput(
            f"query: could not run in {where} ({type(exc).__name__}): check its SQL"
        ) from None
    finally:
        if engine is not None:
            engine.dispose()
    if len(rows) > MAX_RESULT_ROWS:
        raise InvalidInput(
            f"query: returned more than {MAX_RESULT_ROWS} rows; it must aggregate per variant, "
            "day and metric inside the database"
        )
    if rows:
        have = {k.lower() for k in rows[0]}
        if "day" not in have and "date" in have:
            have.add("day")
        missing = [c for c in RESULT_COLUMNS if c not in have]
        if missing:
            raise InvalidInput(
                f"query: the result lacks the column(s) {', '.join(missing)} (it returned "
                f"{', '.join(rows[0])}; expected {', '.join(RESULT_COLUMNS)} "
                f"[, {', '.join(COVARIATE_COLUMNS)}] [, {', '.join(RATIO_COLUMNS)}] "
                f"[, {', '.join(SLICE_COLUMNS)}])"
            )
    return rows


def ingest_sql(
    session: Session,
    *,
    experiment_id: int,
    actor: Actor,
    progress: ProgressCallback | None = None,
    interval_start: date | None = None,
    interval_end: date | None = None,
) -> IngestionReport:
    """Run the experiment's SQL source and store its daily statistics (all or nothing).

    With a window (inclusive days), the query is bound to it and only its days are stored."""
    actor.require("editor", "load metric data")
    report = progress or no_progress
    report(0.05, "Running the query inside the source database")
    rows = run_metric_source(session, experiment_id=experiment_id,
                             interval_start=interval_start, interval_end=interval_end)
    ctx = experiment_context(session, experiment_id=experiment_id)
    label = f"sql source of '{ctx.name}'"
    if interval_start is not None or interval_end is not None:
        first = interval_start or ctx.start
        last = interval_end or ctx.end
        rows = [r for r in rows if (d := row_day(r)) is None or first <= d <= last]
        label += f", {first}..{last}"
    return ingest_records(
        session,
        experiment_id=experiment_id,
        rows=rows,
        actor=actor,
        kind="sql",
        label=label,
        progress=report,
    )


def row_day(row: dict[str, Any]) -> date | None:
    """The day of a result row (its ``day`` or ``date`` column), None if absent or unreadable."""
    lowered = {str(k).lower(): v for k, v in row.items()}
    return parse_day(lowered.get("day", lowered.get("date")))
