"""CSV exports of the registry: experiments and their audit history (through
:func:`core.format.csv_text`, so no cell reads as a spreadsheet formula)."""

from __future__ import annotations

import json
from typing import Any

from core.format import csv_text
from core.registry.audit import AuditRecord
from core.registry.fields import ExperimentView

AUDIT_CSV_COLUMNS = (
    "at", "actor", "entity_type", "entity_id", "action", "field", "before", "after", "reason",
    "plan_deviation",
)


def audit_csv(records: list[AuditRecord]) -> str:
    """One CSV row per changed field."""
    return csv_text(AUDIT_CSV_COLUMNS, (
        [r.at.isoformat() if r.at else "", r.actor, r.entity_type, r.entity_id,
         r.action, field, _csv_value(before), _csv_value(after), r.reason or "",
         r.is_deviation]
        for r in records
        for field, (before, after) in (r.changes or {"": [None, None]}).items()
    ))


def _csv_value(value: Any) -> Any:
    """A changed value as a cell: lists and mappings as JSON, numbers as numbers."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bool, int, float)):
        return value
    return str(value)


EXPERIMENT_CSV_COLUMNS = (
    "id", "name", "owner", "status", "primary_metric", "guardrail_metrics", "variants",
    "planned_sample_size", "mde", "alpha", "power", "analysis_mode", "planned_start",
    "planned_end", "actual_start", "actual_end", "decision", "rice_score", "tags", "hypothesis",
)


def experiments_csv(items: list[ExperimentView]) -> str:
    rows = []
    for e in items:
        row = e.model_dump()
        row["variants"] = [f"{v['name']}:{v['weight']:g}" for v in row["variants"]]
        rows.append([_csv_value(row[c]) if isinstance(row[c], (list, dict)) else
                     ("" if row[c] is None else row[c]) for c in EXPERIMENT_CSV_COLUMNS])
    return csv_text(EXPERIMENT_CSV_COLUMNS, rows)
