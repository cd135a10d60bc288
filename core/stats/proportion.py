"""Two-proportion z-test for conversion metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.stats import _effects
from core.stats import _validation as v
from core.stats.sufficient import SufficientStats
from core.types import Alternative


@dataclass(frozen=True)
class ProportionTestResult:
    """Outcome of :func:`proportion_ztest`. Means are conversion rates x/n.

    diff = treatment rate - control rate; lift = treatment/control - 1. ``statistic`` is the
    pooled-variance z (fixed horizon) or the unpooled z (sequential); ``diff_se`` is the unpooled
    standard error used for the CIs.
    """

    control_mean: float
    treatment_mean: float
    x_c: int
    n_c: int
    x_t: int
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
    p_value: float
    significant: bool
    alpha: float
    alternative: Alternative
    sequential: bool
    tuning_n: float | None


def proportion_ztest(
    x_c: int,
    n_c: int,
    x_t: int,
    n_t: int,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential: bool = False,
    tuning_n: float | None = None,
) -> ProportionTestResult:
    """Two-proportion z-test of treatment conversion rate vs control.

    Args:
        x_c, x_t: converting units per arm, whole numbers with 0 <= x <= n.
        n_c, n_t: units per arm, whole numbers >= 2.
        alpha: significance level in (0, 1); CIs are two-sided at level 1 - alpha.
        alternative: "two-sided", "greater" (treatment > control) or "less".
        sequential: if True, always-valid CI and p-value (confidence sequence on the unpooled
            z; see :mod:`core.stats.sequential`).
        tuning_n: sequential only: units per variant at which the sequence is tightest;
            default the current n per variant.

    Returns:
        :class:`ProportionTestResult`; ``significant`` is ``p_value < alpha``.

    Formula: p-value from z = (p_t - p_c) / sqrt(pbar (1 - pbar) (1/n_c + 1/n_t)) with the pooled
    pbar = (x_c + x_t)/(n_c + n_t); z^2 is R ``prop.test(correct=FALSE)``'s X-squared and the
    p-values agree (= statsmodels ``proportions_ztest``). Diff CI: Wald,
    diff +/- z_{1-alpha/2} sqrt(p_c q_c/n_c + p_t q_t/n_t) (= R ``prop.test(correct=FALSE)``'s
    two-sided interval, statsmodels ``confint_proportions_2indep(method="wald")``). Lift CI:
    delta method with the normal quantile; nan when x_c = 0.
    """
    v.check_n(n_c, "n_c")
    v.check_n(n_t, "n_t")
    v.check_count(x_c, n_c, "x_c", "n_c")
    v.check_count(x_t, n_t, "x_t", "n_t")
    v.check_alpha(alpha)
    v.check_alternative(alternative)
    _effects.check_tuning_n(tuning_n)
    x_c, n_c, x_t, n_t = int(x_c), int(n_c), int(x_t), int(n_t)

    p_c, p_t = x_c / n_c, x_t / n_t
    vm_c, vm_t = p_c * (1 - p_c) / n_c, p_t * (1 - p_t) / n_t
    diff = p_t - p_c
    if sequential:
        statistic = _effects.ratio_statistic(diff, math.sqrt(vm_c + vm_t))
        m, p = _effects.sequential_inference(statistic, n_c, n_t, tuning_n, alpha, alternative)
        diff_q = lift_q = m
    else:
        pooled = (x_c + x_t) / (n_c + n_t)
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
        statistic = _effects.ratio_statistic(diff, se0)
        p = _effects.p_value(statistic, alternative)
        diff_q = lift_q = _effects.t_quantile(1 - alpha / 2, math.inf)
    e = _effects.effect(p_c, vm_c, p_t, vm_t, diff_q, lift_q)
    return ProportionTestResult(
        control_mean=p_c,
        treatment_mean=p_t,
        x_c=x_c,
        n_c=n_c,
        x_t=x_t,
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
        p_value=p,
        significant=bool(p < alpha),
        alpha=float(alpha),
        alternative=alternative,
        sequential=bool(sequential),
        tuning_n=None if tuning_n is None else float(tuning_n),
    )


def proportion_ztest_from_stats(
    control: SufficientStats, treatment: SufficientStats, **kwargs: Any
) -> ProportionTestResult:
    """:func:`proportion_ztest` on two binomial :class:`SufficientStats` (``sum`` = conversions).

    Args:
        control, treatment: per-arm stats of a 0/1 metric; ``sum`` must be a whole number
            between 0 and ``n``.
        **kwargs: ``alpha``, ``alternative``, ``sequential``, ``tuning_n`` as in
            :func:`proportion_ztest`.

    Returns:
        :class:`ProportionTestResult`.
    """
    for name, s in (("control", control), ("treatment", treatment)):
        if not isinstance(s, SufficientStats):
            raise TypeError(f"{name} must be a SufficientStats (got {type(s).__name__})")
    for name, s in (("control", control), ("treatment", treatment)):
        if not float(s.sum).is_integer():
            raise ValueError(
                f"{name}.sum must be a whole number of conversions for a binomial metric "
                f"(got {s.sum!r})"
            )
    return proportion_ztest(int(control.sum), control.n, int(treatment.sum), treatment.n, **kwargs)
