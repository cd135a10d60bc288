"""One experiment's refresh from its warehouse: the stored definitions become an
:class:`~core.warehouse.definitions.ExperimentSpec` (:func:`build_spec`), the engine computes
the sufficient statistics inside the warehouse (:func:`core.warehouse.compute.compute`), and
what comes back is stored as any other load (``ingest_loads`` kind ``warehouse``) together with
the queries that ran (``warehouse_runs``), in one transaction.

Incremental: per fact source the latest run keeps ``final_through`` (the last exposure day
whose values can no longer change) and the ``definition_key`` it holds under; the next refresh
recomputes from the day after, unless the definitions changed (the key differs) or ``full``
is asked for. Idempotent: records equal to the stored ones are not written again (no upsert,
no audit entry); only the run's record (its SQL, time, and the state above) is updated.
Nothing is written when the refresh fails: bad definitions or data raise
:class:`~core.errors.InvalidInput` (a retry cannot help), a warehouse that cannot be reached
:class:`~core.errors.WarehouseUnavailable` (a retry may).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.auth import Actor
from core.data.ingestion import same_as_stored, write_records
from core.errors import RuleViolation
from core.registry.listing import load_experiment, require_experiment
from core.stats.capping import CapRule
from core.transactions import transaction
from core.warehouse import compute as engine
from core.warehouse.catalog import connection_definition, warehouse_limits
from core.warehouse.definitions import (
    AssignmentSource,
    ExperimentSpec,
    FactSource,
    WarehouseMetric,
    WarehouseResult,
)
from db import warehouse_repository as warehouse
from db.models import WarehouseRun


@dataclass(frozen=True)
class WarehouseRunView:
    """The latest query of one source of an experiment, as the page and the API show it."""

    source: str
    role: str
    """``assignment`` or ``fact``."""
    sql: str
    """The exact SQL that ran (several statements, when several ran for the source, each
    ended by ``;``); empty when none ran: every exposure day was final."""
    rows_returned: int
    rows_scanned: int | None
    """Where the engine reports it."""
    seconds: float
    ran_at: datetime | None
    ran_by: str
    open_from: date | None
    """Fact sources: the first exposure day recomputed."""
    final_through: date | None
    """Fact sources: the last exposure day whose values are final."""
    definition_key: str | None
    units: int | None
    """Assignment source: units kept, each in one variant."""
    multi_variant_units: int | None
    """Assignment source: units seen in more than one variant, excluded."""


@dataclass(frozen=True)
class WarehouseRefreshReport:
    """What one refresh from the warehouse did."""

    experiment_id: int
    experiment_name: str
    assignment_source: str
    full: bool
    """Every exposure day was recomputed on request (else only the open ones)."""
    rows_read: int
    """Records the warehouse returned (per variant, exposure day, metric, dimension value)."""
    stats_rows_written: int
    """Daily statistics rows upserted (0 when the records equal the stored ones)."""
    changed: bool
    metrics: tuple[str, ...]
    units: int
    multi_variant_units: int
    units_by_variant: dict[str, int]
    open_from: dict[str, date]
    """Per fact source, the first exposure day recomputed."""
    final_through: dict[str, date | None]
    """Per fact source, the last exposure day now final (None: none yet)."""
    runs: tuple[WarehouseRunView, ...]
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    written_for: tuple[str, ...] = ()
    """The fact sources whose records changed and were stored."""


def _today() -> date:
    return datetime.now(UTC).date()


def build_spec(session: Session, experiment_id: int, *, today: date | None = None
               ) -> ExperimentSpec:
    """What the experiment's refresh asks of its warehouse, from the stored definitions: its
    assignment source and key, its variants, its days from the start to its end (or
    ``today`` while it runs, by default the UTC date) and its metrics computed from a fact
    source (primary, guardrails, secondaries; by name), with those fact sources. RuleViolation
    when it is not fed from the warehouse, has not launched or has no such metric."""
    exp = load_experiment(session, experiment_id=experiment_id)
    found = warehouse.assignment_source_of_experiment(session, experiment_id=experiment_id)
    assignment, key = found if found is not None else (None, None)
    if assignment is None or key is None:
        raise RuleViolation(
            f"'{exp.name}' reads no exposures from a warehouse: attach it to an assignment "
            "source and its experiment key first (python -m core.cli attach-warehouse, or the "
            "registry's assignment_source and experiment_key).")
    if exp.actual_start is None:
        raise RuleViolation(f"'{exp.name}' has not launched: there is no data to refresh.")
    linked = [exp.primary_metric] if exp.primary_metric is not None else []
    linked += [link.metric for link in exp.metric_links]
    # By name: the order is part of each fact source's definition key, and must not change
    # with the order the links happen to load in.
    metrics = sorted({m.name: m for m in linked if m.fact_source_id is not None}.values(),
                     key=lambda m: m.name)
    if not metrics:
        raise RuleViolation(
            f"'{exp.name}' has no metric computed from a fact source: add one (a catalogue "
            "metric with a fact_source) as its primary, guardrail or secondary metric.")
    facts = warehouse.fact_sources_by_id(
        session, source_ids=sorted({m.fact_source_id for m in metrics if m.fact_source_id}))
    connection_ids = sorted({assignment.connection_id, *(f.connection_id for f in facts.values())})
    connections = {cid: connection_definition(row) for cid in connection_ids
                   if (row := warehouse.get_connection_by_id(session, connection_id=cid))}
    end = exp.actual_end or max(today or _today(), exp.actual_start)
    return ExperimentSpec(
        experiment_key=key,
        variants=tuple(v.name for v in exp.variants),
        start=exp.actual_start,
        end=end,
        assignment=AssignmentSource(
            name=assignment.name, connection=connections[assignment.connection_id],
            sql=assignment.sql, dimensions=tuple(assignment.dimensions or ()),
            covariates=tuple(assignment.covariates or ())),
        facts=tuple(
            FactSource(name=f.name, connection=connections[f.connection_id], sql=f.sql,
                       columns=tuple(f.columns or ()))
            for f in sorted(facts.values(), key=lambda f: f.name)),
        metrics=tuple(
            WarehouseMetric(
                name=m.name, fact_source=facts[m.fact_source_id].name,
                aggregation=m.aggregation,  # type: ignore[arg-type]
                column=m.value_column, denominator=m.denominator_column,
                window_days=m.window_days, cuped_days=m.cuped_days,
                quantile_p=m.quantile_p,
                cap=None if (rule := (exp.capping or {}).get(m.name)) is None
                else CapRule(rule["kind"], rule["value"]))
            for m in metrics if m.fact_source_id is not None),
        label=f"experiment {exp.id} '{exp.name}'",
    )


def open_days(session: Session, spec: ExperimentSpec, *, experiment_id: int, today: date,
              full: bool = False) -> dict[str, date]:
    """Per fact source whose stored state still holds (same definition key), the first
    exposure day to recompute: the day after its stored ``final_through``. Fact sources not
    listed are recomputed from the start (as all are with ``full``)."""
    if full:
        return {}
    states = warehouse.fact_source_states(session, experiment_id=experiment_id)
    facts = {f.name: f for f in spec.facts}
    out: dict[str, date] = {}
    for name, metrics in engine.metrics_by_fact(spec).items():
        state = states.get(name)
        if state is None or state.final_through is None:
            continue
        if state.definition_key == engine.definition_key(spec, facts[name], metrics, today):
            out[name] = state.final_through + timedelta(days=1)
    return out


def stored_exposure(session: Session, spec: ExperimentSpec, *, experiment_id: int
                    ) -> engine.StoredDays | None:
    """The units per exposure day the latest refresh counted, while what they depend on
    (the assignment source, key, variants, start) is unchanged."""
    row = warehouse.assignment_run(session, experiment_id=experiment_id,
                                   source=spec.assignment.name)
    if row is None or row.definition_key != engine.assignment_key(spec):
        return None
    return engine.read_stored_days(row.exposure_days)


def _run_view(row: WarehouseRun) -> WarehouseRunView:
    return WarehouseRunView(
        source=row.source, role=row.role, sql=row.sql, rows_returned=row.rows_returned,
        rows_scanned=row.rows_scanned, seconds=row.seconds, ran_at=row.ran_at,
        ran_by=row.ran_by, open_from=row.open_from, final_through=row.final_through,
        definition_key=row.definition_key, units=row.units,
        multi_variant_units=row.multi_variant_units,
    )


def latest_runs(session: Session, experiment_id: int) -> list[WarehouseRunView]:
    """The latest refresh's queries of the experiment, one per source (assignment source
    first): the exact SQL, rows returned and scanned, seconds. [] before its first refresh."""
    with transaction(session):
        require_experiment(session, experiment_id=experiment_id)
        return [_run_view(r) for r in warehouse.warehouse_runs(session,
                                                              experiment_id=experiment_id)]


def _run_rows(spec: ExperimentSpec, result: WarehouseResult, actor: Actor
              ) -> list[dict[str, Any]]:
    """The ``warehouse_runs`` rows of a result: per source, its queries (joined) and, for a
    fact source, its incremental state."""
    by_source: dict[str, list[Any]] = {}
    for query in result.queries:
        by_source.setdefault(query.source, []).append(query)
    rows = []
    for name in [spec.assignment.name, *engine.metrics_by_fact(spec)]:
        ran = by_source.get(name, [])
        scanned = [q.rows_scanned for q in ran if q.rows_scanned is not None]
        row: dict[str, Any] = {
            "source": name,
            "role": "assignment" if name == spec.assignment.name else "fact",
            "sql": "\n\n".join(q.sql.rstrip().rstrip(";") + ";" for q in ran),
            "rows_returned": sum(q.rows_returned for q in ran),
            "rows_scanned": sum(scanned) if ran and len(scanned) == len(ran) else None,
            "seconds": sum(q.seconds for q in ran),
            "ran_by": actor.name,
            "open_from": None, "final_through": None, "definition_key": None,
            "units": None, "multi_variant_units": None, "exposure_days": None,
        }
        if name == spec.assignment.name:
            row.update(units=result.exposure.units,
                       multi_variant_units=result.exposure.multi_variant_units,
                       definition_key=engine.assignment_key(spec),
                       exposure_days=engine.stored_days(result.exposure, spec.end))
        else:
            row.update(open_from=result.open_from.get(name),
                       final_through=result.final_through.get(name),
                       definition_key=result.definition_keys.get(name))
        rows.append(row)
    return rows


def _by_fact_source(spec: ExperimentSpec, records: Sequence[dict[str, Any]]
                    ) -> dict[str, list[dict[str, Any]]]:
    fact_of = {m.name: m.fact_source for m in spec.metrics}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(fact_of.get(str(record.get("metric")), ""), []).append(record)
    return grouped


def refresh_from_warehouse(
    session: Session,
    *,
    experiment_id: int,
    actor: Actor,
    full: bool = False,
    today: date | None = None,
    now: datetime | None = None,
    backend: Any = None,
) -> WarehouseRefreshReport:
    """Refresh the experiment's metrics that have a fact source from its warehouse.

    Recomputes the exposure days still open (all of them with ``full``), stores the records
    that differ from the stored ones (per fact source, as a ``warehouse`` load) and the
    queries that ran, in one transaction. ``today``/``now`` (UTC) date the run (default: the
    clock); ``backend``: an open Ibis backend to use instead of connecting (tests, bench)."""
    actor.require("editor", "refresh metric data from the warehouse")
    started = time.perf_counter()
    today = today or (now.date() if now is not None else _today())
    with transaction(session):
        spec = build_spec(session, experiment_id, today=today)
        open_from = open_days(session, spec, experiment_id=experiment_id, today=today,
                              full=full)
        counted = None if full else stored_exposure(session, spec, experiment_id=experiment_id)
        name = load_experiment(session, experiment_id=experiment_id).name
    result = engine.compute(spec, limits=warehouse_limits(), open_from=open_from, today=today,
                            now=now, backend=backend, exposure_days=counted)
    written = 0
    changed_for: list[str] = []
    fact_of = {m.name: m.fact_source for m in spec.metrics}
    with transaction(session):
        for fact, records in _by_fact_source(spec, result.records).items():
            label = f"warehouse refresh of '{name}', fact source {fact}"
            days = [d for r in records if isinstance(d := r.get("day"), date)]
            caps = {m: cap for m, cap in result.caps.items()
                    if any(r["metric"] == m for r in records)}
            # Its quantile metrics' statistics over every unit, stored as a file's are.
            defined = [m for m in result.quantile_metrics if fact_of[m] == fact]
            quantiles = {k: q for k, q in result.quantiles.items() if k[1] in defined}
            if days and same_as_stored(session, experiment_id=experiment_id, rows=records,
                                       first=min(days), last=max(days), label=label,
                                       caps=caps, quantiles=quantiles,
                                       quantile_metrics=defined):
                continue
            written += write_records(session, experiment_id=experiment_id, rows=records,
                                     actor=actor, kind="warehouse", label=label,
                                     caps=caps, quantiles=quantiles,
                                     quantile_metrics=defined).stats_rows_written
            changed_for.append(fact)
        warehouse.record_warehouse_runs(
            session, experiment_id=experiment_id, runs=_run_rows(spec, result, actor),
            sources=[spec.assignment.name, *engine.metrics_by_fact(spec)])
        runs = tuple(_run_view(r) for r in warehouse.warehouse_runs(
            session, experiment_id=experiment_id))
    return WarehouseRefreshReport(
        experiment_id=experiment_id, experiment_name=name,
        assignment_source=spec.assignment.name, full=full, rows_read=len(result.records),
        stats_rows_written=written, changed=bool(changed_for),
        metrics=tuple(m.name for m in spec.metrics), units=result.exposure.units,
        multi_variant_units=result.exposure.multi_variant_units,
        units_by_variant=dict(result.exposure.units_by_variant),
        open_from=dict(result.open_from), final_through=dict(result.final_through),
        runs=runs, notes=result.notes, seconds=time.perf_counter() - started,
        written_for=tuple(changed_for),
    )
