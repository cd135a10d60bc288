"""Automatic risk checks of an experiment's report: each flagged, passed or not checked, with why.

:func:`risk_checks` runs them all on the latest results snapshot and the stored daily statistics of
the primary metric: sample ratio mismatch, underpowered, read early, plan deviations after
launch, multiple comparisons, guardrail breach, effect drift over time and multiple exposures
(see :data:`RISK_CHECKS`; the package docstring of :mod:`core.reports` explains each rule). The
checks only read; the verdict itself is decided in :mod:`core.analysis.verdict`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from scipy.stats import norm

from core import format as fmt
from core.analysis.snapshot import MetricComparison, ResultsSnapshot
from core.registry.audit import AuditRecord
from core.registry.fields import ExperimentView
from core.stats import (
    EMPTY_STATS,
    MetricStats,
    mde_mean,
    mde_proportion,
    proportion_ztest_from_stats,
    welch_ttest_from_stats,
)
from core.types import CheckStatus, RiskCode

RISK_CHECKS: dict[str, str] = {
    "srm": "Sample ratio mismatch",
    "underpowered": "Underpowered",
    "read_early": "Read early",
    "plan_deviation": "Plan deviations after launch",
    "multiple_comparisons": "Multiple comparisons",
    "guardrail_breach": "Guardrail breach",
    "drift": "Effect drifting over time",
    "multiple_exposures": "Multiple exposures",
}
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
MDE_TOLERANCE = 1.10
"""The achieved MDE may exceed the planned one by 10% before the report calls it underpowered."""
DRIFT_MIN_DAYS = 4


@dataclass(frozen=True)
class RiskCheck:
    code: RiskCode
    title: str
    status: CheckStatus
    explanation: str



def correction_name(correction: str) -> str:
    """The multiple-testing correction's name for people ("holm" -> "Holm")."""
    return CORRECTION_NAMES.get(correction, correction)


def effect_text(row: MetricComparison, alpha: float) -> str:
    """'lift +13.4%, 95% CI [+4.1%, +22.8%]', or the absolute difference without a lift."""
    ci = fmt.ci_label(alpha, row.sequential)
    one_sided = row.alternative != "two-sided"
    if row.lift is not None:
        return fmt.effect(row.lift, row.lift_ci_low, row.lift_ci_high, relative=True, ci=ci,
                          open_ends=one_sided)
    return fmt.effect(row.diff, row.diff_ci_low, row.diff_ci_high, relative=False, ci=ci,
                      open_ends=one_sided)


def _breached(row: MetricComparison, alpha: float) -> bool:
    """As decided in :mod:`core.analysis.verdict` (``alpha`` kept for the callers)."""
    return row.role == "guardrail" and row.decision_state == "guardrail_breach"


def _check(code: RiskCode, status: CheckStatus, explanation: str) -> RiskCheck:
    return RiskCheck(code=code, title=RISK_CHECKS[code], status=status, explanation=explanation)


def srm_check(snapshot: ResultsSnapshot | None) -> RiskCheck:
    if snapshot is None or snapshot.srm is None:
        return _check("srm", "not_checked", "No assignment counts yet.")
    srm = snapshot.srm
    observed = ", ".join(f"{v} {n:,}" for v, n in zip(srm.variants, srm.observed, strict=True))
    split = "/".join(f"{fmt.percent(w, 0)}" for w in srm.weights)
    if srm.flagged:
        return _check("srm", "flagged", (
            f"Assignments ({observed}) do not match the planned {split} split (chi-square "
            f"p = {srm.p_value:.2g} < {srm.threshold:g}): randomisation or logging is broken."))
    return _check("srm", "passed", (
        f"Assignments ({observed}) match the planned {split} split (p = {srm.p_value:.2g})."))


def _achieved_mde(kind: str, control: MetricStats, treatment_n: int, *, alpha: float, power: float,
                  variants: int) -> float | None:
    """Relative MDE reachable with the achieved control n and the observed control baseline."""
    if control.n < 2 or treatment_n < 2 or kind == "quantile":  # sums say nothing of quantiles
        return None
    mean = control.sum / control.n
    ratio = treatment_n / control.n
    try:
        if kind == "binomial":
            if not 0 < mean < 1:
                return None
            absolute = float(mde_proportion(mean, control.n, alpha=alpha, power=power,
                                            ratio=ratio, variants=variants))
        else:
            var = (control.sum_squares - control.sum**2 / control.n) / (control.n - 1)
            if var <= 0 or mean == 0:
                return None
            absolute = float(mde_mean(math.sqrt(var), control.n, alpha=alpha, power=power,
                                      ratio=ratio, variants=variants))
    except ValueError:
        return None
    relative = absolute / abs(mean)
    return relative if math.isfinite(relative) else None


def underpowered_check(
    exp: ExperimentView, snapshot: ResultsSnapshot | None, arms: dict[tuple[str, str], MetricStats],
) -> RiskCheck:
    if snapshot is None or not snapshot.comparisons:
        return _check("underpowered", "not_checked", "No results yet.")
    primary = snapshot.rows(role="primary")
    significant = any(r.decision_state == "significant" for r in primary)
    reasons: list[str] = []
    smallest = min((v for v in snapshot.variants), key=lambda v: v.units, default=None)
    below = snapshot.progress is not None and snapshot.progress < 1.0
    if below and smallest is not None and not (
        snapshot.analysis_mode == "sequential" and significant
    ):
        reasons.append(
            f"{smallest.name} has {smallest.units:,} of the {snapshot.planned_sample_size:,} "
            f"planned units ({fmt.percent(snapshot.progress, 0)})")
    achieved = None
    if exp.mde and exp.primary_metric and exp.variants and primary and not significant:
        control = arms.get((exp.primary_metric, exp.variants[0].name), EMPTY_STATS)
        treatment_n = min((arms.get((exp.primary_metric, v.name), EMPTY_STATS).n
                           for v in exp.variants[1:]), default=0)
        achieved = _achieved_mde(primary[0].kind, control, treatment_n, alpha=exp.alpha,
                                 power=exp.power, variants=len(exp.variants))
        if achieved is not None and achieved > exp.mde * MDE_TOLERANCE:
            reasons.append("with the observed baseline the test can detect "
                           f"{fmt.percent(achieved)}, "
                           f"not the planned MDE of {fmt.percent(exp.mde)}")
    if reasons:
        text = "; ".join(reasons)
        return _check("underpowered", "flagged", text[0].upper() + text[1:]
                      + ": a real effect of the planned size could be missed.")
    detail = (f" (achieved MDE {fmt.percent(achieved)} vs planned {fmt.percent(exp.mde)})"
              if achieved else "")
    if below:
        return _check("underpowered", "passed",
                      "Below the planned sample, but the sequential test is already "
                      f"significant{detail}.")
    return _check("underpowered", "passed", f"The planned sample is reached{detail}.")


def read_early_check(exp: ExperimentView, snapshot: ResultsSnapshot | None) -> RiskCheck:
    concluded = exp.status == "completed" or exp.decision is not None
    if exp.analysis_mode == "sequential":
        return _check("read_early", "passed",
                      "Sequential test: always-valid p-values may be read at any time.")
    if not concluded:
        return _check("read_early", "passed", "Not concluded yet.")
    if snapshot is None or snapshot.progress is None:
        return _check("read_early", "not_checked", "No data or no planned sample to compare.")
    if not snapshot.plan_met:
        return _check("read_early", "flagged", (
            f"A fixed-horizon test was concluded at {fmt.percent(snapshot.progress, 0)} of its "
            "planned "
            "sample: stopping before the plan inflates the false-positive rate."))
    return _check("read_early", "passed", "Concluded after the planned sample was reached.")


def deviation_check(exp: ExperimentView, deviations: Sequence[AuditRecord]) -> RiskCheck:
    if not exp.is_frozen:
        return _check("plan_deviation", "passed", "Not launched: the plan is not frozen yet.")
    if not deviations:
        return _check("plan_deviation", "passed", "The plan frozen at launch was not changed.")
    fields_changed = sorted({f for d in deviations for f in d.changes})
    last = deviations[-1]
    return _check("plan_deviation", "flagged", (
        f"{fmt.plural(len(deviations), 'change')} to the frozen plan after launch "
        f"({', '.join(fields_changed)}); latest by {last.actor} on {fmt.timestamp(last.at)}: "
        f"\"{last.reason or 'no reason'}\"."))


def multiple_comparisons_check(snapshot: ResultsSnapshot | None) -> RiskCheck:
    if snapshot is None or not snapshot.comparisons:
        return _check("multiple_comparisons", "not_checked", "No results yet.")
    tested = [r for r in snapshot.comparisons if r.untestable is None]
    family = [r for r in tested if r.role in ("primary", "secondary")]
    guardrails = [r for r in tested if r.role == "guardrail"]
    treatments = sorted({r.treatment for r in snapshot.comparisons})
    metrics = sorted({r.metric for r in family})
    method = correction_name(snapshot.correction)
    alpha = snapshot.alpha

    def raw(r: MetricComparison) -> float | None:  # the p-value the adjusted one comes from
        return r.lift_p_value if r.decision_on == "lift" else r.p_value

    changed = [r for r in tested if (p := raw(r)) is not None
               and r.adjusted_p_value is not None and p < alpha <= r.adjusted_p_value]
    counts = (f"{fmt.plural(len(family), 'comparison')} ({fmt.plural(len(metrics), 'metric')} x "
              f"{fmt.plural(len(treatments), 'treatment')}) plus "
              f"{fmt.plural(len(guardrails), 'guardrail test')}, {method}-adjusted within each "
              "family")
    flat = sorted({r.metric for r in snapshot.comparisons if r.untestable is not None})
    if flat:
        counts += (f" ({', '.join(flat)} left out: cannot be tested, no variation)")
    if len(treatments) > 1 or changed:
        why = []
        if len(treatments) > 1:
            why.append(f"{len(treatments)} treatments compete on the primary metric")
        if changed:
            why.append("the correction turns " + ", ".join(
                f"{r.metric} ({r.treatment})" for r in changed) + " non-significant")
        return _check("multiple_comparisons", "flagged", f"{counts}; {'; '.join(why)}.")
    return _check("multiple_comparisons", "passed",
                  f"{counts}; no conclusion depends on the correction.")


def guardrail_check(snapshot: ResultsSnapshot | None) -> RiskCheck:
    if snapshot is None or not snapshot.comparisons:
        return _check("guardrail_breach", "not_checked", "No results yet.")
    guardrails = snapshot.rows(role="guardrail")
    if not guardrails:
        return _check("guardrail_breach", "passed", "The experiment has no guardrail metric.")
    breaches = [r for r in guardrails if _breached(r, snapshot.alpha)]
    if breaches:
        return _check("guardrail_breach", "flagged", "; ".join(
            f"{r.metric} is significantly worse in {r.treatment}: "
            f"{effect_text(r, snapshot.alpha)}, "
            f"adjusted one-sided p {fmt.p_is(r.adjusted_p_value)}" for r in breaches) + ".")
    names = ", ".join(sorted({r.metric for r in guardrails}))
    return _check("guardrail_breach", "passed", f"No significant harm on {names}.")


def drift_check(
    exp: ExperimentView, kind: str | None, by_day: dict[date, dict[str, MetricStats]],
) -> RiskCheck:
    days = sorted(by_day)
    if kind == "quantile":
        return _check("drift", "not_checked",
                      "The primary metric is a quantile: quantiles do not add up over days, so "
                      "there are no half-period estimates to compare.")
    if kind is None or len(days) < DRIFT_MIN_DAYS or len(exp.variants) < 2:
        return _check("drift", "not_checked",
                      f"Needs at least {DRIFT_MIN_DAYS} days of primary-metric data.")
    half = len(days) // 2
    periods = (days[:half], days[half:])
    control = exp.variants[0].name
    treatments = [v.name for v in exp.variants[1:]]
    level = exp.alpha / len(treatments)
    findings: list[str] = []
    checked: list[str] = []
    for treatment in treatments:
        estimates = []
        for period in periods:
            c = sum((by_day[d].get(control, EMPTY_STATS) for d in period), EMPTY_STATS)
            t = sum((by_day[d].get(treatment, EMPTY_STATS) for d in period), EMPTY_STATS)
            if c.n < 2 or t.n < 2:
                break
            test = proportion_ztest_from_stats if kind == "binomial" else welch_ttest_from_stats
            try:
                r = test(c.sufficient, t.sufficient, alpha=exp.alpha)
            except ValueError:
                break
            estimates.append(r)
        if len(estimates) < 2:
            continue
        early, late = estimates
        se = math.hypot(early.diff_se, late.diff_se)
        if not se > 0:
            continue
        p = float(2 * norm.sf(abs(late.diff - early.diff) / se))
        span = (f"first half {fmt.timestamp(periods[0][0])}..{fmt.timestamp(periods[0][-1])} "
                f"{fmt.signed_percent(early.lift)}, second half {fmt.signed_percent(late.lift)}")
        checked.append(f"{treatment}: {span} (p = {p:.2g})")
        if p < level:
            fading = abs(late.diff) < abs(early.diff) and early.diff * late.diff >= 0
            fading = fading or (early.diff * late.diff < 0 and abs(late.diff) < abs(early.diff))
            what = ("the effect is fading (likely a novelty effect; the long-run effect is "
                    "probably smaller)") if fading else "the effect is changing over time"
            findings.append(f"{treatment}: {span}, difference p = {p:.2g} < {level:.3g}: {what}")
    if findings:
        return _check("drift", "flagged", "; ".join(findings) + ".")
    if not checked:
        return _check("drift", "not_checked", "Too few units per half to compare.")
    return _check("drift", "passed", "Early and late effects agree: " + "; ".join(checked) + ".")


def exposure_check(sources: Sequence[str], has_data: bool) -> RiskCheck:
    if not has_data:
        return _check("multiple_exposures", "not_checked", "No metric data yet.")
    kinds = {s.split(":", 1)[0] for s in sources}
    if sources and kinds == {"user_file"}:
        return _check("multiple_exposures", "passed", (
            "Every load was a user-level file, checked to hold each unit in exactly one variant "
            "(units seen in two variants are refused at ingestion)."))
    return _check("multiple_exposures", "not_checked", (
        "Some data came pre-aggregated (file or SQL): units seen in several variants cannot be "
        "counted from per-variant sums; check the assignment source."))

