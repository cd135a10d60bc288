"""Two-proportion tests for conversion metrics: Wald z for large counts, else MOVER-E intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.stats import _effects, mover
from core.stats import _validation as v
from core.stats.sufficient import SufficientStats
from core.stats.two_sample import TwoSampleResult, inferred
from core.types import Alternative, TestMethod

EXACT_BELOW = 5
"""Use the small-count path ("mover_cp") when any arm has fewer than this many observed or
expected (under the pooled rate) successes or failures (the classic rule for the normal
approximation)."""


@dataclass(frozen=True, kw_only=True)
class ProportionTestResult(TwoSampleResult):
    """Outcome of :func:`proportion_ztest`. Means are conversion rates x/n.

    diff = treatment rate - control rate; lift = treatment/control - 1. ``method`` says how the
    p-values and intervals were computed: "wald_z" (large counts) or "mover_cp" (small or
    lopsided counts: MOVER intervals from Clopper–Pearson limits; see :mod:`core.stats.mover`).
    Either way ``p_value`` belongs to ``diff_ci_*`` and ``lift_p_value`` to ``lift_ci_*``: an
    interval excludes its null exactly when its p-value is below alpha. Intervals are one-sided
    for one-sided alternatives ([low, +inf) for "greater", (-inf, high] for "less").
    ``diff_se`` and ``lift_se`` are the unpooled (Wald / delta-method) standard errors; on the
    small-count path they are informational only and ``statistic`` is nan (on the Wald path it
    is (diff - diff_null) / diff_se).
    """

    x_c: int
    x_t: int
    method: TestMethod = "wald_z"


def needs_exact(x_c: int, n_c: int, x_t: int, n_t: int) -> bool:
    """True when an arm has < EXACT_BELOW observed or expected successes or failures."""
    pooled = (x_c + x_t) / (n_c + n_t)
    smallest = min(
        x_c, n_c - x_c, x_t, n_t - x_t,
        n_c * pooled, n_c * (1 - pooled), n_t * pooled, n_t * (1 - pooled),
    )
    return smallest < EXACT_BELOW


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
    margin: float = 0.0,
) -> ProportionTestResult:
    """Two-proportion test of treatment conversion rate vs control.

    Args:
        x_c, x_t: converting units per arm, whole numbers with 0 <= x <= n.
        n_c, n_t: units per arm, whole numbers >= 2.
        alpha: significance level in (0, 1).
        alternative: "two-sided", "greater" (treatment > control) or "less"; one-sided tests
            get one-sided p-values and one-sided intervals.
        sequential: if True, always-valid CIs and p-values (confidence sequence on the Wald z;
            see :mod:`core.stats.sequential`).
        tuning_n: required when sequential: the planned sample size per variant, > 0.
        margin: relative non-inferiority margin >= 0 for one-sided tests ("greater": H0
            lift <= -margin; "less": H0 lift >= +margin); the difference is tested against
            margin * control rate.

    Returns:
        :class:`ProportionTestResult`; ``significant`` is ``p_value < alpha`` and
        ``lift_significant`` is ``lift_p_value < alpha``.

    Raises:
        InsufficientDataError: sequential=True while an arm has fewer than 5 observed or
            expected successes or failures (the confidence sequence is asymptotic; wait for
            more data).
        ValueError: bad arguments.

    Methods:

    * "wald_z" (every arm has >= 5 observed and expected successes and failures): unpooled
      Wald test, z = (p_t - p_c - diff_null) / sqrt(p_c q_c/n_c + p_t q_t/n_t) with its own
      interval diff +/- z_{1-alpha/2} SE (= R ``prop.test(correct=FALSE)``'s interval,
      statsmodels ``test_proportions_2indep(method="wald")`` / ``confint_proportions_2indep(
      method="wald")``). Lift: Fieller's interval for p_t / p_c with z quantiles and the same
      unpooled variances, and the p-value of (p_t - r0 p_c) / sqrt(v_t + r0^2 v_c) at
      r0 = 1 + lift_null (Fieller 1954; :mod:`core.stats._effects`): without a margin, the
      Wald test's p-value.
    * "mover_cp" (otherwise, fixed horizon): MOVER intervals built from each arm's exact
      Clopper–Pearson limits (R ``binom.test``): for the difference Newcombe's (1998) method
      10 with Clopper–Pearson limits ("MOVER-E", Laud 2017; R ``ratesci::moverci(type =
      "exact")``), for the relative risk (lift + 1) Donner & Zou's (2012) MOVER-R; each
      p-value is the level at which its interval's bound reaches the null, so it belongs to
      its interval by construction (module :mod:`core.stats.mover`). At the equality null
      the two p-values coincide. These intervals hold their level where the normal
      approximation fails (a few conversions, rates near 0 or 1, arms of 10 units against
      10^8): seeded simulations in tests/core/stats/test_simulations.py.
    """
    v.check_n(n_c, "n_c")
    v.check_n(n_t, "n_t")
    v.check_count(x_c, n_c, "x_c", "n_c")
    v.check_count(x_t, n_t, "x_t", "n_t")
    v.check_alpha(alpha)
    v.check_alternative(alternative)
    tuning = _effects.check_tuning_n(tuning_n, sequential)
    margin = _effects.check_margin(margin, alternative)
    x_c, n_c, x_t, n_t = int(x_c), int(n_c), int(x_t), int(n_t)
    alpha = float(alpha)

    p_c, p_t = x_c / n_c, x_t / n_t
    vm_c, vm_t = p_c * (1 - p_c) / n_c, p_t * (1 - p_t) / n_t
    diff = p_t - p_c
    diff_se = math.sqrt(vm_c + vm_t)
    lift, lift_se = _effects.lift_and_se(p_c, vm_c, p_t, vm_t)
    common: dict[str, Any] = {
        "control_mean": p_c, "treatment_mean": p_t, "x_c": x_c, "n_c": n_c, "x_t": x_t,
        "n_t": n_t, "diff": diff, "diff_se": diff_se, "lift": lift, "lift_se": lift_se,
        "alpha": alpha, "alternative": alternative, "sequential": bool(sequential),
        "tuning_n": tuning, "margin": margin,
    }
    if needs_exact(x_c, n_c, x_t, n_t):
        if sequential:
            raise v.InsufficientDataError(
                f"too few conversions for the always-valid sequential test (control {x_c}/{n_c},"
                f" treatment {x_t}/{n_t}): its normal approximation needs at least "
                f"{EXACT_BELOW} observed and expected conversions and non-conversions per arm; "
                f"wait for more data"
            )
        diff_null, lift_null = _effects.nulls(margin, alternative, p_c)
        m = mover.mover_inference(
            x_c, n_c, x_t, n_t, alpha=alpha, alternative=alternative, diff_null=diff_null,
            lift_null=lift_null,
        )
        return ProportionTestResult(
            **common, diff_ci_low=m.diff_ci_low, diff_ci_high=m.diff_ci_high,
            lift_ci_low=m.lift_ci_low, lift_ci_high=m.lift_ci_high, statistic=math.nan,
            p_value=m.p_value, significant=bool(m.p_value < alpha),
            lift_p_value=m.lift_p_value, lift_significant=bool(m.lift_p_value < alpha),
            diff_null=diff_null, lift_null=lift_null, method="mover_cp",
        )
    i = _effects.infer(
        diff, diff_se, math.inf, lift, lift_se, p_c, float(n_c + n_t), alpha=alpha,
        alternative=alternative, margin=margin, sequential=bool(sequential), tuning_n=tuning,
        treatment_mean=p_t, var_control_mean=vm_c, var_treatment_mean=vm_t,
    )
    return ProportionTestResult(**common, **inferred(i, alpha), method="wald_z")


def proportion_ztest_from_stats(
    control: SufficientStats, treatment: SufficientStats, **kwargs: Any
) -> ProportionTestResult:
    """:func:`proportion_ztest` on two binomial :class:`SufficientStats` (``sum`` = conversions).

    Args:
        control, treatment: per-arm stats of a 0/1 metric; ``sum`` must be a whole number
            between 0 and ``n``.
        **kwargs: ``alpha``, ``alternative``, ``sequential``, ``tuning_n``, ``margin`` as in
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
