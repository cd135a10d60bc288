"""The one verdict: per-metric decision states and the experiment-level recommendation, each
rule of core.analysis.verdict exercised on hand-built snapshots (the rules are the spec)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from core.analysis.snapshot import MetricComparison, ResultsSnapshot, SrmCheck, VariantUnits
from core.analysis.verdict import (
    RECOMMENDATION_LABELS,
    AnalysisContext,
    MetricEvidence,
    experiment_verdict,
    metric_decision,
)


def comparison(metric: str = "conv", role: str = "primary", state: str = "significant",
               treatment: str = "treatment", lift: float = 0.1, **kw: Any) -> MetricComparison:
    base: dict[str, Any] = dict(
        metric=metric, kind="binomial", role=role, higher_is_better=True, control="control",
        treatment=treatment, control_n=1000, treatment_n=1000, control_mean=0.1,
        treatment_mean=0.1 * (1 + lift), diff=0.1 * lift, diff_ci_low=0.0, diff_ci_high=0.02,
        lift=lift, lift_ci_low=lift / 2, lift_ci_high=lift * 1.5, p_value=0.01,
        adjusted_p_value=0.01, alternative="two-sided", test="z", sequential=False,
        cuped=False, variance_reduction=None, decision_state=state, reason=f"{metric} {state}",
    )
    base.update(kw)
    return MetricComparison(**base)


SRM_OK = SrmCheck(("control", "treatment"), (1000, 1000), (1000.0, 1000.0), (1.0, 1.0), 0.0,
                  1.0, False, 0.001)


def snapshot(*rows: MetricComparison, srm: SrmCheck | None = SRM_OK,
             data: bool = True) -> ResultsSnapshot:
    return ResultsSnapshot(
        experiment_id=1, experiment_name="x", analysis_mode="fixed", correction="holm",
        alpha=0.05, planned_sample_size=1000, computed_at=datetime(2026, 1, 1, tzinfo=UTC),
        as_of=None, first_day=date(2026, 1, 1) if data else None,
        data_through=date(2026, 1, 5) if data else None, fingerprint="f", srm=srm,
        variants=(VariantUnits("control", 1, True, 1000, 1000, 1.0),
                  VariantUnits("treatment", 1, False, 1000, 1000, 1.0)),
        progress=1.0, plan_met=True, comparisons=tuple(rows),
    )


def test_verdict_primary_win_with_a_guardrail_breach_is_not_a_win() -> None:
    v = experiment_verdict(snapshot(
        comparison(),
        comparison("refunds", "guardrail", "guardrail_breach", lift=0.2, alternative="less"),
    ))
    assert v.recommendation == "dont_ship" and v.label == "Don't ship"
    assert v.reason.startswith("Don't ship: treatment improves conv")
    assert "guardrail refunds (treatment) got significantly worse" in v.reason
    assert v.guardrail_breaches == ("refunds (treatment)",) and v.treatment == "treatment"
    assert v.needs_attention and not v.blocked_by_srm


def test_verdict_ships_the_clean_winner_when_another_treatment_breaches() -> None:
    v = experiment_verdict(snapshot(
        comparison(treatment="a", lift=0.3), comparison(treatment="b", lift=0.1),
        comparison("refunds", "guardrail", "guardrail_breach", treatment="a"),
        comparison("refunds", "guardrail", "not_significant", treatment="b"),
    ))
    assert (v.recommendation, v.treatment) == ("ship", "b")
    assert "Not the others: guardrail refunds (a)" in v.reason


def test_verdict_ships_the_largest_clean_gain() -> None:
    v = experiment_verdict(snapshot(comparison(treatment="a", lift=0.05),
                                    comparison(treatment="b", lift=0.12)))
    assert (v.recommendation, v.treatment) == ("ship", "b")
    assert v.reason.startswith("Ship b: it significantly improves conv by +12.0% [+6.0%, +18.0%]")


def test_verdict_srm_investigates_whatever_the_effects() -> None:
    srm = replace(SRM_OK, observed=(1000, 1200), p_value=1e-5, flagged=True)
    v = experiment_verdict(snapshot(comparison(state="srm_untrustworthy"), srm=srm))
    assert v.recommendation == "investigate" and v.blocked_by_srm
    assert "sample ratio mismatch" in v.reason and "control 1,000, treatment 1,200" in v.reason


@pytest.mark.parametrize(("rows", "expected", "phrase"), [
    ((comparison(state="too_early"),), "keep_running", "cannot be read yet"),
    ((comparison(lift=-0.1),), "dont_ship", "makes conv significantly worse"),
    ((comparison(state="not_significant"),), "dont_ship", "no significant difference on conv"),
    ((comparison(state="not_significant"),
      comparison("refunds", "guardrail", "guardrail_breach")), "dont_ship",
     "guardrail refunds (treatment) got significantly worse"),
    ((comparison("other", "secondary"),), "none", "no primary metric"),
])
def test_verdict_rules(rows: tuple[MetricComparison, ...], expected: str, phrase: str) -> None:
    v = experiment_verdict(snapshot(*rows))
    assert v.recommendation == expected
    assert v.label == RECOMMENDATION_LABELS[expected]
    assert phrase in v.reason


def test_verdict_none_without_data() -> None:
    assert experiment_verdict(None).recommendation == "none"
    v = experiment_verdict(snapshot(comparison(state="too_early"), data=False))
    assert v.recommendation == "none" and "no metric data" in v.reason
    assert not v.needs_attention


def test_verdict_keep_running_does_not_need_attention() -> None:
    assert not experiment_verdict(snapshot(comparison(state="too_early"))).needs_attention


def _evidence(**kw: Any) -> MetricEvidence:
    base: dict[str, Any] = dict(
        metric="conv", kind="binomial", role="primary", higher_is_better=True, control_n=100,
        treatment_n=100, estimate=0.1, ci_low=0.02, ci_high=0.18, relative=True, diff=0.01,
        p_value=0.01, adjusted_p_value=0.02, alternative="two-sided", sequential=False,
        alpha=0.05,
    )
    base.update(kw)
    return MetricEvidence(**base)


CTX = AnalysisContext(alpha=0.05, correction="holm", sequential_mode=False, plan_met=True,
                      progress=1.0, smallest_units=1000, planned_sample_size=1000, srm=None)


@pytest.mark.parametrize(("evidence", "ctx", "state"), [
    (_evidence(), CTX, "significant"),
    (_evidence(adjusted_p_value=0.06), CTX, "not_significant"),
    (_evidence(), replace(CTX, plan_met=False, progress=0.5), "too_early"),
    (_evidence(), replace(CTX, plan_met=False, progress=0.5, sequential_mode=True),
     "significant"),
    (_evidence(role="guardrail", alternative="less"), replace(CTX, plan_met=False),
     "guardrail_breach"),
    (_evidence(role="guardrail", adjusted_p_value=0.2), replace(CTX, plan_met=False),
     "too_early"),
    (_evidence(p_value=None, estimate=None), CTX, "too_early"),
    (_evidence(), replace(CTX, srm=replace(SRM_OK, flagged=True)), "srm_untrustworthy"),
])
def test_verdict_metric_decision_states(evidence: MetricEvidence, ctx: AnalysisContext,
                                        state: str) -> None:
    assert metric_decision(evidence, ctx).state == state


def test_verdict_metric_direction_follows_the_difference_not_the_lift_sign() -> None:
    # Negative control mean: the lift is positive while the metric went down.
    d = metric_decision(_evidence(estimate=0.2, diff=-0.5), CTX)
    assert d.state == "significant" and "significantly worse" in d.reason


def test_verdict_primary_win_with_an_inconclusive_guardrail_investigates() -> None:
    v = experiment_verdict(snapshot(
        comparison(), comparison("refunds", "guardrail", "guardrail_inconclusive", margin=0.02),
    ))
    assert (v.recommendation, v.basis) == ("investigate", "win_with_guardrail_inconclusive")
    assert "non-inferiority margin is not ruled out" in v.reason or "not ruled out" in v.reason


@pytest.mark.parametrize(("ni_p", "state"), [(0.01, "not_significant"),
                                             (0.3, "guardrail_inconclusive")])
def test_verdict_guardrail_margin_needs_non_inferiority_shown(ni_p: float, state: str) -> None:
    e = _evidence(role="guardrail", alternative="less", adjusted_p_value=0.4, p_value=0.4,
                  margin=0.02, noninferiority_p_value=ni_p)
    d = metric_decision(e, CTX)
    assert d.state == state and "−2.0%" in d.reason


def test_verdict_untested_comparison_says_why() -> None:
    d = metric_decision(_evidence(p_value=None, estimate=None, untested_reason="no plan"), CTX)
    assert d.state == "too_early" and d.reason.endswith("no plan")
