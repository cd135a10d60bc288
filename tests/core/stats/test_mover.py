"""The small-count path of proportion_ztest: MOVER intervals from Clopper–Pearson limits
(core.stats.mover) and the p-values that belong to them.

References:
* Clopper–Pearson limits: R ``binom.test`` (its documented example, Mendel's peas
  ``binom.test(c(682, 243), p = 3/4)``: 95 percent confidence interval 0.7076683 0.7654066) and
  scipy ``binomtest(x, n).proportion_ci(method="exact")``.
* The MOVER combination, checked with Wilson limits against published intervals: Newcombe
  (1998, Stat Med 17:873, Table II, example (d) 5/56 vs 0/29, method 10: -0.0381 to 0.1926);
  Fagerland, Lydersen & Laake (2017, Statistical Analysis of Contingency Tables, ch. 4; R
  package contingencytables' tests): 7/34 vs 1/34, Newcombe hybrid score 0.0189 to 0.3404 and
  MOVER-R Wilson 1.1537 to 41.9763; Fagerland & Newcombe (2013, Stat Med 32:2823), MOVER-R
  Wilson for 24/73 vs 53/65, 29/55 vs 11/11, 7/18 vs 1/18; and statsmodels
  ``confint_proportions_2indep(method="newcomb")``.
* The MOVER-E interval itself (the same formulas with Clopper–Pearson limits) and its p-value:
  written out from the publications with scipy's exact limits in ``results/mover_e.py``.
* Issue 22's numbers (R ``binom.test(10, 500)`` upper limit 0.0365; the 95% interval for
  495/500 vs 500/500 must contain -0.02) and issue 12's lopsided table (2/10 vs 1e6/1e8, where
  the pooled z gave p = 1.6e-9; scipy ``binom.sf``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from core.stats import EXACT_BELOW, InsufficientDataError, proportion_ztest
from core.stats.mover import clopper_pearson, mover_difference, mover_ratio
from tests.core.stats.results import mover_e

SCIPY_ATOL = 4e-12
"""scipy's exact limits are roots found by brentq at its default xtol (2e-12, absolute)."""
_cp = mover_e.clopper_pearson
_mover_e = mover_e.bounds


def _wilson(x: int, n: int) -> tuple[float, float]:
    return proportion_confint(x, n, alpha=0.05, method="wilson")


def test_clopper_pearson_matches_r_binom_test_documented_example():
    """R ?binom.test: binom.test(c(682, 243), p = 3/4) prints the 95% interval 0.7076683
    0.7654066 (7 significant digits)."""
    assert_allclose(clopper_pearson(682, 925, 0.025), (0.7076683, 0.7654066), atol=5e-8)


@pytest.mark.parametrize("n", [7, 500, 10**8])
@pytest.mark.parametrize("tail", [0.005, 0.025, 0.05, 0.2])
def test_clopper_pearson_matches_scipy_binomtest_and_its_definition(n, tail):
    """scipy binomtest(x, n).proportion_ci(1 - 2 tail, method="exact"), to brentq's tolerance;
    and the definition (Clopper & Pearson 1934) in scipy's binomial distribution, to its
    accuracy in the tails (about 1e-8): P(X >= x | lower) = tail = P(X <= x | upper), where a
    limit is not within 1e-4 of 1 (there a double's spacing alone moves the tail by 1e-6)."""
    for x in sorted({0, 1, 3, n // 2, n - 1, n}):
        low, high = clopper_pearson(x, n, tail)
        assert_allclose((low, high), _cp(x, n, tail), rtol=1e-9, atol=SCIPY_ATOL)
        if x > 0 and low < 1 - 1e-4:
            assert_allclose(stats.binom.sf(x - 1, n, low), tail, rtol=1e-7)
        if x < n and high < 1 - 1e-4:
            assert_allclose(stats.binom.cdf(x, n, high), tail, rtol=1e-7)


@pytest.mark.parametrize("n", [7, 500, 10**8])
@pytest.mark.parametrize("tail", [1e-9, 1e-30, 1e-200, 0.3])
def test_clopper_pearson_zero_and_all_successes_match_the_closed_form(n, tail):
    """x = 0: [0, 1 - tail^(1/n)]; x = n: [tail^(1/n), 1] (P(X = 0 | p) = (1 - p)^n), down to
    the tiny levels that the p-value search reaches."""
    assert clopper_pearson(0, n, tail)[0] == 0.0 and clopper_pearson(n, n, tail)[1] == 1.0
    assert_allclose(clopper_pearson(0, n, tail)[1], -math.expm1(math.log(tail) / n),
                    rtol=1e-12)
    assert_allclose(clopper_pearson(n, n, tail)[0], math.exp(math.log(tail) / n), rtol=1e-12)


@pytest.mark.parametrize(("x_c", "n_c", "x_t", "n_t", "low", "high"), [
    (0, 29, 5, 56, -0.0381, 0.1926),  # Newcombe 1998, Table II (d), method 10
    (1, 34, 7, 34, 0.0189, 0.3404),  # Fagerland et al. 2017, Newcombe hybrid score
])
def test_mover_difference_with_wilson_limits_matches_newcombe_published(x_c, n_c, x_t, n_t, low,
                                                                        high):
    """Published to 4 decimals: compared at atol 5e-5."""
    ours = mover_difference(x_c / n_c, *_wilson(x_c, n_c), x_t / n_t, *_wilson(x_t, n_t))
    assert_allclose(ours, (low, high), atol=5e-5)


@pytest.mark.parametrize("case", [(48, 80, 56, 70), (0, 10, 0, 20), (3, 10, 9, 10),
                                  (10, 500, 0, 500), (500, 500, 495, 500), (2, 7, 6, 7)])
def test_mover_difference_with_wilson_limits_matches_statsmodels_newcomb(case):
    """statsmodels confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb")."""
    x_c, n_c, x_t, n_t = case
    ref = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb", compare="diff")
    ours = mover_difference(x_c / n_c, *_wilson(x_c, n_c), x_t / n_t, *_wilson(x_t, n_t))
    assert_allclose(ours, ref, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("x_c", "n_c", "x_t", "n_t", "low", "high", "atol"), [
    (53, 65, 24, 73, 0.282, 0.563, 5e-4),  # Fagerland & Newcombe 2013 (3 decimals)
    (11, 11, 29, 55, 0.398, 0.761, 5e-4),
    (1, 18, 7, 18, 1.277, 40.751, 5e-4),
    (1, 34, 7, 34, 1.1537, 41.9763, 5e-5),  # Fagerland et al. 2017 (4 decimals)
])
def test_mover_ratio_with_wilson_limits_matches_published_mover_r(x_c, n_c, x_t, n_t, low, high,
                                                                  atol):
    """MOVER-R (Donner & Zou 2012) with Wilson limits, as published."""
    ours = mover_ratio(x_c / n_c, *_wilson(x_c, n_c), x_t / n_t, *_wilson(x_t, n_t))
    assert_allclose(ours, (low, high), atol=atol)


def test_small_counts_issue_22_lost_conversions_reach_the_binom_test_limit():
    """Issue 22: 10/500 vs 0/500 gave the difference interval [-0.0200, -0.0084], one end at the
    estimate; a valid interval must reach about -0.036 (R binom.test(10, 500) upper limit
    0.0365) and at least cover the Newcombe hybrid score interval [-0.0364, -0.0081] (exact
    limits are wider than Wilson's)."""
    r = proportion_ztest(10, 500, 0, 500)
    assert r.method == "mover_cp"
    assert_allclose(r.diff_ci_low, -0.0365, atol=5e-5)
    assert_allclose(r.diff_ci_low, -_cp(10, 500, 0.025)[1], rtol=1e-10)
    assert r.diff_ci_low <= -0.0364 and -0.0081 <= r.diff_ci_high < 0
    ref = _mover_e(10, 500, 0, 500, 0.025)
    assert_allclose([r.diff_ci_low, r.diff_ci_high, r.lift_ci_low, r.lift_ci_high],
                    [ref["diff_low"], ref["diff_high"], -1.0, ref["lift_high"]], rtol=1e-10,
                    atol=1e-11)
    assert r.significant and r.lift_significant


def test_small_counts_issue_22_interval_near_one_contains_the_true_difference():
    """Issue 22: 500/500 vs 495/500 gave the difference and lift interval [-0.010, 1e-10]; a
    valid 95% interval must contain -0.02."""
    r = proportion_ztest(500, 500, 495, 500)
    assert r.method == "mover_cp"
    assert r.diff_ci_low < -0.02 < r.diff_ci_high and r.lift_ci_low < -0.02 < r.lift_ci_high
    ref = _mover_e(500, 500, 495, 500, 0.025)
    assert_allclose([r.diff_ci_low, r.diff_ci_high, r.lift_ci_low, r.lift_ci_high],
                    [ref["diff_low"], ref["diff_high"], ref["lift_low"], ref["lift_high"]],
                    rtol=1e-10, atol=1e-11)


CASES = [(1, 4, 3, 4), (2, 30, 9, 28), (3, 40, 9, 40), (0, 8, 7, 9), (12, 15, 4, 19),
         (3, 12, 3, 40), (4, 2000, 1, 2500), (500, 500, 495, 500), (97, 100, 100, 100)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_small_counts_interval_matches_mover_e_from_scipy_limits(case, alternative):
    """Both intervals = Newcombe / Donner–Zou with scipy's Clopper–Pearson limits at alpha/2
    (two-sided) or alpha (one-sided, the other end infinite)."""
    r = proportion_ztest(*case, alternative=alternative)
    assert r.method == "mover_cp"
    ref = _mover_e(*case, 0.025 if alternative == "two-sided" else 0.05)
    if alternative == "less":
        ref["diff_low"] = ref["lift_low"] = -np.inf
    if alternative == "greater":
        ref["diff_high"] = ref["lift_high"] = np.inf
    assert_allclose([r.diff_ci_low, r.diff_ci_high, r.lift_ci_low, r.lift_ci_high],
                    [ref["diff_low"], ref["diff_high"], ref["lift_low"], ref["lift_high"]],
                    rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("case", CASES[:7])
@pytest.mark.parametrize(("alternative", "margin"), [("two-sided", 0.0), ("greater", 0.0),
                                                     ("less", 0.0), ("greater", 0.3),
                                                     ("less", 0.5)])
def test_small_counts_p_value_is_the_level_at_which_the_interval_reaches_the_null(
    case, alternative, margin
):
    """Each p-value is the level at which its interval (from scipy's Clopper–Pearson limits at
    p/2 per arm, two-sided, or p, one-sided) ends exactly at its null (results/mover_e.py,
    brentq to 1e-14 on scipy's limits, which are good to about 2e-12: rtol 1e-6); 1 for a null
    at or beyond the estimate on the alternative's side."""
    r = proportion_ztest(*case, alternative=alternative, margin=margin)
    assert r.method == "mover_cp"
    for quantity, p, null in [("diff", r.p_value, r.diff_null),
                              ("lift", r.lift_p_value, r.lift_null)]:
        ref = mover_e.p_value(*case, alternative=alternative, quantity=quantity, null=null)
        assert_allclose(p, ref, rtol=1e-6, atol=1e-15)


def test_small_counts_lopsided_arms_give_the_binomial_p_not_the_pooled_z():
    """Issue 12: 2/10 vs 1e6/1e8 gave the pooled-z p = 1.6e-9. With 1e8 control units the
    control limits sit within 3e-5 of 0.01, so the interval's lower end reaches 0 where the
    treatment's Clopper–Pearson lower limit reaches 0.01: at the one-sided level P(X >= 2) for
    X ~ Binomial(10, 0.01) (scipy binom.sf), doubled for the two-sided p."""
    r = proportion_ztest(1_000_000, 100_000_000, 2, 10)
    assert r.method == "mover_cp"
    assert_allclose(r.p_value, 2 * stats.binom.sf(1, 10, 0.01), rtol=1e-5)
    assert_allclose(r.lift_p_value, r.p_value, rtol=1e-9)
    assert r.significant and r.diff_ci_low > 0 and r.lift_ci_low > 0


def test_small_counts_no_conversions_in_either_arm_give_the_exact_zero_count_limits():
    """0/100 vs 0/120: p = 1; the difference interval is [-u(100), u(120)] with the
    Clopper–Pearson upper limit of 0/n, u(n) = 1 - (alpha/2)^(1/n) in closed form; the relative
    risk is unrestricted by the data: lift in [-1, inf)."""
    r = proportion_ztest(0, 100, 0, 120)
    assert r.method == "mover_cp" and r.p_value == 1.0 and r.lift_p_value == 1.0
    assert math.isnan(r.lift)
    assert_allclose([r.diff_ci_low, r.diff_ci_high],
                    [-(1 - 0.025 ** (1 / 100)), 1 - 0.025 ** (1 / 120)], rtol=1e-12)
    assert (r.lift_ci_low, r.lift_ci_high) == (-1.0, math.inf)


def test_small_counts_huge_arms_are_computed_rather_than_refused():
    """4/1e8 vs 5e7/1e8 was refused (50 million conditional tables to enumerate); the
    per-arm limits need no enumeration."""
    r = proportion_ztest(4, 100_000_000, 50_000_000, 100_000_000)
    ref = _mover_e(4, 100_000_000, 50_000_000, 100_000_000, 0.025)
    assert_allclose([r.diff_ci_low, r.diff_ci_high], [ref["diff_low"], ref["diff_high"]],
                    rtol=1e-9)
    # scipy's control limits (about 1e-7) carry brentq's 2e-12 absolute error into the ratio
    assert_allclose([r.lift_ci_low, r.lift_ci_high], [ref["lift_low"], ref["lift_high"]],
                    rtol=1e-4)
    assert r.p_value < 1e-300 and r.significant


def test_small_counts_path_switch_follows_the_five_count_rule():
    """At least EXACT_BELOW observed and expected successes and failures per arm: Wald z."""
    assert EXACT_BELOW == 5
    assert proportion_ztest(5, 100, 10, 100).method == "wald_z"
    assert proportion_ztest(4, 100, 10, 100).method == "mover_cp"
    assert proportion_ztest(95, 100, 90, 100).method == "wald_z"
    assert proportion_ztest(96, 100, 90, 100).method == "mover_cp"
    # expected count < 5 although every observed count is >= 5: 5/10000 vs 5/50
    assert proportion_ztest(5, 10_000, 5, 50).method == "mover_cp"


def test_small_counts_sequential_refuse_with_a_reason():
    with pytest.raises(InsufficientDataError, match="wait for more data"):
        proportion_ztest(3, 100, 7, 100, sequential=True, tuning_n=1000)


@pytest.mark.parametrize(("case", "alternative"), [((3, 30, 8, 30), "greater"),
                                                   ((8, 30, 3, 30), "less")])
def test_small_counts_margin_tests_the_shifted_null_consistently(case, alternative):
    """Non-inferiority: H0 lift <= -margin ("greater"; >= +margin for "less"), and the
    difference against margin * control rate. The p-values fall as the margin widens (the
    null moves away from the estimate), crossing alpha, and each bound clears its null exactly
    when its p < alpha."""
    ps = []
    for margin in (0.0, 0.2, 0.5, 0.8):
        r = proportion_ztest(*case, alternative=alternative, margin=margin)
        assert r.method == "mover_cp"
        assert r.lift_null == (-margin if alternative == "greater" else margin)
        assert_allclose(r.diff_null, r.lift_null * r.control_mean, rtol=1e-15)
        for p, low, high, null in [(r.p_value, r.diff_ci_low, r.diff_ci_high, r.diff_null),
                                   (r.lift_p_value, r.lift_ci_low, r.lift_ci_high,
                                    r.lift_null)]:
            clears = low > null if alternative == "greater" else high < null
            assert clears == (p < 0.05)
        ps.append(r.lift_p_value)
    assert ps == sorted(ps, reverse=True) and ps[-1] < 0.05 < ps[0]
