"""core.stats against scipy and statsmodels, computed live (both are test-only dependencies)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from scipy.optimize import brentq
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.proportion import (
    test_proportions_2indep as sm_test_proportions_2indep,
)

from core.stats import (
    adjust_pvalues,
    mde_proportion,
    power_proportion,
    proportion_ztest,
    sample_size_mean,
    sample_size_proportion,
    welch_ttest,
)
from tests.core.stats import reference_fieller as ref
from tests.core.stats.reference_power import (
    treated_rate,
    unpooled_n_control,
    unpooled_power,
)

SM_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}
WELCH_CASES = [
    (10.0, 2.0, 50, 10.8, 2.5, 60),
    (0.31, 1.2, 1000, 0.29, 0.9, 1200),
    (100.0, 30.0, 12, 80.0, 5.0, 9),
    (5.0, 0.0, 20, 5.5, 1.0, 25),
]
PROP_CASES = [(30, 1000, 45, 1000), (120, 2400, 150, 2500), (5, 80, 15, 90), (0, 50, 4, 60)]


@pytest.mark.parametrize("case", WELCH_CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_ttest_matches_scipy_ttest_ind_from_stats(case, alternative):
    """scipy.stats.ttest_ind_from_stats(treatment, control, equal_var=False, alternative=...)."""
    mc, sc, nc, mt, st, nt = case
    ref = stats.ttest_ind_from_stats(
        mt, st, nt, mc, sc, nc, equal_var=False, alternative=alternative
    )
    r = welch_ttest(mc, sc, nc, mt, st, nt, alternative=alternative)
    assert_allclose([r.statistic, r.p_value], [ref.statistic, ref.pvalue], rtol=1e-10)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_welch_ttest_interval_matches_scipy_confidence_interval(alternative, alpha):
    """scipy.stats.ttest_ind(t, c, equal_var=False, alternative=...).confidence_interval(1 -
    alpha): one-sided alternatives give one-sided intervals with an infinite end."""
    rng = np.random.default_rng(99)
    c, t = rng.normal(10.0, 2.0, 40), rng.normal(11.0, 3.0, 55)
    ref = stats.ttest_ind(t, c, equal_var=False, alternative=alternative)
    ci = ref.confidence_interval(confidence_level=1 - alpha)
    r = welch_ttest(c.mean(), c.std(ddof=1), c.size, t.mean(), t.std(ddof=1), t.size,
                    alpha=alpha, alternative=alternative)
    assert_allclose([r.diff_ci_low, r.diff_ci_high], [ci.low, ci.high], rtol=1e-9)
    assert_allclose(r.p_value, ref.pvalue, rtol=1e-9)


@pytest.mark.parametrize("case", PROP_CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_proportion_ztest_matches_statsmodels_wald_test(case, alternative):
    """statsmodels test_proportions_2indep(x_t, n_t, x_c, n_c, method='wald') (unpooled z);
    small-count tables take the MOVER path (its references are in test_mover)."""
    x_c, n_c, x_t, n_t = case
    r = proportion_ztest(x_c, n_c, x_t, n_t, alternative=alternative)
    if r.method == "mover_cp":  # (0, 50, 4, 60)
        assert min(x_c, x_t, n_c - x_c, n_t - x_t) < 5
        return
    ref = sm_test_proportions_2indep(
        x_t, n_t, x_c, n_c, method="wald", compare="diff", alternative=SM_ALT[alternative]
    )
    assert r.method == "wald_z"
    assert_allclose([r.statistic, r.p_value], [ref.statistic, ref.pvalue], rtol=1e-10)


@pytest.mark.parametrize("case", PROP_CASES)
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_proportion_ztest_ci_matches_statsmodels_wald_interval(case, alpha):
    """statsmodels confint_proportions_2indep(x_t, n_t, x_c, n_c, method='wald', compare='diff')."""
    x_c, n_c, x_t, n_t = case
    lo, hi = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, method="wald", compare="diff", alpha=alpha
    )
    r = proportion_ztest(x_c, n_c, x_t, n_t, alpha=alpha)
    if r.method == "mover_cp":  # (0, 50, 4, 60): see test_mover
        assert min(x_c, x_t, n_c - x_c, n_t - x_t) < 5
        return
    assert_allclose([r.diff_ci_low, r.diff_ci_high], [lo, hi], rtol=1e-6)


@pytest.mark.parametrize(("method", "sm_method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_pvalues_matches_statsmodels_multipletests(method, sm_method):
    """statsmodels multipletests(p, method='holm' | 'fdr_bh').pvals_corrected on random p."""
    rng = np.random.default_rng(20240611)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10), [0.5, 0.5]])
    assert_allclose(adjust_pvalues(p, method), multipletests(p, method=sm_method)[1], rtol=1e-12)


# The proportion planner sizes the engine's unpooled Wald z-test; the reference is statsmodels
# normal_power with that test's unpooled sd (tests/core/stats/reference_power.py).


@pytest.mark.parametrize("ratio", [0.25, 0.5, 1.0, 3.0, 4.0])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_power_proportion_matches_statsmodels_normal_power_unpooled(ratio, alternative):
    """statsmodels normal_power with the unpooled sd (above), n_c = 2,500, any split."""
    base, mde, n_c = 0.12, 0.02, 2500.0
    ref = unpooled_power(base, treated_rate(base, mde, alternative), n_c, ratio=ratio,
                         alternative=alternative)
    got = power_proportion(base, mde, n_c, relative=False, ratio=ratio, alternative=alternative)
    assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize(("base", "mde", "alpha", "power", "ratio", "variants"), [
    (0.10, 0.01, 0.05, 0.8, 1.0, 2), (0.05, 0.005, 0.05, 0.8, 4.0, 2),
    (0.05, 0.005, 0.05, 0.8, 0.25, 2), (0.30, 0.03, 0.01, 0.9, 0.5, 2),
    (0.02, 0.004, 0.10, 0.95, 2.0, 3), (0.50, 0.05, 0.05, 0.8, 1.0, 4),
])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_sample_size_proportion_matches_statsmodels_normal_power(
    base, mde, alpha, power, ratio, variants, alternative
):
    """The control n at which statsmodels normal_power (unpooled sd, alpha / (variants - 1))
    reaches the target power, solved with scipy brentq to 1e-10 (reference_power)."""
    ref = unpooled_n_control(base, treated_rate(base, mde, alternative), power=power,
                             ratio=ratio, alpha=alpha / (variants - 1), alternative=alternative)
    got = sample_size_proportion(base, mde, relative=False, alpha=alpha, power=power,
                                 ratio=ratio, variants=variants, alternative=alternative,
                                 round_up=False)
    assert_allclose(got, ref, rtol=1e-8)


@pytest.mark.parametrize(("n_c", "base", "ratio"), [(1000, 0.10, 1.0), (5000, 0.05, 4.0),
                                                    (200, 0.40, 0.25)])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mde_proportion_matches_statsmodels_normal_power(n_c, base, ratio, alternative):
    """The treatment rate at which statsmodels normal_power (unpooled sd) reaches 80% with
    n_c control units, solved with scipy brentq in the rate to 1e-13."""
    def shortfall(d: float) -> float:
        return unpooled_power(base, treated_rate(base, d, alternative), n_c, ratio=ratio,
                              alternative=alternative) - 0.8

    hi = base if alternative == "less" else 1 - base
    ref = brentq(shortfall, 1e-9, hi * (1 - 1e-9), xtol=1e-13)
    got = mde_proportion(base, n_c, ratio=ratio, alternative=alternative)
    assert_allclose(got, ref, rtol=1e-7)


@pytest.mark.parametrize(("alternative", "published"), [("two-sided", 70), ("greater", 55)])
def test_sample_size_proportion_matches_chow_shao_wang_example(alternative, published):
    """Chow, Shao & Wang, "Sample Size Calculations in Clinical Research" (2nd ed. 2008),
    p. 89, as worked on powerandsamplesize.com ("Compare 2 Proportions: 2-Sample, 2-Sided
    Equality" and "2-Sample, 1-Sided"): p_A = 0.65, p_B = 0.85, kappa = 1, alpha = 0.05,
    power 0.8 give n_B = 70 per group two-sided, 55 one-sided. Exact integers: tolerance 0."""
    n = sample_size_proportion(0.65, 0.20, relative=False, alternative=alternative)
    assert n == published


def test_proportion_planner_vectorised_matches_statsmodels_elementwise():
    """One array call of power_proportion equals statsmodels normal_power element by element."""
    base = np.array([0.05, 0.10, 0.30, 0.50])
    mde = np.array([0.01, 0.02, 0.05, 0.04])
    n_c = np.array([8000.0, 3000.0, 900.0, 2500.0])
    ratio = np.array([1.0, 4.0, 0.25, 2.0])
    got = power_proportion(base, mde, n_c, relative=False, ratio=ratio)
    assert isinstance(got, np.ndarray)
    ref = [unpooled_power(b, b + m, n, ratio=r)
           for b, m, n, r in zip(base, mde, n_c, ratio, strict=True)]
    assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize(
    ("sd", "mde", "ratio"), [(5.0, 1.0, 1.0), (2.0, 0.1, 2.0), (1.0, 0.05, 0.5)]
)
def test_sample_size_mean_close_to_statsmodels_normal_ind_power(sd, mde, ratio):
    """statsmodels NormalIndPower().solve_power(effect_size=mde/sd, ratio=n_t/n_c).

    NormalIndPower uses the normal approximation; ours is R's noncentral t, so the two agree to
    about 1/n relative: within 1% once n is in the hundreds (all cases here).
    """
    ref = NormalIndPower().solve_power(effect_size=mde / sd, alpha=0.05, power=0.8, ratio=ratio)
    got = sample_size_mean(sd, mde, ratio=ratio, round_up=False)
    assert_allclose(got, ref, rtol=0.01)


@pytest.mark.parametrize(("base", "rel"), [(0.05, 0.1), (0.2, 0.05), (0.5, 0.02), (0.1, 0.3)])
def test_sample_size_proportion_close_to_statsmodels_cohens_h(base, rel):
    """statsmodels NormalIndPower with Cohen's h = 2 asin(sqrt(p2)) - 2 asin(sqrt(p1)).

    The arcsine (variance-stabilised) formulation differs from R's pooled/unpooled one only at
    second order in the effect; for relative effects up to 30% they agree within 1%.
    """
    p2 = base * (1 + rel)
    h = 2 * np.arcsin(np.sqrt(p2)) - 2 * np.arcsin(np.sqrt(base))
    ref = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8)
    assert_allclose(sample_size_proportion(base, rel, round_up=False), ref, rtol=0.01)


# ------------------------------------------------- the relative lift: Fieller's interval (issue 22)
# Expected values from tests/core/stats/reference_fieller.py: Fieller's ratio statistic written
# out, p from scipy's t / normal, bounds by scipy brentq test inversion.

LIFT_WELCH_CASES = WELCH_CASES + [(-10.0, 2.0, 50, -12.0, 2.5, 60), (2.0, 0.5, 5, 2.6, 0.7, 5)]


@pytest.mark.parametrize("case", LIFT_WELCH_CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_lift_p_without_margin_is_scipy_welch_test(case, alternative):
    """Tamhane & Logan's ratio t-test at ratio 1 is the Welch t-test of the difference (R
    mratios docs: "For rho=1, t.test.ratio corresponds to a simple t.test"), so the lift's
    p-value equals scipy ttest_ind_from_stats(equal_var=False)'s (oriented by the control
    mean's sign: for a negative control mean, lift > 0 means treatment < control)."""
    mc, sc, nc, mt, st, nt = case
    flip = {"two-sided": "two-sided", "greater": "less", "less": "greater"}
    sci_alt = alternative if mc > 0 else flip[alternative]
    ref = stats.ttest_ind_from_stats(mt, st, nt, mc, sc, nc, equal_var=False,
                                     alternative=sci_alt)
    r = welch_ttest(mc, sc, nc, mt, st, nt, alternative=alternative)
    assert_allclose(r.lift_p_value, ref.pvalue, rtol=1e-10)


@pytest.mark.parametrize("case", LIFT_WELCH_CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize(("alpha", "margin"), [(0.05, 0.0), (0.1, 0.0), (0.05, 0.1)])
def test_welch_lift_interval_and_p_match_fieller_inverted_with_scipy(case, alternative, alpha,
                                                                     margin):
    """Fieller's interval with the difference's Welch-Satterthwaite df (= mratios ttestratio's
    df at ratio 1), found by brentq inversion of the ratio t statistic; the p-value of
    H0 ratio = 1 + lift_null from scipy's t (reference_fieller.lift_p_value). Tolerance 1e-9
    relative (brentq to 1e-15)."""
    mc, sc, nc, mt, st, nt = case
    margin = 0.0 if alternative == "two-sided" else margin
    r = welch_ttest(mc, sc, nc, mt, st, nt, alternative=alternative, alpha=alpha, margin=margin)
    vc, vt = sc**2 / nc, st**2 / nt
    df = ref.welch_df(vc, nc, vt, nt) if vc + vt > 0 else math.inf
    assert_allclose(r.df, df, rtol=1e-12)
    lo, hi = ref.lift_interval(mt, vt, mc, vc, alpha=alpha, alternative=alternative, df=df)
    assert_allclose([r.lift_ci_low, r.lift_ci_high], [lo, hi], rtol=1e-9)
    p = ref.lift_p_value(mt, vt, mc, vc, r.lift_null, alternative=alternative, df=df)
    assert_allclose(r.lift_p_value, p, rtol=1e-9)
    assert_allclose(r.lift, mt / mc - 1, rtol=1e-12)


@pytest.mark.parametrize("case", PROP_CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_proportion_lift_p_without_margin_is_statsmodels_wald_test(case, alternative):
    """Fieller's ratio z at ratio 1 is the unpooled Wald z of the difference: statsmodels
    test_proportions_2indep(x_t, n_t, x_c, n_c, method='wald', compare='diff')."""
    x_c, n_c, x_t, n_t = case
    r = proportion_ztest(x_c, n_c, x_t, n_t, alternative=alternative)
    if r.method == "mover_cp":  # small counts: see test_mover
        return
    sm = sm_test_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff",
                                    alternative=SM_ALT[alternative])
    assert_allclose(r.lift_p_value, sm.pvalue, rtol=1e-10)


@pytest.mark.parametrize("case", PROP_CASES + [(500, 10_000, 560, 10_000), (60, 2000, 45, 2000)])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize(("alpha", "margin"), [(0.05, 0.0), (0.01, 0.0), (0.05, 0.02)])
def test_proportion_lift_interval_and_p_match_fieller_inverted_with_scipy(case, alternative,
                                                                          alpha, margin):
    """Wald path: Fieller's interval with normal quantiles on the rates, unpooled variances
    p(1 - p)/n, by brentq inversion; p of H0 ratio = 1 + lift_null from scipy's normal. At
    alpha 0.01, 5/80 has a control rate within 2.576 SE of 0 (z 2.31): the unbounded case."""
    x_c, n_c, x_t, n_t = case
    margin = 0.0 if alternative == "two-sided" else margin
    r = proportion_ztest(x_c, n_c, x_t, n_t, alternative=alternative, alpha=alpha,
                         margin=margin)
    if r.method == "mover_cp":  # small counts: see test_mover
        return
    pc, pt = x_c / n_c, x_t / n_t
    vc, vt = pc * (1 - pc) / n_c, pt * (1 - pt) / n_t
    lo, hi = ref.lift_interval(pt, vt, pc, vc, alpha=alpha, alternative=alternative,
                               df=math.inf)
    assert_allclose([r.lift_ci_low, r.lift_ci_high], [lo, hi], rtol=1e-9)
    p = ref.lift_p_value(pt, vt, pc, vc, r.lift_null, alternative=alternative, df=math.inf)
    assert_allclose(r.lift_p_value, p, rtol=1e-9)
