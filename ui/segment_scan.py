"""Results page helpers for the SRM check's wording and the automatic segment scan's table."""

from __future__ import annotations

from typing import Any

from core import format as fmt
from core.analysis.segments import SegmentScan
from core.analysis.snapshot import SrmCheck

SEQUENTIAL_NOTE = (
    "The decision is the sequential SRM test (Lindon & Malek 2022): it stays valid when the "
    "check is read every day, where a daily chi-square would raise false alarms about ten "
    "times as often as its level. The chi-square p-value is shown for reference."
)


def srm_caption(srm: SrmCheck) -> str:
    """One line: the sequential p-value the flag is decided on, the chi-square beside it."""
    if srm.decided_by != "sequential" or srm.sequential_p_value is None:
        return (f"SRM check: chi-square p = {fmt.pvalue(srm.p_value)} "
                f"(flags below {srm.threshold:g}).")
    days = f" over {srm.checks} daily checks" if srm.checks and srm.checks > 1 else ""
    state = "**mismatch**" if srm.flagged else "no mismatch"
    return (f"SRM check: {state} — sequential p = {fmt.pvalue(srm.sequential_p_value)}{days} "
            f"(decides; flags below {srm.threshold:g}) · chi-square p = "
            f"{fmt.pvalue(srm.p_value)} (reference only). {SEQUENTIAL_NOTE}")


def srm_value(srm: SrmCheck) -> str:
    """The p-value a flagged check was decided on, with its name."""
    if srm.decided_by == "sequential" and srm.sequential_p_value is not None:
        return (f"sequential SRM p = {srm.sequential_p_value:.2g} < {srm.threshold:g}, "
                f"valid at every daily check; chi-square p = {srm.p_value:.2g}")
    return f"chi-square p = {srm.p_value:.2g} < {srm.threshold:g}"


def scan_rows(scan: SegmentScan, *, only_flagged: bool = True) -> list[dict[str, Any]]:
    """One row per slice x metric x treatment worth a look (or every tested one)."""
    rows = []
    for f in scan.findings:
        if only_flagged and not f.worth_a_look:
            continue
        points = f.kind == "binomial"
        decimals = fmt.shared_decimals(f.difference, f.ci_low, f.ci_high)

        def shown(x: float | None, points: bool = points, decimals: int = decimals) -> str:
            return (fmt.signed_percent(x, 2).replace("%", " pp") if points
                    else fmt.signed_fixed(x, decimals))

        rows.append({
            "Dimension": f.dimension, "Value": f.value, "Metric": f.metric,
            "Treatment": f.treatment,
            "Effect in slice": shown(f.slice_effect), "Effect in the rest": shown(f.rest_effect),
            "Slice − rest": shown(f.difference),
            fmt.ci_label(scan.alpha): fmt.interval(f.ci_low, f.ci_high, shown),
            "p (Holm, all slices)": fmt.pvalue(f.adjusted_p_value),
            "Reads as": "worth a look" if f.worth_a_look else "no different from the rest",
        })
    return rows
