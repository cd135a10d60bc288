"""Quantile metrics by the order-statistic (Woodruff) interval, checked against:

* scipy.stats.quantile_test's exact binomial confidence interval of a quantile (the interval's
  ends are order statistics; Woodruff's normal approximation lands within one rank of them);
* the asymptotic variance of a sample quantile, p (1 - p) / (n f(q)^2) (e.g. Serfling 1980,
  "Approximation Theorems of Mathematical Statistics", 2.3.3), at a known normal density;
* GrowthBook gbstats ``models/statistics.py`` QuantileStatistic.variance_init and
  ``utils.py`` frequentist_variance (relative), the formulas written out below;
* a seeded bootstrap of the sample quantile's SE and a seeded simulation of the intervals'
  coverage at n >= 1,000 per arm.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from core.stats import (
    InsufficientDataError,
    QuantileStats,
    order_statistic_index,
    quantile_levels,
    quantile_stats,
    quantile_test,
)
from core.stats.quantile import BOUND_Z


def test_quantile_stats_is_the_inverted_cdf_order_statistic():
    """q(p) is the ceil(n p)-th smallest value (Hyndman & Fan type 1), at p and its levels."""
    x = np.random.default_rng(1).lognormal(6.0, 0.6, 1234)
    s = quantile_stats(x, 0.9)
    xs = np.sort(x)
    low, high = 0.9 - BOUND_Z * math.sqrt(0.09 / 1234), 0.9 + BOUND_Z * math.sqrt(0.09 / 1234)
    assert quantile_levels(0.9, 1234) == pytest.approx((low, high), rel=1e-15)
    for level, got in ((0.9, s.quantile), (low, s.lower), (high, s.upper)):
        assert got == xs[math.ceil(1234 * level) - 1]
    assert (s.n, s.n_star, s.p) == (1234, 1234, 0.9)


def test_order_statistic_index_is_numpys_inverted_cdf_index():
    """numpy.quantile(arange(n), level, method="inverted_cdf") returns the index it reads: ours
    is the same for every n up to 400 at p and its levels, at whole n level (n = 10, p = 0.3:
    3.0000000000000004 in floating point, as numpy computes it) and at the ends."""
    for n in range(1, 401):
        ranks = np.arange(n)
        levels = [0.01, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 1e-9, 1 - 1e-9]
        for p in (0.5, 0.9, 0.99):
            with contextlib.suppress(InsufficientDataError):
                levels += list(quantile_levels(p, n))
        want = np.quantile(ranks, levels, method="inverted_cdf")
        got = [order_statistic_index(level, n) for level in levels]
        assert got == [int(w) for w in want], n
    with pytest.raises(ValueError, match="n must be a whole number"):
        order_statistic_index(0.5, 0)
    with pytest.raises(ValueError, match="level"):
        order_statistic_index(1.0, 10)


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_quantile_interval_within_one_rank_of_scipy_exact_interval(p):
    """scipy.stats.quantile_test(...).confidence_interval(0.95) is the exact binomial
    order-statistic interval; the Woodruff ends are the same order statistics up to one rank."""
    x = np.random.default_rng(7).normal(100.0, 15.0, 2000)
    s = quantile_stats(x, p)
    ci = stats.quantile_test(x, q=float(np.median(x)), p=p).confidence_interval(0.95)
    xs = np.sort(x)
    for ours, exact in ((s.lower, ci.low), (s.upper, ci.high)):
        rank_ours = int(np.searchsorted(xs, ours))
        rank_exact = int(np.searchsorted(xs, exact))
        assert abs(rank_ours - rank_exact) <= 1


def test_quantile_se_matches_asymptotic_variance_of_sample_quantile():
    """N(0, 1), n = 200,000: se(q(p)) -> sqrt(p (1 - p) / n) / phi(Phi^-1(p)) (Serfling 1980
    2.3.3); the interval spans ~1,660 ranks, so its width's own noise is ~2.5%: rtol 8%."""
    n = 200_000
    x = np.random.default_rng(11).standard_normal(n)
    for p in (0.5, 0.9):
        expected = math.sqrt(p * (1 - p) / n) / stats.norm.pdf(stats.norm.ppf(p))
        assert_allclose(quantile_stats(x, p).se, expected, rtol=0.08)


def test_quantile_variance_matches_gbstats_formulas():
    """gbstats QuantileStatistic.variance_init = (n_star / n) (n - 1) ((U - L) / (2 z))^2 is a
    per-unit variance (divided by n downstream); ours omits its (n - 1) / n. Relative:
    gbstats frequentist_variance(relative=True) = var_t / q_c^2 + q_t^2 var_c / q_c^4."""
    c = QuantileStats(5000, 0.9, 812.0, 790.5, 840.25, n_star=3200)
    t = QuantileStats(5100, 0.9, 845.0, 820.0, 871.5)
    z = stats.norm.ppf(0.975)
    for s, n_star in ((c, 3200), (t, 5100)):
        gb_variance_init = (n_star / s.n) * (s.n - 1) * ((s.upper - s.lower) / (2 * z)) ** 2
        assert_allclose(s.variance * (s.n - 1) / s.n, gb_variance_init / s.n, rtol=1e-12)
    r = quantile_test(c, t)
    var_c, var_t = c.variance, t.variance
    assert_allclose(r.diff, 845.0 - 812.0, rtol=1e-15)
    assert_allclose(r.diff_se, math.sqrt(var_c + var_t), rtol=1e-12)
    assert_allclose(r.diff_ci_low, r.diff - z * r.diff_se, rtol=1e-12)
    assert_allclose(r.p_value, 2 * stats.norm.sf(abs(r.diff) / r.diff_se), rtol=1e-9)
    assert_allclose(r.lift, 845.0 / 812.0 - 1, rtol=1e-12)
    assert_allclose(r.lift_se ** 2, var_t / 812.0**2 + 845.0**2 * var_c / 812.0**4, rtol=1e-12)
    assert r.method == "quantile_woodruff" and r.p == 0.9


def test_quantile_se_matches_seeded_bootstrap_within_ten_percent():
    """2,000 seeded bootstrap resamples of 3,000 lognormal load times: the bootstrap SE of the
    sample p90 agrees with Woodruff's within 10% (both estimates carry a few % noise)."""
    x = np.random.default_rng(2026).lognormal(6.0, 0.6, 3000)
    s = quantile_stats(x, 0.9)
    boot = np.random.default_rng(99)
    qs = np.concatenate([
        np.quantile(x[boot.integers(0, x.size, (500, x.size))], 0.9, axis=1,
                    method="inverted_cdf") for _ in range(4)])
    assert_allclose(s.se, qs.std(ddof=1), rtol=0.10)


@pytest.mark.parametrize("p", [0.5, 0.9])
def test_quantile_intervals_cover_at_least_93_percent_at_n_1000(p):
    """Seeded simulation, 1,000 experiments: lognormal load times (sigma 0.6), control
    mu = 6.0 with 1,000 units, treatment mu = 6.05 with 1,200 units; the true quantiles are
    exp(mu + 0.6 Phi^-1(p)). The 95% intervals of the difference and of the relative
    difference each cover the truth in >= 93% of experiments."""
    rng = np.random.default_rng(20261207)
    zp = stats.norm.ppf(p)
    true_c, true_t = math.exp(6.0 + 0.6 * zp), math.exp(6.05 + 0.6 * zp)
    reps = 1000
    xc = rng.lognormal(6.0, 0.6, (reps, 1000))
    xt = rng.lognormal(6.05, 0.6, (reps, 1200))
    diff_hits = lift_hits = 0
    for i in range(reps):
        r = quantile_test(quantile_stats(xc[i], p), quantile_stats(xt[i], p))
        diff_hits += r.diff_ci_low <= true_t - true_c <= r.diff_ci_high
        lift_hits += r.lift_ci_low <= true_t / true_c - 1 <= r.lift_ci_high
    assert diff_hits / reps >= 0.93
    assert lift_hits / reps >= 0.93
    assert diff_hits / reps <= 0.98  # not an interval made wide to pass


def test_quantile_one_sided_interval_and_p_value_agree():
    c = QuantileStats(4000, 0.9, 800.0, 780.0, 822.0)
    t = QuantileStats(4000, 0.9, 835.0, 812.0, 860.0)
    r = quantile_test(c, t, alternative="greater")
    assert r.diff_ci_high == math.inf and r.lift_ci_high == math.inf
    assert (r.diff_ci_low > 0) == (r.p_value < 0.05) == r.significant
    assert_allclose(r.p_value, stats.norm.sf(r.diff / r.diff_se), rtol=1e-9)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 0}, "n must be"),
    ({"p": 1.0}, "between 0 and 1"),
    ({"p": 0.0}, "between 0 and 1"),
    ({"lower": 900.0}, "lower <= quantile <= upper"),
    ({"upper": math.nan}, "upper must be a finite"),
    ({"n_star": 0}, "n_star must be"),
])
def test_quantile_stats_refuses_bad_fields(kwargs, message):
    fields = {"n": 1000, "p": 0.9, "quantile": 800.0, "lower": 780.0, "upper": 820.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        QuantileStats(**fields)


def test_quantile_test_refuses_what_it_cannot_test():
    c = QuantileStats(1000, 0.9, 800.0, 780.0, 820.0)
    with pytest.raises(ValueError, match="same level p"):
        quantile_test(c, QuantileStats(1000, 0.5, 500.0, 490.0, 510.0))
    with pytest.raises(InsufficientDataError, match="zero width"):
        quantile_test(c, QuantileStats(1000, 0.9, 800.0, 800.0, 800.0))
    with pytest.raises(InsufficientDataError, match="at least 381 units"):
        quantile_test(QuantileStats(300, 0.99, 9.0, 8.0, 10.0), c)
    with pytest.raises(InsufficientDataError, match="at least 381 units"):
        quantile_stats(np.arange(300.0), 0.99)
    with pytest.raises(ValueError, match="NaN"):
        quantile_stats([1.0, math.nan] * 100, 0.5)
    with pytest.raises(TypeError, match="QuantileStats"):
        quantile_test(c, (1000, 0.9))  # type: ignore[arg-type]


def test_quantile_stats_key_lists_every_field():
    s = QuantileStats(1000, 0.9, 800.0, 780.0, 820.0, n_star=800)
    assert s.key() == (1000, 0.9, 800.0, 780.0, 820.0, 800)
