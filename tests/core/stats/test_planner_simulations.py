"""The planner sizes the test the engine runs: seeded simulations of the engine's own tests at
the planner's sample sizes, at equal and unequal splits (issue 22, item 4).

Each simulation draws the exact sampling distribution of the sufficient statistics in one
vectorised call (conversions: Binomial(n, p) per arm; normal data: the mean is
N(mu, sd^2 / n) and the ddof=1 variance sd^2 chi2(n - 1) / (n - 1), independently), runs the
engine's test on every draw in vectorised form, and checks that form against the engine's
function (:func:`core.stats.proportion_ztest`, :func:`core.stats.welch_ttest`) on the first
draws. With R = 200,000 replications the Monte Carlo standard error of a power near 0.8 is
sqrt(0.8 x 0.2 / R) = 0.0009, so the +/-1 point tolerance is about 11 standard errors: a
planner within it sizes the test that runs; the pooled-variance planner (R power.prop.test) and
the pooled-df t planner (R power.t.test) missed it by 1.0 to 3.7 points at 1:4 and 4:1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import special

from core.stats import (
    power_mean,
    power_proportion,
    proportion_ztest,
    sample_size_mean,
    sample_size_proportion,
    welch_ttest,
)

REPS = 200_000
ALPHA = 0.05
TOLERANCE = 0.01  # one percentage point of power
CHECKED = 25  # draws compared one by one with the engine's own function

# control:treatment splits as ratio = n_treatment / n_control
SPLITS = [pytest.param(1.0, id="1:1"), pytest.param(4.0, id="1:4"),
          pytest.param(0.25, id="4:1")]


def _treated(n_control: int, ratio: float) -> int:
    return math.ceil(round(n_control * ratio, 6))


def _split(ratio: float) -> str:
    return f"control:treatment 1:{ratio:g}" if ratio >= 1 else f"control:treatment {1 / ratio:g}:1"


def _mc_se(power: float) -> float:
    return math.sqrt(power * (1 - power) / REPS)


def _wald_p(x_c: np.ndarray, n_c: int, x_t: np.ndarray, n_t: int) -> np.ndarray:
    """The engine's "wald_z" two-sided p-value, vectorised: unpooled SE, normal tails."""
    p_c, p_t = x_c / n_c, x_t / n_t
    se = np.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    return 2 * special.ndtr(-np.abs((p_t - p_c) / se))


def _welch_p(m_c: np.ndarray, v_c: np.ndarray, n_c: int, m_t: np.ndarray, v_t: np.ndarray,
             n_t: int) -> np.ndarray:
    """The engine's Welch two-sided p-value, vectorised: Welch-Satterthwaite df, t tails."""
    a, b = v_c / n_c, v_t / n_t
    df = (a + b) ** 2 / (a * a / (n_c - 1) + b * b / (n_t - 1))
    return 2 * special.stdtr(df, -np.abs((m_t - m_c) / np.sqrt(a + b)))


@pytest.mark.parametrize("ratio", SPLITS)
@pytest.mark.parametrize(("baseline", "lift"), [(0.05, 0.10), (0.10, 0.20)])
def test_planned_conversion_test_reaches_its_power_at_any_split(baseline, lift, ratio):
    """Planner's n for 80% power (two-sided, alpha 0.05), then 200,000 seeded experiments
    analysed with the engine's unpooled Wald z: the rejection share is the planned power
    +/- 1 point (Monte Carlo SE 0.0009). Planned power source: Chow, Shao & Wang (2008)
    section 4.2, the unpooled z-test's power."""
    n_c = sample_size_proportion(baseline, lift, power=0.8, ratio=ratio)
    n_t = _treated(n_c, ratio)
    planned = power_proportion(baseline, lift, n_c, ratio=n_t / n_c)
    assert 0.8 <= planned < 0.805
    rng = np.random.default_rng(20261222)
    x_c = rng.binomial(n_c, baseline, size=REPS)
    x_t = rng.binomial(n_t, baseline * (1 + lift), size=REPS)
    p = _wald_p(x_c, n_c, x_t, n_t)
    for i in range(CHECKED):  # the vectorised form is the engine's test
        r = proportion_ztest(int(x_c[i]), n_c, int(x_t[i]), n_t, alpha=ALPHA)
        assert r.method == "wald_z"
        assert_allclose(p[i], r.p_value, rtol=1e-9, atol=1e-15)
    achieved = float(np.mean(p < ALPHA))
    assert abs(achieved - planned) <= TOLERANCE, (
        f"{_split(ratio)} (n_c={n_c}, n_t={n_t}): planned power {planned:.4f}, "
        f"simulated {achieved:.4f} (Monte Carlo SE {_mc_se(achieved):.4f})")


@pytest.mark.parametrize("ratio", SPLITS)
@pytest.mark.parametrize("effect", [1.0, 0.5])
def test_planned_mean_test_reaches_its_power_at_any_split(effect, ratio):
    """Planner's n for 80% power to detect `effect` standard deviations (two-sided, alpha
    0.05, equal sd in both arms), then 200,000 seeded normal experiments analysed with the
    engine's Welch t-test: the rejection share is the planned power +/- 1 point (Monte Carlo SE
    0.0009). Small samples (12 to 160 units per arm), where the t-test's degrees of freedom
    matter: the pooled df n_c + n_t - 2 overstates Welch's power at 1:4 by 3.7 points."""
    n_c = sample_size_mean(1.0, effect, power=0.8, ratio=ratio)
    n_t = _treated(n_c, ratio)
    planned = power_mean(1.0, effect, n_c, ratio=n_t / n_c)
    assert planned >= 0.8
    rng = np.random.default_rng(20261223)
    m_c = rng.normal(0.0, 1 / math.sqrt(n_c), size=REPS)
    m_t = rng.normal(effect, 1 / math.sqrt(n_t), size=REPS)
    v_c = rng.chisquare(n_c - 1, size=REPS) / (n_c - 1)
    v_t = rng.chisquare(n_t - 1, size=REPS) / (n_t - 1)
    p = _welch_p(m_c, v_c, n_c, m_t, v_t, n_t)
    for i in range(CHECKED):  # the vectorised form is the engine's test
        r = welch_ttest(m_c[i], math.sqrt(v_c[i]), n_c, m_t[i], math.sqrt(v_t[i]), n_t,
                        alpha=ALPHA)
        assert_allclose(p[i], r.p_value, rtol=1e-9, atol=1e-15)
    achieved = float(np.mean(p < ALPHA))
    assert abs(achieved - planned) <= TOLERANCE, (
        f"{_split(ratio)} (n_c={n_c}, n_t={n_t}): planned power {planned:.4f}, "
        f"simulated {achieved:.4f} (Monte Carlo SE {_mc_se(achieved):.4f})")
