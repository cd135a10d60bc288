"""Data access for warehouse definitions (connections, assignment and fact sources) and the
latest warehouse run of each experiment and source. Keyword-only arguments, an explicit
session; services (core.warehouse) own the transaction, so nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from db.metric_repository import dialect_insert
from db.models import (
    AssignmentSource,
    Experiment,
    FactSource,
    Metric,
    WarehouseConnection,
    WarehouseRun,
)

# --------------------------------------------------------------------------- connections


def list_connections(session: Session) -> list[WarehouseConnection]:
    return list(session.scalars(select(WarehouseConnection).order_by(WarehouseConnection.name)))


def get_connection(session: Session, *, name: str) -> WarehouseConnection | None:
    return session.scalar(select(WarehouseConnection).where(WarehouseConnection.name == name))


def get_connection_by_id(session: Session, *, connection_id: int) -> WarehouseConnection | None:
    return session.get(WarehouseConnection, connection_id)


def connection_names(session: Session, *, connection_ids: Sequence[int]) -> dict[int, str]:
    """Id -> name of the given connections."""
    if not connection_ids:
        return {}
    rows = session.execute(select(WarehouseConnection.id, WarehouseConnection.name)
                           .where(WarehouseConnection.id.in_(list(connection_ids))))
    return {cid: name for cid, name in rows}


def sources_on_connection(session: Session, *, connection_id: int) -> list[str]:
    """Names of the assignment and fact sources that query the connection, sorted."""
    names = list(session.scalars(
        select(AssignmentSource.name).where(AssignmentSource.connection_id == connection_id)))
    names += session.scalars(
        select(FactSource.name).where(FactSource.connection_id == connection_id))
    return sorted(names)


# --------------------------------------------------------------------------- sources


def list_assignment_sources(session: Session) -> list[AssignmentSource]:
    return list(session.scalars(select(AssignmentSource).order_by(AssignmentSource.name)))


def get_assignment_source(session: Session, *, name: str) -> AssignmentSource | None:
    return session.scalar(select(AssignmentSource).where(AssignmentSource.name == name))


def get_assignment_source_by_id(session: Session, *, source_id: int) -> AssignmentSource | None:
    return session.get(AssignmentSource, source_id)


def list_fact_sources(session: Session) -> list[FactSource]:
    return list(session.scalars(select(FactSource).order_by(FactSource.name)))


def get_fact_source(session: Session, *, name: str) -> FactSource | None:
    return session.scalar(select(FactSource).where(FactSource.name == name))


def fact_sources_by_id(session: Session, *, source_ids: Sequence[int]) -> dict[int, FactSource]:
    if not source_ids:
        return {}
    rows = session.scalars(select(FactSource).where(FactSource.id.in_(list(source_ids))))
    return {row.id: row for row in rows}


def fact_source_names(session: Session, *, source_ids: Sequence[int]) -> dict[int, str]:
    """Id -> name of the given fact sources."""
    if not source_ids:
        return {}
    rows = session.execute(select(FactSource.id, FactSource.name)
                           .where(FactSource.id.in_(list(source_ids))))
    return {sid: name for sid, name in rows}


def source_kind_of_name(session: Session, *, name: str) -> str | None:
    """"assignment" or "fact" when a source of that kind has the name, else None (source
    names are unique across both kinds: a run is recorded under its source's name)."""
    if session.scalar(select(AssignmentSource.id).where(AssignmentSource.name == name)):
        return "assignment"
    if session.scalar(select(FactSource.id).where(FactSource.name == name)):
        return "fact"
    return None


def experiments_using_assignment_source(session: Session, *, source_id: int) -> list[str]:
    """Names of the experiments attached to the assignment source, sorted."""
    return list(session.scalars(
        select(Experiment.name).where(Experiment.assignment_source_id == source_id)
        .order_by(Experiment.name)))


def metrics_on_fact_source(session: Session, *, source_id: int) -> list[str]:
    """Names of the catalogue metrics computed from the fact source, sorted."""
    return list(session.scalars(
        select(Metric.name).where(Metric.fact_source_id == source_id).order_by(Metric.name)))


def columns_used_on_fact_source(session: Session, *, source_id: int) -> dict[str, list[str]]:
    """Column of the fact source -> the metrics that aggregate it (value or denominator)."""
    used: dict[str, list[str]] = {}
    rows = session.execute(
        select(Metric.name, Metric.value_column, Metric.denominator_column)
        .where(Metric.fact_source_id == source_id).order_by(Metric.name))
    for name, value, denominator in rows:
        for column in (value, denominator):
            if column is not None:
                used.setdefault(column, []).append(name)
    return used


def assignment_source_of_experiment(
    session: Session, *, experiment_id: int
) -> tuple[AssignmentSource, str | None] | None:
    """The experiment's assignment source and its experiment key, if it has one."""
    row = session.execute(
        select(AssignmentSource, Experiment.experiment_key)
        .join(Experiment, Experiment.assignment_source_id == AssignmentSource.id)
        .where(Experiment.id == experiment_id)
    ).first()
    return None if row is None else (row[0], row[1])


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunState:
    """What the latest refresh left for a fact source: the last final exposure day, valid
    while its definition key is unchanged."""

    final_through: date | None
    definition_key: str | None


def warehouse_runs(session: Session, *, experiment_id: int) -> list[WarehouseRun]:
    """The latest run of each source of the experiment: the assignment source first, then
    the fact sources by name (as stored: rows replaced by an upsert are read again)."""
    return list(session.scalars(
        select(WarehouseRun).where(WarehouseRun.experiment_id == experiment_id)
        .order_by(WarehouseRun.role, WarehouseRun.source)
        .execution_options(populate_existing=True)
    ))


def assignment_run(session: Session, *, experiment_id: int, source: str
                   ) -> WarehouseRun | None:
    """The latest run of the experiment's assignment source ``source``."""
    return session.scalars(select(WarehouseRun).where(
        WarehouseRun.experiment_id == experiment_id, WarehouseRun.source == source,
        WarehouseRun.role == "assignment")).one_or_none()


def fact_source_states(session: Session, *, experiment_id: int) -> dict[str, RunState]:
    """Fact source name -> the incremental state its latest run stored."""
    rows = session.execute(
        select(WarehouseRun.source, WarehouseRun.final_through, WarehouseRun.definition_key)
        .where(WarehouseRun.experiment_id == experiment_id, WarehouseRun.role == "fact"))
    return {source: RunState(final, key) for source, final, key in rows}


def record_warehouse_runs(
    session: Session, *, experiment_id: int, runs: Sequence[dict[str, Any]],
    sources: Sequence[str],
) -> None:
    """Insert or replace the runs keyed on (experiment, source), and delete the experiment's
    runs of sources not in ``sources`` (no longer part of its refresh). Each run holds the
    columns of :class:`WarehouseRun` but ``id``, ``experiment_id`` and ``ran_at``."""
    session.execute(delete(WarehouseRun).where(
        WarehouseRun.experiment_id == experiment_id, WarehouseRun.source.not_in(list(sources))))
    if not runs:
        return
    rows = [{"experiment_id": experiment_id, **run} for run in runs]
    stmt = dialect_insert(session, WarehouseRun.__table__)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in ("experiment_id", "source")}
    updates["ran_at"] = func.now()
    session.execute(
        stmt.on_conflict_do_update(index_elements=["experiment_id", "source"], set_=updates),
        rows)
