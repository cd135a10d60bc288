"""Test of interaction (a slice's effect against the rest's): Altman & Bland (2003), BMJ 326:219;
checked against statsmodels OLS with HC2 errors on unit data."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose

from core.stats import effect_difference_test, sufficient_stats, welch_ttest_from_stats


def test_effect_difference_matches_ols_interaction_with_hc2_errors() -> None:
    # y ~ 1 + T + S + T:S on unit data; the T:S coefficient is (slice effect - rest effect),
    # and in this saturated cell-means model its HC2 variance is sum of s_g^2 / n_g over the
    # four cells: the Welch standard errors of the two effects, added in quadrature.
    rng = np.random.default_rng(3)
    n = 4_000
    t = rng.integers(0, 2, n)
    s = (rng.random(n) < 0.3).astype(int)
    y = rng.lognormal(0.0, 0.8, n) + 0.2 * t * s + 0.05 * t
    fit = sm.OLS(y, sm.add_constant(np.column_stack([t, s, t * s]))).fit(cov_type="HC2")

    def effect(mask: np.ndarray) -> tuple[float, float]:
        w = welch_ttest_from_stats(sufficient_stats(y[mask & (t == 0)]),
                                   sufficient_stats(y[mask & (t == 1)]))
        return w.diff, w.diff_se

    (d_in, se_in), (d_out, se_out) = effect(s == 1), effect(s == 0)
    r = effect_difference_test(d_in, se_in, d_out, se_out, alpha=0.05)
    assert_allclose(r.difference, fit.params[3], rtol=1e-10)
    assert_allclose(r.se, fit.bse[3], rtol=1e-10)
    assert_allclose(r.p_value, fit.pvalues[3], rtol=1e-8)
    low, high = fit.conf_int(alpha=0.05)[3]
    assert_allclose((r.ci_low, r.ci_high), (low, high), rtol=1e-9)


@pytest.mark.parametrize(("args", "match"), [
    ((0.1, 0.0, 0.0, 0.1), "standard errors"),
    ((float("nan"), 0.1, 0.0, 0.1), "finite"),
])
def test_effect_difference_rejects_bad_input(args: tuple[float, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        effect_difference_test(*args)


def test_effect_difference_rejects_a_bad_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        effect_difference_test(0.1, 0.1, 0.0, 0.1, alpha=1.5)
