"""Small widgets shared by pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from core import format as fmt
from core.errors import DomainError
from ui.messages import plain

T = TypeVar("T")


def run_action(action: Callable[[], T], success: str | None = None,
               container: Any = None) -> T | None:
    """Run a service call; show its domain error (every problem) instead of a traceback, in
    `container` if given (e.g. above the form that was submitted)."""
    try:
        result = action()
    except DomainError as exc:
        problems = [plain(p) for p in exc.problems]
        where = container or st
        if len(problems) > 1:
            where.error("Nothing was saved. Please fix:\n" + "\n".join(f"- {p}" for p in problems))
        else:
            where.error(f"Nothing was saved: {problems[0]}")
        return None
    if success:
        st.toast(success)
    return result


def parse_variants(text: str) -> list[dict[str, Any]]:
    """Read 'control:0.5, treatment:0.5' into variant dicts (validation is the service's)."""
    variants = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, _, weight = part.partition(":")
        try:
            value = float(weight) if weight.strip() else float("nan")
        except ValueError:
            value = float("nan")
        variants.append({"name": name.strip(), "weight": value})
    return variants


def parse_margins(text: str) -> dict[str, float]:
    """Read 'page_load_time_ms: 2%, refund_rate: 0.5' (percentages, the % optional) into
    guardrail margins as fractions; an unreadable number becomes NaN, which the service
    refuses naming the guardrail (validation is the service's)."""
    margins: dict[str, float] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, _, value = part.partition(":")
        try:
            percent = float(value.strip().removesuffix("%").strip())
        except ValueError:
            percent = float("nan")
        margins[name.strip()] = round(percent / 100, 10)
    return margins


def parse_capping(text: str) -> dict[str, dict[str, Any]]:
    """Read 'revenue_per_user: p99, basket_value: 500' into the plan's capping: ``pNN`` is the
    pooled NN-th percentile (p99.5 = 0.995), a plain number a fixed cap; an unreadable number
    becomes NaN, which the service refuses naming the metric (validation is the service's)."""
    capping: dict[str, dict[str, Any]] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, _, value = part.partition(":")
        value = value.strip().lower()
        kind = "percentile" if value.startswith("p") else "fixed"
        try:
            number = float(value.removeprefix("p"))
        except ValueError:
            number = float("nan")
        capping[name.strip()] = {"kind": kind, "value": round(number / 100, 12)
                                 if kind == "percentile" else number}
    return capping


def format_capping(capping: dict[str, Any]) -> str:
    """The plan's capping as the user types it: 'revenue_per_user: p99, basket_value: 500'."""
    return ", ".join(f"{name}: {spec.rule.label}" for name, spec in capping.items())


def format_margins(margins: dict[str, float]) -> str:
    """Guardrail margins as the user types them: 'page_load_time_ms: 2%'."""
    return ", ".join(f"{name}: {fmt.percent(m, 6, trim=True)}" for name, m in margins.items())


def format_variants(variants: list[Any]) -> str:
    return ", ".join(f"{v.name}:{v.weight:g}" for v in variants)


def metric_formula(metric: Any) -> str:
    """A warehouse metric's value per user, as people read it: "sum(revenue) /
    sum(session_count)", "any row", "sum(revenue)". ``metric`` is a catalogue MetricView."""
    column = metric.value_column
    return {
        "sum": f"sum({column})",
        "count": f"count of rows with {column}" if column else "count of rows",
        "any": f"any row with {column} > 0" if column else "any row",
        "mean": f"mean({column}) over rows",
        "ratio": f"sum({column}) / sum({metric.denominator_column})",
    }.get(metric.aggregation or "", metric.aggregation or "")


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def loaded_text(report: Any, *, source: str) -> str:
    """What a data load brought, in users and days: "Loaded 2,000 users (control 1,000,
    treatment 1,000) over 1 day (2026-12-02) from x.csv: checkout_conversion, refund_rate."
    ``report`` is an ingestion report (units per variant, first and last day, metrics); its
    notes follow (e.g. "Numbers were read with a decimal comma …")."""
    users = sum(report.units.values())
    split = ", ".join(f"{v} {fmt.count(n)}" for v, n in report.units.items())
    what = (f"{fmt.plural(users, 'user')} ({split})" if users else "pre-aggregated statistics")
    if report.first_day is None or report.last_day is None:
        when = "with no day"
    else:
        days = (report.last_day - report.first_day).days + 1
        span = (fmt.day(report.first_day) if days == 1
                else f"{fmt.day(report.first_day)} → {fmt.day(report.last_day)}")
        when = f"over {fmt.plural(days, 'day')} ({span})"
    metrics = ", ".join(report.metrics)
    return (f"Loaded {what} {when} from {source}" + (f": {metrics}." if metrics else ".")
            + "".join(f" {note}" for note in getattr(report, "notes", ())))


def empty_form(*keys: str) -> None:
    """After a form created something: forget its inputs, so the next run draws it empty for
    the next one (issue 23: forms stayed filled). Call before ``st.rerun()``."""
    for key in keys:
        st.session_state.pop(key, None)


def delta_style(change: float | None, *, higher_is_better: bool = True) -> dict[str, str]:
    """``st.metric`` arrow and colour for a delta written with the typographic minus (U+2212),
    which Streamlit's own sign check (an ASCII "-") reads as a gain: a shortfall showed a green
    ↑ (issue 23). Down and red when `change` is worse, up and green when better, no arrow and
    grey at 0 or None."""
    if change is None or change == 0:
        return {"delta_color": "gray", "delta_arrow": "off"}
    up = change > 0
    return {"delta_color": "green" if up == higher_is_better else "red",
            "delta_arrow": "up" if up else "down"}
