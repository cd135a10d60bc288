"""CUPED: variance reduction of a mean metric with a pre-experiment covariate.

Deng, Xu, Kohavi & Walker (2013), "Improving the Sensitivity of Online Controlled Experiments by
Utilizing Pre-Experiment Data", WSDM: y_adj = y - theta (x - E[x]) with
theta = cov(x, y) / var(x). Everything is computed from :class:`CovariateStats` sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from core.stats.sufficient import CovariateStats, centered
from core.stats.welch import WelchTestResult, welch_ttest
from core.types import TestMethod


@dataclass(frozen=True)
class CupedAdjustment:
    """Adjusted per-arm means and variances (original scale) and the pooled theta.

    ``variance_reduction`` = 1 - Var(adjusted diff)/Var(unadjusted diff), where
    Var(diff) = var_c/n_c + var_t/n_t.
    """

    theta: float
    control_mean: float
    control_variance: float
    treatment_mean: float
    treatment_variance: float
    variance_reduction: float


@dataclass(frozen=True, kw_only=True)
class CupedTestResult(WelchTestResult):
    """Welch test on CUPED-adjusted means: its fields are the adjusted test's (read them as
    :class:`WelchTestResult`'s, or take :attr:`adjusted`), beside the ``unadjusted`` test,
    the pooled ``theta`` and the ``variance_reduction``; ``method`` is "welch_cuped"."""

    unadjusted: WelchTestResult
    theta: float
    variance_reduction: float
    method: TestMethod = "welch_cuped"

    @property
    def adjusted(self) -> WelchTestResult:
        """The Welch test on the CUPED-adjusted means."""
        return WelchTestResult(**{name: getattr(self, name) for name in _WELCH_FIELDS})


_WELCH_FIELDS = tuple(f.name for f in fields(WelchTestResult) if f.name != "method")


def _check_arms(control: Any, treatment: Any) -> None:
    for name, s in (("control", control), ("treatment", treatment)):
        if not isinstance(s, CovariateStats):
            raise TypeError(f"{name} must be a CovariateStats (got {type(s).__name__})")
        if s.n < 2:
            raise ValueError(
                f"{name} has n={s.n}: each arm needs at least 2 units to estimate its variance"
            )


def cuped_adjust(control: CovariateStats, treatment: CovariateStats) -> CupedAdjustment:
    """CUPED-adjust both arms with one theta pooled across arms.

    Args:
        control, treatment: :class:`CovariateStats` per arm (n >= 2 each); ``x`` is the
            pre-experiment covariate (e.g. the same metric in the weeks before exposure).

    Returns:
        :class:`CupedAdjustment` with

        * theta = sum_arms Sxy / sum_arms Sxx, Sxy = sum (x - xbar_arm)(y - ybar_arm)
          (within-arm pooled covariance over pooled variance, so a treatment effect on y does not
          leak into theta; 0 when x is constant);
        * adjusted mean ybar - theta (xbar_arm - xbar_pooled), on the original scale of y;
        * adjusted variance var(y) - 2 theta cov(x, y) + theta^2 var(x) (ddof=1, per arm).

    Reference: Deng et al. (2013); the variance treats theta as known (its
    estimation error is O(1/n)).
    """
    _check_arms(control, treatment)
    sxx = centered(control.n, control.sum_x, control.sum_x, control.sum_x2) + centered(
        treatment.n, treatment.sum_x, treatment.sum_x, treatment.sum_x2
    )
    sxy = centered(control.n, control.sum_x, control.sum_y, control.sum_xy) + centered(
        treatment.n, treatment.sum_x, treatment.sum_y, treatment.sum_xy
    )
    theta = sxy / sxx if sxx > 0 else 0.0
    x_pooled = (control.sum_x + treatment.sum_x) / (control.n + treatment.n)

    def arm(s: CovariateStats) -> tuple[float, float, float]:
        # sums straight from the arm (no intermediate SufficientStats: this runs per request)
        k = s.n - 1
        var_y = max(centered(s.n, s.sum_y, s.sum_y, s.sum_y2), 0.0) / k
        var_x = max(centered(s.n, s.sum_x, s.sum_x, s.sum_x2), 0.0) / k
        cov = centered(s.n, s.sum_x, s.sum_y, s.sum_xy) / k
        adj_var = max(var_y - 2 * theta * cov + theta * theta * var_x, 0.0)
        return s.sum_y / s.n - theta * (s.sum_x / s.n - x_pooled), adj_var, var_y

    m_c, av_c, v_c = arm(control)
    m_t, av_t, v_t = arm(treatment)
    before = v_c / control.n + v_t / treatment.n
    after = av_c / control.n + av_t / treatment.n
    reduction = 1.0 - after / before if before > 0 else 0.0
    return CupedAdjustment(theta, m_c, av_c, m_t, av_t, reduction)


def welch_ttest_cuped(
    control: CovariateStats, treatment: CovariateStats, **kwargs: Any
) -> CupedTestResult:
    """Welch t-test on CUPED-adjusted means, plus the unadjusted test for comparison.

    Args:
        control, treatment: :class:`CovariateStats` per arm, n >= 2 each.
        **kwargs: ``alpha``, ``alternative``, ``sequential``, ``tuning_n``, ``margin`` as in
            :func:`core.stats.welch_ttest`.

    Returns:
        :class:`CupedTestResult`; its CI half-width is about sqrt(1 - rho^2) times the
        unadjusted one when x and y have correlation rho in both arms.

    Reference: Deng et al. (2013); adjustment by :func:`cuped_adjust`, then Welch (1947).
    """
    a = cuped_adjust(control, treatment)
    adjusted = welch_ttest(
        a.control_mean,
        math.sqrt(a.control_variance),
        control.n,
        a.treatment_mean,
        math.sqrt(a.treatment_variance),
        treatment.n,
        **kwargs,
    )

    def sd_y(s: CovariateStats) -> float:
        return math.sqrt(max(centered(s.n, s.sum_y, s.sum_y, s.sum_y2), 0.0) / (s.n - 1))

    unadjusted = welch_ttest(
        control.sum_y / control.n,
        sd_y(control),
        control.n,
        treatment.sum_y / treatment.n,
        sd_y(treatment),
        treatment.n,
        **kwargs,
    )
    return CupedTestResult(**{name: getattr(adjusted, name) for name in _WELCH_FIELDS},
                           unadjusted=unadjusted, theta=a.theta,
                           variance_reduction=a.variance_reduction)
