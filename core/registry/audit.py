"""The registry's audit history: every change as a record, and the plan deviations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core import format as fmt
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


DECISION_LABELS = {"ship": "Ship", "dont_ship": "Don't ship", "iterate": "Iterate"}
"""A recorded decision as people say it (never the code ``dont_ship``)."""
_PERCENT_FIELDS = ("mde", "power", "prior_lift_mean", "prior_lift_sd", "weights", "exposure")


def audit_value(field: str, value: Any) -> str:
    """One audited value for people: no None, no ``96000.0``, no dict or list reprs.

    Variants read "control 50%, treatment 50%", guardrail margins "page_load_time_ms: 2%",
    a decision "Don't ship", fractions stored for MDE, power and the prior as percentages, and
    any other mapping as "key value" pairs (the Planner's inputs)."""
    if value is None or value == "" or value == [] or value == {}:
        return fmt.MISSING
    if field == "decision" and isinstance(value, str):
        return DECISION_LABELS.get(value, fmt.label(value))
    if field == "guardrail_margins" and isinstance(value, dict):
        return ", ".join(f"{k}: {fmt.percent(v, 4, trim=True)}" for k, v in value.items())
    if field in _PERCENT_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
        return fmt.percent(value, 4, trim=True)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return fmt.number(value)
    if isinstance(value, dict):
        if set(value) == {"name", "weight"}:  # a variant
            return f"{value['name']} {fmt.percent(value['weight'], 4, trim=True)}"
        return ", ".join(f"{fmt.label(str(k)).lower()} {audit_value(str(k), v)}"
                         for k, v in value.items() if v is not None)
    if isinstance(value, list | tuple):
        return ", ".join(audit_value(field, x) for x in value)
    return str(value)


def change_text(changes: dict[str, Any]) -> str:
    """An audit entry's changes in one line: "Variants: — → control 50%, treatment 50%; …"."""
    return "; ".join(f"{fmt.label(k)}: {audit_value(k, v[0])} → {audit_value(k, v[1])}"
                     for k, v in changes.items())
