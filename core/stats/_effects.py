"""Shared arithmetic for two-arm comparisons: difference, relative lift, their CIs and p-values."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from core.stats import sequential as seq
from core.types import Alternative


@dataclass(frozen=True)
class Effect:
    diff: float
    diff_se: float
    diff_ci_low: float
    diff_ci_high: float
    lift: float
    lift_se: float
    lift_ci_low: float
    lift_ci_high: float


def effect(
    mean_c: float, var_mean_c: float, mean_t: float, var_mean_t: float, diff_q: float, lift_q: float
) -> Effect:
    """diff = t - c with CI diff +/- diff_q * SE; lift = t/c - 1 with the delta-method SE.

    Var(lift) ~ Var(t)/c^2 + t^2 Var(c)/c^4 (delta method; GrowthBook docs "Statistical Details").
    """
    diff = mean_t - mean_c
    diff_se = math.sqrt(var_mean_c + var_mean_t)
    if mean_c != 0:
        ratio = mean_t / mean_c
        lift = ratio - 1.0
        # = sqrt(Var(t)/c^2 + t^2 Var(c)/c^4), written to avoid overflowing c^4
        lift_se = math.sqrt(var_mean_t + ratio * ratio * var_mean_c) / abs(mean_c)
    else:
        lift = lift_se = math.nan
    return Effect(
        diff,
        diff_se,
        diff - diff_q * diff_se,
        diff + diff_q * diff_se,
        lift,
        lift_se,
        lift - lift_q * lift_se,
        lift + lift_q * lift_se,
    )


def ratio_statistic(diff: float, se: float) -> float:
    """diff / se, with 0/0 -> 0 and d/0 -> +/-inf (degenerate arms with no variance)."""
    if se > 0:
        return diff / se
    if diff == 0:
        return 0.0
    return math.copysign(math.inf, diff)


def p_value(statistic: float, alternative: Alternative, df: float = math.inf) -> float:
    """p-value of a t (finite df) or z (df = inf) statistic for the given alternative."""

    def cdf(x: float) -> float:
        return float(special.stdtr(df, x) if math.isfinite(df) else special.ndtr(x))

    if alternative == "two-sided":
        return min(1.0, 2.0 * cdf(-abs(statistic)))
    if alternative == "greater":
        return cdf(-statistic)
    return cdf(statistic)


def t_quantile(q: float, df: float) -> float:
    """q-quantile of Student's t with df degrees of freedom (normal when df is infinite)."""
    return float(special.stdtrit(df, q) if math.isfinite(df) else special.ndtri(q))


def sequential_parts(
    n_c: int, n_t: int, tuning_n: float | None, alpha: float
) -> tuple[float, float]:
    """(n_total, tuning_total) for the confidence sequence; tuning_n defaults to n per variant."""
    n_total = float(n_c + n_t)
    tuning_total = n_total if tuning_n is None else 2.0 * float(tuning_n)
    return n_total, tuning_total


def check_tuning_n(tuning_n: float | None) -> None:
    if tuning_n is not None and not (
        isinstance(tuning_n, (int, float)) and math.isfinite(tuning_n) and tuning_n > 0
    ):
        raise ValueError(
            f"tuning_n must be a positive number of units per variant, e.g. the planned sample "
            f"size (got {tuning_n!r})"
        )


def sequential_inference(
    z: float, n_c: int, n_t: int, tuning_n: float | None, alpha: float, alternative: Alternative
) -> tuple[float, float]:
    """(CS multiplier, always-valid p-value) for z = estimate / SE."""
    n_total, tuning_total = sequential_parts(n_c, n_t, tuning_n, alpha)
    m = seq.cs_multiplier(n_total, tuning_total, alpha)
    p = seq.cs_p_value(z, n_total, tuning_total, alpha, alternative)
    return m, p
