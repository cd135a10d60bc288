"""Welch's unequal-variance t-test for a difference in means, from summary statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.stats import _effects
from core.stats import _validation as v
from core.stats.sufficient import SufficientStats
from core.types import Alternative


@dataclass(frozen=True)
class WelchTestResult:
    """Outcome of :func:`welch_ttest`. diff = treatment - control; lift = treatment/control - 1.

    ``diff_se`` and ``lift_se`` are standard errors; CIs are two-sided at level 1 - alpha (a
    confidence sequence when ``sequential``); ``statistic`` is diff / diff_se (a t statistic with
    ``df`` Welch-Satterthwaite degrees of freedom; treated as z in sequential mode).
    """

    control_mean: float
    treatment_mean: float
    control_sd: float
    treatment_sd: float
    n_c: int
    n_t: int
    diff: float
    diff_se: float
    diff_ci_low: float
    diff_ci_high: float
    lift: float
    lift_se: float
    lift_ci_low: float
    lift_ci_high: float
    statistic: float
    df: float
    p_value: float
    significant: bool
    alpha: float
    alternative: Alternative
    sequential: bool
    tuning_n: float | None


def welch_df(var_c: float, n_c: int, var_t: float, n_t: int) -> float:
    """Welch-Satterthwaite degrees of freedom; inf when both variances are zero."""
    a, b = var_c / n_c, var_t / n_t
    denom = a * a / (n_c - 1) + b * b / (n_t - 1)
    return (a + b) ** 2 / denom if denom > 0 else math.inf


def welch_ttest(
    mean_c: float,
    sd_c: float,
    n_c: int,
    mean_t: float,
    sd_t: float,
    n_t: int,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential: bool = False,
    tuning_n: float | None = None,
) -> WelchTestResult:
    """Welch's t-test of treatment mean vs control mean from summary statistics.

    Args:
        mean_c, mean_t: sample means of control and treatment (finite).
        sd_c, sd_t: sample standard deviations (ddof=1), >= 0.
        n_c, n_t: units per arm, whole numbers >= 2.
        alpha: significance level in (0, 1); CIs are two-sided at level 1 - alpha.
        alternative: "two-sided", "greater" (treatment > control) or "less"; one-sided
            alternatives give one-sided p-values, the CIs stay two-sided.
        sequential: if True, CIs are always-valid confidence sequences and the p-value is
            always valid (see :mod:`core.stats.sequential`), so results may be read at any look.
        tuning_n: sequential only: units per variant at which the sequence is tightest, > 0;
            default the current n per variant. Fix it in advance (e.g. the planned n) when
            peeking.

    Returns:
        :class:`WelchTestResult`. ``significant`` is ``p_value < alpha``.

    Formula (Welch 1947): t = (mean_t - mean_c) / sqrt(sd_t^2/n_t + sd_c^2/n_c), df by
    Welch-Satterthwaite; diff CI = diff +/- t_{1-alpha/2, df} * SE (= R ``t.test(var.equal=FALSE)``,
    scipy ``ttest_ind_from_stats(equal_var=False)``). Lift CI: delta method
    Var(lift) ~ Var(t)/c^2 + t^2 Var(c)/c^4 with the normal quantile (GrowthBook docs
    "Statistical Details"); nan when mean_c = 0.
    """
    v.check_n(n_c, "n_c")
    v.check_n(n_t, "n_t")
    v.check_finite(mean_c, "mean_c")
    v.check_finite(mean_t, "mean_t")
    v.check_sd(sd_c, "sd_c")
    v.check_sd(sd_t, "sd_t")
    v.check_alpha(alpha)
    v.check_alternative(alternative)
    _effects.check_tuning_n(tuning_n)
    n_c, n_t = int(n_c), int(n_t)
    mean_c, mean_t, sd_c, sd_t = float(mean_c), float(mean_t), float(sd_c), float(sd_t)

    var_c, var_t = sd_c * sd_c, sd_t * sd_t
    df = welch_df(var_c, n_c, var_t, n_t)
    vm_c, vm_t = var_c / n_c, var_t / n_t
    diff_se = math.sqrt(vm_c + vm_t)
    statistic = _effects.ratio_statistic(mean_t - mean_c, diff_se)
    if sequential:
        m, p = _effects.sequential_inference(statistic, n_c, n_t, tuning_n, alpha, alternative)
        diff_q = lift_q = m
    else:
        diff_q = _effects.t_quantile(1 - alpha / 2, df)
        lift_q = _effects.t_quantile(1 - alpha / 2, math.inf)
        p = _effects.p_value(statistic, alternative, df)
    e = _effects.effect(mean_c, vm_c, mean_t, vm_t, diff_q, lift_q)
    return WelchTestResult(
        control_mean=mean_c,
        treatment_mean=mean_t,
        control_sd=sd_c,
        treatment_sd=sd_t,
        n_c=n_c,
        n_t=n_t,
        diff=e.diff,
        diff_se=e.diff_se,
        diff_ci_low=e.diff_ci_low,
        diff_ci_high=e.diff_ci_high,
        lift=e.lift,
        lift_se=e.lift_se,
        lift_ci_low=e.lift_ci_low,
        lift_ci_high=e.lift_ci_high,
        statistic=statistic,
        df=df,
        p_value=p,
        significant=bool(p < alpha),
        alpha=float(alpha),
        alternative=alternative,
        sequential=bool(sequential),
        tuning_n=None if tuning_n is None else float(tuning_n),
    )


def welch_ttest_from_stats(
    control: SufficientStats, treatment: SufficientStats, **kwargs: Any
) -> WelchTestResult:
    """:func:`welch_ttest` on two :class:`SufficientStats` (mean and ddof=1 sd taken from them).

    Args:
        control, treatment: per-arm ``SufficientStats``; each needs n >= 2.
        **kwargs: ``alpha``, ``alternative``, ``sequential``, ``tuning_n`` as in
            :func:`welch_ttest`.

    Returns:
        :class:`WelchTestResult`.
    """
    for name, s in (("control", control), ("treatment", treatment)):
        if not isinstance(s, SufficientStats):
            raise TypeError(f"{name} must be a SufficientStats (got {type(s).__name__})")
    v.check_n(control.n, "n_c")
    v.check_n(treatment.n, "n_t")
    return welch_ttest(
        control.mean, control.sd, control.n, treatment.mean, treatment.sd, treatment.n, **kwargs
    )
