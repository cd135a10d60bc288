"""Reference MOVER-E intervals and p-values, written out from the publications with scipy.

Per arm, scipy's exact (Clopper–Pearson) limits, ``binomtest(x, n).proportion_ci(method=
"exact")`` (roots of the binomial tails found by brentq, to its default absolute tolerance
2e-12); combined by Newcombe (1998, method 10) for the difference and by Donner & Zou (2012,
MOVER-R) for the relative risk, as printed there; the p-value is the one-sided level at which
a bound reaches the null (scipy brentq), doubled for two-sided tests. None of it shares code
with core.stats.mover (which inverts the incomplete beta function and has its own root finder).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats


def clopper_pearson(x: int, n: int, tail: float) -> tuple[float, float]:
    """scipy's exact limits, each one-sided at level ``tail`` (< 0.5)."""
    ci = stats.binomtest(x, n).proportion_ci(confidence_level=1 - 2 * tail, method="exact")
    return ci.low, ci.high


def bounds(x_c: int, n_c: int, x_t: int, n_t: int, tail: float) -> dict[str, float]:
    """The difference's and the lift's (relative risk - 1) bounds with each arm's limits at
    one-sided level ``tail`` (a two-sided 1 - alpha interval: tail = alpha / 2)."""
    p_c, p_t = x_c / n_c, x_t / n_t
    l_c, u_c = clopper_pearson(x_c, n_c, tail)
    l_t, u_t = clopper_pearson(x_t, n_t, tail)
    pp = np.float64(p_t * p_c)
    with np.errstate(divide="ignore"):  # a limit of 0 at tiny levels: the ratio bound is inf
        ratio_low = (0.0 if x_t == 0 else (pp - np.sqrt(
            pp**2 - l_t * u_c * (2 * p_t - l_t) * (2 * p_c - u_c))) / (u_c * (2 * p_c - u_c)))
        ratio_high = (np.inf if x_c == 0 else (pp + np.sqrt(
            pp**2 - u_t * l_c * (2 * p_t - u_t) * (2 * p_c - l_c))) / (l_c * (2 * p_c - l_c)))
    return {
        "diff_low": p_t - p_c - np.hypot(p_t - l_t, u_c - p_c),
        "diff_high": p_t - p_c + np.hypot(u_t - p_t, p_c - l_c),
        "lift_low": ratio_low - 1, "lift_high": ratio_high - 1,
    }


def p_value(x_c: int, n_c: int, x_t: int, n_t: int, *, alternative: str, quantity: str,
            null: float) -> float:
    """p-value of H0: quantity ("diff" or "lift") = null: the level at which the bound on the
    null's side reaches it (1 when the null is at or beyond the estimate on the alternative's
    side; 0 when no level down to 1e-15 reaches it)."""
    p_c, p_t = x_c / n_c, x_t / n_t
    estimate = p_t - p_c if quantity == "diff" else (
        p_t / p_c - 1 if x_c else (math.inf if x_t else math.nan))
    if math.isnan(estimate) or estimate == null:
        return 1.0
    side = "low" if estimate > null else "high"
    if (alternative, side) in (("greater", "high"), ("less", "low")):
        return 1.0
    sign = 1.0 if side == "low" else -1.0

    def g(t: float) -> float:  # the bound at one-sided level e^t, past the null when > 0
        return sign * (bounds(x_c, n_c, x_t, n_t, math.exp(t))[f"{quantity}_{side}"] - null)

    lo, hi = math.log(1e-15), math.log(0.4999)
    if g(lo) > 0:
        return 0.0
    if g(hi) <= 0:
        raise ValueError("the null is reached only above level 0.4999: not needed here")
    tail = math.exp(optimize.brentq(g, lo, hi, xtol=1e-14, rtol=1e-14))
    return min(1.0, 2 * tail) if alternative == "two-sided" else tail
