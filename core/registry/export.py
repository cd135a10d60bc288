"""CSV exports of the registry: experiments and their audit history."""

from __future__ import annotations

import csv
import io
from typing import Any

from core.registry.audit import AuditRecord
from core.registry.fields import ExperimentView

AUDIT_CSV_COLUMNS = (
    "at", "actor", "entity_type", "entity_id", "action", "field", "before", "after", "reason",
    "plan_deviation",
)


def audit_csv(records: list[AuditRecord]) -> str:
    """One CSV row per changed field."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(AUDIT_CSV_COLUMNS)
    for r in records:
        for field, (before, after) in (r.changes or {"": [None, None]}).items():
            writer.writerow(
                [r.at.isoformat() if r.at else "", r.actor, r.entity_type, r.entity_id,
                 r.action, field, _csv_value(before), _csv_value(after), r.reason or "",
                 r.is_deviation]
            )
    return out.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, ensure_ascii=False)
    return str(value)


EXPERIMENT_CSV_COLUMNS = (
    "id", "name", "owner", "status", "primary_metric", "guardrail_metrics", "variants",
    "planned_sample_size", "mde", "alpha", "power", "analysis_mode", "planned_start",
    "planned_end", "actual_start", "actual_end", "decision", "rice_score", "tags", "hypothesis",
)


def experiments_csv(items: list[ExperimentView]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPERIMENT_CSV_COLUMNS)
    for e in items:
        row = e.model_dump()
        row["variants"] = [f"{v['name']}:{v['weight']:g}" for v in row["variants"]]
        writer.writerow(
            [_csv_value(row[c]) if isinstance(row[c], (list, dict)) else
             ("" if row[c] is None else row[c]) for c in EXPERIMENT_CSV_COLUMNS]
        )
    return out.getvalue()
