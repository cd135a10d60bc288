"""Bayesian readout against a seeded Monte Carlo of the posterior, to 3 decimals.

Flat prior: the posterior is the normalised likelihood N(lift, se^2), sampled directly.
Gaussian prior: sampled independently of the conjugate formula, by drawing theta from the
prior and weighting each draw by the likelihood N(lift; theta, se^2) (importance sampling).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.stats import bayesian_readout, bayesian_readout_from_result, welch_ttest

DRAWS = 4_000_000


def _mc(theta: np.ndarray, w: np.ndarray, alpha: float) -> list[float]:
    w = w / w.sum()
    order = np.argsort(theta)
    cw = np.cumsum(w[order])
    lo, hi = theta[order][np.searchsorted(cw, [alpha / 2, 1 - alpha / 2])]
    return [
        float(w @ theta),
        float(np.sqrt(w @ (theta - w @ theta) ** 2)),
        float(w @ (theta > 0)),
        float(w @ np.maximum(0.0, -theta)),
        float(w @ np.maximum(0.0, theta)),
        float(lo),
        float(hi),
    ]


def _ours(r) -> list[float]:  # type: ignore[no-untyped-def]
    return [r.posterior_mean, r.posterior_sd, r.chance_to_beat_control, r.expected_loss_ship,
            r.expected_loss_dont_ship, r.ci_low, r.ci_high]


@pytest.mark.parametrize(("lift", "se", "alpha"), [(0.03, 0.02, 0.05), (-0.01, 0.015, 0.1),
                                                   (0.0, 0.05, 0.05)])
def test_bayesian_flat_prior_matches_monte_carlo(lift, se, alpha):
    theta = np.random.default_rng(12).normal(lift, se, DRAWS)
    r = bayesian_readout(lift, se, alpha=alpha)
    assert r.prior == "flat" and r.prior_mean is None
    assert_allclose(_ours(r), _mc(theta, np.ones(DRAWS), alpha), atol=1e-3)


@pytest.mark.parametrize(("lift", "se", "m0", "s0"), [(0.04, 0.02, 0.0, 0.03),
                                                      (-0.02, 0.01, 0.01, 0.02)])
def test_bayesian_gaussian_prior_matches_importance_sampled_posterior(lift, se, m0, s0):
    rng = np.random.default_rng(13)
    theta = rng.normal(m0, s0, DRAWS)
    w = np.exp(-0.5 * ((lift - theta) / se) ** 2)
    r = bayesian_readout(lift, se, prior_mean=m0, prior_sd=s0)
    assert r.prior == "gaussian" and (r.prior_mean, r.prior_sd) == (m0, s0)
    assert_allclose(_ours(r), _mc(theta, w, 0.05), atol=1e-3)
    # shrinkage: the posterior mean lies between the prior mean and the estimate
    assert min(m0, lift) < r.posterior_mean < max(m0, lift)


def test_bayesian_lower_is_better_swaps_the_direction():
    up = bayesian_readout(0.02, 0.01)
    down = bayesian_readout(0.02, 0.01, higher_is_better=False)
    assert_allclose(down.chance_to_beat_control, 1 - up.chance_to_beat_control, rtol=1e-12)
    assert down.expected_loss_ship == up.expected_loss_dont_ship
    assert down.expected_loss_dont_ship == up.expected_loss_ship
    # E[max(0, t)] - E[max(0, -t)] = E[t]
    assert_allclose(up.expected_loss_dont_ship - up.expected_loss_ship, 0.02, rtol=1e-12)


def test_bayesian_from_result_reads_lift_and_se():
    w = welch_ttest(10.0, 4.0, 2000, 10.3, 4.0, 2000)
    assert bayesian_readout_from_result(w) == bayesian_readout(w.lift, w.lift_se)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"lift": float("nan"), "lift_se": 0.1}, "lift must be a finite relative lift"),
    ({"lift": 0.1, "lift_se": 0.0}, "lift_se must be a positive, finite"),
    ({"lift": 0.1, "lift_se": 0.1, "prior_mean": 0.0}, "needs both prior_mean and prior_sd"),
    ({"lift": 0.1, "lift_se": 0.1, "prior_mean": 0.0, "prior_sd": -1.0}, "prior_sd must be"),
    ({"lift": 0.1, "lift_se": 0.1, "alpha": 1.0}, "alpha must lie strictly between"),
])
def test_bayesian_bad_arguments_say_what_to_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bayesian_readout(**kwargs)
