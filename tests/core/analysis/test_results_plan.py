"""Results follow the plan's test settings (SQLite and PostgreSQL): a one-sided primary gets a
one-sided test and interval (open end infinite, p agreeing with it; scipy and statsmodels
references), a guardrail margin a non-inferiority test (passes, or ``guardrail_inconclusive``),
and the plan's Gaussian prior the conjugate posterior of the lift."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.testing import assert_allclose
from scipy import stats
from sqlalchemy.orm import Session
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.proportion import test_proportions_2indep as sm_test_proportions_2indep

from core import format as fmt
from core import registry
from core.analysis.results import compute_results
from core.analysis.verdict import plan_notes
from tests.conftest import EDITOR
from tests.core.analysis.test_results_inference import binomial, normal, put
from tests.core.data.test_ingestion import make_experiment
from tests.core.stats import reference_fieller as fieller


def planned(session: Session, **plan: Any) -> int:
    """A running experiment (primary conv, guardrail load_ms) with the given plan settings."""
    exp_id = make_experiment(session, primary=plan.pop("primary", "conv"),
                             guardrails=plan.pop("guardrails", ("load_ms",)), secondaries=(),
                             planned=100, end=None)
    exp = registry.get_experiment(session, experiment_id=exp_id)
    registry.update_experiment(session, experiment_id=exp_id, changes=plan,
                               expected_version=exp.version, actor=EDITOR, reason="test plan")
    return exp_id


def rows(session: Session, exp_id: int) -> dict[str, Any]:
    return {c.metric: c for c in compute_results(session, experiment_id=exp_id).comparisons}


def test_results_one_sided_primary_gets_a_one_sided_test_and_interval(session: Session) -> None:
    """conv 300/3000 vs 345/3000, plan "greater": the difference's p and lower bound are
    statsmodels' one-sided Wald test and the Wald interval at 2 alpha; the lift's p is the
    same (Fieller's ratio test at ratio 1 is the Wald z) and its lower bound Fieller's at
    z_{0.95}, by brentq inversion (tests/core/stats/reference_fieller.py); the upper ends are
    +inf (null in the snapshot)."""
    exp = planned(session, alternative="greater")
    put(session, exp, "conv", [binomial(3000, 300), binomial(3000, 345)])
    put(session, exp, "load_ms", [normal(3000, 800, 100), normal(3000, 801, 100)],
        assign=False)
    conv = rows(session, exp)["conv"]
    assert conv.alternative == "greater"
    assert conv.diff_ci_high is None and conv.lift_ci_high is None  # +inf
    ref_p = sm_test_proportions_2indep(345, 3000, 300, 3000, method="wald",
                                       alternative="larger").pvalue
    assert_allclose(conv.p_value, ref_p, rtol=1e-9)
    low, _high = confint_proportions_2indep(345, 3000, 300, 3000, method="wald", alpha=0.10)
    assert_allclose(conv.diff_ci_low, low, rtol=1e-9)
    c, t = 0.1, 0.115
    assert_allclose(conv.lift_p_value, ref_p, rtol=1e-9)
    low, _high = fieller.lift_interval(t, t * (1 - t) / 3000, c, c * (1 - c) / 3000, alpha=0.05,
                                       alternative="greater", df=math.inf)
    assert_allclose(conv.lift_ci_low, low, rtol=1e-9)
    # p and interval agree: significant, and the one-sided interval excludes 0.
    assert conv.lift_p_value < 0.05 < 2 * conv.lift_p_value  # two-sided it would not be
    assert conv.decision_state == "significant" and conv.lift_ci_low > 0
    assert "[+" in conv.reason and "+∞)" in conv.reason
    shown = fmt.interval(conv.lift_ci_low, conv.lift_ci_high, open_ends=True)
    assert shown.endswith(", +∞)") and shown.startswith("[+")
    snap = compute_results(session, experiment_id=exp)
    assert snap.verdict is not None and snap.verdict.recommendation == "ship"
    assert "+∞)" in snap.verdict.reason
    assert plan_notes(snap)[0].startswith("Primary metric conv: one-sided test, as planned "
                                          "(treatment > control)")


def test_results_one_sided_less_on_a_lower_is_better_primary_matches_scipy(
    session: Session,
) -> None:
    """load_ms (lower is better) as primary with plan "less", 800 vs 790: scipy's one-sided
    Welch test (ttest_ind_from_stats, alternative="less") and its lower-open interval."""
    exp = planned(session, primary="load_ms", guardrails=(), alternative="less")
    put(session, exp, "load_ms", [normal(2000, 800, 100), normal(2000, 790, 100)])
    load = rows(session, exp)["load_ms"]
    ref = stats.ttest_ind_from_stats(790, 100, 2000, 800, 100, 2000, equal_var=False,
                                     alternative="less")
    assert_allclose(load.p_value, ref.pvalue, rtol=1e-9)
    se = math.sqrt(100**2 / 2000 * 2)
    dof = (2 * (100**2 / 2000)) ** 2 / (2 * (100**2 / 2000) ** 2 / 1999)
    assert_allclose(load.diff_ci_high, -10 + stats.t.isf(0.05, dof) * se, rtol=1e-9)
    assert load.diff_ci_low is None and load.lift_ci_low is None  # -inf
    assert load.decision_state == "significant" and "significantly better" in load.reason
    assert "(−∞, " in load.reason


def test_results_guardrail_margin_shown_non_inferior_passes(session: Session) -> None:
    """load_ms +0.1% with a 2% margin (n 3000, sd 100): H0 "at least 2% higher" is rejected
    (Fieller's one-sided ratio t-test of ratio < 1.02 with the Welch df, written out with
    scipy in tests/core/stats/reference_fieller.py)."""
    exp = planned(session, guardrail_margins={"load_ms": 0.02})
    put(session, exp, "conv", [binomial(3000, 300), binomial(3000, 300)])
    put(session, exp, "load_ms", [normal(3000, 800, 100), normal(3000, 800.8, 100)],
        assign=False)
    load = rows(session, exp)["load_ms"]
    assert load.margin == 0.02
    v = 100**2 / 3000  # the variance of each arm's mean
    ref = fieller.lift_p_value(800.8, v, 800, v, 0.02, alternative="less",  # H1: lift < margin
                               df=fieller.welch_df(v, 3000, v, 3000))
    assert_allclose(load.noninferiority_p_value, ref, rtol=1e-6)
    assert load.decision_state == "not_significant"
    assert "non-inferior" in load.reason and "+2.0%" in load.reason
    snap = compute_results(session, experiment_id=exp)
    assert any(n.startswith("Guardrail load_ms: non-inferiority margin +2.0%")
               for n in plan_notes(snap))


def test_results_guardrail_margin_not_shown_is_inconclusive(session: Session) -> None:
    """The same guardrail on 150 units per arm: no significant harm, but harm beyond the 2%
    margin is not ruled out, so the win on conv is not shipped: investigate."""
    exp = planned(session, guardrail_margins={"load_ms": 0.02})
    put(session, exp, "conv", [binomial(3000, 300), binomial(3000, 390)])
    put(session, exp, "load_ms", [normal(150, 800, 100), normal(150, 801, 100)],
        assign=False)
    snap = compute_results(session, experiment_id=exp)
    load = next(c for c in snap.comparisons if c.metric == "load_ms")
    assert load.noninferiority_p_value is not None and load.noninferiority_p_value > 0.05
    assert load.decision_state == "guardrail_inconclusive"
    assert snap.verdict is not None
    assert (snap.verdict.recommendation, snap.verdict.basis) == (
        "investigate", "win_with_guardrail_inconclusive")


def test_results_plan_prior_gives_the_conjugate_posterior(session: Session) -> None:
    """prior N(0, 0.05^2) on the lift: the posterior mean and sd against a seeded importance-
    weighted Monte Carlo (draws from the likelihood N(lift, se^2), weighted by the prior)."""
    exp = planned(session, guardrails=(), prior_lift_mean=0.0, prior_lift_sd=0.05)
    put(session, exp, "conv", [binomial(4000, 400), binomial(4000, 440)])
    conv = rows(session, exp)["conv"]
    b = conv.bayesian
    assert b is not None and b.prior == "gaussian" and (b.prior_mean, b.prior_sd) == (0.0, 0.05)
    c, t = 0.1, 0.11
    se = math.sqrt(t * (1 - t) / 4000 / c**2 + t**2 * c * (1 - c) / 4000 / c**4)
    draws = np.random.default_rng(11).normal(t / c - 1, se, 2_000_000)
    weights = stats.norm.pdf(draws, 0.0, 0.05)
    mean = np.average(draws, weights=weights)
    sd = math.sqrt(np.average((draws - mean) ** 2, weights=weights))
    assert_allclose([b.posterior_mean, b.posterior_sd], [mean, sd], atol=1e-3)
    assert_allclose(b.chance_to_beat_control, np.average(draws > 0, weights=weights), atol=1e-3)
    assert b.posterior_mean < conv.lift  # shrunk toward the prior's 0


def test_results_plan_settings_change_the_fingerprint(session: Session) -> None:
    exp = planned(session, guardrails=())
    put(session, exp, "conv", [binomial(4000, 400), binomial(4000, 440)])
    before = compute_results(session, experiment_id=exp).fingerprint
    view = registry.get_experiment(session, experiment_id=exp)
    registry.update_experiment(session, experiment_id=exp, changes={"alternative": "greater"},
                               expected_version=view.version, actor=EDITOR, reason="typo")
    assert compute_results(session, experiment_id=exp).fingerprint != before
