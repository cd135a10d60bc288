"""Shared arithmetic for two-arm comparisons: difference, relative lift, their CIs and p-values.

Every comparison reports two quantities, the absolute difference (treatment - control) and the
relative lift (treatment / control - 1), and for EACH of them a p-value computed from the same
standard error, quantile and null value as its interval, so that "the interval excludes the
null" holds exactly when "p < alpha" (fixed horizon and sequential, every alternative).

Nulls: ``lift_null`` = -margin ("greater"), +margin ("less"), 0 ("two-sided"); the difference is
tested against ``diff_null = lift_null * |control mean|`` (the same hypothesis on the absolute
scale, with the control mean as the plug-in baseline).
"""

from __future__ import annotations

import functools
import math
import numbers
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
) -> Inference:
    """CIs and p-values of the difference (t with ``df``, or z) and the lift (z), consistent.

    Fixed horizon: quantile t_{1-alpha/2, df} (two-sided) or t_{1-alpha, df} (one-sided) with
    p from the same distribution. Sequential: the confidence sequence multiplier of
    :mod:`core.stats.sequential` (one-sided form for one-sided tests) with its always-valid p.
    """
    diff_null, lift_null = nulls(margin, alternative, control_mean)
    statistic = ratio_statistic(diff - diff_null, diff_se)
    lift_stat = ratio_statistic(lift - lift_null, lift_se) if not math.isnan(lift) else math.nan
    one_sided = alternative != "two-sided"
    if sequential:
        assert tuning_n is not None
        tuning_total = 2.0 * tuning_n
        q_diff = q_lift = seq.cs_multiplier(n_total, tuning_total, alpha, one_sided)
        p = seq.cs_p_value(statistic, n_total, tuning_total, alpha, alternative)
        lp = (math.nan if math.isnan(lift_stat)
              else seq.cs_p_value(lift_stat, n_total, tuning_total, alpha, alternative))
    else:
        level = 1.0 - alpha if one_sided else 1.0 - alpha / 2.0
        q_diff = t_quantile(level, df)
        q_lift = t_quantile(level, math.inf)
        p = p_value(statistic, alternative, df)
        lp = p_value(lift_stat, alternative)
    d_lo, d_hi = bounds(diff, diff_se, q_diff, alternative)
    l_lo, l_hi = bounds(lift, lift_se, q_lift, alternative)
    return Inference(d_lo, d_hi, statistic, p, l_lo, l_hi, lp, diff_null, lift_null)
