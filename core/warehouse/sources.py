"""What the Data sources page (and anyone else) asks of the warehouse definitions beyond
creating them (:mod:`core.warehouse.catalog`): a source's first rows with a check of its
columns, which metrics and experiments use each source, and using warehouse metrics in an
experiment.

A preview runs the source's SQL wrapped by Ibis (``SELECT … FROM (<the source's SQL>) LIMIT
20``) in the warehouse, read-only and under the statement timeout, and returns the exact SQL
that ran. It reads the warehouse only; nothing is written anywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from core import catalogue
from core.auth import Actor
from core.errors import InvalidInput, NotFound, WarehouseUnavailable
from core.registry import ExperimentView, update_experiment
from core.registry.listing import all_experiments, get_experiment
from core.transactions import transaction
from core.warehouse import catalog, engines
from core.warehouse.compute import schema_problems
from core.warehouse.definitions import ASSIGNMENT_COLUMNS, FACT_KEY_COLUMNS, Connection
from core.warehouse.refresh import warehouse_limits

PREVIEW_ROWS = 20
MAX_PREVIEW_ROWS = 200
SourceRole = Literal["assignment", "fact"]


@dataclass(frozen=True)
class SourcePreview:
    """The first rows a source's SQL returns, and whether a refresh could use its columns."""

    source: str
    role: SourceRole
    connection: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    """Each column's type as the engine reports it (Ibis names: string, timestamp, float64)."""
    rows: tuple[tuple[Any, ...], ...]
    sql: str
    """The exact SQL that ran."""
    seconds: float
    problems: tuple[str, ...]
    """What a refresh would refuse: a missing or mistyped column (naming source and column);
    empty when the columns are as declared."""


@dataclass(frozen=True)
class SourceUsage:
    """Who depends on a source."""

    source: str
    role: SourceRole
    metrics: tuple[str, ...]
    """Catalogue metrics computed from it (fact sources)."""
    experiments: tuple[str, ...]
    """Experiments reading their exposures from it (assignment sources) or using one of its
    metrics as primary, guardrail or secondary metric (fact sources)."""


def _source(session: Session, name: str) -> tuple[SourceRole, str, str, list[str], list[str]]:
    """Role, connection name, SQL, required columns and numeric columns of a source."""
    try:
        a = catalog.get_assignment_source(session, name=name)
        return "assignment", a.connection, a.sql, [*ASSIGNMENT_COLUMNS, *a.dimensions], []
    except NotFound:
        pass
    try:
        f = catalog.get_fact_source(session, name=name)
    except NotFound:
        raise NotFound(f"No assignment or fact source named '{name}'.") from None
    return "fact", f.connection, f.sql, [*FACT_KEY_COLUMNS, *f.columns], list(f.columns)


def preview(session: Session, *, source: str, actor: Actor,
            limit: int = PREVIEW_ROWS) -> SourcePreview:
    """Run the source's SQL in its warehouse for its first ``limit`` rows (editors: rows of
    the warehouse are more than the aggregates viewers read; as for testing a connection).
    InvalidInput when the SQL fails (naming the source); WarehouseUnavailable when the
    warehouse cannot be reached."""
    actor.require("editor", "preview warehouse sources")
    if not 1 <= limit <= MAX_PREVIEW_ROWS:
        raise InvalidInput(f"limit: preview 1 to {MAX_PREVIEW_ROWS} rows (got {limit})")
    with transaction(session):
        role, connection_name, sql, required, numeric = _source(session, source)
        stored = catalog.get_connection(session, name=connection_name)
    connection = Connection(name=stored.name, url=stored.url,
                            allow_app_database=stored.allow_app_database)
    what = f"{role} source '{source}'"
    limits = warehouse_limits()
    backend = engines.connect(connection, limits=limits, label=f"preview of {what}")
    try:
        try:
            table = backend.sql(sql)
        except Exception as exc:  # noqa: BLE001 - each engine raises its own error types
            raise InvalidInput(f"{what}: its SQL failed in connection '{connection.name}': "
                               f"{engines.first_line(exc)}") from None
        problems = schema_problems(table, what=what, required=required, numeric=numeric)
        schema = table.schema()
        import ibis

        text = (f"/* ExperimentOS: preview of {what} */\n"
                + ibis.to_sql(table.limit(limit), dialect=backend.name))
        started = time.perf_counter()
        try:
            frame = engines.run_sql(backend, text, timeout=limits.statement_timeout_seconds,
                                    label=f"preview of {what}")
        except WarehouseUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the engine's own error types
            raise InvalidInput(f"{what}: the preview failed in the warehouse: "
                               f"{engines.first_line(exc)}") from None
        seconds = time.perf_counter() - started
    finally:
        engines.disconnect(backend)
    rows = tuple(tuple(None if _missing(v) else v for v in row)
                 for row in frame.itertuples(index=False, name=None))
    return SourcePreview(
        source=source, role=role, connection=connection.name,
        columns=tuple(str(c) for c in frame.columns),
        types=tuple(str(schema[c]) if c in schema else "" for c in frame.columns),
        rows=rows, sql=text, seconds=seconds, problems=tuple(problems))


def _missing(value: Any) -> bool:
    try:
        return bool(value != value) or value is None  # NaN, NaT, None
    except (TypeError, ValueError):
        return False


def usage(session: Session) -> dict[str, SourceUsage]:
    """Per source name, the metrics computed from it and the experiments that use it."""
    with transaction(session):
        fact_of = {m.name: m.fact_source for m in catalogue.list_metrics(session)
                   if m.fact_source is not None}
        experiments = all_experiments(session)
    experiments_of: dict[str, set[str]] = {}
    for exp in experiments:
        for metric in {exp.primary_metric, *exp.guardrail_metrics, *exp.secondary_metrics}:
            if metric in fact_of:
                experiments_of.setdefault(fact_of[metric], set()).add(exp.name)
    out = {
        a.name: SourceUsage(a.name, "assignment", (), tuple(a.experiments))
        for a in catalog.list_assignment_sources(session)
    }
    for f in catalog.list_fact_sources(session):
        out[f.name] = SourceUsage(f.name, "fact", tuple(f.metrics),
                                  tuple(sorted(experiments_of.get(f.name, ()))))
    return out


def use_in_experiment(
    session: Session,
    *,
    experiment_id: int,
    metrics: list[str],
    expected_version: int,
    actor: Actor,
    assignment_source: str | None = None,
    experiment_key: str | None = None,
    reason: str | None = None,
) -> ExperimentView:
    """Add warehouse ``metrics`` to the experiment's secondary metrics and, when given, read
    its exposures from ``assignment_source`` under ``experiment_key`` — one registry change
    (versioned, audited). An experiment fed from no assignment source needs one. After
    launch the assignment is part of the frozen plan: changing it needs a ``reason``; adding
    a secondary metric does not. Metrics it already uses are left where they are."""
    actor.require("editor", "use warehouse metrics in experiments")
    with transaction(session):
        exp = get_experiment(session, experiment_id=experiment_id)
        by_name = {m.name: m for m in catalogue.list_metrics(session)}
    problems: list[str] = []
    for name in metrics:
        metric = by_name.get(name)
        if metric is None:
            problems.append(f"metrics: there is no metric named '{name}' in the catalogue")
        elif metric.fact_source is None:
            problems.append(f"metrics: {name} is not computed from a fact source (it is "
                            "loaded from files or SQL): choose a warehouse metric")
    if not metrics and assignment_source is None:
        problems.append("metrics: choose at least one warehouse metric")
    if (assignment_source is None) != (experiment_key is None):
        problems.append("experiment_key: give the assignment source and the experiment's key "
                        "in it together")
    if assignment_source is None and exp.assignment_source is None:
        problems.append(f"assignment_source: '{exp.name}' reads no exposures from a warehouse "
                        "yet: choose its assignment source and its key there")
    if problems:
        raise InvalidInput(problems)
    used = {exp.primary_metric, *exp.guardrail_metrics, *exp.secondary_metrics}
    changes: dict[str, Any] = {}
    added = [m for m in dict.fromkeys(metrics) if m not in used]
    if added:
        changes["secondary_metrics"] = [*exp.secondary_metrics, *added]
    if assignment_source is not None:
        changes |= {"assignment_source": assignment_source, "experiment_key": experiment_key}
    return update_experiment(session, experiment_id=experiment_id, changes=changes,
                             expected_version=expected_version, actor=actor, reason=reason)
