"""Seeded Monte Carlo checks of error rates, power and CUPED's variance reduction.

Data are drawn with numpy in one vectorised call per simulation, using exact sampling
distributions of the sufficient statistics where possible (normal data: the batch sum is
N(n mu, n sigma^2) and the within-batch sum of squared deviations is sigma^2 chi2(n - 1),
independently; binomial data: counts are Binomial(n, p)). Tests then run through the public API.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.stats import (
    InsufficientDataError,
    RatioStats,
    adjust_pvalues,
    covariate_stats,
    proportion_ztest,
    ratio_test,
    sample_size_mean,
    sample_size_proportion,
    welch_ttest,
    welch_ttest_cuped,
)

RUNS = 2000
LOOKS = 20
BATCH = 100  # units per arm added between looks


def _cumulative_normal_stats(rng: np.random.Generator, shape: tuple[int, ...]):
    """Cumulative (n, mean, sd) at each look for N(0, 1) data, batch by batch (exact)."""
    sums = rng.normal(0.0, math.sqrt(BATCH), size=shape)
    ssd = rng.chisquare(BATCH - 1, size=shape)
    sum_squares = ssd + sums**2 / BATCH
    n = BATCH * np.arange(1, LOOKS + 1)
    s, ss = np.cumsum(sums, axis=-1), np.cumsum(sum_squares, axis=-1)
    mean = s / n
    var = (ss - s * s / n) / (n - 1)
    return n, mean, np.sqrt(var)


def _peeking_false_positive_rates(seed: int, tuning_n: float | None) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n, mean_c, sd_c = _cumulative_normal_stats(rng, (RUNS, LOOKS))
    _, mean_t, sd_t = _cumulative_normal_stats(rng, (RUNS, LOOKS))
    fixed_hit = np.zeros(RUNS, dtype=bool)
    seq_hit = np.zeros(RUNS, dtype=bool)
    for run in range(RUNS):
        for k in range(LOOKS):
            args = (
                mean_c[run, k],
                sd_c[run, k],
                int(n[k]),
                mean_t[run, k],
                sd_t[run, k],
                int(n[k]),
            )
            if not fixed_hit[run] and welch_ttest(*args).significant:
                fixed_hit[run] = True
            if (
                not seq_hit[run]
                and welch_ttest(*args, sequential=True, tuning_n=tuning_n).significant
            ):
                seq_hit[run] = True
            if fixed_hit[run] and seq_hit[run]:
                break
    return float(fixed_hit.mean()), float(seq_hit.mean())


def test_sequential_welch_controls_false_positives_under_peeking():
    """A/A, 2,000 runs x 20 looks (100 units/arm per look), alpha = 0.05.

    Peeking with the fixed-horizon test rejects far more often than alpha (theory for 20
    equally spaced looks: about 0.25; Armitage, McPherson & Rowe 1969); the confidence sequence,
    tuned in advance to the final n, stays at or below alpha (+0.01 Monte Carlo slack).
    """
    fixed_rate, seq_rate = _peeking_false_positive_rates(20240601, tuning_n=BATCH * LOOKS)
    assert fixed_rate > 0.15
    assert seq_rate <= 0.05 + 0.01


def test_sequential_proportion_controls_false_positives_under_peeking():
    """A/A conversion test, 2,000 runs x 20 looks, tuning_n fixed in advance at the final n.

    Seeded binomial batch counts; the always-valid test stays at or below alpha + 0.01 while
    the fixed-horizon test does not.
    """
    rng = np.random.default_rng(7)
    p = 0.1
    counts = np.cumsum(rng.binomial(BATCH, p, size=(2, RUNS, LOOKS)), axis=-1)
    n = BATCH * np.arange(1, LOOKS + 1)
    fixed = np.zeros(RUNS, dtype=bool)
    seq = np.zeros(RUNS, dtype=bool)
    for run in range(RUNS):
        for k in range(LOOKS):
            x_c, x_t, nk = int(counts[0, run, k]), int(counts[1, run, k]), int(n[k])
            fixed[run] |= proportion_ztest(x_c, nk, x_t, nk).significant
            # < 5 conversions in an arm: the sequential test gives no reading at this look
            with contextlib.suppress(InsufficientDataError):
                seq[run] |= proportion_ztest(
                    x_c, nk, x_t, nk, sequential=True, tuning_n=BATCH * LOOKS
                ).significant
    assert fixed.mean() > 0.15
    assert seq.mean() <= 0.05 + 0.01


def test_planned_proportion_experiment_reaches_planned_power():
    """Planner's n for baseline 10%, +10% relative MDE, 80% power, then 4,000 binomial
    experiments analysed with proportion_ztest: rejection share = 0.80 +/- 0.03
    (Monte Carlo SE 0.006). Source of the planned power: Chow, Shao & Wang (2008) section 4.2
    (the unpooled z-test the engine runs)."""
    n = sample_size_proportion(0.10, 0.10, power=0.8)
    rng = np.random.default_rng(11)
    x_c = rng.binomial(n, 0.10, size=4000)
    x_t = rng.binomial(n, 0.11, size=4000)
    hits = [
        proportion_ztest(int(c), n, int(t), n).significant for c, t in zip(x_c, x_t, strict=True)
    ]
    assert abs(np.mean(hits) - 0.80) <= 0.03


def test_planned_mean_experiment_reaches_planned_power():
    """Planner's n for sd = 1, MDE = 0.1, 80% power, then 4,000 normal experiments (exact
    sufficient statistics) analysed with welch_ttest: rejection share = 0.80 +/- 0.03.
    Source of the planned power: R power.t.test (strict)."""
    n = sample_size_mean(1.0, 0.1, power=0.8)
    rng = np.random.default_rng(12)
    m_c = rng.normal(0.0, 1 / math.sqrt(n), size=4000)
    m_t = rng.normal(0.1, 1 / math.sqrt(n), size=4000)
    sd_c = np.sqrt(rng.chisquare(n - 1, size=4000) / (n - 1))
    sd_t = np.sqrt(rng.chisquare(n - 1, size=4000) / (n - 1))
    hits = [welch_ttest(m_c[i], sd_c[i], n, m_t[i], sd_t[i], n).significant for i in range(4000)]
    assert abs(np.mean(hits) - 0.80) <= 0.03


def test_cuped_narrows_ci_by_sqrt_one_minus_rho_squared():
    """y and pre-period x bivariate normal with correlation 0.7 in both arms, 20,000 units/arm,
    true effect 0.05. Deng et al. (2013): Var(adjusted) = (1 - rho^2) Var(unadjusted), so the
    CI half-width shrinks by sqrt(1 - 0.49) = 0.714 (within 3%) and the adjusted CI covers
    the effect."""
    rng = np.random.default_rng(13)
    rho, n = 0.7, 20000
    cov = [[1.0, rho], [rho, 1.0]]
    xc, yc = rng.multivariate_normal([5.0, 10.0], cov, size=n).T
    xt, yt = rng.multivariate_normal([5.0, 10.05], cov, size=n).T
    r = welch_ttest_cuped(covariate_stats(yc, xc), covariate_stats(yt, xt))
    width = r.adjusted.diff_ci_high - r.adjusted.diff_ci_low
    width0 = r.unadjusted.diff_ci_high - r.unadjusted.diff_ci_low
    assert_allclose(width / width0, math.sqrt(1 - rho**2), rtol=0.03)
    assert_allclose(r.variance_reduction, rho**2, rtol=0.05)
    assert_allclose(r.theta, rho, rtol=0.05)
    assert r.diff_ci_low < 0.05 < r.diff_ci_high


def test_cuped_keeps_nominal_coverage():
    """400 seeded A/B experiments (true effect 0.2, rho 0.6, 500 units/arm): the adjusted 95% CI
    covers the true effect 95% +/- 3.5% of the time (Monte Carlo SE 1.1%)."""
    rng = np.random.default_rng(14)
    reps, n, rho = 400, 500, 0.6
    z1 = rng.normal(size=(reps, 2, n))
    z2 = rng.normal(size=(reps, 2, n))
    x = z1
    y = rho * z1 + math.sqrt(1 - rho**2) * z2
    y[:, 1, :] += 0.2
    covered = 0
    for i in range(reps):
        r = welch_ttest_cuped(covariate_stats(y[i, 0], x[i, 0]), covariate_stats(y[i, 1], x[i, 1]))
        covered += r.diff_ci_low <= 0.2 <= r.diff_ci_high
    assert abs(covered / reps - 0.95) <= 0.035


def test_segment_slices_corrected_across_slices_keep_error_rates_at_alpha():
    """A/A, 2,000 seeded experiments each cut into K = 8 slices (countries of unequal size,
    conversion rates 3%..20%), every slice tested with proportion_ztest. Uncorrected, some
    slice is "significant" in about 1 - 0.95^8 = 34% of experiments; corrected across slices
    with Holm (family-wise error rate, Holm 1979) or BH (false discovery rate, which under the
    global null equals the family-wise rate; Benjamini & Hochberg 1995) it stays at or below
    alpha + 0.01."""
    rng = np.random.default_rng(31)
    sizes = np.array([6000, 3000, 2000, 1200, 800, 600, 400, 300])
    rates = np.array([0.05, 0.08, 0.12, 0.03, 0.2, 0.1, 0.15, 0.06])
    runs, k = 2000, sizes.size
    x = rng.binomial(sizes, rates, size=(runs, 2, k))
    raw = np.zeros(runs, dtype=bool)
    holm = np.zeros(runs, dtype=bool)
    bh = np.zeros(runs, dtype=bool)
    for i in range(runs):
        p = np.array([
            proportion_ztest(int(x[i, 0, j]), int(sizes[j]), int(x[i, 1, j]), int(sizes[j])).p_value
            for j in range(k)
        ])
        raw[i] = bool(np.any(p < 0.05))
        holm[i] = bool(np.any(adjust_pvalues(p, "holm") < 0.05))
        bh[i] = bool(np.any(adjust_pvalues(p, "bh") < 0.05))
    assert raw.mean() > 0.25
    assert holm.mean() <= 0.05 + 0.01
    assert bh.mean() <= 0.05 + 0.01


def test_one_sided_confidence_sequence_controls_false_positives_under_peeking():
    """A/A, 2,000 runs x 20 looks, alternative="greater": the one-sided sequence (boundary of
    the two-sided one at 2 alpha / (1 + alpha), module core.stats.sequential) rejects at some
    look in at most alpha + 0.01 of the runs, and its bound clears 0 exactly when its
    always-valid p-value is below alpha."""
    rng = np.random.default_rng(20261203)
    n, mean_c, sd_c = _cumulative_normal_stats(rng, (RUNS, LOOKS))
    _, mean_t, sd_t = _cumulative_normal_stats(rng, (RUNS, LOOKS))
    hit = np.zeros(RUNS, dtype=bool)
    for run in range(RUNS):
        for k in range(LOOKS):
            r = welch_ttest(mean_c[run, k], sd_c[run, k], int(n[k]), mean_t[run, k],
                            sd_t[run, k], int(n[k]), alternative="greater", sequential=True,
                            tuning_n=BATCH * LOOKS)
            assert (r.diff_ci_low > 0) == r.significant
            if r.significant:
                hit[run] = True
                break
    assert hit.mean() <= 0.05 + 0.01


# ---------------------------------------------------------------- the relative lift (issue 22)
# Under A/A the two arms are exchangeable, so a lift test that respects the ratio's skew rejects
# as often for "less" as for "greater". The delta-method lift (lift +/- z se) did not: its
# interval is symmetric around t/c - 1 while the ratio's sampling distribution is right-skewed.

LIFT_REPS = 40_000
LIFT_MC_SE = math.sqrt(0.05 * 0.95 / LIFT_REPS)  # 0.0011 at a true rate of 5%
LIFT_TOL = 0.006  # the bound: 5% +/- 0.6 points (5.5 Monte Carlo SE)


def _lift_rejection_rates(call) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Share of lift p-values below 0.05 per alternative; ``call(i, alternative)`` tests rep i."""
    return {alt: float(np.mean([call(i, alt).lift_p_value < 0.05 for i in range(LIFT_REPS)]))
            for alt in ("less", "greater", "two-sided")}


def _assert_lift_rates_nominal(rates: dict[str, float], scenario: str) -> None:
    """One-sided rates within 0.05 +/- 0.006 (the issue's bound); the two-sided rate at most
    0.05 + 0.006 (on skewed data Welch's t, and so the lift test, is conservative two-sided:
    its two-sided rate with lognormal(0, 1.5) revenue at n = 200 is 3.9%)."""
    for alt, rate in rates.items():
        ok = abs(rate - 0.05) <= LIFT_TOL if alt != "two-sided" else rate <= 0.05 + LIFT_TOL
        assert ok, (
            f"{scenario}: A/A lift test ({alt}) rejects {rate:.4f}, want 0.05 +/- {LIFT_TOL} "
            f"({LIFT_REPS:,} seeded reps, Monte Carlo SE {LIFT_MC_SE:.4f}); all: {rates}"
        )


def test_lift_aa_one_sided_rates_nominal_for_proportions_p05_n2000_mc_se_0011():
    """Issue 22 scenario: conversion 5% in both arms, 2,000 units per arm. The delta-method
    lift rejected 6.6-7.0% ("less") and 3.0% ("greater"); the difference test 4.8-5.0%."""
    rng = np.random.default_rng(22_2)
    x = rng.binomial(2000, 0.05, size=(2, LIFT_REPS))
    rates = _lift_rejection_rates(
        lambda i, alt: proportion_ztest(int(x[0, i]), 2000, int(x[1, i]), 2000, alternative=alt))
    _assert_lift_rates_nominal(rates, "proportions p=0.05, n=2000")


def test_lift_aa_one_sided_rates_nominal_for_lognormal_revenue_n200_mc_se_0011():
    """Issue 22 scenario: revenue lognormal(0, 1.5) per unit (coefficient of variation 2.9),
    200 units per arm; the delta-method lift rejected 10.5% ("less"), 2.8% ("greater") and
    8.1% two-sided (the issue's 10.6% / 2.7% / 8.2%). Per-arm means and ddof=1 sds from the
    seeded draws, in chunks to bound memory."""
    rng = np.random.default_rng(22_3)
    n, chunk = 200, 5_000
    mean = np.empty((2, LIFT_REPS))
    sd = np.empty((2, LIFT_REPS))
    for start in range(0, LIFT_REPS, chunk):
        y = rng.lognormal(0.0, 1.5, size=(2, chunk, n))
        mean[:, start:start + chunk] = y.mean(axis=-1)
        sd[:, start:start + chunk] = y.std(axis=-1, ddof=1)
    rates = _lift_rejection_rates(
        lambda i, alt: welch_ttest(mean[0, i], sd[0, i], n, mean[1, i], sd[1, i], n,
                                   alternative=alt))
    _assert_lift_rates_nominal(rates, "lognormal(0, 1.5) revenue, n=200")


def test_lift_aa_one_sided_rates_nominal_for_ratio_metric_n200_mc_se_0011():
    """A ratio metric (revenue per session; sessions 1 + Poisson(2), revenue gamma per session
    times a lognormal(0, 1) user multiplier), 200 users per arm: the delta-method lift
    rejected 8.1% ("less") and 3.4% ("greater"). Per-arm sums from seeded draws."""
    rng = np.random.default_rng(22_4)
    n, chunk = 200, 5_000
    sums = np.empty((2, 5, LIFT_REPS))
    for start in range(0, LIFT_REPS, chunk):
        sessions = 1.0 + rng.poisson(2.0, (2, chunk, n))
        revenue = rng.gamma(2.0 * sessions, 2.5) * rng.lognormal(0.0, 1.0, (2, chunk, n))
        sums[:, :, start:start + chunk] = np.stack(
            [revenue.sum(-1), (revenue * revenue).sum(-1), sessions.sum(-1),
             (sessions * sessions).sum(-1), (revenue * sessions).sum(-1)], axis=1)
    arms = [[RatioStats(n, *sums[a, :, i]) for i in range(LIFT_REPS)] for a in range(2)]
    rates = _lift_rejection_rates(
        lambda i, alt: ratio_test(arms[0][i], arms[1][i], alternative=alt))
    _assert_lift_rates_nominal(rates, "ratio metric, n=200")


def test_sequential_lift_aa_rejects_alike_in_both_directions_under_peeking():
    """A/A conversion 5%, 4,000 runs x 20 looks of 200 units per arm, one-sided always-valid
    lift tests tuned to the final n: each direction rejects at some look in at most alpha of
    the runs, and "less" and "greater" alike (exchangeable arms), within 0.01 (4 Monte Carlo
    SE of the difference of two rates near 1.2%). The delta-method lift rejected 4.9% "less"
    against 0.05% "greater"; the difference test 1.2% each."""
    runs, looks, batch = 4000, 20, 200
    rng = np.random.default_rng(22_5)
    counts = np.cumsum(rng.binomial(batch, 0.05, size=(2, runs, looks)), axis=-1)
    n = batch * np.arange(1, looks + 1)
    rate = {}
    for alt in ("less", "greater"):
        hit = np.zeros(runs, dtype=bool)
        for run in range(runs):
            for k in range(looks):
                try:
                    r = proportion_ztest(int(counts[0, run, k]), int(n[k]),
                                         int(counts[1, run, k]), int(n[k]), alternative=alt,
                                         sequential=True, tuning_n=batch * looks)
                except InsufficientDataError:  # < 5 conversions in an arm: no reading yet
                    continue
                if r.lift_p_value < 0.05:
                    hit[run] = True
                    break
        rate[alt] = float(hit.mean())
    assert rate["less"] <= 0.05 and rate["greater"] <= 0.05, rate
    assert abs(rate["less"] - rate["greater"]) <= 0.01, rate


def test_lift_interval_covers_at_n5_like_the_t_based_difference_mc_se_0015():
    """Issue 22 item 3: normal data, control mean 10, treatment 11, sd 2, 5 units per arm,
    20,000 seeded experiments: the two-sided 95% lift interval covers the true lift +10% in
    95% +/- 1 point (Monte Carlo SE 0.15 point) of them, within 1 point of the Welch
    difference interval's own coverage. With z quantiles it covered 91.6% (the issue: 0.918)."""
    reps, n = 20_000, 5
    rng = np.random.default_rng(22_6)
    c = rng.normal(10.0, 2.0, (reps, n))
    t = rng.normal(11.0, 2.0, (reps, n))
    mc, sc, mt, st = c.mean(1), c.std(1, ddof=1), t.mean(1), t.std(1, ddof=1)
    lift_cover = diff_cover = 0
    for i in range(reps):
        r = welch_ttest(mc[i], sc[i], n, mt[i], st[i], n)
        lift_cover += r.lift_ci_low <= 0.1 <= r.lift_ci_high
        diff_cover += r.diff_ci_low <= 1.0 <= r.diff_ci_high
    lift_rate, diff_rate = lift_cover / reps, diff_cover / reps
    assert abs(lift_rate - 0.95) <= 0.01, (lift_rate, diff_rate)
    assert abs(lift_rate - diff_rate) <= 0.01, (lift_rate, diff_rate)


COVERAGE_RUNS = 1_000_000
"""Replications per coverage scenario: Monte Carlo SE <= 0.00022 at coverage >= 0.95."""


@pytest.mark.parametrize(("p_c", "n_c", "p_t", "n_t", "before"), [
    (0.03, 500, 0.0005, 500, 0.517),
    (0.999, 500, 0.99, 500, 0.619),
    (0.02, 200, 0.01, 200, 0.936),
    (0.01, 1_000_000, 0.01, 10, None),
], ids=["rare-vs-rarer", "near-one", "two-hundred-per-arm", "lopsided-arms"])
def test_small_count_intervals_cover_at_least_94_percent_mc_se_under_0_00025(p_c, n_c, p_t, n_t,
                                                                             before):
    """Issue 22: coverage of the nominal 95% two-sided difference interval was 0.517, 0.619 and
    0.936 in its three scenarios (``before``); the MOVER-E intervals of the difference and of
    the lift must cover the true values in at least 94% of 1,000,000 seeded experiments, and do
    with room to spare: the lower 3-SE Monte Carlo bound is checked against 0.94 (the message
    gives each coverage with its Monte Carlo SE). The fourth scenario is issue 12's regime (10
    units against 10^6 at 1%), where a score or Wald interval covers about 0.90.

    Vectorised: counts are drawn as Binomial(n, p) arrays, and proportion_ztest (either path,
    as chosen by the five-count rule) runs once per distinct table, weighted by its count."""
    rng = np.random.default_rng(22)
    x_c = rng.binomial(n_c, p_c, size=COVERAGE_RUNS)
    x_t = rng.binomial(n_t, p_t, size=COVERAGE_RUNS)
    tables, counts = np.unique(np.stack([x_c, x_t], axis=1), axis=0, return_counts=True)
    diff, lift = p_t - p_c, p_t / p_c - 1
    hits = np.zeros((2, len(tables)))
    for i, (c, t) in enumerate(tables):
        r = proportion_ztest(int(c), n_c, int(t), n_t)
        hits[:, i] = (r.diff_ci_low <= diff <= r.diff_ci_high,
                      r.lift_ci_low <= lift <= r.lift_ci_high)
    coverage = hits @ counts / COVERAGE_RUNS
    se = np.sqrt(coverage * (1 - coverage) / COVERAGE_RUNS)
    message = (f"difference {coverage[0]:.4f} (MC SE {se[0]:.4f}), lift {coverage[1]:.4f} "
               f"(MC SE {se[1]:.4f}) over {COVERAGE_RUNS:,} runs; before the fix: {before}")
    print(message)
    assert np.all(coverage - 3 * se >= 0.94), message
