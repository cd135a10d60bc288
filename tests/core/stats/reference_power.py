"""Reference power and sample size of the engine's two-proportion test, from statsmodels.

The engine's conversion test is the unpooled Wald z-test (``core.stats.proportion_ztest``,
"wald_z"): (p_t - p_c) / sqrt(p_c q_c / n_c + p_t q_t / n_t), approximately normal with sd 1
around (p_t - p_c) sqrt(n_c) / s, s = sqrt(p_c q_c + p_t q_t / r), r = n_t / n_c, under H0 and
H1 alike (Chow, Shao & Wang, "Sample Size Calculations in Clinical Research", 2nd ed. 2008,
section 4.2). statsmodels ``normal_power(effect_size, nobs, alpha, alternative, sigma)`` is the
power of such a statistic (both tails counted when two-sided); the sample size is its root,
found with scipy ``brentq``. Used by the planner's tests in core.stats, core.planning and the
API, so each checks against the same independent computation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from statsmodels.stats.power import normal_power

SM_ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


def treated_rate(baseline: float, mde: float, alternative: str) -> float:
    """The treatment rate for an absolute effect: below the baseline for "less"."""
    return baseline - mde if alternative == "less" else baseline + mde


def unpooled_power(baseline: float, p_t: float, n_c: float, *, ratio: float = 1.0,
                   alpha: float = 0.05, alternative: str = "two-sided") -> float:
    """statsmodels power of the unpooled Wald z-test with n_c control and ratio * n_c treated."""
    sigma = np.sqrt(baseline * (1 - baseline) + p_t * (1 - p_t) / ratio)
    return float(normal_power(p_t - baseline, n_c, alpha,
                              alternative=SM_ALTERNATIVE[alternative], sigma=sigma))


def unpooled_n_control(baseline: float, p_t: float, *, power: float = 0.8, ratio: float = 1.0,
                       alpha: float = 0.05, alternative: str = "two-sided") -> float:
    """The (real) control n at which :func:`unpooled_power` reaches ``power`` (brentq, 1e-10)."""
    return float(brentq(
        lambda n: unpooled_power(baseline, p_t, n, ratio=ratio, alpha=alpha,
                                 alternative=alternative) - power,
        2.0, 1e10, xtol=1e-10))


def unpooled_n_control_ceil(baseline: float, p_t: float, *, power: float = 0.8,
                            ratio: float = 1.0, alpha: float = 0.05,
                            alternative: str = "two-sided") -> int:
    """:func:`unpooled_n_control` rounded up to whole units (6 decimals first)."""
    n = unpooled_n_control(baseline, p_t, power=power, ratio=ratio, alpha=alpha,
                           alternative=alternative)
    return math.ceil(round(n, 6))
