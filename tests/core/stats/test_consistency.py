"""Property test (hypothesis): every interval excludes its null exactly when its own p-value is
below alpha, for the difference and for the relative lift, in every test (Welch, proportions on
both the Wald and the small-count (MOVER) path, ratio, CUPED), fixed horizon and sequential, every
alternative, with and without a non-inferiority margin.

Source: the definition of a confidence interval as the set of nulls a test does not reject
(test inversion; Casella & Berger, Statistical Inference, thm 9.2.2), which core.stats
implements by computing each p-value from the same SE, quantile and null as its interval.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.stats import (
    InsufficientDataError,
    covariate_stats,
    proportion_ztest,
    ratio_stats,
    ratio_test,
    welch_ttest,
    welch_ttest_cuped,
)

PROPS = settings(max_examples=150, deadline=None, derandomize=True)

alternatives = st.sampled_from(["two-sided", "greater", "less"])
alphas = st.sampled_from([0.01, 0.05, 0.2])
margins = st.one_of(st.just(0.0), st.floats(0.001, 0.3))
seq_flags = st.booleans()
tunings = st.one_of(st.integers(100, 100_000), st.integers(100, 100_000).map(np.int64))


def _excludes(low: float, high: float, null: float) -> bool:
    return low > null or high < null


def _assert_consistent(r) -> None:  # type: ignore[no-untyped-def]
    assert _excludes(r.diff_ci_low, r.diff_ci_high, r.diff_null) == (r.p_value < r.alpha)
    assert r.significant == (r.p_value < r.alpha)
    if not (math.isnan(r.lift_ci_low) or math.isnan(r.lift_ci_high)):
        assert _excludes(r.lift_ci_low, r.lift_ci_high, r.lift_null) == (
            r.lift_p_value < r.alpha
        )
        assert r.lift_significant == (r.lift_p_value < r.alpha)
    if r.alternative == "greater":
        assert r.diff_ci_high == math.inf
    elif r.alternative == "less":
        assert r.diff_ci_low == -math.inf
    else:
        assert math.isfinite(r.diff_ci_low) and math.isfinite(r.diff_ci_high)


def _kw(alternative, alpha, margin, seq, tuning):  # type: ignore[no-untyped-def]
    return {
        "alternative": alternative,
        "alpha": alpha,
        "margin": 0.0 if alternative == "two-sided" else margin,
        "sequential": seq,
        "tuning_n": tuning if seq else None,
    }


@PROPS
@given(
    st.one_of(st.floats(1.0, 100.0), st.floats(-100.0, -1.0)),  # the lift for either sign
    st.floats(0.1, 50.0), st.integers(2, 50_000),
    st.floats(-0.3, 0.3), st.floats(0.1, 50.0), st.integers(2, 50_000),
    alternatives, alphas, margins, seq_flags, tunings,
)
def test_welch_interval_excludes_null_iff_p_below_alpha(mc, sc, nc, rel, stt, nt, alt, alpha,
                                                        margin, seq, tuning):
    r = welch_ttest(mc, sc, nc, mc * (1 + rel), stt, nt, **_kw(alt, alpha, margin, seq, tuning))
    _assert_consistent(r)


@PROPS
@given(st.integers(2, 20_000), st.integers(2, 20_000), st.data(), alternatives, alphas, margins,
       seq_flags, tunings)
def test_proportion_interval_excludes_null_iff_p_below_alpha(nc, nt, data, alt, alpha, margin,
                                                             seq, tuning):
    rate = data.draw(st.floats(0.0, 1.0))
    xc = data.draw(st.integers(0, nc)) if rate < 0.2 else int(rate * nc)
    xt = data.draw(st.integers(max(0, int(xc / nc * nt) - 30), min(nt, int(xc / nc * nt) + 30)))
    try:
        r = proportion_ztest(xc, nc, xt, nt, **_kw(alt, alpha, margin, seq, tuning))
    except InsufficientDataError:
        assume(False)
        return
    _assert_consistent(r)


@PROPS
@given(st.integers(0, 2**32 - 1), st.integers(20, 3000), st.integers(20, 3000),
       st.floats(-0.2, 0.2), alternatives, alphas, margins, seq_flags, tunings)
def test_ratio_interval_excludes_null_iff_p_below_alpha(seed, nc, nt, effect, alt, alpha, margin,
                                                        seq, tuning):
    rng = np.random.default_rng(seed)
    den_c, den_t = rng.poisson(3.0, nc) + 1.0, rng.poisson(3.0, nt) + 1.0
    num_c = den_c * rng.gamma(2.0, 1.0, nc)
    num_t = den_t * rng.gamma(2.0, 1.0 + effect, nt)
    r = ratio_test(ratio_stats(num_c, den_c), ratio_stats(num_t, den_t),
                   **_kw(alt, alpha, margin, seq, tuning))
    _assert_consistent(r)


@PROPS
@given(st.integers(0, 2**32 - 1), st.integers(20, 3000), st.floats(-0.2, 0.2), st.floats(0, 0.9),
       alternatives, alphas, margins, seq_flags, tunings)
def test_cuped_interval_excludes_null_iff_p_below_alpha(seed, n, effect, rho, alt, alpha, margin,
                                                        seq, tuning):
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 2.0, (2, n))
    y = 10.0 + rho * (x - 10.0) + math.sqrt(1 - rho * rho) * rng.normal(0.0, 2.0, (2, n))
    y[1] *= 1 + effect
    r = welch_ttest_cuped(covariate_stats(y[0], x[0]), covariate_stats(y[1], x[1]),
                          **_kw(alt, alpha, margin, seq, tuning))
    _assert_consistent(r)
    _assert_consistent(r.unadjusted)


@PROPS
@given(st.integers(2, 80), st.integers(2, 80), st.data(), alternatives, alphas, margins)
def test_small_count_path_interval_excludes_null_iff_p_below_alpha(nc, nt, data, alt, alpha,
                                                                    margin):
    """Small arms (the MOVER path), counts drawn anywhere in [0, n] so that many tables are
    lopsided enough to be significant."""
    xc = data.draw(st.integers(0, nc))
    xt = data.draw(st.integers(0, nt))
    r = proportion_ztest(xc, nc, xt, nt, **_kw(alt, alpha, margin, False, None))
    _assert_consistent(r)
