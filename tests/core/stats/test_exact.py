"""The exact path of proportion_ztest: Fisher's exact conditional test and its inverted intervals.

References: R ``fisher.test`` documented output for the tea-tasting table (R's ?fisher.test
example; output as printed in Penn State STAT 504, lesson 4, TeaLady.out: two-sided p = 0.4857,
one-sided p = 0.2429 with 95% interval 0.3135693 to Inf, conditional MLE 6.408309); scipy
``stats.fisher_exact`` and ``stats.contingency.odds_ratio(kind="conditional")``; scipy
``stats.nchypergeom_fisher`` for the acceptance region of the two-sided test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from scipy.stats.contingency import odds_ratio

from core.stats import EXACT_BELOW, InsufficientDataError, proportion_ztest
from core.stats.exact import fisher_exact_inference

# treatment = the cups with tea poured first (3 of 4 called right), control = milk first (1 of 4)
TEA = {"x_c": 1, "n_c": 4, "x_t": 3, "n_t": 4}


def _table(x_c: int, n_c: int, x_t: int, n_t: int) -> list[list[int]]:
    return [[x_t, n_t - x_t], [x_c, n_c - x_c]]


def test_exact_tea_tasting_matches_r_fisher_test_documented_output():
    """R fisher.test(TeaTasting): p = 0.4857; alternative="greater": p = 0.2429, 95% CI for the
    odds ratio [0.3135693, Inf) (R documentation output, 4-7 significant digits printed). R
    finds the bound with uniroot at its default tolerance (about 1e-4), so it is compared at
    rtol 1e-4; the tightly solved bound is compared with scipy below."""
    two = proportion_ztest(TEA["x_c"], TEA["n_c"], TEA["x_t"], TEA["n_t"])
    assert two.method == "fisher_exact"
    assert_allclose(two.p_value, 0.4857, atol=5e-5)
    assert two.lift_p_value == two.p_value
    greater = proportion_ztest(TEA["x_c"], TEA["n_c"], TEA["x_t"], TEA["n_t"],
                               alternative="greater")
    assert_allclose(greater.p_value, 0.2429, atol=5e-5)
    e = fisher_exact_inference(1, 4, 3, 4, alpha=0.05, alternative="greater", lift_null=0.0)
    assert_allclose(e.odds_ratio_ci_low, 0.3135693, rtol=1e-4)
    assert e.odds_ratio_ci_high == math.inf
    # the one-sided interval on the difference is one-sided too and excludes nothing here
    assert greater.diff_ci_high == math.inf and greater.diff_ci_low < 0 < greater.diff


CASES = [(1, 4, 3, 4), (2, 30, 9, 28), (0, 500, 10, 500), (10, 500, 0, 500), (3, 12, 3, 40),
         (0, 8, 7, 9), (12, 15, 4, 19), (1_000_000, 100_000_000, 2, 10), (4, 2000, 1, 2500)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_exact_p_value_matches_scipy_fisher_exact(case, alternative):
    """scipy.stats.fisher_exact([[x_t, n_t - x_t], [x_c, n_c - x_c]], alternative) (= R
    fisher.test's p-value, including its two-sided "as or less likely" rule)."""
    x_c, n_c, x_t, n_t = case
    r = proportion_ztest(x_c, n_c, x_t, n_t, alternative=alternative)
    assert r.method == "fisher_exact"
    ref = stats.fisher_exact(_table(*case), alternative=alternative)
    assert_allclose(r.p_value, ref.pvalue, rtol=1e-7)


@pytest.mark.parametrize("case", CASES[:7])
@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_exact_one_sided_odds_ratio_bound_matches_scipy_conditional_odds_ratio(case, alternative):
    """scipy odds_ratio(table, kind="conditional").confidence_interval(0.95, alternative): the
    one-sided bound inverting P(X >= x | psi) = alpha (lower) or P(X <= x | psi) = alpha."""
    ref = odds_ratio(_table(*case), kind="conditional").confidence_interval(0.95, alternative)
    x_c, n_c, x_t, n_t = case
    e = fisher_exact_inference(x_c, n_c, x_t, n_t, alpha=0.05, alternative=alternative,
                               lift_null=0.0)
    if alternative == "greater":
        assert_allclose(e.odds_ratio_ci_low, ref.low, rtol=1e-6, atol=1e-12)
    else:
        if math.isinf(ref.high):
            assert math.isinf(e.odds_ratio_ci_high)
        else:
            assert_allclose(e.odds_ratio_ci_high, ref.high, rtol=1e-6)


@pytest.mark.parametrize("case", [(1, 4, 3, 4), (2, 30, 9, 28), (3, 12, 3, 40), (12, 15, 4, 19)])
def test_exact_two_sided_interval_is_the_acceptance_region_of_the_test(case):
    """On a fine grid of odds ratios, the two-sided p-value (R's rule, pmf from scipy
    nchypergeom_fisher) is >= alpha inside our interval and < alpha just outside it."""
    x_c, n_c, x_t, n_t = case
    e = fisher_exact_inference(x_c, n_c, x_t, n_t, alpha=0.05, alternative="two-sided",
                               lift_null=0.0)
    m = x_c + x_t
    support = np.arange(max(0, m - n_c), min(n_t, m) + 1)

    def p_two(psi: float) -> float:
        d = stats.nchypergeom_fisher.pmf(support, n_t + n_c, n_t, m, psi)
        obs = stats.nchypergeom_fisher.pmf(x_t, n_t + n_c, n_t, m, psi)
        return float(d[d <= obs * (1 + 1e-7)].sum())

    lo, hi = e.odds_ratio_ci_low, e.odds_ratio_ci_high
    for inside in (lo * 1.001, math.sqrt(lo * hi), hi * 0.999):
        assert p_two(inside) >= 0.05
    for outside in (lo * 0.99, hi * 1.01):
        assert p_two(outside) < 0.05


def test_exact_lopsided_small_arm_gets_fisher_not_the_pooled_z():
    """Issue 12: 2/10 vs 1e6/1e8 gave pooled-z p = 1.6e-9; Fisher's exact p (scipy
    fisher_exact, = R fisher.test) is 0.0043."""
    r = proportion_ztest(1_000_000, 100_000_000, 2, 10)
    assert r.method == "fisher_exact"
    assert_allclose(r.p_value, 0.0042662, rtol=1e-4)
    assert r.significant and r.diff_ci_low > 0 and r.lift_ci_low > 0


def test_exact_all_lost_conversions_give_an_interval_of_positive_width():
    """Issue 12: 10/500 vs 0/500 returned the zero-width lift CI [-1, -1]."""
    r = proportion_ztest(10, 500, 0, 500)
    assert r.method == "fisher_exact" and r.lift == -1.0
    assert r.lift_ci_low == -1.0 and -1.0 < r.lift_ci_high < 0.0
    # the treatment count sits at the bottom of its conditional support, so the difference's
    # interval starts at the estimate itself
    assert r.diff_ci_low == r.diff < r.diff_ci_high < 0
    assert_allclose(r.p_value, stats.fisher_exact(_table(10, 500, 0, 500)).pvalue, rtol=1e-7)


def test_exact_path_switch_follows_the_five_count_rule():
    """At least EXACT_BELOW observed and expected successes and failures per arm: Wald z."""
    assert EXACT_BELOW == 5
    assert proportion_ztest(5, 100, 10, 100).method == "wald_z"
    assert proportion_ztest(4, 100, 10, 100).method == "fisher_exact"
    assert proportion_ztest(95, 100, 90, 100).method == "wald_z"
    assert proportion_ztest(96, 100, 90, 100).method == "fisher_exact"
    # expected count < 5 although every observed count is >= 5: 5/10000 vs 5/50
    assert proportion_ztest(5, 10_000, 5, 50).method == "fisher_exact"


def test_exact_no_conversions_anywhere_carries_no_information():
    r = proportion_ztest(0, 100, 0, 120)
    assert r.p_value == 1.0 and not r.significant and math.isnan(r.lift)
    assert (r.diff_ci_low, r.diff_ci_high) == (-1.0, 1.0)


def test_exact_sequential_small_counts_refuse_with_a_reason():
    with pytest.raises(InsufficientDataError, match="wait for more data"):
        proportion_ztest(3, 100, 7, 100, sequential=True, tuning_n=1000)


@pytest.mark.parametrize(("case", "alternative"), [((3, 30, 8, 30), "greater"),
                                                   ((8, 30, 3, 30), "less")])
def test_exact_margin_tests_the_shifted_null_consistently(case, alternative):
    """Non-inferiority on the exact path: H0 lift <= -margin ("greater"; >= +margin for "less")
    is the exact test at the odds ratio whose fitted table has p_t = (1 + lift_null) p_c; the
    p-value falls as the margin widens (the null moves away from the estimate), crossing alpha
    here, and the bound clears the null exactly when p < alpha."""
    ps = []
    for margin in (0.0, 0.2, 0.5, 0.8):
        r = proportion_ztest(*case, alternative=alternative, margin=margin)
        assert r.method == "fisher_exact"
        assert r.lift_null == (-margin if alternative == "greater" else margin)
        bound = r.lift_ci_low if alternative == "greater" else r.lift_ci_high
        clears = bound > r.lift_null if alternative == "greater" else bound < r.lift_null
        assert clears == (r.p_value < 0.05)
        ps.append(r.p_value)
    assert ps == sorted(ps, reverse=True) and ps[-1] < 0.05 < ps[0]


def test_exact_refuses_a_table_too_large_to_enumerate():
    """4/1e8 vs 5e7/1e8 needs the Wald path's counts in control but would enumerate 5e7+
    conditional tables: refused with a reason instead of exhausting memory."""
    with pytest.raises(InsufficientDataError, match="would enumerate 50,000,005 tables"):
        proportion_ztest(4, 100_000_000, 50_000_000, 100_000_000)
