"""The fields every two-sample test result shares (Welch, CUPED, proportions, ratios)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
