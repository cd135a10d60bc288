"""core.stats against R 4.2.2: prop.test (two samples, and one sample for a two-arm SRM check),
t.test, power.t.test, chisq.test and p.adjust. (The small-count path's references, R binom.test
among them, are in test_mover.)

Expected numbers live in ``results/results_r.py`` with the R script that produced them.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.stats import (
    adjust_pvalues,
    mde_mean,
    power_mean,
    proportion_ztest,
    sample_size_mean,
    srm_test,
    sufficient_stats,
    welch_ttest,
    welch_ttest_from_stats,
)
from tests.core.stats.results import results_r as R

ALT = {"two.sided": "two-sided", "greater": "greater", "less": "less"}


@pytest.mark.parametrize(("x_c", "n_c", "x_t", "n_t", "alt", "chi2", "p", "lo", "hi"), R.PROP_TEST)
def test_proportion_ztest_interval_matches_r_prop_test(x_c, n_c, x_t, n_t, alt, chi2, p, lo, hi):
    """R: prop.test(c(x_t, x_c), c(n_t, n_c), alternative=alt, correct=FALSE)$conf.int.

    R's interval is the Wald interval (two-sided, or one-sided with the open end clipped at
    +/-1, where ours is +/-inf); its p-value is the pooled score test, while ours is the Wald
    test that belongs to this interval (checked against statsmodels in
    test_reference_python), so only the interval is compared. Small-count tables take the
    MOVER path, checked in test_mover."""
    r = proportion_ztest(x_c, n_c, x_t, n_t, alternative=ALT[alt])
    if r.method == "mover_cp":
        assert min(x_c, x_t, n_c - x_c, n_t - x_t) < 5
        return
    if alt == "two.sided":
        assert_allclose([r.diff_ci_low, r.diff_ci_high], [lo, hi], rtol=1e-6)
    elif alt == "greater":
        assert_allclose(r.diff_ci_low, lo, rtol=1e-6)
        assert r.diff_ci_high == np.inf and hi == 1
    else:
        assert_allclose(r.diff_ci_high, hi, rtol=1e-6)
        assert r.diff_ci_low == -np.inf and lo == -1


@pytest.mark.parametrize(("alt", "t", "df", "p", "lo", "hi", "lo90", "hi90"), R.WELCH_TTEST)
def test_welch_ttest_matches_r_t_test(alt, t, df, p, lo, hi, lo90, hi90):
    """R: t.test(treatment, control, alternative=alt, var.equal=FALSE) on the stored vectors."""
    c = sufficient_stats(np.array(R.WELCH_CONTROL))
    tr = sufficient_stats(np.array(R.WELCH_TREATMENT))
    r = welch_ttest_from_stats(c, tr, alternative=ALT[alt])
    assert_allclose([r.statistic, r.df, r.p_value], [t, df, p], rtol=1e-6)
    # the stored lo/hi are R's two-sided interval; one-sided intervals are checked against
    # scipy in test_reference_python
    r2 = welch_ttest_from_stats(c, tr)
    assert_allclose([r2.diff_ci_low, r2.diff_ci_high], [lo, hi], rtol=1e-6)
    r90 = welch_ttest(c.mean, c.sd, c.n, tr.mean, tr.sd, tr.n, alpha=0.10)
    assert_allclose([r90.diff_ci_low, r90.diff_ci_high], [lo90, hi90], rtol=1e-6)


# The proportion planner sizes the unpooled Wald z-test the engine runs, not the pooled-variance
# test of R power.prop.test (R.POWER_PROP_*), so it is checked against Chow, Shao & Wang's
# published example and statsmodels in test_reference_python, and by simulation in
# test_planner_simulations.


@pytest.mark.parametrize(("delta", "sd", "alpha", "power", "alt", "n"), R.POWER_T_N)
def test_sample_size_mean_matches_r_power_t_test(delta, sd, alpha, power, alt, n):
    """R: power.t.test(delta, sd, sig.level, power, type='two.sample', alternative,
    strict=TRUE)$n."""
    a = "two-sided" if alt == "two.sided" else "greater"
    kw = {"alpha": alpha, "power": power, "alternative": a}
    assert_allclose(sample_size_mean(sd, delta, round_up=False, **kw), n, rtol=1e-6)
    assert sample_size_mean(sd, delta, **kw) == int(np.ceil(n))


@pytest.mark.parametrize(("n", "delta", "sd", "alpha", "alt", "power"), R.POWER_T_POWER)
def test_power_mean_matches_r_power_t_test(n, delta, sd, alpha, alt, power):
    """R: power.t.test(n, delta, sd, sig.level, type='two.sample', alternative,
    strict=TRUE)$power."""
    a = "two-sided" if alt == "two.sided" else "greater"
    assert_allclose(power_mean(sd, delta, n, alpha=alpha, alternative=a), power, rtol=1e-6)


@pytest.mark.parametrize(("n", "sd", "alpha", "power", "alt", "delta"), R.POWER_T_DELTA)
def test_mde_mean_matches_r_power_t_test(n, sd, alpha, power, alt, delta):
    """R: power.t.test(n, sd, sig.level, power, type='two.sample', alternative,
    strict=TRUE)$delta."""
    a = "two-sided" if alt == "two.sided" else "greater"
    got = mde_mean(sd, n, alpha=alpha, power=power, alternative=a)
    assert_allclose(got, delta, rtol=1e-6)


def test_planner_vectorised_matches_r_elementwise():
    """R: power.t.test rows, evaluated in one array call."""
    d, sd, al, pw, _, n = (np.array(col) for col in zip(*R.POWER_T_N[::2], strict=True))
    got = sample_size_mean(sd, d, alpha=al, power=pw, round_up=False)
    assert isinstance(got, np.ndarray)
    assert_allclose(got, n, rtol=1e-6)


@pytest.mark.parametrize(("counts", "weights", "stat", "df", "p"), R.CHISQ_GOF)
def test_srm_test_matches_r_chisq_test(counts, weights, stat, df, p):
    """R: chisq.test(x, p=weights)."""
    r = srm_test(counts, weights)
    assert_allclose(r.statistic, stat, rtol=1e-9, atol=1e-12)
    assert r.df == df
    assert_allclose(r.p_value, p, rtol=1e-6)
    assert r.flagged == (p < 0.001)
    assert_allclose(r.expected, np.sum(counts) * np.array(weights), rtol=1e-12)


@pytest.mark.parametrize(("method", "p", "adjusted"), R.P_ADJUST)
def test_adjust_pvalues_matches_r_p_adjust(method, p, adjusted):
    """R: p.adjust(p, method = 'holm' | 'BH')."""
    assert_allclose(adjust_pvalues(p, method), adjusted, rtol=1e-12)


@pytest.mark.parametrize(("x", "n", "share", "stat", "p"), R.PROP_TEST_ONE_SAMPLE)
def test_srm_test_two_arms_matches_r_prop_test_one_sample(x, n, share, stat, p):
    """R: prop.test(x, n, p=share, correct=FALSE): the first arm's count against its planned
    share is the two-arm SRM check (its X-squared is the chi-square statistic)."""
    r = srm_test([x, n - x], [share, 1 - share])
    assert_allclose(r.statistic, stat, rtol=1e-9, atol=1e-12)
    assert_allclose(r.p_value, p, rtol=1e-9)
