"""Focused behaviour of sufficient statistics, CUPED, SRM, duration and the planner's interface."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.stats import (
    OTHER,
    CovariateStats,
    SufficientStats,
    covariate_stats,
    cuped_adjust,
    duration_days,
    mde_proportion,
    proportion_ztest,
    proportion_ztest_from_stats,
    sample_size_mean,
    sample_size_proportion,
    srm_test,
    sufficient_stats,
    top_n_groups,
    welch_ttest,
    welch_ttest_cuped,
    welch_ttest_from_stats,
)

REPO = Path(__file__).resolve().parents[3]


def test_sufficient_stats_match_numpy_mean_and_variance():
    """numpy mean / var(ddof=1) on the same seeded values."""
    x = np.random.default_rng(1).normal(50.0, 3.0, size=10_001)
    s = sufficient_stats(x)
    assert s.n == x.size
    assert_allclose([s.mean, s.variance, s.sd], [x.mean(), x.var(ddof=1), x.std(ddof=1)], rtol=1e-9)


def test_sufficient_stats_are_frozen_and_mergeable():
    s = SufficientStats(3, 6.0, 14.0)
    with pytest.raises(FrozenInstanceError):
        s.n = 4  # type: ignore[misc]
    merged = s.merge(SufficientStats(2, 9.0, 41.0))
    assert merged == SufficientStats(5, 15.0, 55.0) == s + SufficientStats(2, 9.0, 41.0)
    assert math.isnan(SufficientStats(0, 0.0, 0.0).mean)
    assert math.isnan(SufficientStats(1, 2.0, 4.0).variance)


def test_welch_from_stats_equals_welch_from_summaries():
    c, t = SufficientStats(50, 500.0, 5200.0), SufficientStats(60, 660.0, 7400.0)
    a = welch_ttest_from_stats(c, t, alpha=0.1)
    b = welch_ttest(c.mean, c.sd, c.n, t.mean, t.sd, t.n, alpha=0.1)
    assert a == b


def test_proportion_from_stats_uses_sum_as_conversions():
    c = sufficient_stats(np.r_[np.ones(30), np.zeros(970)])
    t = sufficient_stats(np.r_[np.ones(45), np.zeros(955)])
    assert proportion_ztest_from_stats(c, t) == proportion_ztest(30, 1000, 45, 1000)


def _mratios_fieller(mx: float, vx: float, nx: int, my: float, vy: float, ny: int,
                     q: float) -> tuple[float, float]:
    """Fieller's ratio limits (treatment x over control y) as R mratios::t.test.ratio
    (var.equal = FALSE; Tamhane & Logan 2004) writes them in its source: tA = vy q^2/ny - my^2,
    tB = 2 mx my, tC = vx q^2/nx - mx^2, limits tB/(-2 tA) -/+ sqrt((tB/2)^2 - tA tC)/tA."""
    t_a, t_b, t_c = vy * q**2 / ny - my**2, 2 * mx * my, vx * q**2 / nx - mx**2
    root = math.sqrt((t_b / 2) ** 2 - t_a * t_c) / t_a
    return t_b / (-2 * t_a) + root, t_b / (-2 * t_a) - root


def test_lift_se_is_the_delta_method_and_its_interval_is_fiellers():
    """lift_se (the Bayesian readout's input) is the delta-method SE, Var(lift) = Var(t)/c^2 +
    t^2 Var(c)/c^4 (GrowthBook docs "Statistical Details"); the interval is Fieller's, with
    the difference's Welch df (mratios' df at ratio 1) and q = scipy stats.t.ppf(0.975, df)."""
    from scipy import stats

    r = welch_ttest(10.0, 4.0, 400, 11.0, 5.0, 500, alpha=0.05)
    var = (25 / 500) / 100 + 121 * (16 / 400) / 10_000
    assert_allclose(r.lift, 0.1, rtol=1e-12)
    assert_allclose(r.lift_se, math.sqrt(var), rtol=1e-12)
    lo, hi = _mratios_fieller(11.0, 25.0, 500, 10.0, 16.0, 400, stats.t.ppf(0.975, r.df))
    assert_allclose([r.lift_ci_low, r.lift_ci_high], [lo - 1, hi - 1], rtol=1e-9)
    # skewed like the ratio: further above the estimate than below it
    assert r.lift_ci_high - r.lift > r.lift - r.lift_ci_low


def test_lift_interval_is_unbounded_when_the_control_mean_is_indistinguishable_from_zero():
    """Control mean 1 with SE 10/sqrt(20) (t = 0.45): Fieller's set is unbounded (mratios
    returns NA limits: "Mean of denominator group is not significantly different from zero").
    Reported: the lift interval (-inf, +inf), and the p-value that matches it, max(Fieller's
    p, p of "control mean = 0") (intersection-union test, Berger 1982), from scipy's t with the
    Welch df: Fieller's T(1) = 9 / sqrt(0.05 + 5) = 4.0 alone would reject ratio = 1. The
    difference is still tested."""
    from scipy import stats

    t_fieller = (10.0 - 1.0) / math.sqrt(1.0 / 20 + 100.0 / 20)
    t_control = 1.0 / (10.0 / math.sqrt(20))
    for alternative in ("two-sided", "greater", "less"):
        r = welch_ttest(1.0, 10.0, 20, 10.0, 1.0, 20, alternative=alternative)
        assert (r.lift_ci_low, r.lift_ci_high) == (-math.inf, math.inf)
        dist = stats.t(r.df)
        fieller = {"two-sided": 2 * dist.sf(t_fieller), "greater": dist.sf(t_fieller),
                   "less": dist.cdf(t_fieller)}[alternative]
        control = (2 if alternative == "two-sided" else 1) * dist.sf(t_control)
        assert control > 0.05 and (fieller < 0.05 or alternative == "less")
        assert_allclose(r.lift_p_value, max(fieller, control), rtol=1e-9)
        assert not r.lift_significant
    assert welch_ttest(1.0, 10.0, 20, 10.0, 1.0, 20).significant


def test_degenerate_arms_give_defined_results():
    """No variance at all: equal rates -> p = 1; lift undefined when the control rate is 0."""
    r = proportion_ztest(0, 100, 0, 120)
    assert r.p_value == 1.0 and not r.significant
    assert math.isnan(r.lift)
    w = welch_ttest(3.0, 0.0, 10, 4.0, 0.0, 10)
    assert w.p_value == 0.0 and w.diff_ci_low == w.diff_ci_high == 1.0


def test_cuped_diff_equals_ancova_treatment_coefficient():
    """With theta pooled within arms, the adjusted difference equals the OLS coefficient of the
    treatment dummy in y ~ 1 + T + x (ANCOVA, by Frisch-Waugh-Lovell; Deng et al. 2013);
    reference computed with numpy lstsq."""
    rng = np.random.default_rng(5)
    n_c, n_t = 800, 700
    x = rng.gamma(2.0, 5.0, size=n_c + n_t)
    treat = np.r_[np.zeros(n_c), np.ones(n_t)]
    y = 3.0 + 0.8 * x + 1.5 * treat + rng.normal(0, 4.0, size=x.size)
    coef = np.linalg.lstsq(np.c_[np.ones_like(x), treat, x], y, rcond=None)[0]
    c = covariate_stats(y[:n_c], x[:n_c])
    t = covariate_stats(y[n_c:], x[n_c:])
    r = welch_ttest_cuped(c, t)
    assert_allclose(r.diff, coef[1], rtol=1e-9)
    assert_allclose(r.theta, coef[2], rtol=1e-9)
    a = cuped_adjust(c, t)
    # adjusted means stay on y's scale: their average over arms is the pooled y mean, shifted
    # only by the (tiny) imbalance in x
    x_bar = x.mean()
    assert_allclose(a.control_mean, y[:n_c].mean() - a.theta * (x[:n_c].mean() - x_bar), rtol=1e-12)
    assert 0 < r.variance_reduction < 1
    assert r.unadjusted.diff == pytest.approx(y[n_c:].mean() - y[:n_c].mean(), rel=1e-12)


def test_cuped_with_constant_covariate_changes_nothing():
    c = CovariateStats(3, 6.0, 14.0, 3.0, 3.0, 6.0)
    t = CovariateStats(3, 9.0, 29.0, 3.0, 3.0, 9.0)
    r = welch_ttest_cuped(c, t)
    assert r.theta == 0.0 and r.variance_reduction == pytest.approx(0.0, abs=1e-12)
    assert r.adjusted.diff == r.unadjusted.diff
    assert (c + t).n == 6


def test_srm_flags_a_broken_split_only():
    """chisq.test(c(10321, 9679), p = c(.5, .5)): p = 5.6e-6 < 0.001 -> flagged (R)."""
    assert srm_test([10321, 9679], [0.5, 0.5]).flagged
    assert not srm_test([5050, 4950], [0.5, 0.5]).flagged
    assert srm_test([5050, 4950], [0.5, 0.5], threshold=0.5).flagged


def test_duration_days_binds_on_smallest_arm():
    """Hand computation: 10,000 units/arm at 1,000/day, 50% exposed, 20/40/40 split ->
    10,000 / (1,000 * 0.5 * 0.2) = 100 days; equal halves -> 20 days (not 21)."""
    assert duration_days(10_000, 1_000, exposure=0.5, variants=3, weights=[0.2, 0.4, 0.4]) == 100
    assert duration_days(10_000, 1_000) == 20
    assert duration_days(10_001, 1_000) == 21
    days = duration_days(np.array([10_000, 20_000]), 1_000)
    assert isinstance(days, np.ndarray) and days.tolist() == [20, 40]


def test_planner_returns_python_scalars_or_broadcast_arrays():
    n = sample_size_proportion(0.1, 0.1)
    assert type(n) is int
    curve = sample_size_proportion(np.array([0.05, 0.1, 0.2]), np.array([[0.05], [0.1]]))
    assert curve.shape == (2, 3) and curve.dtype == np.int64
    assert curve[0, 1] == sample_size_proportion(0.1, 0.05)
    assert type(mde_proportion(0.1, 1000)) is float


def test_planner_splits_alpha_over_treatments():
    """variants = k: each comparison at alpha / (k - 1) (Bonferroni)."""
    assert sample_size_proportion(0.1, 0.1, variants=4) == sample_size_proportion(
        0.1, 0.1, alpha=0.05 / 3
    )
    assert sample_size_mean(2.0, 0.3, variants=3) == sample_size_mean(2.0, 0.3, alpha=0.025)


def test_planner_relative_mde_scales_by_baseline():
    assert sample_size_proportion(0.1, 0.1) == sample_size_proportion(0.1, 0.01, relative=False)
    assert sample_size_mean(5.0, 0.02, baseline_mean=50.0, relative=True) == sample_size_mean(
        5.0, 1.0
    )


def test_mde_proportion_is_nan_when_unreachable():
    assert math.isnan(mde_proportion(0.5, 2, power=0.99, alpha=0.001))


def test_top_n_groups_keeps_the_largest_and_pools_the_rest():
    units = {"US": 5000, "DE": 1200, "FR": 1200, "BR": 300, "JP": 40}
    assert top_n_groups(units, 3) == {"US": "US", "DE": "DE", "FR": "FR", "BR": OTHER,
                                      "JP": OTHER}
    # ties broken by name: DE before FR
    assert top_n_groups(units, 2)["FR"] == OTHER
    assert top_n_groups(units, 10) == {k: k for k in units}
    with pytest.raises(ValueError, match="n must be a whole number >= 1"):
        top_n_groups(units, 0)
    with pytest.raises(ValueError, match="is itself a dimension value"):
        top_n_groups({"(other)": 5, "US": 9, "DE": 1}, 1)
    with pytest.raises(ValueError, match="non-negative number"):
        top_n_groups({"US": -1}, 1)


def test_one_sided_intervals_have_an_open_end_and_two_sided_do_not():
    """alternative="greater" -> [est - t_{1-alpha} se, +inf); "less" -> (-inf, est + ...]; the
    finite end uses the one-sided quantile (scipy stats.t.ppf(0.95, df)), for the lift too
    (Fieller's lower limit at that quantile)."""
    from scipy import stats

    g = welch_ttest(10.0, 4.0, 400, 11.0, 5.0, 500, alternative="greater")
    q = stats.t.ppf(0.95, g.df)
    assert_allclose(g.diff_ci_low, g.diff - q * g.diff_se, rtol=1e-12)
    assert g.diff_ci_high == math.inf and g.lift_ci_high == math.inf
    lo, _hi = _mratios_fieller(11.0, 25.0, 500, 10.0, 16.0, 400, q)  # Fieller, one-sided q
    assert_allclose(g.lift_ci_low, lo - 1, rtol=1e-9)
    s = welch_ttest(10.0, 4.0, 400, 11.0, 5.0, 500, alternative="less")
    assert s.diff_ci_low == -math.inf
    assert_allclose(s.diff_ci_high, s.diff + q * s.diff_se, rtol=1e-12)


def test_margin_shifts_the_null_on_both_scales():
    """Non-inferiority: "greater" with margin m tests lift <= -m, i.e. diff <= -m |mean_c|;
    the statistic is (diff + m |mean_c|) / se (hand computation)."""
    r = welch_ttest(10.0, 4.0, 400, 9.9, 4.0, 400, alternative="greater", margin=0.05)
    assert (r.lift_null, r.diff_null) == (-0.05, -0.5)
    assert_allclose(r.statistic, (-0.1 + 0.5) / r.diff_se, rtol=1e-12)
    assert r.significant == (r.diff_ci_low > -0.5)
    plain = welch_ttest(10.0, 4.0, 400, 9.9, 4.0, 400, alternative="greater")
    assert r.p_value < plain.p_value and r.diff_ci_low == plain.diff_ci_low


def test_core_stats_imports_only_numpy_scipy_and_stdlib():
    """STYLE.md rule 1 and the dependency rule: core.stats stays pure."""
    code = (
        "import sys, core.stats\n"
        "bad = ('pandas', 'statsmodels', 'streamlit', 'sqlalchemy', 'fastapi', 'airflow', 'db',"
        " 'ui', 'api', 'dags', 'pages', 'pydantic', 'matplotlib', 'plotly')\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules})\n"
        "print(','.join(m for m in loaded if m in bad))\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('core.')"
        " and not m.startswith('core.stats'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "", f"core.stats pulled in forbidden modules: {out[0]}"
    assert out[1] in ("", "core.types"), f"core.stats imported other core modules: {out[1]}"
