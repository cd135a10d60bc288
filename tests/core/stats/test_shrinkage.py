"""Empirical-Bayes shrinkage (core.stats.shrinkage) against its references.

* tau^2, the random-effects mean and its SE: statsmodels
  ``statsmodels.stats.meta_analysis.combine_effects`` (``method_re="dl"`` DerSimonian–Laird,
  ``"pm"`` Paule–Mandel).
* The eight schools (Rubin 1981; Gelman et al., Bayesian Data Analysis 3rd ed., section 5.5):
  the estimates show no spread beyond their noise, so tau^2 = 0 and the complete-pooling
  estimate is 7.7 with SE 4.1 (BDA's numbers); every school is shrunk to it.
* Posterior means and variances: Henderson's mixed-model equations for y = 1 mu + u + e,
  u ~ N(0, tau^2 I), e ~ N(0, diag(s^2)), solved as a linear system (BLUP and prediction-error
  variance L C^-1 L'), independent of the closed forms.
* The winner's curse: a seeded simulation in which the winners (significant at 5 %) are
  overestimated by their raw lifts and much less by their shrunk ones.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from statsmodels.stats.meta_analysis import combine_effects

from core.stats.shrinkage import MIN_EXPERIMENTS, shrink_estimates, shrunk_total

SCHOOLS_Y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
SCHOOLS_SE = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]
# relative lifts and SEs of the demo portfolio's completed experiments (rounded), plus two more
PORTFOLIO_Y = [0.146, -0.070, 0.0075, 0.132, 0.021, -0.004]
PORTFOLIO_SE = [0.0557, 0.0294, 0.0136, 0.0504, 0.011, 0.02]
SHIFTED_Y = [0.31, 0.05, 0.12, -0.08, 0.22, 0.0, 0.17]
SHIFTED_SE = [0.08, 0.03, 0.05, 0.06, 0.1, 0.02, 0.04]


def _henderson(y: np.ndarray, se: np.ndarray, tau2: float) -> tuple[np.ndarray, np.ndarray]:
    """BLUP of theta_i = mu + u_i and the prediction-error covariance of theta (k x k)."""
    k = len(y)
    r_inv = np.diag(1.0 / se**2)
    ones = np.ones((k, 1))
    c = np.block([[ones.T @ r_inv @ ones, ones.T @ r_inv],
                  [r_inv @ ones, r_inv + np.eye(k) / tau2]])
    rhs = np.concatenate([ones.T @ r_inv @ y, r_inv @ y])
    solution = np.linalg.solve(c, rhs)
    lmat = np.hstack([ones, np.eye(k)])  # theta = mu + u
    return lmat @ solution, lmat @ np.linalg.inv(c) @ lmat.T


@pytest.mark.parametrize(("method", "statsmodels_name", "rtol"),
                         [("dersimonian_laird", "dl", 1e-10),
                          # statsmodels iterates Paule–Mandel to its own tolerance
                          ("paule_mandel", "pm", 1e-6)])
@pytest.mark.parametrize(("y", "se"), [(PORTFOLIO_Y, PORTFOLIO_SE), (SHIFTED_Y, SHIFTED_SE)])
def test_shrinkage_tau2_and_mean_match_statsmodels_combine_effects(
    y: list[float], se: list[float], method: str, statsmodels_name: str, rtol: float
) -> None:
    ours = shrink_estimates(y, se, method=method)  # type: ignore[arg-type]
    ref = combine_effects(np.array(y), np.array(se) ** 2, method_re=statsmodels_name)
    assert ref.tau2 > 0
    assert_allclose(ours.tau2, ref.tau2, rtol=rtol)
    assert_allclose(ours.prior_mean, ref.mean_effect_re, rtol=rtol)
    assert_allclose(ours.prior_mean_se, ref.sd_eff_w_re, rtol=rtol)
    assert_allclose(ours.q_statistic, ref.q, rtol=1e-10)
    assert ours.applied and ours.reason is None


@pytest.mark.parametrize(("method", "statsmodels_name"),
                         [("dersimonian_laird", "dl"), ("paule_mandel", "pm")])
def test_shrinkage_truncates_tau2_at_zero_where_statsmodels_dl_does_not(
    method: str, statsmodels_name: str
) -> None:
    """statsmodels 0.15's ``combine_effects(method_re="dl")`` leaves the moment estimate
    negative (-44.6 for the eight schools) and weighs with it; DerSimonian & Laird truncate it
    at 0, where the random-effects mean is the fixed-effect one (statsmodels' ``mean_effect_fe``).
    """
    ours = shrink_estimates(SCHOOLS_Y, SCHOOLS_SE, method=method)  # type: ignore[arg-type]
    ref = combine_effects(np.array(SCHOOLS_Y), np.array(SCHOOLS_SE) ** 2,
                          method_re=statsmodels_name)
    assert ours.tau2 == max(0.0, ref.tau2) == 0.0
    assert_allclose(ours.prior_mean, ref.mean_effect_fe, rtol=1e-10)
    assert_allclose(ours.prior_mean_se, ref.sd_eff_w_fe, rtol=1e-10)


def test_shrinkage_eight_schools_pools_completely_as_in_bda() -> None:
    r = shrink_estimates(SCHOOLS_Y, SCHOOLS_SE)
    assert r.tau2 == 0.0
    # BDA3 section 5.5: complete pooling gives 7.7 (SE 4.1)
    assert_allclose(r.prior_mean, 7.7, atol=0.05)
    assert_allclose(r.prior_mean_se, 4.1, atol=0.05)
    assert_allclose(r.shrunk, [r.prior_mean] * 8, rtol=1e-12)
    assert_allclose(r.weights, [0.0] * 8, atol=0)
    assert_allclose(r.posterior_sd, [r.prior_mean_se] * 8, rtol=1e-12)


@pytest.mark.parametrize("method", ["dersimonian_laird", "paule_mandel"])
def test_shrinkage_posterior_matches_henderson_mixed_model_equations(method: str) -> None:
    y, se = np.array(PORTFOLIO_Y), np.array(PORTFOLIO_SE)
    r = shrink_estimates(y, se, method=method)  # type: ignore[arg-type]
    assert r.tau2 > 0
    blup, pev = _henderson(y, se, r.tau2)
    assert_allclose(r.shrunk, blup, rtol=1e-9)
    assert_allclose(np.square(r.posterior_sd), np.diag(pev), rtol=1e-9)
    # the formula of the module docstring, spelled out for the first experiment
    w0 = r.tau2 / (r.tau2 + se[0] ** 2)
    assert_allclose(r.shrunk[0], w0 * y[0] + (1 - w0) * r.prior_mean, rtol=1e-12)
    # a sum's posterior variance includes the covariance through mu: 1' PEV 1 over the chosen
    chosen = np.array([True, False, False, True, True, False])
    total = shrunk_total(r, chosen)
    assert total.count == 3
    assert_allclose(total.shrunk_sum, blup[chosen].sum(), rtol=1e-9)
    assert_allclose(total.shrunk_sum_sd ** 2, pev[np.ix_(chosen, chosen)].sum(), rtol=1e-9)
    assert_allclose(total.raw_sum, y[chosen].sum(), rtol=1e-12)
    assert_allclose(total.raw_sum_se, math.sqrt(np.sum(se[chosen] ** 2)), rtol=1e-12)
    assert_allclose(total.shrunk_mean, total.shrunk_sum / 3, rtol=1e-12)


def test_shrinkage_winners_curse_is_smaller_after_shrinking() -> None:
    """Seeded: 300 portfolios of 40 experiments, true lifts N(0.5 %, 1 %^2), SEs 0.5-2 %.

    The winners (raw z > 1.96) are overestimated by their raw lifts (Lee & Shen 2018); their
    shrunk lifts are much closer to the truth, in bias and in mean squared error.
    """
    rng = np.random.default_rng(20261207)
    raw_err, shrunk_err = [], []
    for _ in range(300):
        theta = rng.normal(0.005, 0.01, 40)
        se = rng.uniform(0.005, 0.02, 40)
        y = rng.normal(theta, se)
        r = shrink_estimates(y, se)
        winners = y / se > 1.959964
        raw_err.append(y[winners] - theta[winners])
        shrunk_err.append(np.asarray(r.shrunk)[winners] - theta[winners])
    raw, shrunk = np.concatenate(raw_err), np.concatenate(shrunk_err)
    assert len(raw) > 1000
    raw_bias, shrunk_bias = raw.mean(), shrunk.mean()
    raw_mse, shrunk_mse = np.mean(raw**2), np.mean(shrunk**2)
    assert raw_bias > 0.008  # the winner's curse: +1.3 percentage points here (seed above)
    assert abs(shrunk_bias) < raw_bias / 3
    assert shrunk_mse < 0.6 * raw_mse


@pytest.mark.parametrize("k", [0, 1, 2])
def test_shrinkage_fewer_than_three_experiments_shrinks_nothing(k: int) -> None:
    r = shrink_estimates(PORTFOLIO_Y[:k], PORTFOLIO_SE[:k])
    assert k < MIN_EXPERIMENTS
    assert not r.applied
    assert r.reason is not None and "at least 3" in r.reason and f"{k} experiment" in r.reason
    assert r.shrunk == tuple(PORTFOLIO_Y[:k])
    assert r.posterior_sd == tuple(PORTFOLIO_SE[:k])
    assert math.isnan(r.tau2) and math.isnan(r.prior_mean)
    total = shrunk_total(r, [True] * k)
    assert total.shrunk_sum == total.raw_sum
    assert total.shrunk_sum_sd == total.raw_sum_se


def test_shrinkage_three_identical_estimates_pool_to_them() -> None:
    r = shrink_estimates([0.02, 0.02, 0.02], [0.01, 0.02, 0.03])
    assert r.applied and r.tau2 == 0.0
    assert_allclose(r.shrunk, [0.02] * 3, rtol=1e-12)


@pytest.mark.parametrize(("estimates", "ses", "kwargs", "message"), [
    ([0.1, 0.2, 0.3], [0.1, 0.1], {}, "same length"),
    ([0.1, math.nan, 0.3], [0.1, 0.1, 0.1], {}, "finite"),
    ([0.1, 0.2, 0.3], [0.1, 0.0, 0.1], {}, "> 0"),
    ([0.1, 0.2, 0.3], [0.1, -0.1, 0.1], {}, "> 0"),
    ([[0.1, 0.2]], [[0.1, 0.1]], {}, "one-dimensional"),
    (["a", "b", "c"], [0.1, 0.1, 0.1], {}, "numbers"),
    ([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], {"method": "reml"}, "method must be one of"),
])
def test_shrinkage_rejects_bad_input(estimates, ses, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        shrink_estimates(estimates, ses, **kwargs)


def test_shrunk_total_rejects_flags_of_the_wrong_length() -> None:
    r = shrink_estimates(PORTFOLIO_Y, PORTFOLIO_SE)
    with pytest.raises(ValueError, match="6 True/False flags"):
        shrunk_total(r, [True, False])
    with pytest.raises(ValueError, match="True/False"):
        shrunk_total(r, [1, 0, 0, 1, 0, 0])
