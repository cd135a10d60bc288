"""An independent reference for the relative lift's interval and p-value: Fieller's ratio test,
written out and inverted numerically with scipy (no core.stats code).

Fieller (1954), "Some problems in interval estimation", JRSS B 16: for independent estimates a
(treatment mean) and b (control mean) with variances va and vb, the hypothesis a/b = theta0 is
tested with

    T(theta0) = (a - theta0 b) / sqrt(va + theta0^2 vb),

the two-sample ratio t-test of Tamhane & Logan (2004) (R ``mratios::ttestratio(x, y, rho =
theta0, var.equal = FALSE)``, whose source writes it as (mx - my rho) / sqrt(vx/nx + rho^2
vy/ny)); at theta0 = 1 it is the Welch statistic of the difference, and mratios' degrees of
freedom are Welch's. Fieller's interval is the set of theta0 the test does not reject. Here T is
multiplied by sign(b), so that a positive T always points to a ratio above theta0 (for b < 0
too), and the bounds are found with scipy.optimize.brentq on T(theta) = +/-q, not from the
closed-form roots of the quadratic that core.stats uses.

When the control mean is not distinguishable from 0 at the interval's level (|b| / sqrt(vb) <=
q, the limit of |T| as theta0 -> +/-inf), Fieller's set is unbounded (the whole line, or two
rays); the interval reported is then its hull (-inf, +inf), and the p-value that inverts it is
the intersection-union test's max(p_Fieller, p of "control mean = 0") (Berger 1982,
Technometrics 24: the maximum of the two p-values is a level-alpha test of the union of the
nulls).
"""

from __future__ import annotations

import math

from scipy import optimize, stats


def ratio_statistic(a: float, va: float, b: float, vb: float, theta0: float) -> float:
    return math.copysign(1.0, b) * (a - theta0 * b) / math.sqrt(va + theta0 * theta0 * vb)


def p_value(statistic: float, alternative: str, df: float) -> float:
    """scipy's t (df finite) or normal (df = inf) tail for the alternative."""
    dist = stats.norm if math.isinf(df) else stats.t(df)
    if alternative == "greater":
        return float(dist.sf(statistic))
    if alternative == "less":
        return float(dist.cdf(statistic))
    return float(min(1.0, 2 * dist.sf(abs(statistic))))


def bound(a: float, va: float, b: float, vb: float, q: float, side: str) -> float:
    """The lower ("lower") or upper ("upper") end of Fieller's ratio interval at quantile q:
    the theta beside a/b where T(theta) = +q (lower) or -q (upper); needs |b| / sqrt(vb) > q
    (otherwise the set is unbounded)."""
    est = a / b
    target = q if side == "lower" else -q
    direction = -1.0 if side == "lower" else 1.0
    step = max(abs(est), 1e-12) * 1e-3
    far = est + direction * step
    while (ratio_statistic(a, va, b, vb, far) - target) * -direction < 0:
        step *= 2.0
        far = est + direction * step
        if step > 1e12 * max(abs(est), 1.0):
            raise AssertionError("unbounded Fieller set: the reference needs |b|/sqrt(vb) > q")
    lo, hi = (far, est) if side == "lower" else (est, far)
    return float(optimize.brentq(lambda th: ratio_statistic(a, va, b, vb, th) - target, lo, hi,
                                 xtol=1e-15, rtol=1e-15, maxiter=500))


def lift_p_value(a: float, va: float, b: float, vb: float, lift_null: float, *,
                 alternative: str, df: float) -> float:
    """max(Fieller's p of H0 a/b = 1 + lift_null, p of H0 control mean = 0 against the side
    where the set is bounded); the second is negligible unless the control mean is noise."""
    fieller = p_value(ratio_statistic(a, va, b, vb, 1 + lift_null), alternative, df)
    control = p_value(abs(b) / math.sqrt(vb), "two-sided" if alternative == "two-sided"
                      else "greater", df) if vb > 0 else 0.0
    return max(fieller, control)


def lift_interval(a: float, va: float, b: float, vb: float, *, alpha: float, alternative: str,
                  df: float) -> tuple[float, float]:
    """Fieller's interval for the relative lift a/b - 1, one-sided for one-sided alternatives;
    (-inf, +inf) when the set is unbounded."""
    dist = stats.norm if math.isinf(df) else stats.t(df)
    level = 1 - alpha if alternative != "two-sided" else 1 - alpha / 2
    q = float(dist.ppf(level))
    if vb > 0 and abs(b) / math.sqrt(vb) <= q:
        return -math.inf, math.inf
    low = bound(a, va, b, vb, q, "lower") - 1 if alternative != "less" else -math.inf
    high = bound(a, va, b, vb, q, "upper") - 1 if alternative != "greater" else math.inf
    return low, high


def welch_df(vm_c: float, n_c: int, vm_t: float, n_t: int) -> float:
    """Welch-Satterthwaite degrees of freedom from the variances of the two means (Welch 1947)."""
    return (vm_c + vm_t) ** 2 / (vm_c**2 / (n_c - 1) + vm_t**2 / (n_t - 1))
