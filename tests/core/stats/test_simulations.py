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
from numpy.testing import assert_allclose

from core.stats import (
    InsufficientDataError,
    adjust_pvalues,
    covariate_stats,
    proportion_ztest,
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
