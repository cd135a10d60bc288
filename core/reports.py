"""Experiment reports: a PDF per experiment, written from the numbers, stored as an artifact.

:func:`assemble_report` gathers what a stakeholder needs from the registry and the latest results
snapshot (computed on the spot when none is stored): a plain-language executive summary with a
recommendation, automatic risk checks, the results table, a cumulative series and the plan.
:func:`render_pdf` lays it out with fpdf2 (charts drawn by matplotlib's Agg backend, text in the
DejaVu Sans font bundled with matplotlib, so any Unicode name renders without system fonts).
:func:`generate_report` stores the PDF in the artifact store (:mod:`core.artifacts`) and records
it (key, size, SHA-256, who) in ``report_artifacts``, audited on the experiment.

Risk checks (:data:`RISK_CHECKS`), each flagged / passed / not checked with a one-line reason:

* ``srm`` — the results' chi-square test of assignments against the planned split (p < 0.001).
* ``underpowered`` — the smallest variant is below the planned sample (not raised for a
  sequential test that already reached significance), or, for a primary result that is not
  significant, the MDE achievable with the observed baseline and sample (the planner's
  ``mde_proportion`` / ``mde_mean`` at the achieved n, alpha, power and number of variants)
  exceeds the planned MDE by more than 10%.
* ``read_early`` — a fixed-horizon experiment completed (or given a decision) before every
  variant reached the planned sample.
* ``plan_deviation`` — audited changes to the frozen analysis plan after launch.
* ``multiple_comparisons`` — several treatments share the primary metric, or the correction
  changed a call (raw p < alpha <= adjusted p); the explanation gives the counts and method.
* ``guardrail_breach`` — a guardrail's one-sided harm test, adjusted over guardrails, < alpha.
* ``drift`` — the primary effect in the first half of the data days differs from the second
  half (two-sample z-test on the two independent estimates, alpha / number of treatments);
  a shrinking effect is called a likely novelty effect.
* ``multiple_exposures`` — stored data are per-variant aggregates, so units in several variants
  are only known to be absent when every load was a user-level file (ingestion refuses a unit
  in two variants); with aggregated or SQL loads the check cannot be made from stored data.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.stats import norm
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import registry
from core.analysis import results as results_service
from core.analysis.results import MetricComparison, ResultsSnapshot, SeriesPoint
from core.artifacts import ArtifactStore, get_store, sha256_hex
from core.auth import Actor
from core.config import get_settings
from core.errors import DomainError, NotFound
from core.registry import AuditRecord, ExperimentView, transaction
from core.stats import (
    SufficientStats,
    mde_mean,
    mde_proportion,
    proportion_ztest_from_stats,
    welch_ttest_from_stats,
)
from core.types import CheckStatus, Recommendation, RiskCode
from db import metric_repository as mrepo
from db import repositories as repo
from db.models import Experiment, ReportArtifact

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
RECOMMENDATION_LABELS: dict[str, str] = {
    "ship": "Ship", "dont_ship": "Don't ship", "keep_running": "Keep running",
    "investigate": "Investigate", "none": "No recommendation yet",
}
DECISION_LABELS = {"ship": "Ship", "dont_ship": "Don't ship", "iterate": "Iterate"}
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
MDE_TOLERANCE = 1.10
"""The achieved MDE may exceed the planned one by 10% before the report calls it underpowered."""
DRIFT_MIN_DAYS = 4
PORTFOLIO_CSV_COLUMNS = (
    "id", "name", "owner", "status", "decision", "primary_metric", "treatment", "primary_lift",
    "lift_ci_low", "lift_ci_high", "adjusted_p_value", "decision_state", "data_through",
    "results_source",
)


# --------------------------------------------------------------------------- content


@dataclass(frozen=True)
class RiskCheck:
    code: RiskCode
    title: str
    status: CheckStatus
    explanation: str


@dataclass(frozen=True)
class ReportContent:
    """Everything the PDF shows, computed from the database; rendering adds nothing."""

    experiment: ExperimentView
    generated_at: datetime
    generated_by: str
    snapshot: ResultsSnapshot | None
    snapshot_source: str
    """Where the numbers come from: a stored snapshot, or computed for this report."""
    stale: bool
    """The stored data changed since the snapshot the report shows."""
    has_data: bool
    tested: str
    primary_sentences: tuple[str, ...]
    recommendation: Recommendation
    recommendation_text: str
    decision_text: str
    checks: tuple[RiskCheck, ...]
    series: tuple[SeriesPoint, ...]
    deviations: tuple[AuditRecord, ...]
    data_sources: tuple[str, ...]
    methods: tuple[str, ...] = field(default_factory=tuple)

    @property
    def flags(self) -> tuple[RiskCheck, ...]:
        return tuple(c for c in self.checks if c.status == "flagged")

    @property
    def summary_text(self) -> str:
        return " ".join([self.tested, *self.primary_sentences, self.recommendation_text,
                         self.decision_text])


@dataclass(frozen=True)
class ReportArtifactView:
    id: int
    experiment_id: int
    experiment_name: str
    key: str
    size_bytes: int
    sha256: str
    created_at: datetime | None
    created_by: str

    @property
    def filename(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ReportDownload:
    report: ReportArtifactView
    content: bytes


class ArtifactCorrupt(DomainError):
    """A stored artifact no longer matches the checksum recorded when it was written."""

    http_status = 500


# --------------------------------------------------------------------------- formatting


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x * 100:+.{digits}f}%"


def _value(kind: str, x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:.2f}%" if kind == "binomial" else f"{x:,.4g}"


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "< 0.0001" if p < 0.0001 else f"{p:.4f}"


def _ci_label(alpha: float, sequential: bool) -> str:
    level = f"{(1 - alpha) * 100:g}%"
    return f"{level} always-valid CI" if sequential else f"{level} CI"


def _effect(row: MetricComparison, alpha: float) -> str:
    """'lift +13.4% (95% CI +4.1% to +22.8%)' or the absolute difference without a lift."""
    ci = _ci_label(alpha, row.sequential)
    if row.lift is not None:
        return f"lift {_pct(row.lift)} ({ci} {_pct(row.lift_ci_low)} to {_pct(row.lift_ci_high)})"
    if row.diff is None:
        return "no estimate"
    return (f"difference {row.diff:+.4g} ({ci} {row.diff_ci_low:+.4g} to "
            f"{row.diff_ci_high:+.4g})")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _method(correction: str) -> str:
    return CORRECTION_NAMES.get(correction, correction)


def _when(d: datetime | date | None) -> str:
    if d is None:
        return "—"
    if isinstance(d, datetime):
        return d.strftime("%Y-%m-%d %H:%M UTC")
    return d.isoformat()


# --------------------------------------------------------------------------- summary


def _tested(exp: ExperimentView) -> str:
    arms = ", ".join(f"{v.name} ({v.weight:.0%})" for v in exp.variants) or "no variants yet"
    hypothesis = exp.hypothesis.strip() or "(no hypothesis recorded)"
    segment = f" on {exp.target_segment}" if exp.target_segment else ""
    return (f"What was tested: {hypothesis} Variants{segment}: {arms}; primary metric "
            f"{exp.primary_metric or '(none)'}.")


def primary_sentence(row: MetricComparison, snapshot: ResultsSnapshot) -> str:
    """The primary-metric result in one sentence: lift, CI, significant or not, and why."""
    alpha = snapshot.alpha
    method = _method(snapshot.correction)
    head = (f"Primary metric {row.metric}: {row.treatment} vs {row.control} "
            f"{_value(row.kind, row.treatment_mean)} vs {_value(row.kind, row.control_mean)}, "
            f"{_effect(row, alpha)}")
    state = row.decision_state
    adj = row.adjusted_p_value
    if state == "srm_untrustworthy":
        verdict = "not trustworthy because of the sample ratio mismatch"
    elif row.p_value is None:
        verdict = "not tested yet (too little data)"
    elif state == "significant":
        verdict = f"statistically significant ({method}-adjusted p = {_p(adj)} < {alpha:g})"
    elif state == "too_early":
        progress = snapshot.progress
        share = f" at {progress:.0%} of the planned sample" if progress is not None else ""
        verdict = (f"too early to call{share} ({method}-adjusted p = {_p(adj)}, "
                   "not yet significant)")
    else:
        verdict = (f"not statistically significant ({method}-adjusted p = {_p(adj)} "
                   f">= {alpha:g})")
    return f"{head}: {verdict}."


def _recommend(
    exp: ExperimentView, snapshot: ResultsSnapshot | None, has_data: bool,
    checks: dict[str, RiskCheck],
) -> tuple[Recommendation, str]:
    if not has_data or snapshot is None:
        if exp.status == "running":
            return "keep_running", "Keep running: no metric data has been loaded yet."
        return "none", (f"No recommendation: the experiment is {exp.status} and has no metric "
                        "data.")
    if snapshot.srm is not None and snapshot.srm.flagged:
        return "investigate", ("Investigate: the sample ratio mismatch means the randomisation "
                               "or logging is broken, so no result can be trusted until it is "
                               "fixed.")
    breaches = [r for r in snapshot.rows(role="guardrail") if _breached(r, snapshot.alpha)]
    if breaches:
        names = ", ".join(sorted({f"{r.metric} ({r.treatment})" for r in breaches}))
        return "dont_ship", f"Don't ship: guardrail {names} got significantly worse."
    primary = snapshot.rows(role="primary")
    better = [r for r in primary if r.decision_state == "significant" and r.diff is not None
              and (r.diff > 0) == r.higher_is_better]
    worse = [r for r in primary if r.decision_state == "significant" and r not in better]
    early = [r for r in primary if r.decision_state == "too_early"]
    if better:
        best = max(better, key=lambda r: abs(r.lift if r.lift is not None else r.diff or 0.0))
        caveat = " Review the risk flags below first." if any(
            c.status == "flagged" for c in checks.values()) else ""
        return "ship", (f"Ship {best.treatment}: it significantly improves {best.metric} "
                        f"({_pct(best.lift)}) with no guardrail harm.{caveat}")
    if early:
        return "keep_running", ("Keep running: the primary metric cannot be read yet "
                                f"({early[0].reason})")
    if worse:
        return "dont_ship", (f"Don't ship: {worse[0].treatment} makes {worse[0].metric} "
                             "significantly worse.")
    underpowered = checks.get("underpowered")
    inconclusive = (" The test was underpowered, so a smaller effect cannot be ruled out."
                    if underpowered and underpowered.status == "flagged" else "")
    return "dont_ship", ("Don't ship: no significant difference on the primary metric, so the "
                         f"change did not show the effect it was meant to have.{inconclusive}")


def _decision_text(exp: ExperimentView, recommendation: Recommendation) -> str:
    if not exp.decision:
        if exp.status == "abandoned":
            return f"Recorded decision: none; abandoned ({exp.abandon_reason or 'no reason'})."
        return "Recorded decision: none yet."
    label = DECISION_LABELS.get(exp.decision, exp.decision)
    when = f" on {exp.actual_end.isoformat()}" if exp.actual_end else ""
    text = f"Recorded decision: {label}{when}."
    if recommendation in ("ship", "dont_ship") and exp.decision in ("ship", "dont_ship") and (
        exp.decision != recommendation
    ):
        text += " It differs from the recommendation computed from the numbers."
    return text


# --------------------------------------------------------------------------- risk checks


def _breached(row: MetricComparison, alpha: float) -> bool:
    return row.role == "guardrail" and row.adjusted_p_value is not None and (
        row.adjusted_p_value < alpha
    )


def _check(code: RiskCode, status: CheckStatus, explanation: str) -> RiskCheck:
    return RiskCheck(code=code, title=RISK_CHECKS[code], status=status, explanation=explanation)


def _srm_check(snapshot: ResultsSnapshot | None) -> RiskCheck:
    if snapshot is None or snapshot.srm is None:
        return _check("srm", "not_checked", "No assignment counts yet.")
    srm = snapshot.srm
    observed = ", ".join(f"{v} {n:,}" for v, n in zip(srm.variants, srm.observed, strict=True))
    split = "/".join(f"{w:.0%}" for w in srm.weights)
    if srm.flagged:
        return _check("srm", "flagged", (
            f"Assignments ({observed}) do not match the planned {split} split (chi-square "
            f"p = {srm.p_value:.2g} < {srm.threshold:g}): randomisation or logging is broken."))
    return _check("srm", "passed", (
        f"Assignments ({observed}) match the planned {split} split (p = {srm.p_value:.2g})."))


@dataclass
class _Sums:
    n: int = 0
    sum: float = 0.0
    sum_squares: float = 0.0

    def add(self, row: mrepo.DailyStatRow) -> None:
        self.n += row.n
        self.sum += row.sum
        self.sum_squares += row.sum_squares

    @property
    def stats(self) -> SufficientStats:
        return SufficientStats(self.n, self.sum, self.sum_squares)


def _achieved_mde(kind: str, control: _Sums, treatment_n: int, *, alpha: float, power: float,
                  variants: int) -> float | None:
    """Relative MDE reachable with the achieved control n and the observed control baseline."""
    if control.n < 2 or treatment_n < 2:
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


def _underpowered_check(
    exp: ExperimentView, snapshot: ResultsSnapshot | None, arms: dict[tuple[str, str], _Sums],
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
            f"planned units ({snapshot.progress:.0%})")
    achieved = None
    if exp.mde and exp.primary_metric and exp.variants and primary and not significant:
        control = arms.get((exp.primary_metric, exp.variants[0].name), _Sums())
        treatment_n = min((arms.get((exp.primary_metric, v.name), _Sums()).n
                           for v in exp.variants[1:]), default=0)
        achieved = _achieved_mde(primary[0].kind, control, treatment_n, alpha=exp.alpha,
                                 power=exp.power, variants=len(exp.variants))
        if achieved is not None and achieved > exp.mde * MDE_TOLERANCE:
            reasons.append(f"with the observed baseline the test can detect {achieved:.1%}, "
                           f"not the planned MDE of {exp.mde:.1%}")
    if reasons:
        text = "; ".join(reasons)
        return _check("underpowered", "flagged", text[0].upper() + text[1:]
                      + ": a real effect of the planned size could be missed.")
    detail = f" (achieved MDE {achieved:.1%} vs planned {exp.mde:.1%})" if achieved else ""
    if below:
        return _check("underpowered", "passed",
                      "Below the planned sample, but the sequential test is already "
                      f"significant{detail}.")
    return _check("underpowered", "passed", f"The planned sample is reached{detail}.")


def _read_early_check(exp: ExperimentView, snapshot: ResultsSnapshot | None) -> RiskCheck:
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
            f"A fixed-horizon test was concluded at {snapshot.progress:.0%} of its planned "
            "sample: stopping before the plan inflates the false-positive rate."))
    return _check("read_early", "passed", "Concluded after the planned sample was reached.")


def _deviation_check(exp: ExperimentView, deviations: Sequence[AuditRecord]) -> RiskCheck:
    if not exp.is_frozen:
        return _check("plan_deviation", "passed", "Not launched: the plan is not frozen yet.")
    if not deviations:
        return _check("plan_deviation", "passed", "The plan frozen at launch was not changed.")
    fields_changed = sorted({f for d in deviations for f in d.changes})
    last = deviations[-1]
    return _check("plan_deviation", "flagged", (
        f"{_count(len(deviations), 'change')} to the frozen plan after launch "
        f"({', '.join(fields_changed)}); latest by {last.actor} on {_when(last.at)}: "
        f"\"{last.reason or 'no reason'}\"."))


def _multiple_comparisons_check(snapshot: ResultsSnapshot | None) -> RiskCheck:
    if snapshot is None or not snapshot.comparisons:
        return _check("multiple_comparisons", "not_checked", "No results yet.")
    family = [r for r in snapshot.comparisons if r.role in ("primary", "secondary")]
    guardrails = [r for r in snapshot.comparisons if r.role == "guardrail"]
    treatments = sorted({r.treatment for r in snapshot.comparisons})
    metrics = sorted({r.metric for r in family})
    method = _method(snapshot.correction)
    alpha = snapshot.alpha
    changed = [r for r in snapshot.comparisons if r.p_value is not None
               and r.adjusted_p_value is not None and r.p_value < alpha <= r.adjusted_p_value]
    counts = (f"{_count(len(family), 'comparison')} ({_count(len(metrics), 'metric')} x "
              f"{_count(len(treatments), 'treatment')}) plus "
              f"{_count(len(guardrails), 'guardrail test')}, {method}-adjusted within each "
              "family")
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


def _guardrail_check(snapshot: ResultsSnapshot | None) -> RiskCheck:
    if snapshot is None or not snapshot.comparisons:
        return _check("guardrail_breach", "not_checked", "No results yet.")
    guardrails = snapshot.rows(role="guardrail")
    if not guardrails:
        return _check("guardrail_breach", "passed", "The experiment has no guardrail metric.")
    breaches = [r for r in guardrails if _breached(r, snapshot.alpha)]
    if breaches:
        return _check("guardrail_breach", "flagged", "; ".join(
            f"{r.metric} is significantly worse in {r.treatment}: {_effect(r, snapshot.alpha)}, "
            f"adjusted one-sided p = {_p(r.adjusted_p_value)}" for r in breaches) + ".")
    names = ", ".join(sorted({r.metric for r in guardrails}))
    return _check("guardrail_breach", "passed", f"No significant harm on {names}.")


def _drift_check(
    exp: ExperimentView, kind: str | None, by_day: dict[date, dict[str, _Sums]],
) -> RiskCheck:
    days = sorted(by_day)
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
            c, t = _Sums(), _Sums()
            for d in period:
                for arm, target in ((control, c), (treatment, t)):
                    s = by_day[d].get(arm)
                    if s is not None:
                        target.n += s.n
                        target.sum += s.sum
                        target.sum_squares += s.sum_squares
            if c.n < 2 or t.n < 2:
                break
            test = proportion_ztest_from_stats if kind == "binomial" else welch_ttest_from_stats
            try:
                r = test(c.stats, t.stats, alpha=exp.alpha)
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
        span = (f"first half {_when(periods[0][0])}..{_when(periods[0][-1])} "
                f"{_pct(early.lift)}, second half {_pct(late.lift)}")
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


def _exposure_check(sources: Sequence[str], has_data: bool) -> RiskCheck:
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


# --------------------------------------------------------------------------- assembly


def _ingest_sources(session: Session, experiment_id: int) -> list[AuditRecord]:
    return [r for r in registry.audit_history(session, experiment_id=experiment_id)
            if r.action == "ingest"]


def _data_sources(session: Session, exp: ExperimentView, loads: Sequence[AuditRecord],
                  snapshot: ResultsSnapshot | None, source: str, stale: bool) -> list[str]:
    lines = []
    for r in loads:
        src = (r.changes.get("source") or [None, "?"])[1]
        days = (r.changes.get("days") or [None, "?"])[1]
        rows = (r.changes.get("rows_written") or [None, "?"])[1]
        lines.append(f"{src}: days {days}, {rows} daily rows, loaded {_when(r.at)} by {r.actor}.")
    sql = mrepo.get_metric_source(session, experiment_id=exp.id)
    if sql is not None:
        where = "the app database" if sql.url is None else "an external database"
        lines.append(f"SQL push-down source on {where}, last set by {sql.updated_by}.")
    if snapshot is not None:
        lines.append(
            f"Results: {source}; data from {_when(snapshot.first_day)} through "
            f"{_when(snapshot.data_through)} (freshness); computed {_when(snapshot.computed_at)}.")
    if stale:
        lines.append("The stored data changed after this snapshot: refresh the results for "
                     "the newest numbers.")
    if not lines:
        lines.append("No metric data loaded yet.")
    return lines


def _methods(snapshot: ResultsSnapshot | None) -> list[str]:
    out = ["Sample ratio mismatch: chi-square goodness-of-fit test of assignment counts against "
           "the planned split; flagged at p < 0.001."]
    if snapshot is not None and snapshot.comparisons:
        tests = sorted({c.test for c in snapshot.comparisons if c.test})
        names = {"welch": "Welch's t-test on means", "welch_cuped": "Welch's t-test on "
                 "CUPED-adjusted means (pre-period covariate)", "z": "two-proportion z-test"}
        out.append("Tests: " + "; ".join(names.get(t, t) for t in tests) + ".")
        mode = ("always-valid (sequential) confidence sequences tuned to the planned sample"
                if snapshot.analysis_mode == "sequential" else "fixed-horizon tests")
        out.append(f"Mode: {mode}; two-sided for primary and secondary metrics, one-sided "
                   "harm tests for guardrails (always-valid before the plan is met).")
        out.append(f"Multiple comparisons: {_method(snapshot.correction)} adjustment within "
                   "the primary+secondary family and within the guardrail family.")
    out.append("Underpowered: achieved MDE from the planner (R power.prop.test / power.t.test "
               "equations) at the achieved sample with the observed control baseline.")
    out.append("Drift: the primary effect in the first and second half of the data days, "
               "compared with a two-sample z-test on the difference (alpha split over "
               "treatments).")
    return out


def _primary_arms(session: Session, exp: ExperimentView, as_of: date | None
                  ) -> tuple[str | None, dict[tuple[str, str], _Sums],
                             dict[date, dict[str, _Sums]]]:
    """Total and per-day sums of the primary metric per variant, from the stored daily stats."""
    row = session.get(Experiment, exp.id)
    if row is None or row.primary_metric is None:
        return None, {}, {}
    names = {v.id: v.name for v in row.variants}
    arms: dict[tuple[str, str], _Sums] = {}
    by_day: dict[date, dict[str, _Sums]] = {}
    for stat in mrepo.daily_stats(session, experiment_id=exp.id, through=as_of):
        if stat.metric_id != row.primary_metric_id or stat.variant_id not in names:
            continue
        variant = names[stat.variant_id]
        arms.setdefault((row.primary_metric.name, variant), _Sums()).add(stat)
        by_day.setdefault(stat.day, {}).setdefault(variant, _Sums()).add(stat)
    return row.primary_metric.kind, arms, by_day


def assemble_report(
    session: Session, *, experiment_id: int, generated_by: str, now: datetime | None = None
) -> ReportContent:
    """Gather and compute the report of one experiment (reads only)."""
    now = now or datetime.now(UTC)
    exp = registry.get_experiment(session, experiment_id=experiment_id)
    stored = results_service.latest_snapshot(session, experiment_id=experiment_id)
    current = results_service.compute_results(
        session, experiment_id=experiment_id, as_of=stored.as_of if stored else None)
    if stored is not None:
        snapshot, stale = stored, stored.fingerprint != current.fingerprint
        source = (f"stored snapshot #{stored.snapshot_id} computed by "
                  f"{stored.computed_by or 'unknown'}")
    else:
        snapshot, stale, source = current, False, "computed for this report (no stored snapshot)"
    has_data = snapshot.data_through is not None
    if not has_data:
        snapshot_or_none: ResultsSnapshot | None = None
    else:
        snapshot_or_none = snapshot
    deviations = registry.plan_deviations(session, experiment_id=experiment_id)
    loads = _ingest_sources(session, experiment_id)
    sources = [str((r.changes.get("source") or [None, ""])[1]) for r in loads]
    kind, arms, by_day = _primary_arms(session, exp, snapshot.as_of)

    checks_list = [
        _srm_check(snapshot_or_none),
        _underpowered_check(exp, snapshot_or_none, arms),
        _read_early_check(exp, snapshot_or_none),
        _deviation_check(exp, deviations),
        _multiple_comparisons_check(snapshot_or_none),
        _guardrail_check(snapshot_or_none),
        _drift_check(exp, kind, by_day),
        _exposure_check(sources, has_data),
    ]
    checks: dict[str, RiskCheck] = {c.code: c for c in checks_list}
    primary: tuple[str, ...]
    if snapshot_or_none is None:
        primary = ("No metric data has been loaded for this experiment yet, so there are no "
                   "results to report.",)
    else:
        rows = snapshot_or_none.rows(role="primary")
        primary = tuple(primary_sentence(r, snapshot_or_none) for r in rows) or (
            "The experiment has no primary metric, so there is no headline result.",)
    recommendation, recommendation_text = _recommend(exp, snapshot_or_none, has_data, checks)
    series: tuple[SeriesPoint, ...] = ()
    if has_data and exp.primary_metric:
        series = tuple(results_service.cumulative_series(
            session, experiment_id=experiment_id, metric=exp.primary_metric,
            as_of=snapshot.as_of or snapshot.data_through))
    return ReportContent(
        experiment=exp,
        generated_at=now,
        generated_by=generated_by,
        snapshot=snapshot_or_none,
        snapshot_source=source,
        stale=stale,
        has_data=has_data,
        tested=_tested(exp),
        primary_sentences=primary,
        recommendation=recommendation,
        recommendation_text=recommendation_text,
        decision_text=_decision_text(exp, recommendation),
        checks=tuple(checks_list),
        series=series,
        deviations=tuple(deviations),
        data_sources=tuple(_data_sources(session, exp, loads, snapshot_or_none, source, stale)),
        methods=tuple(_methods(snapshot_or_none)),
    )


# --------------------------------------------------------------------------- charts


_STATE_COLOURS = {
    "significant": "#1a7f37", "not_significant": "#6e7781", "too_early": "#9a6700",
    "srm_untrustworthy": "#cf222e", "guardrail_breach": "#cf222e",
}


def forest_plot_png(snapshot: ResultsSnapshot) -> bytes | None:
    """Lift and CI of every metric x treatment (PNG), or None without estimates."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in snapshot.comparisons if r.lift is not None]
    if not rows:
        return None
    fig = Figure(figsize=(7.2, 0.42 * len(rows) + 1.1), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    for y, r in zip(ys, rows, strict=True):
        colour = _STATE_COLOURS.get(r.decision_state, "#24292f")
        low = r.lift_ci_low if r.lift_ci_low is not None else r.lift
        high = r.lift_ci_high if r.lift_ci_high is not None else r.lift
        assert r.lift is not None and low is not None and high is not None
        ax.plot([low * 100, high * 100], [y, y], color=colour, linewidth=2)
        ax.plot([r.lift * 100], [y], "o", color=colour, markersize=6)
    ax.axvline(0, color="#24292f", linewidth=0.8, linestyle="--")
    ax.set_yticks(ys, [f"{r.metric} ({r.role})\n{r.treatment} vs {r.control}" for r in rows],
                  fontsize=7)
    ax.set_xlabel(f"Lift, % ({_ci_label(snapshot.alpha, snapshot.analysis_mode == 'sequential')})",
                  fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title("Forest plot: relative lift by metric and treatment", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def cumulative_lift_png(series: Sequence[SeriesPoint], metric: str, alpha: float) -> bytes | None:
    """Cumulative lift of the primary metric per treatment over time, with its band (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = [p for p in series if p.lift is not None]
    if not points:
        return None
    fig = Figure(figsize=(7.2, 3.0), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for treatment in dict.fromkeys(p.treatment for p in points):
        mine = [p for p in points if p.treatment == treatment]
        days = np.array([p.day for p in mine], dtype="datetime64[D]")
        lifts = [p.lift * 100 if p.lift is not None else math.nan for p in mine]
        ax.plot(days, lifts, marker=".", label=treatment)
        low = [p.lift_ci_low * 100 if p.lift_ci_low is not None else math.nan for p in mine]
        high = [p.lift_ci_high * 100 if p.lift_ci_high is not None else math.nan for p in mine]
        ax.fill_between(days, low, high, alpha=0.15)
    ax.axhline(0, color="#24292f", linewidth=0.8, linestyle="--")
    sequential = points[0].sequential
    ax.set_ylabel(f"Cumulative lift, % ({_ci_label(alpha, sequential)})", fontsize=8)
    ax.set_title(f"Cumulative lift of {metric} over time", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


# --------------------------------------------------------------------------- PDF


@lru_cache
def _font_files() -> dict[str, Path]:
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return {"": folder / "DejaVuSans.ttf", "B": folder / "DejaVuSans-Bold.ttf",
            "I": folder / "DejaVuSans-Oblique.ttf"}


class _Pdf:
    """A thin layout helper over fpdf2: headings, wrapped paragraphs, bullets, tables."""

    def __init__(self, title: str) -> None:
        from fpdf import FPDF

        pdf = FPDF(orientation="P", unit="mm", format="A4")
        for style, path in _font_files().items():
            pdf.add_font("DejaVu", style, str(path))
        pdf.set_margins(15, 15, 15)
        pdf.set_auto_page_break(True, margin=15)
        pdf.set_title(title)
        pdf.alias_nb_pages()
        self.pdf = pdf
        pdf.add_page()

    def heading(self, text: str, size: float = 13) -> None:
        from fpdf.enums import XPos, YPos

        pdf = self.pdf
        if pdf.get_y() > pdf.h - 40:
            pdf.add_page()
        pdf.ln(2)
        pdf.set_font("DejaVu", "B", size)
        pdf.multi_cell(0, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
        pdf.ln(1)

    def para(self, text: str, size: float = 9.5, style: str = "") -> None:
        from fpdf.enums import XPos, YPos

        self.pdf.set_font("DejaVu", style, size)
        self.pdf.multi_cell(0, size * 0.48, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT,
                            align="L")
        self.pdf.ln(1)

    def bullet(self, label: str, text: str, size: float = 9.5) -> None:
        from fpdf.enums import XPos, YPos

        pdf = self.pdf
        pdf.set_font("DejaVu", "B", size)
        pdf.multi_cell(0, size * 0.48, f"• {label}", new_x=XPos.LMARGIN, new_y=YPos.NEXT,
                       align="L")
        pdf.set_font("DejaVu", "", size)
        pdf.set_x(pdf.l_margin + 4)
        pdf.multi_cell(0, size * 0.48, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
        pdf.ln(0.8)

    def table(self, rows: Sequence[Sequence[str]], widths: Sequence[float],
              size: float = 7.5) -> None:
        from fpdf.fonts import FontFace

        self.pdf.set_font("DejaVu", "", size)
        with self.pdf.table(col_widths=tuple(widths), text_align="LEFT", line_height=size * 0.5,
                            headings_style=FontFace(emphasis="BOLD", fill_color=(235, 238, 241)),
                            width=sum(widths), align="LEFT") as table:
            for row in rows:
                cells = table.row()
                for value in row:
                    cells.cell(value)
        self.pdf.ln(2)

    def image(self, png: bytes) -> None:
        pdf = self.pdf
        width = pdf.w - pdf.l_margin - pdf.r_margin
        pdf.image(io.BytesIO(png), x=pdf.l_margin, w=width)
        pdf.ln(2)


def render_pdf(content: ReportContent, *, charts: bool = True) -> bytes:
    """The report as PDF bytes (``charts=False`` leaves the two images out)."""
    exp = content.experiment
    doc = _Pdf(f"Experiment report: {exp.name}")
    pdf = doc.pdf
    pdf.set_author(content.generated_by)
    pdf.set_creator("ExperimentOS")
    pdf.set_creation_date(content.generated_at)

    # ---- title block
    doc.heading(exp.name, size=17)
    doc.para(
        f"Owner: {exp.owner} · Status: {exp.status} · Mode: {exp.analysis_mode}\n"
        f"Planned: {_when(exp.planned_start)} to {_when(exp.planned_end)} · Actual: "
        f"{_when(exp.actual_start)} to {_when(exp.actual_end) if exp.actual_end else 'ongoing'}\n"
        f"Generated {_when(content.generated_at)} by {content.generated_by}",
        size=9, style="I")

    # ---- executive summary
    doc.heading("Executive summary")
    doc.para(content.tested)
    for sentence in content.primary_sentences:
        doc.para(sentence)
    doc.para(f"Recommendation: {content.recommendation_text}", style="B")
    doc.para(content.decision_text)

    # ---- risk flags
    doc.heading("Risk flags")
    flags = content.flags
    if not flags:
        doc.para("No risk flag was raised by the automatic checks.")
    for check in flags:
        doc.bullet(f"⚠ {check.title}", check.explanation)
    others = [c for c in content.checks if c.status != "flagged"]
    if others:
        doc.para("Checks without a flag:", size=8.5, style="B")
        for check in others:
            status = "passed" if check.status == "passed" else "not checked"
            doc.para(f"{check.title} ({status}): {check.explanation}", size=8)

    # ---- results
    snapshot = content.snapshot
    doc.heading("Results")
    if snapshot is None:
        doc.para("No metric data has been loaded yet: there are no results to show.")
    else:
        rows = [("Metric (role)", "Variant vs control", "Control", "Treatment", "Lift",
                 _ci_label(snapshot.alpha, snapshot.analysis_mode == "sequential"), "Adj. p",
                 "State")]
        for r in snapshot.comparisons:
            ci = (f"{_pct(r.lift_ci_low)} to {_pct(r.lift_ci_high)}" if r.lift is not None
                  else "n/a")
            rows.append((f"{r.metric} ({r.role})", f"{r.treatment} vs {r.control}",
                         f"{_value(r.kind, r.control_mean)} (n={r.control_n:,})",
                         f"{_value(r.kind, r.treatment_mean)} (n={r.treatment_n:,})",
                         _pct(r.lift), ci, _p(r.adjusted_p_value),
                         r.decision_state.replace("_", " ")))
        doc.table(rows, widths=(30, 27, 22, 22, 15, 27, 15, 22))
        units = ", ".join(f"{v.name} {v.units:,}" for v in snapshot.variants)
        doc.para(f"Units: {units}. Data through {_when(snapshot.data_through)}.", size=8)
        if charts:
            doc.heading("Charts", size=11)
            forest = forest_plot_png(snapshot)
            if forest:
                doc.image(forest)
                doc.para("Green: significant; grey: not significant; amber: too early; red: "
                         "sample ratio mismatch or guardrail breach.", size=7.5, style="I")
            cumulative = cumulative_lift_png(content.series, exp.primary_metric or "",
                                             snapshot.alpha)
            if cumulative:
                doc.image(cumulative)
                if snapshot.analysis_mode != "sequential":
                    doc.para("Fixed-horizon intervals are valid only once the planned sample is "
                             "reached; earlier days show the trend, not a result.", size=7.5,
                             style="I")
            elif forest is None:
                doc.para("Not enough data for charts yet.")

    # ---- appendix
    doc.heading("Appendix: plan, methods, data")
    doc.heading("Analysis plan", size=10.5)
    frozen = f"frozen at launch {_when(exp.plan_frozen_at)}" if exp.is_frozen else "not frozen"
    plan = [
        ("Hypothesis", exp.hypothesis or "—"),
        ("Target segment", exp.target_segment or "—"),
        ("Primary metric", exp.primary_metric or "—"),
        ("Guardrail metrics", ", ".join(exp.guardrail_metrics) or "—"),
        ("Secondary metrics", ", ".join(exp.secondary_metrics) or "—"),
        ("Variants", ", ".join(f"{v.name} {v.weight:.0%}" for v in exp.variants) or "—"),
        ("Planned sample", f"{exp.planned_sample_size:,} units per variant"
         if exp.planned_sample_size else "—"),
        ("MDE", f"{exp.mde:.1%} relative" if exp.mde else "—"),
        ("Alpha / power", f"{exp.alpha:g} / {exp.power:g}"),
        ("Analysis mode", f"{exp.analysis_mode}; correction {_method(exp.correction)}"),
        ("Plan status", frozen),
    ]
    doc.table([("Item", "Value"), *plan], widths=(40, 140), size=8.5)
    if content.deviations:
        doc.heading("Plan deviations", size=10.5)
        for d in content.deviations:
            changes = "; ".join(f"{k}: {v[0]!r} → {v[1]!r}" for k, v in d.changes.items())
            doc.para(f"{_when(d.at)} by {d.actor}: {changes}. Reason: {d.reason or '—'}",
                     size=8.5)
    doc.heading("Methods", size=10.5)
    for line in content.methods:
        doc.para(line, size=8.5)
    doc.heading("Data sources and freshness", size=10.5)
    for line in content.data_sources:
        doc.para(line, size=8.5)
    return bytes(pdf.output())


# --------------------------------------------------------------------------- services


def build_report_pdf(
    session: Session, *, experiment_id: int, generated_by: str, now: datetime | None = None,
    charts: bool = True,
) -> bytes:
    """The PDF report of one experiment, not stored (see :func:`generate_report`)."""
    content = assemble_report(session, experiment_id=experiment_id, generated_by=generated_by,
                              now=now)
    return render_pdf(content, charts=charts)


def _view(row: ReportArtifact, name: str) -> ReportArtifactView:
    created = row.created_at
    if created is not None and created.tzinfo is None:  # stored as naive UTC
        created = created.replace(tzinfo=UTC)
    return ReportArtifactView(
        id=row.id, experiment_id=row.experiment_id, experiment_name=name, key=row.key,
        size_bytes=row.size_bytes, sha256=row.sha256, created_at=created,
        created_by=row.created_by,
    )


def report_key(experiment_id: int, generated_at: datetime, sha256: str) -> str:
    return (f"reports/experiment-{experiment_id}/"
            f"{generated_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{sha256[:12]}.pdf")


def generate_report(
    session: Session, *, experiment_id: int, actor: Actor, store: ArtifactStore | None = None,
    now: datetime | None = None,
) -> ReportArtifactView:
    """Build the PDF, write it to the artifact store and record it (audited as ``report``).

    The record is written in the same transaction as the audit entry; if the store refuses the
    write nothing is recorded.
    """
    actor.require("editor", "generate reports")
    store = store or get_store(get_settings())
    now = now or datetime.now(UTC)
    with transaction(session):
        content = assemble_report(session, experiment_id=experiment_id, generated_by=actor.name,
                                  now=now)
        pdf = render_pdf(content)
        digest = sha256_hex(pdf)
        key = report_key(experiment_id, now, digest)
        row = ReportArtifact(experiment_id=experiment_id, key=key, size_bytes=len(pdf),
                             sha256=digest, created_by=actor.name,
                             created_at=now.astimezone(UTC).replace(tzinfo=None))
        session.add(row)
        session.flush()
        stored = store.put(key, pdf, content_type="application/pdf")
        repo.add_audit(
            session, actor=actor.name, entity_type="experiment", entity_id=experiment_id,
            action="report",
            changes={"report": [None, key], "sha256": [None, stored.sha256],
                     "flags": [None, [c.code for c in content.flags]],
                     "recommendation": [None, content.recommendation]},
        )
        view = _view(row, content.experiment.name)
    return view


def list_reports(session: Session, *, experiment_id: int | None = None
                 ) -> list[ReportArtifactView]:
    """Recorded reports, newest first (of one experiment, or all)."""
    query = select(ReportArtifact, Experiment.name).join(
        Experiment, Experiment.id == ReportArtifact.experiment_id)
    if experiment_id is not None:
        query = query.where(ReportArtifact.experiment_id == experiment_id)
    query = query.order_by(ReportArtifact.created_at.desc(), ReportArtifact.id.desc())
    return [_view(row, name) for row, name in session.execute(query)]


def download_report(
    session: Session, *, report_id: int, store: ArtifactStore | None = None
) -> ReportDownload:
    """A recorded report's bytes, checked against the SHA-256 recorded when it was written."""
    row = session.get(ReportArtifact, report_id)
    if row is None:
        raise NotFound(f"No report with id {report_id}.")
    store = store or get_store(get_settings())
    content = store.get(row.key)
    if sha256_hex(content) != row.sha256:
        raise ArtifactCorrupt(
            f"Report '{row.key}' in {store.description} does not match the checksum recorded "
            "when it was written: it was altered or damaged; generate a new report.")
    exp = session.get(Experiment, row.experiment_id)
    return ReportDownload(report=_view(row, exp.name if exp else "?"), content=content)


def portfolio_csv(session: Session) -> str:
    """Every experiment with status, decision and primary-metric lift, as CSV.

    The lift comes from the latest stored snapshot, or is computed on the spot when none is
    stored (``results_source`` says which). One row per experiment and treatment; an experiment
    without data has one row with the result columns empty."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(PORTFOLIO_CSV_COLUMNS)
    for exp in registry.all_experiments(session):
        base = [exp.id, exp.name, exp.owner, exp.status, exp.decision or "",
                exp.primary_metric or ""]
        snapshot = results_service.latest_snapshot(session, experiment_id=exp.id)
        source = f"snapshot #{snapshot.snapshot_id}" if snapshot else "computed"
        if snapshot is None and exp.actual_start is not None:
            snapshot = results_service.compute_results(session, experiment_id=exp.id)
        rows = []
        if snapshot is not None and snapshot.data_through is not None:
            rows = snapshot.rows(role="primary")
        if not rows:
            writer.writerow([*base, *[""] * (len(PORTFOLIO_CSV_COLUMNS) - len(base))])
        for r in rows:
            assert snapshot is not None and snapshot.data_through is not None
            writer.writerow([
                *base, r.treatment, _num(r.lift), _num(r.lift_ci_low), _num(r.lift_ci_high),
                _num(r.adjusted_p_value), r.decision_state, snapshot.data_through.isoformat(),
                source,
            ])
    return out.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


__all__ = [
    "RISK_CHECKS", "ArtifactCorrupt", "ReportArtifactView", "ReportContent",
    "ReportDownload", "RiskCheck", "assemble_report", "build_report_pdf", "download_report",
    "generate_report", "list_reports", "portfolio_csv", "primary_sentence", "render_pdf",
]
