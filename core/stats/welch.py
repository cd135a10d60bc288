"""Welch's unequal-variance t-test for a difference in means, from summary statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.stats import _validation as v
from core.stats.sufficient import SufficientStats
from core.stats.two_sample import TwoSampleResult, compared
from core.types import Alternative, TestMethod


@dataclass(frozen=True, kw_only=True)
class WelchTestResult(TwoSampleResult):
    """Outcome of :func:`welch_ttest`. diff = treatment - control; lift = treatment/control - 1.

    ``diff_se`` and ``lift_se`` are standard errors. Each quantity has its own interval and
    p-value, computed from the same SE, quantile and null, so the interval excludes the null
    exactly when its p-value is below alpha: ``diff_ci_*`` with ``p_value`` (Welch t with
    ``df`` degrees of freedom; z in sequential mode) and ``lift_ci_*`` with ``lift_p_value``
    (Fieller's ratio test, same df). Intervals are two-sided for "two-sided", [low, +inf) for
    "greater" and
    (-inf, high] for "less" (the lift's: (-inf, +inf) when the control mean is within q SE of
    0); confidence sequences when ``sequential``. ``lift_se`` is the delta-method SE of the
    lift (informational; the Bayesian readout uses it). ``statistic`` is
    (diff - diff_null) / diff_se. ``diff_null`` / ``lift_null`` are the tested null values
    (0 unless a non-inferiority ``margin`` is set). ``method`` is "welch".
    """

    control_sd: float
    treatment_sd: float
    df: float
    method: TestMethod = "welch"


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
    margin: float = 0.0,
) -> WelchTestResult:
    """Welch's t-test of treatment mean vs control mean from summary statistics.

    Args:
        mean_c, mean_t: sample means of control and treatment (finite).
        sd_c, sd_t: sample standard deviations (ddof=1), >= 0.
        n_c, n_t: units per arm, whole numbers >= 2.
        alpha: significance level in (0, 1).
        alternative: "two-sided", "greater" (treatment > control) or "less". One-sided tests
            give one-sided p-values AND one-sided intervals: "greater" ->
            [est - q_{1-alpha} se, +inf), "less" -> (-inf, est + q_{1-alpha} se].
        sequential: if True, CIs are always-valid confidence sequences and the p-values are
            always valid (see :mod:`core.stats.sequential`), so results may be read at any look.
        tuning_n: required when sequential: the planned sample size per variant (units per
            arm), > 0, fixed before the first look; ignored otherwise.
        margin: relative non-inferiority margin >= 0, one-sided tests only: "greater" tests
            H0: lift <= -margin, "less" tests H0: lift >= +margin; the difference is tested
            against margin * |mean_c| on the absolute scale.

    Returns:
        :class:`WelchTestResult`. ``significant`` is ``p_value < alpha`` (difference),
        ``lift_significant`` is ``lift_p_value < alpha`` (relative lift).

    Raises:
        ValueError: bad arguments, or inputs that overflow double precision.

    Formula (Welch 1947): t = (mean_t - mean_c - diff_null) / sqrt(sd_t^2/n_t + sd_c^2/n_c), df
    by Welch-Satterthwaite; diff CI = diff +/- t_{1-alpha/2, df} * SE (= R
    ``t.test(var.equal=FALSE)``, scipy ``ttest_ind_from_stats(equal_var=False)``). Lift:
    Fieller's interval for mean_t / mean_c, i.e. the ratios r with
    |mean_t - r mean_c| <= t_{q, df} sqrt(sd_t^2/n_t + r^2 sd_c^2/n_c), and the p-value of that
    ratio t statistic at r = 1 + lift_null, with the same Welch df (Fieller 1954; Tamhane &
    Logan 2004, R ``mratios::ttestratio``; :mod:`core.stats._effects`); without a margin its
    p-value is the difference's. nan when mean_c = 0.
    """
    v.check_n(n_c, "n_c")
    v.check_n(n_t, "n_t")
    v.check_finite(mean_c, "mean_c")
    v.check_finite(mean_t, "mean_t")
    v.check_sd(sd_c, "sd_c")
    v.check_sd(sd_t, "sd_t")
    n_c, n_t = int(n_c), int(n_t)
    mean_c, mean_t, sd_c, sd_t = float(mean_c), float(mean_t), float(sd_c), float(sd_t)
    var_c, var_t = sd_c * sd_c, sd_t * sd_t
    df = welch_df(var_c, n_c, var_t, n_t)
    return WelchTestResult(
        **compared(mean_c, var_c / n_c, mean_t, var_t / n_t, n_c, n_t, df=df, alpha=alpha,
                   alternative=alternative, sequential=sequential, tuning_n=tuning_n,
                   margin=margin),
        control_sd=sd_c, treatment_sd=sd_t, df=df)


def welch_ttest_from_stats(
    control: SufficientStats, treatment: SufficientStats, **kwargs: Any
) -> WelchTestResult:
    """:func:`welch_ttest` on two :class:`SufficientStats` (mean and ddof=1 sd taken from them).

    Args:
        control, treatment: per-arm ``SufficientStats``; each needs n >= 2.
        **kwargs: ``alpha``, ``alternative``, ``sequential``, ``tuning_n``, ``margin`` as in
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
