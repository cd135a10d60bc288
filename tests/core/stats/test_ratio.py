"""Ratio metrics by the delta method: against a seeded bootstrap of seeded unit-level data and
against the delta-method formula computed directly with numpy (Deng, Knoblich & Lu 2018,
"Applying the Delta Method in Metric Analytics", KDD; GrowthBook docs "Statistical Details")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.stats import RatioStats, ratio_stats, ratio_test, sufficient_stats, welch_ttest_from_stats
from tests.core.stats import reference_fieller as ref


def _units(rng: np.random.Generator, n: int, spend: float) -> tuple[np.ndarray, np.ndarray]:
    """Sessions per user (1 + Poisson(2)) and revenue correlated with them (gamma per session,
    with a heavy tail from a user-level multiplier)."""
    sessions = 1.0 + rng.poisson(2.0, n)
    user = rng.lognormal(0.0, 0.5, n)
    revenue = rng.gamma(2.0 * sessions, spend / 2.0) * user
    return revenue, sessions


def test_ratio_se_matches_seeded_bootstrap_within_two_percent():
    """Bootstrap (units resampled with replacement within each arm, 8,000 seeded resamples):
    the SE of R_t - R_c and of R_t / R_c - 1 agree with the delta method within 2%
    (bootstrap Monte Carlo error ~ 1/sqrt(2 B) = 0.8%)."""
    rng = np.random.default_rng(20261202)
    y_c, x_c = _units(rng, 3000, 5.0)
    y_t, x_t = _units(rng, 3200, 5.4)
    r = ratio_test(ratio_stats(y_c, x_c), ratio_stats(y_t, x_t))

    boot = np.random.default_rng(77)
    diffs, lifts = [], []
    for _ in range(8):  # 8 chunks of 1,000 resamples keep memory small
        ic = boot.integers(0, y_c.size, (1000, y_c.size))
        it = boot.integers(0, y_t.size, (1000, y_t.size))
        rc = y_c[ic].sum(axis=1) / x_c[ic].sum(axis=1)
        rt = y_t[it].sum(axis=1) / x_t[it].sum(axis=1)
        diffs.append(rt - rc)
        lifts.append(rt / rc - 1)
    assert_allclose(r.diff_se, np.concatenate(diffs).std(ddof=1), rtol=0.02)
    assert_allclose(r.lift_se, np.concatenate(lifts).std(ddof=1), rtol=0.02)


def test_ratio_matches_direct_numpy_delta_method():
    """Var(R) = (s_y^2/xbar^2 - 2 ybar s_xy/xbar^3 + ybar^2 s_x^2/xbar^4) / n with numpy's
    mean, var(ddof=1) and cov; diff CI = diff +/- 1.959964 SE; lift SE by the delta method."""
    rng = np.random.default_rng(3)
    arms = [_units(rng, 800, 4.0), _units(rng, 900, 4.4)]
    var = []
    for y, x in arms:
        n, xb, yb = y.size, x.mean(), y.mean()
        cov = np.cov(y, x, ddof=1)
        var.append((cov[0, 0] / xb**2 - 2 * yb * cov[0, 1] / xb**3 + yb**2 * cov[1, 1] / xb**4)
                   / n)
    rc, rt = arms[0][0].sum() / arms[0][1].sum(), arms[1][0].sum() / arms[1][1].sum()
    r = ratio_test(ratio_stats(*arms[0]), ratio_stats(*arms[1]))
    se = math.sqrt(var[0] + var[1])
    assert_allclose([r.control_mean, r.treatment_mean, r.diff], [rc, rt, rt - rc], rtol=1e-12)
    assert_allclose(r.diff_se, se, rtol=1e-9)
    assert_allclose(r.diff_ci_high - r.diff, 1.959963984540054 * se, rtol=1e-9)
    assert_allclose(r.lift_se, math.sqrt(var[1] / rc**2 + rt**2 * var[0] / rc**4), rtol=1e-9)
    assert r.method == "delta_ratio"


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("margin", [0.0, 0.05])
def test_ratio_lift_is_fieller_on_the_arm_ratios(alternative, margin):
    """The lift R_t / R_c - 1 gets Fieller's interval and p-value with normal quantiles and the
    delta-method variances of R_t and R_c written out with numpy (as in the test above), by
    brentq inversion (tests/core/stats/reference_fieller.py); without a margin its p-value is
    the difference's z test."""
    margin = 0.0 if alternative == "two-sided" else margin
    rng = np.random.default_rng(21)
    arms = [_units(rng, 600, 4.0), _units(rng, 650, 4.3)]
    var = []
    for y, x in arms:
        n, xb, yb = y.size, x.mean(), y.mean()
        cov = np.cov(y, x, ddof=1)
        var.append((cov[0, 0] / xb**2 - 2 * yb * cov[0, 1] / xb**3 + yb**2 * cov[1, 1] / xb**4)
                   / n)
    rc, rt = arms[0][0].sum() / arms[0][1].sum(), arms[1][0].sum() / arms[1][1].sum()
    r = ratio_test(ratio_stats(*arms[0]), ratio_stats(*arms[1]), alternative=alternative,
                   margin=margin)
    lo, hi = ref.lift_interval(rt, var[1], rc, var[0], alpha=0.05, alternative=alternative,
                               df=math.inf)
    assert_allclose([r.lift_ci_low, r.lift_ci_high], [lo, hi], rtol=1e-8)
    p = ref.lift_p_value(rt, var[1], rc, var[0], r.lift_null, alternative=alternative,
                         df=math.inf)
    assert_allclose(r.lift_p_value, p, rtol=1e-8)
    if margin == 0.0:
        assert_allclose(r.lift_p_value, r.p_value, rtol=1e-12)


def test_ratio_with_unit_denominators_is_the_mean_test():
    """x = 1 for every unit: R is the mean of y and Var(R) = s_y^2 / n, so the SE equals the
    Welch test's (core.stats.welch_ttest_from_stats on the same values)."""
    rng = np.random.default_rng(4)
    y_c, y_t = rng.normal(3.0, 1.0, 500), rng.normal(3.2, 1.5, 600)
    r = ratio_test(ratio_stats(y_c, np.ones(500)), ratio_stats(y_t, np.ones(600)))
    w = welch_ttest_from_stats(sufficient_stats(y_c), sufficient_stats(y_t))
    assert_allclose([r.diff, r.diff_se, r.lift, r.lift_se], [w.diff, w.diff_se, w.lift, w.lift_se],
                    rtol=1e-9)


def test_ratio_stats_merge_equals_stats_of_concatenation():
    rng = np.random.default_rng(5)
    y, x = _units(rng, 300, 2.0)
    merged = ratio_stats(y[:100], x[:100]) + ratio_stats(y[100:], x[100:])
    whole = ratio_stats(y, x)
    assert merged.n == whole.n
    assert_allclose(
        [merged.sum_num, merged.sum_num_squares, merged.sum_den, merged.sum_den_squares,
         merged.sum_num_den],
        [whole.sum_num, whole.sum_num_squares, whole.sum_den, whole.sum_den_squares,
         whole.sum_num_den], rtol=1e-12)
    assert_allclose(merged.ratio_variance, whole.ratio_variance, rtol=1e-9)


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_ratio_sequential_and_one_sided(alternative):
    """A confidence sequence is wider than the fixed interval; one-sided ends are infinite."""
    rng = np.random.default_rng(6)
    c, t = ratio_stats(*_units(rng, 2000, 3.0)), ratio_stats(*_units(rng, 2000, 3.3))
    fixed = ratio_test(c, t, alternative=alternative)
    seq = ratio_test(c, t, alternative=alternative, sequential=True, tuning_n=5000)
    if alternative == "greater":
        assert seq.diff_ci_low < fixed.diff_ci_low and fixed.diff_ci_high == math.inf
    else:
        assert seq.diff_ci_high > fixed.diff_ci_high and fixed.diff_ci_low == -math.inf
    assert seq.p_value >= fixed.p_value and seq.sequential


def test_ratio_stats_validate_their_sums():
    with pytest.raises(ValueError, match="numerator"):
        RatioStats(2, 10.0, 1.0, 2.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="one value per unit each"):
        ratio_stats([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN or infinity"):
        ratio_stats([1.0, np.nan], [1.0, 1.0])
    ok = RatioStats(3, 3.0, 5.0, 3.0, 3.0, 3.0)
    with pytest.raises(ValueError, match="sum_den must be positive"):
        ratio_test(RatioStats(3, 3.0, 5.0, 0.0, 0.0, 0.0), ok)
    with pytest.raises(ValueError, match="at least 2 units"):
        ratio_test(RatioStats(1, 1.0, 1.0, 1.0, 1.0, 1.0), ok)
    with pytest.raises(TypeError, match="treatment must be a RatioStats"):
        ratio_test(ok, (3, 3.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs tuning_n"):
        ratio_test(ok, ok, sequential=True)
