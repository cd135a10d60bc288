"""Experiment results: from stored daily sufficient statistics to decision states.

For an experiment at a point in time (``as_of``, default all data) this computes

* the sample-ratio-mismatch check on assignment counts: the sequential, anytime-valid test
  (:func:`core.stats.sequential_srm_test`, on the running daily totals) decides, so checking it
  every day does not inflate false alarms; the chi-square test (:func:`core.stats.srm_test`) of
  the totals is shown beside it;
* every metric x every treatment against the control: Welch's t-test for mean metrics (on
  CUPED-adjusted means when every stored day carries pre-period covariate sums), the two-proportion
  z-test for binomial metrics — always-valid (sequential) versions in sequential mode, tuned to the
  planned sample size;
* quantile metrics (p90 load time): the difference and relative difference of the arms'
  p-quantiles with the order-statistic interval (:func:`core.stats.quantile_test`), from the
  stored :class:`core.stats.QuantileStats` of each arm (all units loaded: quantiles do not add
  up over days, so they are not tested as of a day before the metric's last day of data, nor
  day by day in the cumulative series);
* comparisons that cannot be tested at all are marked ``not_testable``: a metric with no
  variation (every unit has the same value in both arms: no conversion anywhere, every unit
  converted, or a constant) has no variance to test with; it shows no effect or p-value and
  stays out of the correction;
* multiple-testing correction (the experiment's ``correction``: Holm by default, or BH) over two
  families of tested comparisons: the primary and secondary comparisons (secondaries two-sided;
  the primary as the plan's ``alternative`` says, a one-sided test with a one-sided interval
  open at its far end), and the guardrail comparisons (one-sided tests for harm, in the
  direction the catalogue's ``higher_is_better`` calls worse, plus a non-inferiority test where
  the plan gives the guardrail a margin, and the one-sided test in the good direction, adjusted
  over the guardrails too, so a guardrail that improved significantly shows as an improvement,
  with that test's interval and p-values);
* a Bayesian readout of every comparison's relative lift, under the plan's Gaussian prior
  (``prior_lift_mean``, ``prior_lift_sd``) or the flat prior when it states none;
* a decision state per comparison and one experiment-level verdict (ship / don't ship / keep
  running / investigate), both decided in :mod:`core.analysis.verdict` and stored in the snapshot.

Snapshots are stored with a fingerprint of their inputs (settings and data); refreshing with
unchanged inputs stores nothing new. All statistics come from :mod:`core.stats`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from pydantic_core import from_json
from sqlalchemy.orm import Session

from core import format as fmt
from core.analysis.snapshot import (
    RESULTS_VERSION,
    SNAPSHOT_JSON,
    MetricComparison,
    ResultsSnapshot,
    SeriesPoint,
    SrmCheck,
    VariantUnits,
    withhold,
)
from core.analysis.verdict import (
    NO_VARIATION_TEXT,
    AnalysisContext,
    MetricEvidence,
    adjustment_note,
    experiment_verdict,
    metric_decision,
    srm_reason,
)
from core.auth import Actor
from core.errors import InvalidInput, NotFound
from core.registry.listing import load_experiment, require_experiment
from core.stats import (
    EMPTY_STATS,
    BayesianReadout,
    InsufficientDataError,
    MetricStats,
    QuantileStats,
    SufficientStats,
    adjust_pvalues,
    bayesian_readout,
    post_stratified_test,
    proportion_ztest_from_stats,
    quantile_test,
    ratio_test,
    regression_adjusted_test,
    sequential_srm_test,
    srm_test,
    welch_ttest_cuped,
    welch_ttest_from_stats,
)
from core.stats.capping import AppliedCap, CapRule
from core.transactions import transaction
from core.types import Alternative, MetricKind, Untestable
from db import metric_repository as mrepo
from db import repositories as repo
from db.metric_repository import DailyStatRow, StatTotal

SRM_THRESHOLD = 0.001
ROLE_ORDER = ("primary", "guardrail", "secondary")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class SetupMetric:
    """One metric of an experiment as the analysis reads it: its kind, role and margin."""

    id: int
    name: str
    kind: MetricKind
    role: str
    higher_is_better: bool
    margin: float | None = None
    capping: str | None = None
    """The plan's capping and the cap applied ("capped at p99 (value 123.4)"); None: none."""


@dataclass(frozen=True)
class ExperimentSetup:
    """What the analysis of an experiment reads of its registry entry and plan."""

    id: int
    name: str
    mode: str
    correction: str
    alpha: float
    planned: int | None
    variants: tuple[tuple[int, str, float], ...]
    metrics: tuple[SetupMetric, ...]
    alternative: Alternative = "two-sided"
    """The primary metric's test direction in the plan."""
    prior: tuple[float, float] | None = None
    """The plan's Gaussian prior on the relative lift (mean, sd); None = flat."""
    post_stratify_on: str | None = None
    """The plan's post-stratification dimension (a dimension of the metric data); None = none."""


def experiment_setup(session: Session, experiment_id: int) -> ExperimentSetup:
    """The experiment's :class:`ExperimentSetup`; NotFound without it."""
    exp = load_experiment(session, experiment_id=experiment_id)
    capping = capping_labels(exp.capping, mrepo.applied_caps(
        session, experiment_id=experiment_id) if exp.capping else {}, exp)
    metrics: list[SetupMetric] = []
    if exp.primary_metric is not None:
        m = exp.primary_metric
        metrics.append(SetupMetric(m.id, m.name, m.kind, "primary", m.higher_is_better,  # type: ignore[arg-type]
                                   capping=capping.get(m.id)))
    seen = {m.id for m in metrics}
    links = sorted(exp.metric_links, key=lambda link: (ROLE_ORDER.index(link.role),
                                                       link.metric.name))
    for link in links:
        if link.metric.id not in seen:
            m = link.metric
            margin = link.margin if link.role == "guardrail" else None
            metrics.append(SetupMetric(m.id, m.name, m.kind, link.role, m.higher_is_better,  # type: ignore[arg-type]
                                   margin, capping.get(m.id)))
            seen.add(m.id)
    return ExperimentSetup(
        id=exp.id,
        name=exp.name,
        mode=exp.analysis_mode,
        correction=exp.correction,
        alpha=exp.alpha,
        planned=exp.planned_sample_size,
        variants=tuple((v.id, v.name, v.weight) for v in exp.variants),
        metrics=tuple(metrics),
        alternative=exp.alternative,  # type: ignore[arg-type]
        prior=(None if exp.prior_lift_mean is None or exp.prior_lift_sd is None
               else (exp.prior_lift_mean, exp.prior_lift_sd)),
        post_stratify_on=exp.post_stratify_on,
    )


def capping_labels(plan: dict[str, Any] | None, applied: dict[int, AppliedCap],
                   exp: Any) -> dict[int, str]:
    """Per capped metric id, what the results say beside it: "capped at p99 (value 123.4)", or
    "capped at p99 (no data loaded yet)" before a load computed the cap."""
    ids = {m.name: m.id for m in ([exp.primary_metric] if exp.primary_metric else [])}
    ids |= {link.metric.name: link.metric.id for link in exp.metric_links}
    out = {}
    for name, rule in (plan or {}).items():
        if name not in ids:
            continue
        cap_rule = CapRule(rule["kind"], rule["value"])
        found = applied.get(ids[name])
        out[ids[name]] = (found.describe(cap_rule) if found is not None
                          else AppliedCap(cap_rule.value).describe(cap_rule)
                          if cap_rule.kind == "fixed"
                          else f"capped at {cap_rule.label} (no data loaded yet)")
    return out


def _round(value: float | None) -> float | None:
    """12 significant digits: the last bits of parallel float sums never change a fingerprint."""
    return None if value is None else float(f"{value:.12g}")


Quantiles = dict[tuple[int, int], QuantileStats]
"""Quantile metrics' stored statistics by (metric id, variant id)."""
QUANTILES_NOT_AS_OF = (
    "a quantile metric's statistics cover every unit loaded (quantiles do not add up over "
    "days), so it is not tested as of a day before its last day of data")
NO_QUANTILES = ("no quantile statistics are stored for an arm of this quantile metric: load a "
                "user-level file with its per-unit values")
def _rounded(value: Any) -> Any:
    """:func:`_round` through the nested tuples of a key (the covariate vector part)."""
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, tuple):
        return [_rounded(v) for v in value]
    return value


def _fingerprint(
    setup: ExperimentSetup, as_of: date | None, totals: list[StatTotal], assigned: list[Any],
    quantiles: Quantiles | None = None,
    strata: Strata | None = None,
) -> str:
    """What the results are computed from: the setup, the day, every arm's sums with the span
    of days they cover, and the assignment counts per day. Equal fingerprints, equal results
    (up to the 12th digit of a sum)."""
    payload = {
        "version": RESULTS_VERSION,
        "setup": {
            "mode": setup.mode, "correction": setup.correction, "alpha": setup.alpha,
            "planned": setup.planned, "variants": setup.variants,
            "alternative": setup.alternative, "prior": setup.prior,
            "post_stratify_on": setup.post_stratify_on,
            "metrics": [asdict(m) for m in setup.metrics],
        },
        "as_of": as_of.isoformat() if as_of else None,
        "totals": [
            [r.variant_id, r.metric_id, r.first_day.isoformat(), r.last_day.isoformat(),
             *(_rounded(v) for v in r.stats.key())]
            for r in totals
        ],
        "assignments": [[a.variant_id, a.day.isoformat(), a.units] for a in assigned],
    }
    if quantiles:  # only then, so the fingerprints of experiments without any stay as they were
        payload["quantiles"] = [[mid, vid, *(_round(v) if isinstance(v, float) else v
                                             for v in q.key())]
                                for (mid, vid), q in sorted(quantiles.items())]
    if strata:
        payload["strata"] = [[mid, vid, value, *(_rounded(v) for v in stats.key())]
                             for (mid, vid), cells in sorted(strata.items())
                             for value, stats in sorted(cells.items())]
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------- one comparison


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _harm_alternative(higher_is_better: bool) -> Alternative:
    return "less" if higher_is_better else "greater"


SEQUENTIAL_WITHOUT_PLAN = (
    "This experiment is sequential but has no planned sample size: the always-valid test must "
    "be tuned to a sample size fixed before the first look (tuning it to the data so far is not "
    "valid across looks). Set the planned sample size (with a reason, the plan is frozen) and "
    "refresh."
)


FLAT_TOLERANCE = 1e-9
"""An arm has no variation when its centred sum of squares is at most this fraction of its raw
one (rounding of the stored sums of a constant)."""


def _flat(n: int, total: float, squares: float) -> bool:
    return squares - total * total / n <= FLAT_TOLERANCE * squares


def _ratio_flat(r: Any) -> bool:
    """The delta method's per-unit linearisation y - R x of a ratio arm has no variance."""
    if r.sum_den == 0:
        return False
    ratio = r.ratio
    spread = r.var_num - 2.0 * ratio * r.cov + ratio * ratio * r.var_den
    return spread <= FLAT_TOLERANCE * (r.var_num + ratio * ratio * r.var_den)


def no_variation(kind: str, control: MetricStats, treatment: MetricStats) -> str | None:
    """Why a metric cannot be tested for lack of variation, in words, or None.

    A conversion metric has none when no unit converted in either arm, or every unit did (a
    difference between an all-0 and an all-1 arm is still tested, exactly). A mean metric has
    none when every unit has the same value within each arm, a ratio metric when every unit's
    numerator is the arm's ratio times its denominator: there is then no variance, so no
    standard error and no test. None while an arm has fewer than 2 units (too early instead).
    """
    if control.n < 2 or treatment.n < 2:
        return None
    if kind == "binomial":
        converted, units = control.sum + treatment.sum, control.n + treatment.n
        if converted == 0:
            return f"no unit converted in either arm (0 of {fmt.count(units)})"
        if converted == units:
            return f"every unit converted in both arms ({fmt.count(units)} of {fmt.count(units)})"
        return None
    if kind == "ratio":
        c_ratio, t_ratio = control.ratio, treatment.ratio
        if c_ratio is None or t_ratio is None or not (_ratio_flat(c_ratio)
                                                       and _ratio_flat(t_ratio)):
            return None
        values = c_ratio.ratio, t_ratio.ratio
        what = "every unit's ratio is"
    else:
        if not (_flat(control.n, control.sum, control.sum_squares)
                and _flat(treatment.n, treatment.sum, treatment.sum_squares)):
            return None
        values = control.sum / control.n, treatment.sum / treatment.n
        what = "every unit has the value"
    c_value, t_value = (fmt.number(x) for x in values)
    if c_value == t_value:
        return f"{what} {c_value} in both arms"
    return (f"{what} {c_value} in the control and {t_value} in the treatment, with no variance "
            "within either arm to test the difference against")


def compare_arms(
    kind: str,
    control: MetricStats,
    treatment: MetricStats,
    *,
    alpha: float,
    alternative: Alternative,
    sequential: bool,
    tuning_n: float | None,
    margin: float = 0.0,
    quantiles: tuple[QuantileStats | None, QuantileStats | None] | None = None,
    strata: ArmStrata | None = None,
) -> tuple[dict[str, Any] | None, str | None]:
    """Run the engine's test for a metric of ``kind`` on two arms' pooled sums: (numbers, None),
    or (None, why not) when an arm has fewer than 2 units, the metric has no variation
    (:func:`no_variation`: no test exists), a sequential test has no planned sample size to
    tune to, or the engine needs more data (:class:`core.stats.InsufficientDataError`, its
    message). A quantile metric is tested on ``quantiles`` (control's, treatment's)."""
    if control.n < 2 or treatment.n < 2:
        return None, None
    flat = no_variation(kind, control, treatment)
    if flat is not None:
        return None, f"{NO_VARIATION_TEXT} ({flat})"
    if sequential and tuning_n is None:
        return None, SEQUENTIAL_WITHOUT_PLAN
    try:
        return _run_test(kind, control, treatment, alpha=alpha, alternative=alternative,
                         sequential=sequential, tuning_n=tuning_n, margin=margin,
                         quantiles=quantiles, strata=strata), None
    except InsufficientDataError as exc:
        return None, str(exc)


ArmStrata = tuple[dict[str, MetricStats], dict[str, MetricStats]]
"""Control's and treatment's sums per value of the post-stratification dimension."""


def _adjustable(kind: str, control: MetricStats, treatment: MetricStats) -> bool:
    """Both arms carry the same covariates (loads with different ``cov_*`` columns are not
    pooled into one regression), and a ratio metric its ratio sums."""
    c, t = control.covariates, treatment.covariates
    if kind == "quantile" or c is None or t is None or c.names != t.names:
        return False  # a quantile metric's sums are not what it tests
    ratio = kind == "ratio"
    return control.has_ratio == ratio and treatment.has_ratio == ratio


def _stratifiable(kind: str, strata: ArmStrata) -> bool:
    """Two or more values, and (a ratio metric) every cell with its denominator sums; never a
    quantile metric (its test is on the quantiles, not on sums)."""
    if kind == "quantile":
        return False
    values = {*strata[0], *strata[1]}
    if len(values) < 2:
        return False
    cells = [s for arm in strata for s in arm.values() if s.n > 0]
    return kind != "ratio" or all(s.has_ratio for s in cells)


def _run_test(
    kind: str,
    control: MetricStats,
    treatment: MetricStats,
    *,
    alpha: float,
    alternative: Alternative,
    sequential: bool,
    tuning_n: float | None,
    margin: float = 0.0,
    quantiles: tuple[QuantileStats | None, QuantileStats | None] | None = None,
    strata: ArmStrata | None = None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"alpha": alpha, "alternative": alternative,
                              "sequential": sequential, "tuning_n": tuning_n, "margin": margin}
    cuped, reduction = False, None
    res: Any = None
    if _adjustable(kind, control, treatment):
        try:  # several covariates (Lin 2013), any kind of metric
            res = regression_adjusted_test(control, treatment, **kwargs)
            cuped, reduction = True, res.variance_reduction
        except InsufficientDataError:
            res = None  # fewer units than covariates + 2 in an arm: the plain test below
    single = kind == "mean" and control.covariate is not None and treatment.covariate is not None
    if res is None and not single and strata is not None and _stratifiable(kind, strata):
        # the plan's post-stratification dimension (Miratrix, Sekhon & Yu 2013), for a metric
        # without covariates (a covariate, e.g. the metric's own pre-period, adjusts it)
        try:
            res = post_stratified_test(*strata, **kwargs)
            cuped, reduction = False, res.variance_reduction
        except InsufficientDataError:
            res = None
    if res is not None:
        pass
    elif kind == "binomial":
        res = proportion_ztest_from_stats(
            SufficientStats(control.n, round(control.sum), round(control.sum)),
            SufficientStats(treatment.n, round(treatment.sum), round(treatment.sum)),
            **kwargs,
        )
    elif kind == "ratio":
        c_ratio, t_ratio = control.ratio, treatment.ratio
        if c_ratio is None or t_ratio is None:
            raise InsufficientDataError(
                "the stored data of this ratio metric has no denominator sums (sum_den, "
                "sum_den_squares, sum_num_den): load its data again")
        res = ratio_test(c_ratio, t_ratio, **kwargs)
    elif kind == "quantile":
        c_q, t_q = quantiles or (None, None)
        if c_q is None or t_q is None:
            raise InsufficientDataError(NO_QUANTILES)
        res = quantile_test(c_q, t_q, **kwargs)
    elif (c_cov := control.covariate) is not None and (t_cov := treatment.covariate) is not None:
        cr = welch_ttest_cuped(c_cov, t_cov, **kwargs)
        res, cuped, reduction = cr, True, cr.variance_reduction
    else:
        res = welch_ttest_from_stats(control.sufficient, treatment.sufficient, **kwargs)
    return {
        "control_mean": _num(res.control_mean),
        "treatment_mean": _num(res.treatment_mean),
        "diff": _num(res.diff),
        "diff_ci_low": _num(res.diff_ci_low),
        "diff_ci_high": _num(res.diff_ci_high),
        "lift": _num(res.lift),
        "lift_ci_low": _num(res.lift_ci_low),
        "lift_ci_high": _num(res.lift_ci_high),
        "p_value": _num(res.p_value),
        "lift_p_value": _num(res.lift_p_value),
        "test": res.method,
        "cuped": cuped,
        "variance_reduction": _num(reduction),
        "adjustment": adjustment_note(res.method, _num(reduction)),
        "_lift_se": _num(res.lift_se),
        "_diff_se": _num(res.diff_se),
    }


def _bayesian(tested: dict[str, Any] | None, *, alpha: float, higher_is_better: bool,
              prior: tuple[float, float] | None = None) -> BayesianReadout | None:
    """The posterior of the lift from the test's lift and its standard error, under the plan's
    Gaussian prior (mean, sd) or the flat prior (None)."""
    if tested is None or tested["lift"] is None or not tested.get("_lift_se"):
        return None
    mean, sd = prior if prior is not None else (None, None)
    try:
        return bayesian_readout(tested["lift"], tested["_lift_se"], alpha=alpha,
                                higher_is_better=higher_is_better, prior_mean=mean,
                                prior_sd=sd)
    except ValueError:
        return None


# --------------------------------------------------------------------------- computation


def _cumulate(stats: list[DailyStatRow]) -> dict[tuple[int, int], MetricStats]:
    arms: dict[tuple[int, int], MetricStats] = {}
    for row in stats:
        key = (row.metric_id, row.variant_id)
        arms[key] = arms.get(key, EMPTY_STATS) + row.stats
    return arms


def _units(setup: ExperimentSetup, arms: dict[tuple[int, int], MetricStats], assigned: list[Any]
           ) -> dict[int, int]:
    """Units per variant id: the assignment counts, or (none stored) the largest metric n."""
    units = {vid: 0 for vid, _name, _w in setup.variants}
    for a in assigned:
        units[a.variant_id] = units.get(a.variant_id, 0) + a.units
    if not assigned and arms:
        for vid in units:
            units[vid] = max((arm.n for (_mid, v), arm in arms.items() if v == vid), default=0)
    return units


def daily_cumulative_counts(setup: ExperimentSetup, assigned: list[Any]) -> list[list[int]]:
    """Running totals of the assignment counts, one row per day with assignments, one column
    per variant (setup order): the checks the sequential SRM test reads."""
    by_day: dict[date, dict[int, int]] = defaultdict(dict)
    for a in assigned:
        by_day[a.day][a.variant_id] = by_day[a.day].get(a.variant_id, 0) + a.units
    running = [0] * len(setup.variants)
    rows: list[list[int]] = []
    for day in sorted(by_day):
        for i, (vid, _n, _w) in enumerate(setup.variants):
            running[i] += by_day[day].get(vid, 0)
        rows.append(list(running))
    return rows


def _srm(setup: ExperimentSetup, units: dict[int, int], assigned: list[Any] | None = None
         ) -> SrmCheck | None:
    """SRM check of the units against the planned weights; None without units.

    The decision (``flagged``) is the sequential, anytime-valid test
    (:func:`core.stats.sequential_srm_test`) on the running daily totals of ``assigned`` (on
    the totals alone when no assignment counts are stored: one check, still valid); the
    chi-square test of the totals is kept beside it (``p_value``, ``chi_square_flagged``)."""
    if len(setup.variants) < 2 or sum(units.values()) == 0:
        return None
    counts = [units.get(vid, 0) for vid, _n, _w in setup.variants]
    weights = [w for _id, _n, w in setup.variants]
    total_w = sum(weights)
    planned = [w / total_w for w in weights]
    r = srm_test(counts, planned, threshold=SRM_THRESHOLD)
    rows = daily_cumulative_counts(setup, assigned or [])
    if not rows or rows[-1] != counts:
        rows = [counts]
    seq = sequential_srm_test(rows, planned, threshold=SRM_THRESHOLD)
    return SrmCheck(
        variants=tuple(n for _id, n, _w in setup.variants),
        observed=r.observed, expected=r.expected, weights=tuple(weights),
        statistic=r.statistic, p_value=r.p_value, flagged=seq.flagged, threshold=r.threshold,
        decided_by="sequential", sequential_p_value=seq.p_value,
        log_bayes_factor=seq.log_bayes_factor, checks=len(rows),
        chi_square_flagged=r.flagged,
    )


def compute_results(
    session: Session, *, experiment_id: int, as_of: date | None = None
) -> ResultsSnapshot:
    """Compute (without storing) the results of an experiment from its stored daily statistics.

    ``as_of`` limits the data to days up to and including it (default: all data).
    """
    setup = experiment_setup(session, experiment_id)
    # The arms' sums are added up in the database: the results never read a single day.
    totals = mrepo.stat_totals(session, experiment_id=experiment_id, through=as_of)
    assigned = mrepo.assignments(session, experiment_id=experiment_id, through=as_of)
    quantiles, cut = _quantiles(session, setup, as_of)
    strata = _strata(session, setup, as_of)
    return _compute(setup, as_of, totals, assigned, computed_at=datetime.now(UTC),
                    quantiles=quantiles, cut=cut, strata=strata)


def _quantiles(session: Session, setup: ExperimentSetup, as_of: date | None
               ) -> tuple[Quantiles, frozenset[int]]:
    """The quantile metrics' stored statistics, and the ids of those whose data runs past
    ``as_of`` (their statistics cover later units too, so they are not tested as of it)."""
    ids = {m.id for m in setup.metrics if m.kind == "quantile"}
    if not ids:
        return {}, frozenset()
    cut: set[int] = set()
    if as_of is not None:
        cut = {r.metric_id for r in mrepo.stat_totals(session, experiment_id=setup.id)
               if r.metric_id in ids and r.last_day > as_of}
    found = {(r.metric_id, r.variant_id): r.stats
             for r in mrepo.quantile_stats(session, experiment_id=setup.id)
             if r.metric_id in ids and r.metric_id not in cut}
    return found, frozenset(cut)


Strata = dict[tuple[int, int], dict[str, MetricStats]]
"""(metric id, variant id) -> dimension value -> the arm's sums over the units with it."""


def _strata(session: Session, setup: ExperimentSetup, as_of: date | None) -> Strata | None:
    """The per-value sums of the plan's post-stratification dimension; None without one."""
    if setup.post_stratify_on is None:
        return None
    out: Strata = {}
    for r in mrepo.slice_stat_totals(session, experiment_id=setup.id, through=as_of,
                                     dimension=setup.post_stratify_on):
        out.setdefault((r.metric_id, r.variant_id), {})[r.value] = r.stats
    return out


def _compute(
    setup: ExperimentSetup,
    as_of: date | None,
    totals: list[StatTotal],
    assigned: list[Any],
    *,
    computed_at: datetime,
    quantiles: Quantiles | None = None,
    cut: frozenset[int] = frozenset(),
    strata: Strata | None = None,
) -> ResultsSnapshot:
    fingerprint = _fingerprint(setup, as_of, totals, assigned, quantiles=quantiles, strata=strata)
    alpha = setup.alpha
    days = sorted({d for r in totals for d in (r.first_day, r.last_day)}
                  | {a.day for a in assigned})
    arms = {(r.metric_id, r.variant_id): r.stats for r in totals}
    units = _units(setup, arms, assigned)

    planned = setup.planned
    variants = tuple(
        VariantUnits(
            name=name, weight=weight, is_control=i == 0, units=units.get(vid, 0),
            planned=planned, progress=(units.get(vid, 0) / planned) if planned else None,
        )
        for i, (vid, name, weight) in enumerate(setup.variants)
    )
    progress = min((v.progress for v in variants if v.progress is not None), default=None)
    plan_met = progress is None or progress >= 1.0
    smallest = min((v.units for v in variants), default=0)

    srm = _srm(setup, units, assigned)

    sequential_mode = setup.mode == "sequential"
    tuning = float(planned) if planned else None
    drafts: list[dict[str, Any]] = []
    if setup.variants:
        control_id, control_name, _w = setup.variants[0]
        for m in setup.metrics:
            for vid, name, _w2 in setup.variants[1:]:
                cells = None
                if strata and (m.id, control_id) in strata and (m.id, vid) in strata:
                    cells = (strata[(m.id, control_id)], strata[(m.id, vid)])
                drafts.append(_draft(m, arms.get((m.id, control_id), EMPTY_STATS),
                                     arms.get((m.id, vid), EMPTY_STATS), strata=cells,
                                     setup=setup,
                                     control=control_name, treatment=name, plan_met=plan_met,
                                     tuning=tuning, quantiles=_arm_quantiles(
                                         m, quantiles, control_id, vid, cut)))

    _adjust(drafts, ("primary", "secondary"), "p_decide", "adjusted", setup.correction)
    _adjust(drafts, ("guardrail",), "p_decide", "adjusted", setup.correction)
    _adjust(drafts, ("guardrail",), "p_ni", "adjusted_ni", setup.correction)
    _adjust(drafts, ("guardrail",), "p_better", "adjusted_better", setup.correction)

    context = AnalysisContext(
        alpha=alpha, correction=setup.correction, sequential_mode=sequential_mode,
        plan_met=plan_met, progress=progress, smallest_units=smallest,
        planned_sample_size=planned, srm=srm,
    )
    comparisons = []
    for d in drafts:
        metric: SetupMetric = d["m"]
        tested = d["tested"]
        adj = d.get("adjusted")
        decision = metric_decision(_evidence(metric, d, adj, alpha), context)
        shown, alternative = tested, d["alternative"]
        if metric.role == "guardrail" and decision.state == "significant":
            # decided by the improvement test: show its interval and p-values
            shown, alternative, adj = d["better"], d["better_alternative"], d["adjusted_better"]
        base = {k: v for k, v in (shown or _untested(metric.kind, d)).items()
                if not k.startswith("_")}
        comparisons.append(MetricComparison(
            metric=metric.name, kind=metric.kind, role=metric.role,
            higher_is_better=metric.higher_is_better,
            control=d["control"], treatment=d["treatment"], control_n=d["c"].n,
            treatment_n=d["t"].n, adjusted_p_value=adj, alternative=alternative,
            sequential=d["sequential"], decision_state=decision.state, reason=decision.reason,
            decision_on=d["decision_on"], margin=metric.margin,
            noninferiority_p_value=d.get("adjusted_ni"),
            bayesian=_bayesian(tested, alpha=alpha, higher_is_better=metric.higher_is_better,
                               prior=setup.prior),
            untestable=d["untestable"], capping=metric.capping,
            **base,
        ))

    if srm is not None and srm.flagged:
        reason = srm_reason(srm)
        comparisons = [withhold(c, reason) for c in comparisons]
    snapshot = ResultsSnapshot(
        experiment_id=setup.id,
        experiment_name=setup.name,
        analysis_mode=setup.mode,
        correction=setup.correction,
        alpha=alpha,
        planned_sample_size=planned,
        computed_at=computed_at,
        as_of=as_of,
        first_day=days[0] if days else None,
        data_through=days[-1] if days else None,
        fingerprint=fingerprint,
        srm=srm,
        variants=variants,
        progress=progress,
        plan_met=plan_met,
        comparisons=tuple(comparisons),
    )
    return replace(snapshot, verdict=experiment_verdict(snapshot))


_UNTESTED: dict[str, Any] = {
    "control_mean": None, "treatment_mean": None, "diff": None, "diff_ci_low": None,
    "diff_ci_high": None, "lift": None, "lift_ci_low": None, "lift_ci_high": None,
    "p_value": None, "lift_p_value": None, "test": "", "cuped": False,
    "variance_reduction": None, "adjustment": None,
}


def _arm_value(kind: str, arm: MetricStats) -> float | None:
    """The arm's metric value (rate, mean or ratio); None without units or denominator."""
    if kind == "ratio":
        r = arm.ratio
        return None if r is None or r.sum_den == 0 else r.ratio
    return arm.sum / arm.n if arm.n else None


def _untested(kind: str, d: dict[str, Any]) -> dict[str, Any]:
    """The fields of a comparison without a test: no effect; the arms' values when the metric
    cannot be tested (they show why: the same value everywhere)."""
    if d["untestable"] is None:
        return _UNTESTED
    return {**_UNTESTED, "control_mean": _arm_value(kind, d["c"]),
            "treatment_mean": _arm_value(kind, d["t"])}


def _arm_quantiles(m: SetupMetric, quantiles: Quantiles | None, control_id: int,
                   treatment_id: int, cut: frozenset[int]
                   ) -> tuple[QuantileStats | None, QuantileStats | None] | str | None:
    """A quantile metric's (control, treatment) statistics, or why there are none to test."""
    if m.kind != "quantile":
        return None
    if m.id in cut:
        return QUANTILES_NOT_AS_OF
    found = quantiles or {}
    return found.get((m.id, control_id)), found.get((m.id, treatment_id))


def _alternative(m: SetupMetric, setup: ExperimentSetup) -> Alternative:
    if m.role == "guardrail":
        return _harm_alternative(m.higher_is_better)
    return setup.alternative if m.role == "primary" else "two-sided"


def _draft(m: SetupMetric, c_arm: MetricStats, t_arm: MetricStats, *, setup: ExperimentSetup,
           control: str, treatment: str, plan_met: bool, tuning: float | None,
           quantiles: tuple[QuantileStats | None, QuantileStats | None] | str | None = None,
           strata: ArmStrata | None = None,
           ) -> dict[str, Any]:
    """One metric x treatment tested: the plan's test (guardrails: one-sided harm, plus the
    non-inferiority test when the plan states a margin), and the p-value decided on. A
    quantile metric's ``quantiles`` are its arms' statistics, or why it is not tested."""
    guard = m.role == "guardrail"
    alternative = _alternative(m, setup)
    sequential = setup.mode == "sequential" or (guard and not plan_met)
    flat = no_variation(m.kind, c_arm, t_arm)
    if flat is not None:  # no test exists: no p-value, so no place in the correction
        return {"m": m, "treatment": treatment, "control": control, "c": c_arm, "t": t_arm,
                "alternative": alternative, "sequential": sequential, "tested": None,
                "untested": None, "untestable": "no_variation", "no_variation": flat,
                "decision_on": "lift", "p_decide": None, "p_ni": None, "better": None,
                "better_alternative": None, "p_better": None}
    tested: dict[str, Any] | None
    untested: str | None
    if isinstance(quantiles, str):
        tested, untested, quantiles = None, quantiles, None
    else:
        tested, untested = compare_arms(m.kind, c_arm, t_arm, alpha=setup.alpha,
                                        alternative=alternative, sequential=sequential,
                                        tuning_n=tuning if sequential else None,
                                        quantiles=quantiles, strata=strata)
    decision_on = "lift" if tested is not None and tested["lift"] is not None else "diff"
    p_decide = None
    if tested is not None:
        p_decide = tested["lift_p_value"] if decision_on == "lift" else tested["p_value"]
    p_ni = p_better = better = None
    good: Alternative = "greater" if m.higher_is_better else "less"
    if guard and m.margin and tested is not None:
        # H0: worse by at least the margin; rejecting it shows non-inferiority.
        ni, _why = compare_arms(m.kind, c_arm, t_arm, alpha=setup.alpha, alternative=good,
                                sequential=sequential, tuning_n=tuning if sequential else None,
                                margin=m.margin, quantiles=quantiles, strata=strata)
        if ni is not None:
            p_ni = ni["lift_p_value"] if decision_on == "lift" else ni["p_value"]
    if guard and tested is not None:
        # H0: no improvement; rejecting it shows the guardrail got better (same design as the
        # harm test, so as valid at this look).
        better, _why = compare_arms(m.kind, c_arm, t_arm, alpha=setup.alpha, alternative=good,
                                    sequential=sequential,
                                    tuning_n=tuning if sequential else None,
                                    quantiles=quantiles, strata=strata)
        if better is not None:
            p_better = better["lift_p_value"] if decision_on == "lift" else better["p_value"]
    none: Untestable | None = None
    return {"m": m, "treatment": treatment, "control": control, "c": c_arm, "t": t_arm,
            "alternative": alternative, "sequential": sequential, "tested": tested,
            "untested": untested, "untestable": none, "no_variation": None,
            "decision_on": decision_on, "p_decide": p_decide, "p_ni": p_ni, "better": better,
            "better_alternative": good, "p_better": p_better}


def _adjust(drafts: list[dict[str, Any]], roles: tuple[str, ...], key: str, out: str,
            correction: str) -> None:
    """Multiplicity-adjust ``d[key]`` over the drafts of ``roles`` into ``d[out]``: the family is
    the comparisons that were tested (a comparison without a p-value, e.g. one with no
    variation, is no member: it would only inflate the others' adjusted p-values)."""
    members = [d for d in drafts if d["m"].role in roles and d.get(key) is not None]
    adjusted = adjust_pvalues([d[key] for d in members], correction)  # type: ignore[arg-type]
    for d, p in zip(members, adjusted, strict=True):
        d[out] = float(p)


def _evidence(m: SetupMetric, d: dict[str, Any], adjusted: float | None, alpha: float
              ) -> MetricEvidence:
    """What :func:`metric_decision` reads of one comparison: the quantity shown and its test
    (and, for a guardrail, its improvement test's)."""
    t = d["tested"] or {}
    relative = d["decision_on"] == "lift"
    key = "lift" if relative else "diff"
    improvement = None
    if d["better"] is not None:
        b = d["better"]
        improvement = MetricEvidence(
            metric=m.name, kind=m.kind, role=m.role, higher_is_better=m.higher_is_better,
            control_n=d["c"].n, treatment_n=d["t"].n, estimate=b.get(key),
            ci_low=b.get(f"{key}_ci_low"), ci_high=b.get(f"{key}_ci_high"), relative=relative,
            diff=b.get("diff"), p_value=d["p_better"], adjusted_p_value=d.get("adjusted_better"),
            alternative=d["better_alternative"], sequential=d["sequential"], alpha=alpha,
            method=b.get("test", ""))
    return MetricEvidence(
        metric=m.name, kind=m.kind, role=m.role, higher_is_better=m.higher_is_better,
        control_n=d["c"].n, treatment_n=d["t"].n, estimate=t.get(key),
        ci_low=t.get(f"{key}_ci_low"), ci_high=t.get(f"{key}_ci_high"), relative=relative,
        diff=t.get("diff"), p_value=d["p_decide"], adjusted_p_value=adjusted,
        alternative=d["alternative"], sequential=d["sequential"], alpha=alpha,
        method=t.get("test", ""), margin=m.margin,
        noninferiority_p_value=d.get("adjusted_ni"), untested_reason=d["untested"],
        no_variation=d["no_variation"], improvement=improvement,
    )


# --------------------------------------------------------------------------- snapshots


def snapshot_from_payload(data: dict[str, Any]) -> ResultsSnapshot:
    """A stored snapshot payload as a :class:`ResultsSnapshot`, brought up to date when an older
    version stored it: effects withheld under a flagged SRM check, the verdict set."""
    snapshot = ResultsSnapshot.from_dict(data)
    if snapshot.srm is not None and snapshot.srm.flagged and not all(
        c.blocked for c in snapshot.comparisons
    ):  # stored before SRM withheld the effects
        reason = srm_reason(snapshot.srm)
        snapshot = replace(snapshot, comparisons=tuple(
            withhold(c, reason) for c in snapshot.comparisons))
    if snapshot.verdict is None:  # stored before the verdict existed
        snapshot = replace(snapshot, verdict=experiment_verdict(snapshot))
    return snapshot


def _from_row(row: Any) -> ResultsSnapshot:
    data = dict(row.payload)
    data["snapshot_id"] = row.id
    data["computed_by"] = row.computed_by
    return snapshot_from_payload(data)


def check_as_of(session: Session, *, experiment_id: int, as_of: date | None) -> None:
    """Refuse an ``as_of`` outside the experiment's run: from its start (``actual_start``) to
    today (UTC). None (all data) is always allowed; NotFound without the experiment."""
    if as_of is None:
        return
    exp = load_experiment(session, experiment_id=experiment_id)
    today = datetime.now(UTC).date()
    if exp.actual_start is None:
        raise InvalidInput(
            f"as_of: '{exp.name}' has not launched ({exp.status}), so it has no day to compute "
            f"results as of: leave as_of out (got {as_of.isoformat()})"
        )
    start = min(exp.actual_start, today)
    if not start <= as_of <= today:
        raise InvalidInput(
            f"as_of: give a day from {start.isoformat()} (the start of '{exp.name}') to "
            f"{today.isoformat()} (today, UTC), or leave it out for all data "
            f"(got {as_of.isoformat()})"
        )


def refresh_results(
    session: Session, *, experiment_id: int, actor: Actor, as_of: date | None = None
) -> ResultsSnapshot:
    """Compute the results and store them as a snapshot, unless the latest snapshot has the same
    fingerprint (same settings and data): then that one is returned and nothing is written.

    ``as_of`` must fall in the experiment's run (:func:`check_as_of`)."""
    actor.require("editor", "refresh results")
    check_as_of(session, experiment_id=experiment_id, as_of=as_of)
    with transaction(session):
        snapshot = compute_results(session, experiment_id=experiment_id, as_of=as_of)
        latest = mrepo.latest_snapshot(session, experiment_id=experiment_id)
        if latest is not None and latest.fingerprint == snapshot.fingerprint:
            return _from_row(latest)
        return store_snapshot(session, snapshot, experiment_id=experiment_id, actor=actor,
                              as_of=as_of)


def store_snapshot(session: Session, snapshot: ResultsSnapshot, *, experiment_id: int,
                   actor: Actor, as_of: date | None) -> ResultsSnapshot:
    """Store results just computed (:func:`compute_results`, same session and transaction,
    which the caller owns) as a new snapshot; the snapshot with its id."""
    row = mrepo.add_snapshot(
        session,
        experiment_id=experiment_id,
        computed_by=actor.name,
        computed_at=snapshot.computed_at,
        as_of=as_of,
        data_through=snapshot.data_through,
        fingerprint=snapshot.fingerprint,
        payload={},  # filled in below, once the row has its id
    )
    stored = replace(snapshot, snapshot_id=row.id, computed_by=actor.name)
    # Serialised once, here: the stored document is what the API serves, byte for byte.
    row.payload = json.loads(SNAPSHOT_JSON.dump_json(stored))
    session.flush()
    return stored


def refresh_running(session: Session, *, actor: Actor) -> list[ResultsSnapshot]:
    """Refresh every running experiment (e.g. the nightly job)."""
    ids = repo.experiment_ids(session, status="running")
    return [refresh_results(session, experiment_id=i, actor=actor) for i in ids]


def latest_snapshot(session: Session, *, experiment_id: int) -> ResultsSnapshot | None:
    """The newest stored snapshot (what the API serves without recomputing), or None."""
    row = mrepo.latest_snapshot(session, experiment_id=experiment_id)
    return None if row is None else _from_row(row)


@dataclass(frozen=True)
class AchievedVarianceReduction:
    """The variance reduction CUPED achieved on a metric in an experiment's latest results: the
    expected R² of a plan for the next experiment on that metric (``PlanInputs.r_squared``)."""

    experiment_id: int
    experiment_name: str
    metric: str
    r_squared: float
    """1 - Var(adjusted diff) / Var(unadjusted diff), the smallest over the treatments (the
    conservative plan), floored at 0."""
    description: str


def achieved_variance_reduction(
    session: Session, *, experiment_id: int, metric: str
) -> AchievedVarianceReduction | None:
    """What CUPED achieved on ``metric`` in the experiment's newest stored results, or None when
    they have no CUPED comparison of it (no snapshot, not a mean metric, no covariate)."""
    snapshot = latest_snapshot(session, experiment_id=experiment_id)
    if snapshot is None:
        return None
    achieved = [c.variance_reduction for c in snapshot.rows(metric=metric)
                if c.cuped and c.variance_reduction is not None
                and math.isfinite(c.variance_reduction)]
    if not achieved or min(achieved) >= 1:  # 1: a degenerate covariate, nothing to plan on
        return None
    r_squared = max(min(achieved), 0.0)
    arms = "" if len(achieved) == 1 else f" (the smallest over its {len(achieved)} treatments)"
    return AchievedVarianceReduction(
        experiment_id=experiment_id, experiment_name=snapshot.experiment_name, metric=metric,
        r_squared=r_squared,
        description=(f"CUPED removed {fmt.percent(r_squared, sig=3)} of the variance of {metric} "
                     f"in '{snapshot.experiment_name}'{arms}, results of "
                     f"{snapshot.computed_at:%Y-%m-%d}: R² = {r_squared:.3g}."),
    )


def latest_snapshot_json(session: Session, *, experiment_id: int) -> bytes | None:
    """The newest stored snapshot as JSON (:data:`SNAPSHOT_JSON`), or None; NotFound without
    the experiment.

    The stored document itself when it was stored in the current form (it names its own
    snapshot and this RESULTS_VERSION): nothing is serialised per read. An older one is read
    through :meth:`ResultsSnapshot.from_dict` (which upgrades it) and serialised.
    """
    found = mrepo.latest_snapshot_document(session, experiment_id=experiment_id)
    if found is None:
        require_experiment(session, experiment_id=experiment_id)
        return None
    data = from_json(found.document)  # only to check what it says it is
    if data.get("snapshot_id") == found.snapshot_id and data.get("version") == RESULTS_VERSION:
        return found.document.encode()
    data.update(snapshot_id=found.snapshot_id, computed_by=found.computed_by)
    return SNAPSHOT_JSON.dump_json(snapshot_from_payload(data))


def snapshot_history(
    session: Session, *, experiment_id: int, limit: int | None = None
) -> list[ResultsSnapshot]:
    """Stored snapshots, newest first; NotFound when there is no such experiment."""
    rows = mrepo.snapshots(session, experiment_id=experiment_id, limit=limit)
    if not rows:
        require_experiment(session, experiment_id=experiment_id)
    return [_from_row(r) for r in rows]




# --------------------------------------------------------------------------- daily series


def cumulative_series(
    session: Session,
    *,
    experiment_id: int,
    metric: str | None = None,
    as_of: date | None = None,
) -> list[SeriesPoint]:
    """Per day, per metric x treatment: the cumulative effect and its two-sided CI.

    Sequential experiments get the always-valid confidence sequence (tuned to the planned
    sample), so the band may be read on any day; fixed-horizon ones get the fixed CI, valid
    only on the planned day. Days with fewer than 2 units in an arm are skipped. When the SRM
    check of the data up to the series' end fails (the check the snapshot makes), every point
    is withheld like the snapshot's comparisons (``blocked``, effects None, the arms' n kept).
    """
    setup = experiment_setup(session, experiment_id)
    stats = mrepo.daily_stats(session, experiment_id=experiment_id, through=as_of)
    assigned = mrepo.assignments(session, experiment_id=experiment_id, through=as_of)
    srm = _srm(setup, _units(setup, _cumulate(stats), assigned), assigned)
    blocked_reason = srm_reason(srm) if srm is not None and srm.flagged else None
    sequential = setup.mode == "sequential"
    tuning = float(setup.planned) if sequential and setup.planned else None
    metrics = [m for m in setup.metrics if metric is None or m.name == metric]
    if metric is not None and not metrics:
        raise NotFound(f"'{setup.name}' has no metric named '{metric}'.")
    if len(setup.variants) < 2:
        return []
    by_day: dict[date, list[DailyStatRow]] = defaultdict(list)
    for row in stats:
        by_day[row.day].append(row)
    running: dict[tuple[int, int], MetricStats] = {}
    control_id = setup.variants[0][0]
    points: list[SeriesPoint] = []
    for day in sorted(by_day):
        for row in by_day[day]:
            key = (row.metric_id, row.variant_id)
            running[key] = running.get(key, EMPTY_STATS) + row.stats
        for m in metrics:
            for vid, name, _w in setup.variants[1:]:
                c = running.get((m.id, control_id), EMPTY_STATS)
                t = running.get((m.id, vid), EMPTY_STATS)
                tested, _why = compare_arms(m.kind, c, t, alpha=setup.alpha,
                                     alternative="two-sided", sequential=sequential,
                                     tuning_n=tuning)
                if tested is None:
                    continue
                point = SeriesPoint(
                    day=day, metric=m.name, treatment=name, control_n=c.n, treatment_n=t.n,
                    diff=tested["diff"], diff_ci_low=tested["diff_ci_low"],
                    diff_ci_high=tested["diff_ci_high"], lift=tested["lift"],
                    lift_ci_low=tested["lift_ci_low"], lift_ci_high=tested["lift_ci_high"],
                    p_value=tested["p_value"], lift_p_value=tested["lift_p_value"],
                    sequential=sequential,
                )
                points.append(point if blocked_reason is None
                              else withhold(point, blocked_reason))
    return points
