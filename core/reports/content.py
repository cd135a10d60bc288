"""The content of an experiment's report, computed from the database; rendering adds nothing.

:func:`assemble_report` gathers what a stakeholder needs from the registry and the latest results
snapshot (computed on the spot when none is stored): the executive summary in plain language
with the recommendation, the risk checks (:mod:`core.reports.risks`), the results, the primary
metric's cumulative series, the plan, its deviations, the methods and the data sources. It only
reads; :mod:`core.reports.pdf` lays the :class:`ReportContent` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from core import format as fmt
from core.analysis import results as results_service
from core.analysis.segments import SegmentBreakdown, SegmentScan, segment_results, segment_scan
from core.analysis.snapshot import (
    ExperimentVerdict,
    MetricComparison,
    ResultsSnapshot,
    SeriesPoint,
)
from core.analysis.verdict import METHOD_NAMES, experiment_verdict
from core.registry.audit import AuditRecord, plan_deviations
from core.registry.fields import ExperimentView
from core.registry.listing import get_experiment, load_experiment
from core.reports.risks import (
    RiskCheck,
    correction_name,
    deviation_check,
    drift_check,
    effect_text,
    exposure_check,
    guardrail_check,
    multiple_comparisons_check,
    read_early_check,
    srm_by_value_check,
    srm_check,
    underpowered_check,
)
from core.stats import EMPTY_STATS, MetricStats
from core.types import Recommendation
from db import metric_repository as mrepo
from db import state_repository as state
from db.models import IngestLoad

DECISION_LABELS = {"ship": "Ship", "dont_ship": "Don't ship", "iterate": "Iterate"}



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
    segments: tuple[SegmentBreakdown, ...] = ()
    """Exploratory results per dimension value (never part of the recommendation)."""
    scan: SegmentScan | None = None
    """The automatic segment scan: slices worth a look, never a ship decision."""
    verdict: ExperimentVerdict | None = None
    """The experiment's verdict (the same one the Results page, API and CSV show)."""

    @property
    def flags(self) -> tuple[RiskCheck, ...]:
        return tuple(c for c in self.checks if c.status == "flagged")

    @property
    def summary_text(self) -> str:
        return " ".join([self.tested, *self.primary_sentences, self.recommendation_text,
                         self.decision_text])



def _tested(exp: ExperimentView) -> str:
    arms = (", ".join(f"{v.name} ({fmt.percent(v.weight, 0)})" for v in exp.variants)
            or "no variants yet")
    hypothesis = exp.hypothesis.strip() or "(no hypothesis recorded)"
    segment = f" on {exp.target_segment}" if exp.target_segment else ""
    return (f"What was tested: {hypothesis} Variants{segment}: {arms}; primary metric "
            f"{exp.primary_metric or '(none)'}.")


def primary_sentence(row: MetricComparison, snapshot: ResultsSnapshot) -> str:
    """The primary-metric result in one sentence: lift, CI, significant or not, and why."""
    alpha = snapshot.alpha
    method = correction_name(snapshot.correction)
    means = (f"Primary metric {row.metric}: {row.treatment} vs {row.control} "
             f"{fmt.metric_value(row.kind, row.treatment_mean)} vs "
             f"{fmt.metric_value(row.kind, row.control_mean)}")
    state = row.decision_state
    if state == "srm_untrustworthy":
        return (f"{means}; the effect is withheld: it cannot be trusted because of the sample "
                "ratio mismatch.")
    if state == "not_testable":
        return f"{means}: {row.reason}"
    head = f"{means}, {effect_text(row, alpha)}"
    adj = row.adjusted_p_value
    if row.p_value is None:
        verdict = "not tested yet (too little data)"
    elif state == "significant":
        verdict = f"statistically significant ({method}-adjusted p {fmt.p_is(adj)} < {alpha:g})"
    elif state == "too_early":
        progress = snapshot.progress
        share = (f" at {fmt.percent(progress, 0)} of the planned sample" if progress is not None
                 else "")
        verdict = (f"too early to call{share} ({method}-adjusted p {fmt.p_is(adj)}, "
                   "not yet significant)")
    else:
        verdict = (f"not statistically significant ({method}-adjusted p {fmt.p_is(adj)} "
                   f">= {alpha:g})")
    return f"{head}: {verdict}."


def _recommend(
    snapshot: ResultsSnapshot | None, checks: dict[str, RiskCheck],
) -> tuple[ExperimentVerdict, str]:
    """The experiment's verdict (:func:`core.analysis.verdict.experiment_verdict`, as stored in
    the snapshot) and its sentence, with the report's caveats from the risk checks appended."""
    verdict = (snapshot.verdict if snapshot is not None and snapshot.verdict is not None
               else experiment_verdict(snapshot))
    text = verdict.reason
    if verdict.recommendation == "ship" and any(c.status == "flagged" for c in checks.values()):
        text += " Review the risk flags below first."
    underpowered = checks.get("underpowered")
    if verdict.basis == "no_effect" and underpowered and underpowered.status == "flagged":
        text += " The test was underpowered, so a smaller effect cannot be ruled out."
    return verdict, text


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



def _data_sources(session: Session, exp: ExperimentView, loads: Sequence[IngestLoad],
                  snapshot: ResultsSnapshot | None, source: str, stale: bool) -> list[str]:
    """One line per source with its latest load (the ``ingest_loads`` ledger), then the SQL
    source and the results' freshness."""
    lines = []
    for load in loads:
        lines.append(f"{load.kind}:{load.key}: days {load.first_day}..{load.last_day}, "
                     f"{load.rows_written} daily rows, loaded {fmt.timestamp(load.loaded_at)} "
                     f"by {load.loaded_by}.")
    sql = mrepo.get_metric_source(session, experiment_id=exp.id)
    if sql is not None:
        where = "the app database" if sql.url is None else "an external database"
        lines.append(f"SQL push-down source on {where}, last set by {sql.updated_by}.")
    if snapshot is not None:
        lines.append(
            f"Results: {source}; data from {fmt.timestamp(snapshot.first_day)} through "
            f"{fmt.timestamp(snapshot.data_through)} (freshness); computed "
            f"{fmt.timestamp(snapshot.computed_at)}.")
    if stale:
        lines.append("The stored data changed after this snapshot: refresh the results for "
                     "the newest numbers.")
    if not lines:
        lines.append("No metric data loaded yet.")
    return lines


def _methods(snapshot: ResultsSnapshot | None) -> list[str]:
    out = ["Sample ratio mismatch: chi-square goodness-of-fit test of assignment counts against "
           "the planned split; flagged at p < 0.001."]
    if snapshot is not None and snapshot.srm is not None and \
            snapshot.srm.decided_by == "sequential":
        out = ["Sample ratio mismatch: sequential Dirichlet-multinomial test (Lindon & Malek "
               "2022) on the running daily assignment counts, anytime-valid so it may be read "
               "every day; flagged at p < 0.001. The chi-square goodness-of-fit p-value is "
               "quoted for reference. Per dimension value: the same test, Holm-adjusted over "
               "the dimension's values.",
               "Segment scan: each slice's effect against the effect in the rest of the "
               "experiment (z test of interaction, Altman & Bland 2003), Holm across all "
               "slices; worth a look, never a ship decision."]
    if snapshot is not None and snapshot.comparisons:
        tests = sorted({c.test for c in snapshot.comparisons if c.test})
        out.append("Tests: " + "; ".join(METHOD_NAMES.get(t, t) for t in tests) + ".")
        mode = ("always-valid (sequential) confidence sequences tuned to the planned sample"
                if snapshot.analysis_mode == "sequential" else "fixed-horizon tests")
        out.append(f"Mode: {mode}; two-sided for primary and secondary metrics, one-sided "
                   "tests for guardrails, of harm and of improvement, each adjusted over the "
                   "guardrails (always-valid before the plan is met).")
        out.append("Bayesian readout: normal posterior of the relative lift (flat prior, or "
                   "the plan's Gaussian prior), read as one look and unadjusted, beside the "
                   "decision, never instead of it.")
        capped = {c.metric: c.capping for c in snapshot.comparisons if c.capping}
        if capped:
            out.append("Capping (winsorisation): each unit's value above the cap counts as the "
                       "cap before the sums (a ratio's numerator and denominator each); a "
                       "percentile cap is computed over every unit, pooled across the variants "
                       "(GrowthBook 'Capping'; Kohavi, Tang & Xu 2020): " + "; ".join(
                           f"{m} {text}" for m, text in capped.items()) + ".")
        flat = sorted({c.metric for c in snapshot.comparisons if c.untestable})
        if flat:
            out.append(f"Not tested: {', '.join(flat)} (no variation: every unit has the same "
                       "value in both arms, so there is no variance to test with); left out of "
                       "the multiple-comparison correction.")
        out.append(f"Multiple comparisons: {correction_name(snapshot.correction)} adjustment "
                   "within "
                   "the primary+secondary family and within the guardrail family.")
    out.append("Underpowered: achieved MDE from the planner (the power of the tests that run: "
               "the unpooled z-test, Chow, Shao & Wang 2008 section 4.2; Welch's t with its "
               "Welch-Satterthwaite degrees of freedom) at the achieved sample with the observed "
               "control baseline.")
    out.append("Drift: the primary effect in the first and second half of the data days, "
               "compared with a two-sample z-test on the difference (alpha split over "
               "treatments).")
    return out


def _primary_arms(session: Session, exp: ExperimentView, as_of: date | None
                  ) -> tuple[str | None, dict[tuple[str, str], MetricStats],
                             dict[date, dict[str, MetricStats]]]:
    """Total and per-day sums of the primary metric per variant, from the stored daily stats."""
    row = load_experiment(session, experiment_id=exp.id)
    if row.primary_metric is None:
        return None, {}, {}
    names = {v.id: v.name for v in row.variants}
    arms: dict[tuple[str, str], MetricStats] = {}
    by_day: dict[date, dict[str, MetricStats]] = {}
    for stat in mrepo.daily_stats(session, experiment_id=exp.id, through=as_of):
        if stat.metric_id != row.primary_metric_id or stat.variant_id not in names:
            continue
        variant = names[stat.variant_id]
        key = (row.primary_metric.name, variant)
        arms[key] = arms.get(key, EMPTY_STATS) + stat.stats
        day = by_day.setdefault(stat.day, {})
        day[variant] = day.get(variant, EMPTY_STATS) + stat.stats
    return row.primary_metric.kind, arms, by_day


def assemble_report(
    session: Session, *, experiment_id: int, generated_by: str, now: datetime | None = None
) -> ReportContent:
    """Gather and compute the report of one experiment (reads only)."""
    now = now or datetime.now(UTC)
    exp = get_experiment(session, experiment_id=experiment_id)
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
    deviations = plan_deviations(session, experiment_id=experiment_id)
    loads = state.ingest_loads(session, experiment_id=experiment_id)
    sources = [f"{load.kind}:{load.key}" for load in loads]
    kind, arms, by_day = _primary_arms(session, exp, snapshot.as_of)

    checks_list = [
        srm_check(snapshot_or_none),
        underpowered_check(exp, snapshot_or_none, arms),
        read_early_check(exp, snapshot_or_none),
        deviation_check(exp, deviations),
        multiple_comparisons_check(snapshot_or_none),
        guardrail_check(snapshot_or_none),
        drift_check(exp, kind, by_day),
        exposure_check(sources, has_data),
    ]
    segments: tuple[SegmentBreakdown, ...] = ()
    scan: SegmentScan | None = None
    if has_data:
        segments = tuple(segment_results(session, experiment_id=experiment_id,
                                         as_of=snapshot.as_of))
        scan = segment_scan(session, experiment_id=experiment_id, as_of=snapshot.as_of)
    if segments:  # SRM per dimension value: only where the data carries dimensions
        checks_list.append(srm_by_value_check(segments))
    checks: dict[str, RiskCheck] = {c.code: c for c in checks_list}
    primary: tuple[str, ...]
    if snapshot_or_none is None:
        primary = ("No metric data has been loaded for this experiment yet, so there are no "
                   "results to report.",)
    else:
        rows = snapshot_or_none.rows(role="primary")
        primary = tuple(primary_sentence(r, snapshot_or_none) for r in rows) or (
            "The experiment has no primary metric, so there is no headline result.",)
    verdict, recommendation_text = _recommend(snapshot_or_none, checks)
    recommendation = verdict.recommendation
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
        verdict=verdict,
        decision_text=_decision_text(exp, recommendation),
        checks=tuple(checks_list),
        series=series,
        deviations=tuple(deviations),
        data_sources=tuple(_data_sources(session, exp, loads, snapshot_or_none, source, stale)),
        methods=tuple(_methods(snapshot_or_none)),
        segments=segments,
        scan=scan,
    )

