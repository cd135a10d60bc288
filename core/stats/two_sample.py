"""The fields every two-sample test result shares (Welch, CUPED, proportions, ratios)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.stats import _effects
from core.stats import _validation as v
from core.stats._effects import Inference
from core.types import Alternative, TestMethod


@dataclass(frozen=True, kw_only=True)
class TwoSampleResult:
    """Treatment against control: the difference (treatment - control) and the relative lift
    (treatment / control - 1), each with its standard error, interval and p-value.

    ``p_value`` belongs to ``diff_ci_*`` and ``lift_p_value`` to ``lift_ci_*``: an interval
    excludes its null exactly when its own p-value is below ``alpha`` (``significant`` and
    ``lift_significant``). The lift's interval is Fieller's for the ratio of the means, at the
    difference's quantile (:mod:`core.stats._effects`); ``lift_se`` is the lift's delta-method
    standard error, reported for the Bayesian readout. One-sided alternatives get one-sided
    intervals (an infinite end); ``sequential`` results are always-valid confidence sequences
    tuned to ``tuning_n``.
    ``diff_null`` / ``lift_null`` are the tested nulls (0 unless a non-inferiority ``margin`` is
    set); ``statistic`` is (diff - diff_null) / diff_se; ``method`` names the test
    (:data:`core.types.TestMethod`). Each test's result class adds its own fields.
    """

    control_mean: float
    treatment_mean: float
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
    p_value: float
    significant: bool
    lift_p_value: float
    lift_significant: bool
    alpha: float
    alternative: Alternative
    sequential: bool
    tuning_n: float | None
    margin: float = 0.0
    diff_null: float = 0.0
    lift_null: float = 0.0
    method: TestMethod


def inferred(i: Inference, alpha: float) -> dict[str, Any]:
    """The result fields an :class:`Inference` gives: intervals, statistic, p-values, their
    significance at ``alpha`` and the nulls."""
    return {
        "diff_ci_low": i.diff_ci_low, "diff_ci_high": i.diff_ci_high,
        "lift_ci_low": i.lift_ci_low, "lift_ci_high": i.lift_ci_high,
        "statistic": i.statistic, "p_value": i.p_value, "significant": bool(i.p_value < alpha),
        "lift_p_value": i.lift_p_value, "lift_significant": bool(i.lift_p_value < alpha),
        "diff_null": i.diff_null, "lift_null": i.lift_null,
    }


def compared(mean_c: float, var_c: float, mean_t: float, var_t: float, n_c: int, n_t: int, *,
             df: float, alpha: float, alternative: Alternative, sequential: bool,
             tuning_n: float | None, margin: float) -> dict[str, Any]:
    """Every :class:`TwoSampleResult` field but ``method`` for two independent estimates
    ``mean_c``, ``mean_t`` with variances ``var_c``, ``var_t`` (of the estimates, not per
    unit) from ``n_c`` and ``n_t`` units: diff = mean_t - mean_c with SE sqrt(var_c + var_t),
    a t reference on ``df`` degrees of freedom (inf: normal), the lift with Fieller's interval
    (:func:`core.stats._effects.infer`). Welch's, the ratio, quantile and adjusted tests share
    it; ``alpha``, ``alternative``, ``tuning_n`` and ``margin`` are checked first."""
    v.check_alpha(alpha)
    v.check_alternative(alternative)
    tuning = _effects.check_tuning_n(tuning_n, sequential)
    margin = _effects.check_margin(margin, alternative)
    alpha = float(alpha)
    diff = mean_t - mean_c
    diff_se = math.sqrt(var_c + var_t)
    lift, lift_se = _effects.lift_and_se(mean_c, var_c, mean_t, var_t)
    _effects.check_computable(diff, diff_se)
    i = _effects.infer(
        diff, diff_se, df, lift, lift_se, mean_c, float(n_c + n_t), alpha=alpha,
        alternative=alternative, margin=margin, sequential=bool(sequential), tuning_n=tuning,
        treatment_mean=mean_t, var_control_mean=var_c, var_treatment_mean=var_t)
    return {"control_mean": mean_c, "treatment_mean": mean_t, "n_c": n_c, "n_t": n_t,
            "diff": diff, "diff_se": diff_se, "lift": lift, "lift_se": lift_se, "alpha": alpha,
            "alternative": alternative, "sequential": bool(sequential), "tuning_n": tuning,
            "margin": margin, **inferred(i, alpha)}
