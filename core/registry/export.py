"""CSV exports of the registry: experiments and their audit history (through
:func:`core.format.csv_text`, so every file starts with a byte-order mark and no cell reads as a
spreadsheet formula). Cells are for people in a spreadsheet: a list is written ``a; b``, a
mapping ``key: value; key: value``, the RICE score rounded to one decimal, and every timestamp in
ISO 8601 with its UTC offset."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.format import csv_text
from core.registry.audit import AuditRecord
from core.registry.fields import ExperimentView

AUDIT_CSV_COLUMNS = (
    "at", "actor", "entity_type", "entity_id", "experiment", "action", "field", "before",
    "after", "reason", "plan_deviation",
)
RICE_DECIMALS = 1
"""The RICE score in a CSV: 58666.666… is written 58666.7 (its inputs are whole or halves)."""
LIST_SEPARATOR = "; "


def iso_utc(at: datetime | None) -> str:
    """A stored moment in ISO 8601 with its offset, in UTC (``2026-12-07T05:10:11+00:00``); a
    naive value is UTC (SQLite stores ``now()`` without a zone)."""
    if at is None:
        return ""
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return aware.isoformat(timespec="seconds")


def audit_csv(records: list[AuditRecord]) -> str:
    """One CSV row per changed field, with the experiment's name beside its id."""
    return csv_text(AUDIT_CSV_COLUMNS, (
        [iso_utc(r.at), r.actor, r.entity_type, r.entity_id, r.entity_name,
         r.action, field, _csv_value(before, field), _csv_value(after, field), r.reason or "",
         r.is_deviation]
        for r in records
        for field, (before, after) in (r.changes or {"": [None, None]}).items()
    ))


def _rounded(value: Any, field: str) -> Any:
    if field == "rice_score" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(float(value), RICE_DECIMALS)
    return value


def _text(value: Any, field: str = "") -> str:
    """A value inside a list or mapping cell."""
    value = _rounded(value, field)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_text(v, k)}" for k, v in value.items())
    if isinstance(value, list):
        return LIST_SEPARATOR.join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:.15g}"  # 44000.0 -> 44000, 0.1 + 0.2 -> 0.3
    return "" if value is None else str(value)


def _csv_value(value: Any, field: str = "") -> Any:
    """A value as a cell: a list as ``a; b`` (a list of mappings, one mapping per item), a
    mapping as ``key: value; key: value``, the RICE score rounded (also inside a mapping, e.g.
    the RICE at promotion), other numbers as numbers."""
    value = _rounded(value, field)
    if value is None:
        return ""
    if isinstance(value, list):
        return LIST_SEPARATOR.join(_text(v) for v in value)
    if isinstance(value, dict):
        return LIST_SEPARATOR.join(f"{k}: {_text(v, k)}" for k, v in value.items())
    if isinstance(value, (bool, int, float)):
        return value
    return str(value)


EXPERIMENT_CSV_COLUMNS = (
    "id", "name", "owner", "status", "primary_metric", "guardrail_metrics", "variants",
    "planned_sample_size", "mde", "alpha", "power", "analysis_mode", "planned_start",
    "planned_end", "actual_start", "actual_end", "decision", "rice_score", "tags", "hypothesis",
    "learnings",
)


def experiments_csv(items: list[ExperimentView]) -> str:
    rows = []
    for e in items:
        row = e.model_dump()
        row["variants"] = [f"{v['name']}:{v['weight']:g}" for v in row["variants"]]
        rows.append([_csv_value(row[c], c) for c in EXPERIMENT_CSV_COLUMNS])
    return csv_text(EXPERIMENT_CSV_COLUMNS, rows)
