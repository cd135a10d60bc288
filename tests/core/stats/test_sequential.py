"""Always-valid inference: GrowthBook's asymptotic confidence sequence and its p-value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.stats import proportion_ztest, sequential, welch_ttest
from tests.core.stats import reference_fieller as ref


def _growthbook_halfwidth(var_diff: float, n_total: float, tuning_total: float, alpha: float):
    """The documented formula, written out independently of core.stats.

    GrowthBook docs "Sequential Testing" (statistics/sequential) and gbstats
    SequentialTwoSidedTTest: sigma_N^2 = N * Var(diff),
    rho = sqrt((-2 log a + log(-2 log a + 1)) / N*),
    half-width = sigma_N sqrt(2 (N rho^2 + 1) / (N^2 rho^2) log(sqrt(N rho^2 + 1) / a)).
    """
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_total)
    s2 = var_diff * n_total
    nr2 = n_total * rho**2
    return math.sqrt(s2) * math.sqrt(
        2 * (nr2 + 1) / (n_total**2 * rho**2) * math.log(math.sqrt(nr2 + 1) / alpha)
    )


@pytest.mark.parametrize(
    ("n_c", "n_t", "tuning_n", "alpha"),
    [(1000, 1000, 1000, 0.05), (500, 700, 5000, 0.05), (20000, 19000, 10000, 0.01)],
)
def test_welch_sequential_ci_matches_growthbook_formula(n_c, n_t, tuning_n, alpha):
    """Source: GrowthBook sequential formula (see _growthbook_halfwidth); N* = 2 * tuning_n."""
    r = welch_ttest(10.0, 3.0, n_c, 10.4, 3.5, n_t, alpha=alpha, sequential=True, tuning_n=tuning_n)
    var = 9.0 / n_c + 12.25 / n_t
    tuning_total = 2 * tuning_n
    hw = _growthbook_halfwidth(var, n_c + n_t, tuning_total, alpha)
    assert_allclose([r.diff_ci_low, r.diff_ci_high], [r.diff - hw, r.diff + hw], rtol=1e-12)


def test_sequential_multiplier_at_tuning_point_matches_hand_value():
    """At N = N*, alpha = 0.05: N rho^2 = 5.991465 + log(6.991465) = 7.936156, so
    m^2 = 2 * 8.936156 / 7.936156 * log(sqrt(8.936156) / 0.05) = 9.211 (hand computation)."""
    assert_allclose(sequential.cs_multiplier(2000, 2000, 0.05), math.sqrt(9.2118), rtol=1e-3)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.1, 0.2, 0.3, -0.25])
def test_sequential_p_value_below_alpha_exactly_when_ci_excludes_zero(alternative, shift):
    """Source: definition (p = smallest alpha whose CS excludes 0); two-sided case only for CI."""
    r = welch_ttest(1.0, 1.0, 400, 1.0 + shift, 1.0, 400, sequential=True, tuning_n=1000)
    excludes = r.diff_ci_low > 0 or r.diff_ci_high < 0
    p2 = r.p_value
    assert (p2 < r.alpha) == excludes
    if alternative != "two-sided":
        one = welch_ttest(
            1.0,
            1.0,
            400,
            1.0 + shift,
            1.0,
            400,
            sequential=True,
            tuning_n=1000,
            alternative=alternative,
        )
        pointing = (shift > 0) if alternative == "greater" else (shift < 0)
        expected = p2 / (2 - p2) if pointing else 1.0
        assert_allclose(one.p_value, expected, rtol=1e-12)


def test_sequential_p_value_inverts_the_boundary():
    """At alpha' = p the CS boundary (rho held fixed) passes through 0: |z| = m(alpha')."""
    n_total, tuning_total, z = 3000.0, 4000.0, 3.4
    p = sequential.cs_p_value(z, n_total, tuning_total, 0.05, "two-sided")
    rho = sequential.rho(0.05, tuning_total)
    nr2 = n_total * rho**2
    m = math.sqrt(2 * (nr2 + 1) / nr2 * math.log(math.sqrt(nr2 + 1) / p))
    assert_allclose(m, z, rtol=1e-10)


def test_sequential_ci_is_wider_than_fixed_horizon_ci():
    """A confidence sequence pays for validity at every look with width."""
    fixed = proportion_ztest(500, 10000, 560, 10000)
    seq = proportion_ztest(500, 10000, 560, 10000, sequential=True, tuning_n=10000)
    assert seq.diff_ci_low < fixed.diff_ci_low < fixed.diff_ci_high < seq.diff_ci_high
    assert seq.lift_ci_low < fixed.lift_ci_low < fixed.lift_ci_high < seq.lift_ci_high
    assert seq.p_value > fixed.p_value
    assert seq.sequential and not fixed.sequential


def test_sequential_interval_is_narrowest_near_tuning_n():
    """Tuning places the tightest boundary (in SE units) near N = N* (GrowthBook docs)."""
    n = np.array([250, 500, 1000, 2000, 4000, 8000], dtype=float)
    ratio = np.array([sequential.cs_multiplier(2 * k, 2 * 1000.0, 0.05) for k in n])
    # the multiplier itself is smallest at the tuning point
    assert np.argmin(ratio) == 2
    # and the half-width (multiplier * SE with SE ~ 1/sqrt(n)) still shrinks as data accrue
    assert np.all(np.diff(ratio / np.sqrt(n)) < 0)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize(("n", "tuning_n", "margin"), [(1000, 1000, 0.0), (600, 5000, 0.0),
                                                        (3000, 1000, 0.05)])
def test_sequential_lift_is_fieller_at_the_growthbook_multiplier(alternative, n, tuning_n,
                                                                 margin):
    """The lift's confidence sequence is Fieller's set at the sequence's multiplier m (the
    GrowthBook half-width over the SE, _growthbook_halfwidth, written out; one-sided bounds at
    level 2 alpha / (1 + alpha) with rho tuned for alpha, core.stats.sequential), found by
    brentq inversion
    (tests/core/stats/reference_fieller.py); its always-valid p-value is the GrowthBook
    closed form p = sqrt(N rho^2 + 1) exp(-T^2 N rho^2 / (2 (N rho^2 + 1))) of Fieller's
    statistic T (one-sided: p2 / (2 - p2) pointing the alternative's way, else 1)."""
    margin = 0.0 if alternative == "two-sided" else margin
    r = welch_ttest(10.0, 3.0, n, 10.4, 3.5, n, alternative=alternative, sequential=True,
                    tuning_n=tuning_n, margin=margin)
    vc, vt = 9.0 / n, 12.25 / n
    rho = math.sqrt((-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / (2 * tuning_n))
    nr2 = 2 * n * rho**2
    level = 0.05 if alternative == "two-sided" else 2 * 0.05 / 1.05
    m = math.sqrt(2 * (nr2 + 1) / nr2 * math.log(math.sqrt(nr2 + 1) / level))
    if alternative == "two-sided":  # the same m as the documented half-width over the SE
        assert_allclose(m, _growthbook_halfwidth(1.0, 2 * n, 2 * tuning_n, 0.05), rtol=1e-12)
    lo = ref.bound(10.4, vt, 10.0, vc, m, "lower") - 1
    hi = ref.bound(10.4, vt, 10.0, vc, m, "upper") - 1
    want = {"two-sided": (lo, hi), "greater": (lo, math.inf), "less": (-math.inf, hi)}
    assert_allclose([r.lift_ci_low, r.lift_ci_high], want[alternative], rtol=1e-9)
    t = ref.ratio_statistic(10.4, vt, 10.0, vc, 1 + r.lift_null)
    p2 = min(1.0, math.sqrt(nr2 + 1) * math.exp(-t * t * nr2 / (2 * (nr2 + 1))))
    pointing = t > 0 if alternative == "greater" else t < 0
    p = p2 if alternative == "two-sided" else (p2 / (2 - p2) if pointing else 1.0)
    assert_allclose(r.lift_p_value, p, rtol=1e-9)
