"""Portfolio overview: counts by status and the experiments that need someone's attention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from core import registry


@dataclass(frozen=True)
class Attention:
    experiment_id: int
    name: str
    owner: str
    status: str
    reason: str


def needs_attention(session: Session, *, today: date | None = None) -> list[Attention]:
    """Experiments a PM should look at now, each with the reason why."""
    today = today or datetime.now(UTC).date()
    items: list[Attention] = []
    deviations: dict[int, int] = {}
    for record in registry.plan_deviations(session):
        deviations[record.entity_id] = deviations.get(record.entity_id, 0) + 1
    for exp in registry.all_experiments(session):
        reasons = []
        if exp.status == "running" and exp.planned_end and exp.planned_end < today:
            reasons.append(
                f"past its planned end ({exp.planned_end.isoformat()}): decide or extend"
            )
        if exp.status == "running" and deviations.get(exp.id):
            reasons.append(f"analysis plan changed after launch ({deviations[exp.id]}×)")
        if exp.status == "proposed" and exp.primary_metric and not exp.planned_sample_size:
            reasons.append("has no planned sample size yet: size it in the Planner")
        for reason in reasons:
            items.append(Attention(exp.id, exp.name, exp.owner, exp.status, reason))
    return items
