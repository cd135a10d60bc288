"""The registry's audit history: every change as a record, and the plan deviations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db import repositories as repo
from db.models import AuditEntry


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    entity_type: str
    entity_id: int
    action: str
    changes: dict[str, Any]
    reason: str | None
    is_deviation: bool
    entity_name: str = ""
    """The experiment's name (an experiment's entry), so an export reads without a lookup."""


def _record(entry: AuditEntry, names: dict[int, str]) -> AuditRecord:
    return AuditRecord(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        entity_type=entry.entity_type,
        entity_id=entry.entity_id,
        action=entry.action,
        changes=dict(entry.changes or {}),
        reason=entry.reason,
        is_deviation=entry.is_deviation,
        entity_name=names.get(entry.entity_id, "") if entry.entity_type == "experiment" else "",
    )


def _records(session: Session, entries: list[AuditEntry]) -> list[AuditRecord]:
    names = repo.experiment_names(session, experiment_ids=[
        e.entity_id for e in entries if e.entity_type == "experiment"])
    return [_record(e, names) for e in entries]


def audit_history(
    session: Session, *, experiment_id: int | None = None, entity_type: str = "experiment"
) -> list[AuditRecord]:
    """Audit entries, oldest first; all entities of `entity_type` when no id is given."""
    return _records(session, repo.audit_entries(session, entity_type=entity_type,
                                                entity_id=experiment_id))


def plan_deviations(session: Session, *, experiment_id: int | None = None) -> list[AuditRecord]:
    """Changes to a frozen analysis plan after launch (reports flag them)."""
    return _records(session, repo.audit_entries(
        session, entity_type="experiment", entity_id=experiment_id, deviations_only=True))
