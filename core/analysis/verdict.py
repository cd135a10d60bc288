"""The one place that decides: the decision state of each metric comparison and the
experiment-level recommendation, each with its reason in plain words.

Per comparison (:func:`metric_decision`), in this order:

1. ``srm_untrustworthy`` for every comparison when the sample-ratio-mismatch check is flagged:
   the effects are withheld (see :mod:`core.analysis.results`, "SRM blocks every lift");
2. ``not_testable`` ("cannot be tested: no variation") when every unit of the metric has the
   same value in both arms: no test exists, so no effect, no p-value and no place in the
   multiple-testing correction;
3. ``too_early`` when the comparison could not be tested (too few units, a sequential
   experiment without a planned sample size, or a method that needs more data), with why;
4. ``guardrail_breach`` when a guardrail shows significant harm (one-sided test in the direction
   the metric's ``higher_is_better`` calls worse). Before a fixed-horizon experiment reaches its
   plan, harm is tested with the always-valid test, so stopping for harm at any look is safe;
   ``significant`` (an improvement, shown green) when the same design's one-sided test in the
   good direction, adjusted over the guardrails, shows the guardrail significantly better;
5. ``too_early`` while the smallest variant is short of the planned sample and the comparison is
   not (sequential mode) significant: a fixed-horizon experiment is never ``significant`` before
   its plan is met;
6. guardrails at the plan: with a non-inferiority margin in the plan, ``not_significant`` when
   the (adjusted) non-inferiority test shows the metric is not worse by the margin or more,
   else ``guardrail_inconclusive`` (harm beyond the margin not ruled out); without a margin,
   ``not_significant``;
7. ``significant`` when the adjusted p-value of the quantity shown (the relative lift, or the
   difference without a lift) is below alpha, else ``not_significant``. That p-value comes from
   the same test as the interval shown, so "significant" and "the interval excludes 0" agree.

Per experiment (:func:`experiment_verdict`), from a results snapshot alone (so the page, the
API, the portfolio CSV, the Overview and the PDF read the same answer):

1. ``none``: no metric data yet, or no primary metric;
2. ``investigate``: sample ratio mismatch: nothing can be trusted until the cause is fixed;
3. ``ship``: a treatment significantly improves the primary metric with no guardrail breach
   and no inconclusive guardrail (the one with the largest gain when several do);
4. ``dont_ship``: a treatment improves the primary metric but breaches a guardrail (a win on the
   primary never outweighs significant harm without a deliberate trade-off);
   ``investigate``: it improves the primary but a guardrail's non-inferiority is not shown;
   ``dont_ship``: any other guardrail breach, or the primary metric got significantly worse;
5. ``investigate``: the primary metric cannot be tested (no variation: e.g. no unit converted
   in any arm), which usually means it is not being logged;
6. ``keep_running``: the primary metric cannot be read yet (short of the planned sample);
7. ``dont_ship``: no significant difference on the primary metric at the planned sample.

Segment slices (exploratory) never enter the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import format as fmt
from core.analysis.snapshot import (
    ExperimentVerdict,
    MetricComparison,
    ResultsSnapshot,
    SrmCheck,
)
from core.types import (
    Alternative,
    DecisionState,
    MetricKind,
    Recommendation,
    Tone,
    VerdictBasis,
)

RECOMMENDATION_LABELS: dict[str, str] = {
    "ship": "Ship", "dont_ship": "Don't ship", "keep_running": "Keep running",
    "investigate": "Investigate", "none": "No recommendation yet",
}
STATE_LABELS: dict[str, str] = {
    "significant": "Significant", "not_significant": "Not significant",
    "too_early": "Too early", "srm_untrustworthy": "Blocked: sample ratio mismatch",
    "guardrail_breach": "Guardrail breach",
    "guardrail_inconclusive": "Guardrail inconclusive",
    "not_testable": "Cannot be tested: no variation",
}
METHOD_NAMES = {
    "welch": "Welch t-test", "welch_cuped": "Welch t-test on CUPED-adjusted means",
    "wald_z": "Wald z-test", "mover_cp": "small-count MOVER test (Clopper–Pearson limits)",
    "delta_ratio": "delta-method z-test for a ratio",
    "quantile_woodruff": "z-test of quantiles with order-statistic (Woodruff) standard errors",
    "fisher_exact": "Fisher's exact test",  # the small-count test of snapshots before version 5
}
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
NO_VARIATION_TEXT = "cannot be tested: no variation"
"""How a comparison without variation reads, on the page, in the API's reason and the PDF."""


# --------------------------------------------------------------------------- per metric


@dataclass(frozen=True)
class AnalysisContext:
    """What every comparison of one experiment shares when it is decided."""

    alpha: float
    correction: str
    sequential_mode: bool
    plan_met: bool
    progress: float | None
    smallest_units: int
    planned_sample_size: int | None
    srm: SrmCheck | None


@dataclass(frozen=True)
class MetricEvidence:
    """One metric, one treatment against the control: the quantity shown and its test."""

    metric: str
    kind: MetricKind
    role: str
    higher_is_better: bool
    control_n: int
    treatment_n: int
    estimate: float | None
    """The quantity shown: the relative lift, or the absolute difference without a lift."""
    ci_low: float | None
    ci_high: float | None
    relative: bool
    """``estimate`` is a relative lift (else an absolute difference)."""
    diff: float | None
    """treatment - control: its sign says which way the metric moved."""
    p_value: float | None
    """p-value of the test of ``estimate`` (the same test its interval inverts)."""
    adjusted_p_value: float | None
    alternative: Alternative
    sequential: bool
    alpha: float
    method: str = ""
    """The test (:data:`core.types.TestMethod`), named in the reason."""
    margin: float | None = None
    """Guardrails: the plan's relative non-inferiority margin."""
    noninferiority_p_value: float | None = None
    """Adjusted p of the non-inferiority test (H0: worse by at least the margin)."""
    untested_reason: str | None = None
    """Why there is no test (e.g. a sequential experiment without a planned sample size)."""
    no_variation: str | None = None
    """Why no test exists at all, in words (every unit has the same value in both arms)."""
    improvement: MetricEvidence | None = None
    """Guardrails: the one-sided test in the metric's good direction (H0: no improvement), with
    its own interval and p-values (adjusted over the guardrails), or None."""


@dataclass(frozen=True)
class MetricDecision:
    state: DecisionState
    reason: str


def _effect_text(e: MetricEvidence) -> str:
    return fmt.effect(e.estimate, e.ci_low, e.ci_high, relative=e.relative,
                      ci=fmt.ci_label(e.alpha, e.sequential),
                      open_ends=e.alternative != "two-sided")


def _srm_facts(srm: SrmCheck) -> str:
    observed = ", ".join(f"{v} {fmt.count(n)}" for v, n in zip(srm.variants, srm.observed,
                                                               strict=True))
    expected = ", ".join(fmt.count(e) for e in srm.expected)
    return (f"assignments ({observed}) differ from the planned split (expected {expected}; "
            f"chi-square p = {srm.p_value:.2g})")


def srm_reason(srm: SrmCheck) -> str:
    """Why a flagged SRM check blocks every effect, with the observed and expected counts."""
    return (f"Sample ratio mismatch: {_srm_facts(srm)}. The randomisation or logging is broken, "
            "so no effect can be trusted until the cause is fixed.")


def metric_decision(e: MetricEvidence, ctx: AnalysisContext) -> MetricDecision:
    """The decision state of one comparison and why (rules in the module docstring)."""
    method = CORRECTION_NAMES.get(ctx.correction, ctx.correction)
    if ctx.srm is not None and ctx.srm.flagged:
        return MetricDecision("srm_untrustworthy", srm_reason(ctx.srm))
    if e.no_variation is not None:
        family = "guardrail" if e.role == "guardrail" else "primary and secondary"
        return MetricDecision("not_testable", (
            f"{e.metric} {NO_VARIATION_TEXT}: {e.no_variation}, so there is no variance to "
            f"test with. It is left out of the {method} correction over the {family} metrics."))
    if e.p_value is None or e.estimate is None:
        if e.untested_reason:
            return MetricDecision("too_early", f"{e.metric} is not tested: {e.untested_reason}")
        if e.control_n == 0 and e.treatment_n == 0:
            return MetricDecision("too_early", f"No data for {e.metric} yet.")
        return MetricDecision("too_early", (
            f"Not enough data to test {e.metric} yet (control n={e.control_n}, treatment "
            f"n={e.treatment_n}; at least 2 units per arm are needed)."))
    p = e.p_value
    adj = e.adjusted_p_value if e.adjusted_p_value is not None else p
    effect = _effect_text(e)
    test = METHOD_NAMES.get(e.method, e.method)
    effect = f"{effect}, {test}" if test else effect
    planned = ctx.planned_sample_size
    progress_text = (
        f"{fmt.percent(ctx.progress, 0)} of the planned sample ({fmt.count(ctx.smallest_units)} "
        f"of {fmt.count(planned)} units per variant)"
        if ctx.progress is not None and planned else "no planned sample size"
    )
    if e.role == "guardrail":
        worse = "lower" if e.higher_is_better else "higher"
        how = ("always-valid one-sided" if not ctx.plan_met or ctx.sequential_mode
               else "one-sided")
        if adj < ctx.alpha:
            return MetricDecision("guardrail_breach", (
                f"Guardrail {e.metric} is significantly worse ({worse}): {effect}; {how} p "
                f"{fmt.p_is(p)}, {method}-adjusted over guardrails {fmt.pvalue(adj)} < alpha "
                f"{ctx.alpha:g}."))
        up = e.improvement
        if up is not None and up.p_value is not None and up.adjusted_p_value is not None and (
            up.adjusted_p_value < ctx.alpha
        ):  # the same design as the harm test, in the good direction: valid at this look too
            better_way = "higher" if e.higher_is_better else "lower"
            shown = _effect_text(up)
            shown = f"{shown}, {test}" if test else shown
            return MetricDecision("significant", (
                f"Guardrail {e.metric} is significantly better ({better_way}): {shown}; {how} p "
                f"{fmt.p_is(up.p_value)}, {method}-adjusted over guardrails "
                f"{fmt.pvalue(up.adjusted_p_value)} < alpha {ctx.alpha:g}."))
        if not ctx.plan_met:
            return MetricDecision("too_early", (
                f"No significant harm to {e.metric} so far ({effect}); {progress_text}."))
        if e.margin:
            ni = e.noninferiority_p_value
            bound = margin_text(e.margin, e.higher_is_better)
            if ni is not None and ni < ctx.alpha:
                return MetricDecision("not_significant", (
                    f"{e.metric} is non-inferior: not {worse} by the plan's margin of {bound} "
                    f"or more ({effect}; non-inferiority p {fmt.p_is(ni)}, {method}-adjusted "
                    f"< alpha {ctx.alpha:g})."))
            return MetricDecision("guardrail_inconclusive", (
                f"Harm to {e.metric} beyond the plan's margin of {bound} is not ruled out "
                f"({effect}; non-inferiority p {fmt.p_is(ni)}, {method}-adjusted >= alpha "
                f"{ctx.alpha:g}), although no significant harm was found."))
        return MetricDecision("not_significant", (
            f"No significant harm to {e.metric}: {effect}; one-sided p {fmt.p_is(p)} "
            f"({method}-adjusted {fmt.pvalue(adj)})."))
    significant = adj < ctx.alpha
    if not ctx.plan_met and not (ctx.sequential_mode and significant):
        if ctx.sequential_mode:
            return MetricDecision("too_early", (
                f"No significant difference yet ({effect}; always-valid p {fmt.p_is(p)}, "
                f"adjusted {fmt.pvalue(adj)}); {progress_text}. Sequential: keep collecting."))
        return MetricDecision("too_early", (
            f"{progress_text[:1].upper()}{progress_text[1:]}: a fixed-horizon test is read only "
            f"once the planned sample is reached, whatever the interim numbers show (now "
            f"{effect})."))
    kind = "always-valid p" if ctx.sequential_mode else "p"
    if significant:
        moved = e.diff if e.diff is not None else e.estimate
        better = (moved > 0) == e.higher_is_better
        return MetricDecision("significant", (
            f"{e.metric} is significantly {'better' if better else 'worse'}: {effect}; {kind} "
            f"{fmt.p_is(p)}, {method}-adjusted {fmt.pvalue(adj)} < alpha {ctx.alpha:g}."))
    return MetricDecision("not_significant", (
        f"No significant difference in {e.metric}: {effect}; {kind} {fmt.p_is(p)}, "
        f"{method}-adjusted {fmt.pvalue(adj)} >= alpha {ctx.alpha:g}."))


def margin_text(margin: float, higher_is_better: bool) -> str:
    """A guardrail's non-inferiority margin as the worst lift it allows: "−1.0%" (higher is
    better) or "+1.0%" (lower is better)."""
    return fmt.signed_percent(-margin if higher_is_better else margin)


def plan_notes(snapshot: ResultsSnapshot) -> list[str]:
    """The plan's tests that are not the default, in words for the Results page and the PDF: a
    one-sided primary test (its interval open at the far end), each guardrail's
    non-inferiority margin, and what a quantile metric's numbers are."""
    notes: list[str] = []
    seen: set[str] = set()
    ci = fmt.ci_label(snapshot.alpha, snapshot.analysis_mode == "sequential")
    for row in snapshot.comparisons:
        if row.metric in seen:
            continue
        if row.role == "primary" and row.alternative != "two-sided":
            seen.add(row.metric)
            greater = row.alternative == "greater"
            end = "+∞" if greater else "−∞"
            notes.append(
                f"Primary metric {row.metric}: one-sided test, as planned (treatment "
                f"{'>' if greater else '<'} control); its {ci} is one-sided too, open at {end}.")
        elif row.kind == "quantile":
            seen.add(row.metric)
            notes.append(
                f"Quantile metric {row.metric}: control → treatment are the arms' quantiles "
                "of the per-user value (not means); the difference's interval comes from the "
                "order-statistic interval of each arm's quantile (Woodruff 1952), the lift's "
                "from Fieller's.")
        elif row.role == "guardrail" and row.margin:
            seen.add(row.metric)
            worse = "lower" if row.higher_is_better else "higher"
            notes.append(
                f"Guardrail {row.metric}: non-inferiority margin "
                f"{margin_text(row.margin, row.higher_is_better)} (the plan lets it be at most "
                f"{fmt.percent(row.margin, 4, trim=True)} {worse}; non-inferiority must be "
                "shown, or the guardrail is inconclusive).")
    return notes


# --------------------------------------------------------------------------- per experiment


def _verdict(recommendation: Recommendation, basis: VerdictBasis, reason: str,
             **kwargs: object) -> ExperimentVerdict:
    attention = recommendation in ("ship", "dont_ship", "investigate")
    return ExperimentVerdict(recommendation=recommendation, basis=basis,
                             label=RECOMMENDATION_LABELS[recommendation], reason=reason,
                             blocked_by_srm=bool(kwargs.pop("blocked_by_srm", False)),
                             needs_attention=attention, **kwargs)  # type: ignore[arg-type]


def _direction(up: bool, down: bool, higher_is_better: bool) -> str:
    if not (up or down):
        return "none"
    return "better" if up == higher_is_better else "worse"


def readout_note(row: MetricComparison, snapshot: ResultsSnapshot) -> str | None:
    """One plain sentence saying why the Bayesian readout of ``row`` disagrees with its
    decision, or None when they agree (or there is no readout).

    They disagree when one finds the metric better or worse and the other does not (or finds
    the opposite): the decision when it is ``significant`` or a ``guardrail_breach``, the
    readout when its credible interval excludes 0. The sentence names what differs in design:
    the decision's always-valid interval (sequential, or a guardrail before the planned sample)
    against a posterior read as one look; a fixed-horizon decision that waits for the planned
    sample; the multiple-testing adjustment; a one-sided test against a two-sided credible
    interval; the small-count test (MOVER) against a normal approximation; the plan's prior.
    """
    b = row.bayesian
    if b is None or row.blocked or row.untestable is not None:
        return None
    if row.decision_state == "guardrail_breach":
        decided = "worse"
    elif row.decision_state == "significant":
        decided = "better" if is_improvement(row) else "worse"
    else:
        decided = "none"
    credible = _direction(b.ci_low > 0, b.ci_high < 0, row.higher_is_better)
    if decided == credible:
        return None
    ours: list[str] = []
    theirs: list[str] = []
    if row.sequential:
        ours.append("the decision's interval is always-valid (it holds however often the "
                    "results are looked at, so it is wider than a one-look interval, above all "
                    "before the planned sample)")
        theirs.append("reads the data as a single look")
    elif row.decision_state == "too_early":
        ours.append("a fixed-horizon decision is read only once the planned sample is reached")
        theirs.append("uses the data so far")
    raw = row.lift_p_value if row.decision_on == "lift" else row.p_value
    adjusted = row.adjusted_p_value
    if raw is not None and adjusted is not None and adjusted > raw * (1 + 1e-9):
        guard = row.role == "guardrail"
        family = [c for c in snapshot.comparisons if (c.role == "guardrail") == guard
                  and c.adjusted_p_value is not None]
        method = CORRECTION_NAMES.get(snapshot.correction, snapshot.correction)
        ours.append(f"its p-value is {method}-adjusted over the {len(family)} "
                    f"{'guardrail' if guard else 'primary and secondary'} comparisons")
        theirs.append("is not adjusted")
    if row.alternative != "two-sided" and decided != "none":
        ours.append(f"it is a one-sided test at alpha {snapshot.alpha:g}")
        theirs.append(f"gives a two-sided {fmt.percent(1 - b.alpha, 4, trim=True)} interval")
    if row.test in ("mover_cp", "fisher_exact"):  # fisher_exact: snapshots before version 5
        ours.append(f"it uses {'the ' if row.test == 'mover_cp' else ''}"
                    f"{METHOD_NAMES[row.test]}")
        theirs.append("uses a normal approximation")
    if b.prior == "gaussian":
        theirs.append(f"shrinks the lift toward the plan's prior (mean "
                      f"{fmt.signed_percent(b.prior_mean)}, sd {fmt.percent(b.prior_sd)})")
    if not ours:
        ours.append(f"the decision is a test at alpha {snapshot.alpha:g}")
    if not theirs:
        theirs.append("is a posterior probability, not a test")
    joined = theirs[0] if len(theirs) == 1 else f"{', '.join(theirs[:-1])} and {theirs[-1]}"
    return (f"The Bayesian readout differs from the decision because {'; '.join(ours)}, while "
            f"the Bayesian readout {joined}.")


def is_improvement(row: MetricComparison) -> bool:
    """A significant change in the direction the metric calls better."""
    return row.decision_state == "significant" and row.diff is not None and (
        (row.diff > 0) == row.higher_is_better)


def tone(row: MetricComparison) -> Tone:
    """Good, bad or inconclusive for the product, respecting the metric's ``higher_is_better``:
    a significant improvement is good; a significant worsening or a guardrail breach is bad;
    everything else (not significant, too early, withheld by SRM) is inconclusive."""
    if row.decision_state == "guardrail_breach":
        return "bad"
    if row.decision_state != "significant":
        return "inconclusive"
    return "good" if is_improvement(row) else "bad"


def _gain(row: MetricComparison) -> str:
    one_sided = row.alternative != "two-sided"
    if row.lift is not None:
        bounds = fmt.interval(row.lift_ci_low, row.lift_ci_high, fmt.signed_percent,
                              open_ends=one_sided)
        return f"{fmt.signed_percent(row.lift)} {bounds}"
    bounds = fmt.interval(row.diff_ci_low, row.diff_ci_high, fmt.signed_number,
                          open_ends=one_sided)
    return f"{fmt.signed_number(row.diff)} {bounds}"


def _size(row: MetricComparison) -> float:
    return abs(row.lift if row.lift is not None else row.diff or 0.0)


def experiment_verdict(snapshot: ResultsSnapshot | None) -> ExperimentVerdict:
    """The recommendation for an experiment from its results (rules in the module docstring).

    ``snapshot`` None (never computed) reads like a snapshot without data: ``none``.
    """
    if snapshot is None or snapshot.data_through is None:
        return _verdict("none", "no_data", (
            "No recommendation yet: no metric data has been loaded; upload a file or set the "
            "experiment's SQL source, then refresh the results."))
    primary = snapshot.rows(role="primary")
    metric = primary[0].metric if primary else None
    if snapshot.srm is not None and snapshot.srm.flagged:
        return _verdict("investigate", "srm", (
            f"Investigate: sample ratio mismatch, {_srm_facts(snapshot.srm)}. The randomisation "
            "or logging is broken, so every effect is withheld until the cause is fixed."),
            blocked_by_srm=True, primary_metric=metric)
    if not primary:
        return _verdict("none", "no_primary", (
            "No recommendation: the experiment has no primary metric, so nothing says what it "
            "was meant to change."))
    breaches = [r for r in snapshot.rows(role="guardrail")
                if r.decision_state == "guardrail_breach"]
    breach_names = tuple(sorted({f"{r.metric} ({r.treatment})" for r in breaches}))
    breached_treatments = {r.treatment for r in breaches}
    unsure = [r for r in snapshot.rows(role="guardrail")
              if r.decision_state == "guardrail_inconclusive"]
    unsure_treatments = {r.treatment for r in unsure}
    common = {"primary_metric": metric, "guardrail_breaches": breach_names}

    better = [r for r in primary if is_improvement(r)]
    winners = [r for r in better
               if r.treatment not in breached_treatments | unsure_treatments]
    if winners:
        best = max(winners, key=_size)
        other = "" if not breach_names else (
            f" (Not the others: guardrail {', '.join(breach_names)} got significantly worse.)")
        return _verdict("ship", "primary_win", (
            f"Ship {best.treatment}: it significantly improves {best.metric} by {_gain(best)} "
            f"with no significant guardrail harm.{other}"), treatment=best.treatment, **common)
    if better and all(r.treatment not in breached_treatments for r in better):
        row = max(better, key=_size)
        names = ", ".join(sorted(r.metric for r in unsure if r.treatment == row.treatment))
        return _verdict("investigate", "win_with_guardrail_inconclusive", (
            f"Investigate: {row.treatment} improves {row.metric} by {_gain(row)}, but harm to "
            f"guardrail {names} beyond the plan's non-inferiority margin is not ruled out. "
            "Extend the experiment for more data, or accept that risk explicitly."),
            treatment=row.treatment, **common)
    if better:
        row = max((r for r in better if r.treatment in breached_treatments), key=_size)
        harmed = ", ".join(n for n in breach_names if n.endswith(f"({row.treatment})"))
        return _verdict("dont_ship", "win_with_guardrail_breach", (
            f"Don't ship: {row.treatment} improves {row.metric} by {_gain(row)}, but guardrail "
            f"{harmed} got significantly worse. A win on the primary metric does not outweigh "
            "significant harm; decide the trade-off explicitly, or fix the harm and rerun."),
            treatment=row.treatment, **common)
    if breaches:
        first = breaches[0]
        return _verdict("dont_ship", "guardrail_breach", (
            f"Don't ship: guardrail {', '.join(breach_names)} got significantly worse."),
            treatment=first.treatment, **common)
    untestable = [r for r in primary if r.decision_state == "not_testable"]
    if untestable and len(untestable) == len(primary):
        row = untestable[0]
        return _verdict("investigate", "primary_untestable", (
            f"Investigate: the primary metric {row.reason} Check that it is logged and defined "
            "as intended."), treatment=None, **common)
    early = [r for r in primary if r.decision_state == "too_early"]
    if early:
        return _verdict("keep_running", "too_early", (
            f"Keep running: the primary metric cannot be read yet. {early[0].reason}"),
            treatment=None, **common)
    worse = [r for r in primary if r.decision_state == "significant"]
    if worse:
        row = worse[0]
        return _verdict("dont_ship", "primary_worse", (
            f"Don't ship: {row.treatment} makes {row.metric} significantly worse "
            f"by {_gain(row)}."), treatment=row.treatment, **common)
    return _verdict("dont_ship", "no_effect", (
        f"Don't ship: no significant difference on {metric} at the planned sample, so the change "
        "did not show the effect it was meant to have."), **common)
