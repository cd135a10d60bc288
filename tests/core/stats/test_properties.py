"""Property-based tests (hypothesis): symmetries, monotonicity and round trips that follow from the
definitions of the tests and of the planner's power equations."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from core.stats import (
    SufficientStats,
    adjust_pvalues,
    mde_mean,
    mde_proportion,
    power_mean,
    power_proportion,
    proportion_ztest,
    sample_size_mean,
    sample_size_proportion,
    sufficient_stats,
    welch_ttest,
)
from core.stats.proportion import needs_exact

# derandomize: the same examples on every run, so CI is reproducible (seeded, like the sims)
FAST = settings(max_examples=60, deadline=None, derandomize=True)

means = st.floats(-1e3, 1e3, allow_nan=False)
sds = st.floats(0.01, 1e2, allow_nan=False)
ns = st.integers(2, 100_000)
seq_flags = st.booleans()
TUNE = 5000  # planned units per variant for the sequential cases


@FAST
@given(means, sds, ns, means, sds, ns, seq_flags)
def test_welch_swapping_arms_negates_diff_and_keeps_two_sided_p(mc, sc, nc, mt, stt, nt, seq):
    """Definition: diff(t, c) = -diff(c, t); the two-sided test is symmetric in the arms."""
    a = welch_ttest(mc, sc, nc, mt, stt, nt, sequential=seq, tuning_n=TUNE)
    b = welch_ttest(mt, stt, nt, mc, sc, nc, sequential=seq, tuning_n=TUNE)
    assert_allclose(b.diff, -a.diff, rtol=1e-12, atol=1e-12)
    assert_allclose(b.p_value, a.p_value, rtol=1e-9, atol=1e-300)
    assert_allclose([b.diff_ci_low, b.diff_ci_high], [-a.diff_ci_high, -a.diff_ci_low], rtol=1e-9)


@FAST
@given(st.integers(2, 10_000), st.integers(2, 10_000), st.data(), seq_flags)
def test_proportion_swapping_arms_negates_diff_and_keeps_two_sided_p(nc, nt, data, seq):
    """Definition: the Wald z and CI, and the MOVER intervals and their p-values, are
    antisymmetric in the arms."""
    xc = data.draw(st.integers(0, nc))
    xt = data.draw(st.integers(0, nt))
    if seq and needs_exact(xc, nc, xt, nt):
        seq = False  # the sequential test refuses small counts (tested in test_units)
    a = proportion_ztest(xc, nc, xt, nt, sequential=seq, tuning_n=TUNE)
    b = proportion_ztest(xt, nt, xc, nc, sequential=seq, tuning_n=TUNE)
    assert_allclose(b.diff, -a.diff, atol=1e-15)
    assert_allclose(b.p_value, a.p_value, rtol=1e-9)
    assert_allclose([b.diff_ci_low, b.diff_ci_high], [-a.diff_ci_high, -a.diff_ci_low], rtol=1e-9)


@FAST
@given(means, sds, ns, means, sds, ns, seq_flags, st.sampled_from([0.01, 0.05, 0.2]))
def test_welch_ci_contains_diff_and_lift(mc, sc, nc, mt, stt, nt, seq, alpha):
    """A two-sided interval is centred on its estimate."""
    r = welch_ttest(mc, sc, nc, mt, stt, nt, sequential=seq, tuning_n=TUNE, alpha=alpha)
    assert r.lift_significant == (r.lift_p_value < alpha)
    assert r.diff_ci_low <= r.diff <= r.diff_ci_high
    if np.isfinite(r.lift):
        assert r.lift_ci_low <= r.lift <= r.lift_ci_high
    assert 0.0 <= r.p_value <= 1.0
    assert r.significant == (r.p_value < alpha)


@FAST
@given(sds, st.integers(10, 10_000), st.floats(0.0, 5.0), st.floats(0.01, 5.0), seq_flags)
def test_welch_p_value_falls_as_effect_grows(sd, n, effect, extra, seq):
    """Larger |diff| with the same SE gives a larger |t| and a smaller p (all alternatives)."""
    small = welch_ttest(0.0, sd, n, effect * sd, sd, n, sequential=seq, tuning_n=TUNE)
    large = welch_ttest(0.0, sd, n, (effect + extra) * sd, sd, n, sequential=seq, tuning_n=TUNE)
    assert large.p_value <= small.p_value
    kw = {"alternative": "greater", "sequential": seq, "tuning_n": TUNE}
    g_small = welch_ttest(0.0, sd, n, effect * sd, sd, n, **kw)
    g_large = welch_ttest(0.0, sd, n, (effect + extra) * sd, sd, n, **kw)
    assert g_large.p_value <= g_small.p_value


@FAST
@given(
    st.floats(0.01, 0.45),
    st.floats(0.01, 0.45),
    st.floats(1.01, 2.0),
    st.sampled_from(["two-sided", "greater", "less"]),
)
def test_sample_size_falls_as_mde_grows(baseline, mde, factor, alternative):
    """Power rises with the effect, so the n reaching a fixed power falls (Chow et al. 4.2).
    Relative mde up to 0.9 on baselines up to 0.45 keeps the treatment rate inside (0, 1)."""
    n_small = sample_size_proportion(baseline, mde, alternative=alternative, round_up=False)
    n_big = sample_size_proportion(baseline, mde * factor, alternative=alternative, round_up=False)
    assert n_big <= n_small
    m_small = sample_size_mean(1.0, mde, alternative=alternative, round_up=False)
    m_big = sample_size_mean(1.0, mde * factor, alternative=alternative, round_up=False)
    assert m_big <= m_small


@FAST
@given(
    st.floats(0.01, 0.5),
    st.floats(0.02, 0.5),
    st.floats(0.55, 0.95),
    st.sampled_from([0.01, 0.05, 0.1]),
    st.floats(0.3, 3.0),
    st.integers(2, 5),
    st.sampled_from(["two-sided", "greater", "less"]),
)
def test_proportion_planner_inverses_round_trip(baseline, mde, power, alpha, ratio, k, alt):
    """sample_size -> power gives the target power; the MDE at that n gives the mde back."""
    kw = {"alpha": alpha, "ratio": ratio, "variants": k, "alternative": alt}
    n = sample_size_proportion(baseline, mde, power=power, round_up=False, **kw)
    if n <= max(2.0, 2.0 / ratio) * 1.01:  # floored at 2 units per arm: nothing to invert
        return
    assert_allclose(power_proportion(baseline, mde, n, **kw), power, rtol=1e-7)
    absolute = mde_proportion(baseline, n, power=power, **kw)
    assert_allclose(absolute, mde * baseline, rtol=1e-6)


@FAST
@given(
    st.floats(0.1, 50.0),
    st.floats(0.01, 10.0),
    st.floats(0.55, 0.95),
    st.sampled_from([0.01, 0.05, 0.1]),
    st.floats(0.3, 3.0),
    st.sampled_from(["two-sided", "greater"]),
)
def test_mean_planner_inverses_round_trip(sd, mde, power, alpha, ratio, alt):
    """sample_size_mean -> power_mean -> mde_mean reproduce power and mde (R power.t.test)."""
    kw = {"alpha": alpha, "ratio": ratio, "alternative": alt}
    n = sample_size_mean(sd, mde, power=power, round_up=False, **kw)
    if n <= max(2.0, 2.0 / ratio) * 1.01:  # floored at 2 units per arm: nothing to invert
        return
    assert_allclose(power_mean(sd, mde, n, **kw), power, rtol=1e-6)
    assert_allclose(mde_mean(sd, n, power=power, **kw), mde, rtol=1e-6)


@FAST
@given(
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=2, max_size=200),
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=0, max_size=200),
)
def test_sufficient_stats_merge_equals_stats_of_concatenation(a, b):
    """Sums are additive; mean and ddof=1 variance match numpy on the pooled values."""
    merged = sufficient_stats(np.array(a)) + sufficient_stats(np.array(b))
    whole = np.array(a + b)
    assert merged.n == whole.size
    assert_allclose(merged.mean, whole.mean(), rtol=1e-9, atol=1e-9)
    assert_allclose(merged.variance, whole.var(ddof=1), rtol=1e-6, atol=1e-6)
    assert isinstance(merged, SufficientStats)


@FAST
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50))
def test_adjusted_pvalues_bounded_and_ordered(p):
    """Holm and BH never lower a p-value, never exceed 1, keep the order; Holm >= BH."""
    raw = np.array(p)
    holm, bh = adjust_pvalues(raw, "holm"), adjust_pvalues(raw, "bh")
    for adj in (holm, bh):
        assert np.all(adj >= raw - 1e-15)
        assert np.all(adj <= 1.0)
        order = np.argsort(raw, kind="stable")
        assert np.all(np.diff(adj[order]) >= -1e-15)
    assert np.all(holm >= bh - 1e-15)
