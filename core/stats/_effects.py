"""Shared arithmetic for two-arm comparisons: difference, relative lift, their CIs and p-values.

Every comparison reports two quantities, the absolute difference (treatment - control) and the
relative lift (treatment / control - 1), and for EACH of them a p-value computed from the same
statistic, quantile and null value as its interval, so that "the interval excludes the null"
holds exactly when "p < alpha" (fixed horizon and sequential, every alternative).

Nulls: ``lift_null`` = -margin ("greater"), +margin ("less"), 0 ("two-sided"); the difference is
tested against ``diff_null = lift_null * |control mean|`` (the same hypothesis on the absolute
scale, with the control mean as the plug-in baseline).

The lift: Fieller's interval
----------------------------
With a = treatment mean, b = control mean (independent estimates with variances va, vb) and the
ratio theta = a / b (lift = theta - 1), H0: theta = theta0 is tested with Fieller's statistic
(Fieller 1954, "Some problems in interval estimation", JRSS B 16; the two-sample ratio t-test
of Tamhane & Logan 2004, R ``mratios::ttestratio``)

    T(theta0) = sign(b) (a - theta0 b) / sqrt(va + theta0^2 vb),

positive when the data point to a ratio above theta0. The interval is the set of theta0 that
this test does not reject, {theta: (a - theta b)^2 <= q^2 (va + theta^2 vb)}, with q the
difference's quantile (t with the difference's degrees of freedom, z, or the sequential
multiplier). Unlike lift +/- q * se (the delta method, symmetric around a/b - 1) it follows the
ratio's skew, so under A/A a one-sided lift test rejects as often for "less" as for "greater".
At theta0 = 1, T is the difference's own statistic, so without a margin the lift and the
difference share their p-value.

With z_b = |b| / sqrt(vb) > q the set is an interval, its ends the roots of the quadratic
(b^2 - q^2 vb) theta^2 - 2 a b theta + (a^2 - q^2 va) = 0 (computed below as half-widths around
a / b, free of cancellation). With z_b <= q (a control mean within q standard errors of 0) the
set is unbounded (the whole line, or two rays): the lift interval reported is (-inf, +inf), and
to keep "excludes the null <=> p < alpha" the lift p-value is max(p of T(theta0), p of
"control mean = 0") (an intersection-union test, Berger 1982, Technometrics 24), which equals
the Fieller p whenever the control mean is clearly non-zero. b = 0 leaves the lift undefined
(nan), as before.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from core.stats import sequential as seq
from core.types import Alternative

INF = math.inf
_SQRT1_2 = math.sqrt(0.5)


@dataclass(frozen=True)
class Inference:
    diff_ci_low: float
    diff_ci_high: float
    statistic: float
    p_value: float
    lift_ci_low: float
    lift_ci_high: float
    lift_p_value: float
    diff_null: float
    lift_null: float


def lift_and_se(mean_c: float, var_mean_c: float, mean_t: float, var_mean_t: float
                ) -> tuple[float, float]:
    """lift = t/c - 1 with the delta-method SE; (nan, nan) when undefined.

    Var(lift) ~ Var(t)/c^2 + t^2 Var(c)/c^4 (delta method; GrowthBook docs "Statistical Details").
    Undefined when c = 0 or when c is so close to 0 that the ratio overflows double precision.
    The SE is reported (``lift_se``; the Bayesian readout's Gaussian approximation uses it);
    the lift's interval and p-value are Fieller's (:func:`infer`), not lift +/- q * SE.
    """
    if mean_c == 0:
        return math.nan, math.nan
    ratio = mean_t / mean_c
    # = sqrt(Var(t)/c^2 + t^2 Var(c)/c^4), written to avoid overflowing c^4
    se = math.sqrt(var_mean_t + ratio * ratio * var_mean_c) / abs(mean_c)
    if not (math.isfinite(ratio) and math.isfinite(se)):
        return math.nan, math.nan
    return ratio - 1.0, se


def ratio_statistic(diff: float, se: float) -> float:
    """diff / se, with 0/0 -> 0 and d/0 -> +/-inf (degenerate arms with no variance)."""
    if se > 0:
        return diff / se
    if diff == 0:
        return 0.0
    return math.copysign(math.inf, diff)


def p_value(statistic: float, alternative: Alternative, df: float = math.inf) -> float:
    """p-value of a t (finite df) or z (df = inf) statistic for the given alternative."""
    if math.isnan(statistic):
        return math.nan
    x = -abs(statistic) if alternative == "two-sided" else (
        -statistic if alternative == "greater" else statistic)
    # normal CDF as erfc (accurate in the tails, and ~10x cheaper than a scipy ufunc call)
    cdf = float(special.stdtr(df, x)) if math.isfinite(df) else 0.5 * math.erfc(-x * _SQRT1_2)
    return min(1.0, 2.0 * cdf) if alternative == "two-sided" else cdf


@functools.lru_cache(maxsize=64)
def _normal_quantile(q: float) -> float:
    return float(special.ndtri(q))


def t_quantile(q: float, df: float) -> float:
    """q-quantile of Student's t with df degrees of freedom (normal when df is infinite)."""
    return float(special.stdtrit(df, q)) if math.isfinite(df) else _normal_quantile(q)


def bounds(est: float, se: float, q: float, alternative: Alternative) -> tuple[float, float]:
    """Two-sided est +/- q se; "greater" [est - q se, +inf); "less" (-inf, est + q se]."""
    if math.isnan(est):
        return math.nan, math.nan
    half = q * se if se > 0 else 0.0
    if alternative == "two-sided":
        return est - half, est + half
    if alternative == "greater":
        return est - half, INF
    return -INF, est + half


def nulls(margin: float, alternative: Alternative, control_mean: float) -> tuple[float, float]:
    """(diff_null, lift_null) tested for this alternative and relative margin."""
    if alternative == "greater":
        lift_null = -margin
    elif alternative == "less":
        lift_null = margin
    else:
        return 0.0, 0.0
    return lift_null * abs(control_mean), lift_null


def is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def check_tuning_n(tuning_n: Any, sequential: bool) -> float | None:
    """The planned units per variant as a float; required (and > 0) when sequential."""
    if tuning_n is None:
        if sequential:
            raise ValueError(
                "sequential=True needs tuning_n: pass the planned sample size per variant (the "
                "units per arm the plan aims for), fixed before the first look; tuning to the "
                "current n at each look is not valid across looks"
            )
        return None
    if not (is_number(tuning_n) and math.isfinite(float(tuning_n)) and float(tuning_n) > 0):
        raise ValueError(
            f"tuning_n must be a positive number of units per variant, e.g. the planned sample "
            f"size (got {tuning_n!r})"
        )
    return float(tuning_n)


def check_margin(margin: Any, alternative: Alternative) -> float:
    """The relative non-inferiority margin (>= 0); only one-sided tests take a positive one."""
    if not (is_number(margin) and math.isfinite(float(margin)) and float(margin) >= 0):
        raise ValueError(
            f"margin must be a finite relative lift >= 0, e.g. 0.02 for 2% (got {margin!r})"
        )
    m = float(margin)
    if m > 0 and alternative == "two-sided":
        raise ValueError(
            "margin applies to one-sided tests only: pass alternative='greater' (H0: lift <= "
            "-margin, non-inferiority of a higher-is-better metric) or alternative='less' "
            "(H0: lift >= +margin)"
        )
    return m


def check_computable(diff: float, diff_se: float) -> None:
    """Refuse results that overflowed double precision instead of returning inf/NaN."""
    if not (math.isfinite(diff) and math.isfinite(diff_se)):
        raise ValueError(
            "the difference or its standard error overflows double precision (inputs near "
            "1e308 or standard deviations near 1e154 and above): rescale the metric, e.g. "
            "report it in thousands or millions"
        )


PValue = Callable[[float, Alternative], float]


def _lift_inference(
    mean_c: float, var_mean_c: float, mean_t: float, var_mean_t: float, lift: float,
    lift_null: float, q: float, alternative: Alternative, p_of: PValue, diff_stat: float,
    diff_p: float,
) -> tuple[float, float, float]:
    """Fieller's lift interval at quantile ``q`` and its p-value (module docstring).

    ``p_of(statistic, alternative)`` is the p-value function that belongs to ``q`` (t, z or
    the sequence's), so that each bound clears ``lift_null`` exactly when p < alpha;
    ``diff_stat`` and ``diff_p`` are the difference's statistic and p-value (Fieller's at
    ratio 1, up to the control mean's sign).
    """
    # orient so that b > 0 and scale by the larger mean (Fieller's set is scale-free): no
    # overflow in a*b or b*b for means near 1e308
    k = max(abs(mean_t), abs(mean_c))
    a, b = (mean_t if mean_c > 0 else -mean_t) / k, abs(mean_c) / k
    sa, sb = math.sqrt(var_mean_t) / k, math.sqrt(var_mean_c) / k
    va, vb = sa * sa, sb * sb  # (not ** 2, which raises OverflowError instead of giving inf)
    if lift_null == 0.0:  # T(1) = (a - b) / sqrt(va + vb): the difference's own statistic
        stat = diff_stat if mean_c > 0 else -diff_stat
    else:
        theta0 = 1.0 + lift_null
        stat = ratio_statistic(a - theta0 * b, math.sqrt(va + theta0 * theta0 * vb))
    z_b = ratio_statistic(b, math.sqrt(vb))
    # p = max(p of T, p of "control mean = 0" on the side where the set is bounded); p_of is
    # monotone in the statistic, so that is p_of at the binding statistic (one evaluation)
    if alternative == "two-sided":
        binding = min(abs(stat), z_b)
        same = binding == abs(stat)
    elif alternative == "greater":
        binding = min(stat, z_b)
        same = binding == stat and mean_c > 0
    else:
        binding = max(stat, -z_b)
        same = binding == stat and mean_c > 0
    p = diff_p if same and lift_null == 0.0 else p_of(binding, alternative)
    d = b * b - q * q * vb
    if not (z_b > q and d > 0):  # the control mean is within q SE of 0: unbounded set
        return -INF, INF, p
    # roots of d theta^2 - 2 a b theta + a^2 - q^2 va around a/b: with w = a^2 vb + b^2 va and
    # u = b sqrt(a^2 vb + va d) + |a| q vb, the half-widths are q u / (b d) on the side a
    # points to and q w / (b u) on the other (their product is q^2 w / (b^2 d))
    w = a * a * vb + b * b * va
    u = b * math.sqrt(a * a * vb + va * d) + abs(a) * q * vb
    far, near = (q * u / (b * d), q * w / (b * u)) if u > 0 else (0.0, 0.0)
    if math.isnan(near):  # inf / inf: a treatment variance beyond double precision
        near = INF
    below, above = (near, far) if a >= 0 else (far, near)
    if alternative == "greater":
        return lift - below, INF, p
    if alternative == "less":
        return -INF, lift + above, p
    return lift - below, lift + above, p


def infer(
    diff: float,
    diff_se: float,
    df: float,
    lift: float,
    lift_se: float,
    control_mean: float,
    n_total: float,
    *,
    alpha: float,
    alternative: Alternative,
    margin: float,
    sequential: bool,
    tuning_n: float | None,
    treatment_mean: float,
    var_control_mean: float,
    var_treatment_mean: float,
) -> Inference:
    """CIs and p-values of the difference and of the lift, each consistent with its interval.

    Difference: diff +/- q * diff_se with p of (diff - diff_null) / diff_se. Lift: Fieller's
    interval for treatment_mean / control_mean at the same q, with its p-value (module
    docstring); ``lift_se`` is not used for it. Fixed horizon: q = t_{1-alpha/2, df}
    (two-sided) or t_{1-alpha, df} (one-sided), z when df is infinite, p from the same
    distribution, for both quantities (the lift takes the difference's degrees of freedom,
    Welch-Satterthwaite for means). Sequential: the confidence sequence multiplier of
    :mod:`core.stats.sequential` (one-sided form for one-sided tests) with its always-valid p.
    """
    diff_null, lift_null = nulls(margin, alternative, control_mean)
    statistic = ratio_statistic(diff - diff_null, diff_se)
    one_sided = alternative != "two-sided"
    p_of: PValue
    if sequential:
        assert tuning_n is not None
        tuning_total = 2.0 * tuning_n

        def p_of(z: float, alt: Alternative) -> float:
            return seq.cs_p_value(z, n_total, tuning_total, alpha, alt)

        q = seq.cs_multiplier(n_total, tuning_total, alpha, one_sided)
    else:
        level = 1.0 - alpha if one_sided else 1.0 - alpha / 2.0

        def p_of(z: float, alt: Alternative) -> float:
            return p_value(z, alt, df)

        q = t_quantile(level, df)
    p = p_of(statistic, alternative)
    d_lo, d_hi = bounds(diff, diff_se, q, alternative)
    if math.isnan(lift):
        l_lo = l_hi = lp = math.nan
    else:
        l_lo, l_hi, lp = _lift_inference(
            control_mean, var_control_mean, treatment_mean, var_treatment_mean, lift, lift_null,
            q, alternative, p_of, statistic, p)
    return Inference(d_lo, d_hi, statistic, p, l_lo, l_hi, lp, diff_null, lift_null)
