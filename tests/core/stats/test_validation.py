"""Bad arguments raise ValueError (or TypeError for a wrong object) with a message that says what
to fix. Source: the API contract in core.stats docstrings (statsmodels-style argument checks)."""

from __future__ import annotations

import numpy as np
import pytest

from core.stats import (
    CovariateStats,
    SufficientStats,
    adjust_pvalues,
    covariate_stats,
    duration_days,
    mde_mean,
    mde_proportion,
    power_mean,
    power_proportion,
    proportion_ztest,
    proportion_ztest_from_stats,
    sample_size_mean,
    sample_size_proportion,
    srm_test,
    sufficient_stats,
    welch_ttest,
    welch_ttest_cuped,
    welch_ttest_from_stats,
)

W = (10.0, 2.0, 100, 11.0, 2.0, 100)

BAD_CALLS = [
    # Welch
    (lambda: welch_ttest(10.0, 2.0, 1, 11.0, 2.0, 100), r"n_c must be at least 2 \(got 1\)"),
    (lambda: welch_ttest(10.0, 2.0, 100, 11.0, 2.0, 0), r"n_t must be at least 2"),
    (lambda: welch_ttest(10.0, 2.0, 10.5, 11.0, 2.0, 10), r"n_c must be a whole number"),
    (lambda: welch_ttest(10.0, -2.0, 100, 11.0, 2.0, 100), r"sd_c must be a finite, non-negative"),
    (lambda: welch_ttest(float("nan"), 2.0, 100, 11.0, 2.0, 100), r"mean_c must be a finite"),
    (lambda: welch_ttest(*W, alpha=0.0), r"alpha must lie strictly between 0 and 1"),
    (lambda: welch_ttest(*W, alpha=1.5), r"alpha must lie strictly between 0 and 1"),
    (lambda: welch_ttest(*W, alternative="bigger"), r"alternative must be one of"),
    (lambda: welch_ttest(*W, sequential=True, tuning_n=0), r"tuning_n must be a positive"),
    (lambda: welch_ttest(*W, sequential=True), r"sequential=True needs tuning_n: pass the planned "
     r"sample size per variant"),
    (lambda: welch_ttest(*W, sequential=True, tuning_n=True), r"tuning_n must be a positive"),
    (lambda: welch_ttest(0.0, 1e200, 10, 0.0, 1e200, 10), r"overflows double precision"),
    (lambda: welch_ttest(-1e308, 1.0, 10, 1e308, 1.0, 10), r"overflows double precision"),
    (lambda: welch_ttest(*W, sequential=True, tuning_n=100, alternative="greater",
                         margin=-0.1), r"margin must be a finite relative lift >= 0"),
    (lambda: welch_ttest(*W, margin=0.05), r"margin applies to one-sided tests only"),
    (lambda: proportion_ztest(50, 100, 50, 100, margin=float("nan"), alternative="less"),
     r"margin must be a finite"),
    (lambda: proportion_ztest(50, 100, 50, 100, sequential=True), r"needs tuning_n"),
    # proportions
    (lambda: proportion_ztest(11, 10, 5, 10), r"x_c \(11\) cannot exceed n_c \(10\)"),
    (lambda: proportion_ztest(1, 10, -1, 10), r"x_t must be non-negative"),
    (lambda: proportion_ztest(1, 1, 1, 10), r"n_c must be at least 2"),
    (lambda: proportion_ztest(1.5, 10, 1, 10), r"x_c must be a whole number"),
    (lambda: proportion_ztest(1, 10, 1, 10, alternative="up"), r"alternative must be one of"),
    (
        lambda: proportion_ztest_from_stats(
            SufficientStats(10, 2.5, 2.5), SufficientStats(10, 2, 2)
        ),
        r"control.sum must be a whole number",
    ),
    # sufficient statistics
    (lambda: SufficientStats(-1, 0.0, 0.0), r"n must be non-negative"),
    (lambda: SufficientStats(3, 1.0, -1.0), r"sum of squares cannot be negative"),
    (lambda: SufficientStats(2, 10.0, 1.0), r"cannot come from one set of values"),
    (lambda: sufficient_stats(np.array([1.0, np.nan])), r"NaN or infinity"),
    (lambda: covariate_stats([1.0, 2.0], [1.0]), r"one value per unit each"),
    (
        lambda: welch_ttest_from_stats(SufficientStats(1, 1.0, 1.0), SufficientStats(5, 5.0, 9.0)),
        r"n_c must be at least 2",
    ),
    (
        lambda: welch_ttest_cuped(
            CovariateStats(1, 1.0, 1.0, 1.0, 1.0, 1.0), CovariateStats(3, 3.0, 5.0, 3.0, 5.0, 5.0)
        ),
        r"control has n=1: each arm needs at least 2 units",
    ),
    # planner
    (lambda: sample_size_proportion(0.0, 0.1), r"baseline must lie strictly between 0 and 1"),
    (lambda: sample_size_proportion(1.2, 0.1), r"baseline must lie strictly between 0 and 1"),
    (lambda: sample_size_proportion(0.1, 0.0), r"mde must be positive"),
    (lambda: sample_size_proportion(0.1, -0.05), r"mde must be positive"),
    (lambda: sample_size_proportion(0.6, 0.8), r"must stay strictly between 0 and 1"),
    (lambda: sample_size_proportion(0.1, 0.1, power=1.0), r"power must lie strictly between"),
    (lambda: sample_size_proportion(0.1, 0.1, power=0.01), r"power .* must exceed alpha"),
    (lambda: sample_size_proportion(0.1, 0.1, alpha=-0.1), r"alpha must lie strictly between"),
    (lambda: sample_size_proportion(0.1, 0.1, ratio=0), r"ratio must be positive"),
    (lambda: sample_size_proportion(0.1, 0.1, variants=1), r"variants must be a whole number >= 2"),
    (lambda: sample_size_proportion(0.1, 0.1, alternative="x"), r"alternative must be one of"),
    (
        lambda: sample_size_proportion(np.array([0.1, 1.5]), 0.1),
        r"baseline must lie strictly between 0 and 1",
    ),
    (lambda: power_proportion(0.1, 0.1, 1), r"n must be at least 2 units per variant"),
    (lambda: power_proportion(0.1, 0.1, 10, ratio=0.1), r"ratio \* n must be at least 2"),
    (lambda: power_mean(1.0, 0.1, 10, ratio=0.1), r"ratio \* n must be at least 2"),
    (lambda: mde_proportion(0.1, 1000, power=0.0), r"power must lie strictly between"),
    (lambda: sample_size_mean(0.0, 1.0), r"sd must be positive"),
    (lambda: sample_size_mean(-1.0, 1.0), r"sd must be positive"),
    (lambda: sample_size_mean(1.0, 0.1, relative=True), r"relative=True needs baseline_mean"),
    (lambda: power_mean(1.0, 0.1, np.array([100, 1])), r"n must be at least 2"),
    (lambda: mde_mean(1.0, 100, power=1.2), r"power must lie strictly between"),
    (lambda: duration_days(1000, 0), r"daily_units must be positive"),
    (lambda: duration_days(1000, 100, exposure=0), r"exposure must lie in \(0, 1\]"),
    (lambda: duration_days(1000, 100, weights=[0.6, 0.6]), r"weights must sum to 1"),
    (lambda: duration_days(1000, 100, variants=3, weights=[0.5, 0.5]), r"one per variant"),
    # SRM
    (lambda: srm_test([100, 100], [0.5, 0.6]), r"weights must sum to 1"),
    (lambda: srm_test([100, 100], [0.5, 0.25, 0.25]), r"has 3 entries but there are 2 variants"),
    (lambda: srm_test([100, -1], [0.5, 0.5]), r"counts must be non-negative whole numbers"),
    (lambda: srm_test([100], [1.0]), r"counts needs one entry per variant, at least 2"),
    (lambda: srm_test([0, 0], [0.5, 0.5]), r"counts are all zero"),
    (lambda: srm_test([10, 10], [0.5, 0.5], threshold=2), r"threshold must lie strictly"),
    # corrections
    (
        lambda: adjust_pvalues([0.1, 0.2], method="bonferroni"),
        r"method must be one of 'holm', 'bh'",
    ),
    (lambda: adjust_pvalues([0.1, 1.2]), r"p_values must all lie in \[0, 1\]"),
    (lambda: adjust_pvalues([0.1, float("nan")]), r"no NaN"),
]


@pytest.mark.parametrize(("call", "match"), BAD_CALLS)
def test_bad_argument_raises_value_error_with_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("tuning", [np.int64(1000), np.int32(1000), np.float64(1000.0), 1000])
def test_tuning_n_accepts_numpy_integers_and_floats(tuning):
    r = welch_ttest(*W, sequential=True, tuning_n=tuning)
    assert r.tuning_n == 1000.0 and type(r.tuning_n) is float
    assert r == welch_ttest(*W, sequential=True, tuning_n=1000)


def test_overflow_is_refused_never_reported_significant():
    """sd 1e200 and means +/-1e308 (issue 12) raise instead of returning inf/NaN marked
    significant; a control mean so close to 0 that the ratio overflows leaves the lift
    undefined (nan, never significant) while the difference is still tested."""
    for call in (lambda: welch_ttest(0.0, 1e200, 10, 0.0, 1e200, 10),
                 lambda: welch_ttest(1e308, 1.0, 10, -1e308, 1.0, 10)):
        with pytest.raises(ValueError, match="rescale the metric"):
            call()
    r = welch_ttest(1e-310, 1.0, 100, 1e10, 1.0, 100)
    assert np.isnan(r.lift) and not r.lift_significant and r.significant


def test_wrong_object_type_raises_type_error():
    with pytest.raises(TypeError, match="control must be a SufficientStats"):
        welch_ttest_from_stats((10, 5.0, 9.0), SufficientStats(10, 5.0, 9.0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="treatment must be a CovariateStats"):
        welch_ttest_cuped(CovariateStats(3, 3.0, 5.0, 3.0, 5.0, 5.0), SufficientStats(3, 3.0, 5.0))  # type: ignore[arg-type]
