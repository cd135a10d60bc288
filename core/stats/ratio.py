"""Ratio metrics (revenue per session, clicks per page view) by the delta method.

A ratio metric divides two per-unit sums, e.g. each user's revenue (numerator y) by the same
user's sessions (denominator x); the metric of an arm is R = sum y / sum x. Units are the
randomisation units, so the (y, x) pairs are independent across units but y and x are
correlated within a unit. By the delta method (Deng, Knoblich & Lu 2018, "Applying the Delta
Method in Metric Analytics: A Practical Guide with Novel Ideas", KDD, eq. for a ratio of
means; GrowthBook docs "Statistical Details", ratio metrics):

    Var(R) ~ (1 / n) (s_y^2 / xbar^2 - 2 ybar s_xy / xbar^3 + ybar^2 s_x^2 / xbar^4)

with the per-unit sample means, variances and covariance (ddof=1). Everything is computed from
the six sums of :class:`RatioStats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.stats.sufficient import centered, check_n_nonneg, check_sums
from core.stats.two_sample import TwoSampleResult, compared
from core.types import Alternative, TestMethod


@dataclass(frozen=True)
class RatioStats:
    """One arm of a ratio metric: ``n`` units and the sums of numerator y and denominator x.

    ``sum_num`` = sum y, ``sum_num_squares`` = sum y^2, ``sum_den`` = sum x, ``sum_den_squares``
    = sum x^2, ``sum_num_den`` = sum x*y, over units. Add two with ``a + b`` to pool disjoint
    units (e.g. days of a daily aggregate).
    """

    n: int
    sum_num: float
    sum_num_squares: float
    sum_den: float
    sum_den_squares: float
    sum_num_den: float

    def __post_init__(self) -> None:
        check_n_nonneg(self.n)
        object.__setattr__(self, "n", int(self.n))
        for name in ("sum_num", "sum_num_squares", "sum_den", "sum_den_squares", "sum_num_den"):
            object.__setattr__(self, name, float(getattr(self, name)))
        check_sums(self.n, self.sum_num, self.sum_num_squares, "RatioStats (numerator)")
        check_sums(self.n, self.sum_den, self.sum_den_squares, "RatioStats (denominator)")
        if not math.isfinite(self.sum_num_den):
            raise ValueError(f"RatioStats: sum_num_den must be finite (got {self.sum_num_den!r})")
        if self.n == 0 and self.sum_num_den != 0:
            raise ValueError("RatioStats: with n=0 every sum must be 0")

    @property
    def ratio(self) -> float:
        """sum_num / sum_den; nan when sum_den = 0."""
        return self.sum_num / self.sum_den if self.sum_den != 0 else math.nan

    @property
    def var_num(self) -> float:
        """Per-unit sample variance of the numerator (ddof=1)."""
        return max(centered(self.n, self.sum_num, self.sum_num, self.sum_num_squares), 0.0) / (
            self.n - 1)

    @property
    def var_den(self) -> float:
        """Per-unit sample variance of the denominator (ddof=1)."""
        return max(centered(self.n, self.sum_den, self.sum_den, self.sum_den_squares), 0.0) / (
            self.n - 1)

    @property
    def cov(self) -> float:
        """Per-unit sample covariance of numerator and denominator (ddof=1)."""
        return centered(self.n, self.sum_num, self.sum_den, self.sum_num_den) / (self.n - 1)

    @property
    def ratio_variance(self) -> float:
        """Delta-method variance of :attr:`ratio` (module docstring), clipped at 0; needs n >= 2."""
        r = self.ratio
        xbar = self.sum_den / self.n
        var = (self.var_num - 2.0 * r * self.cov + r * r * self.var_den) / (self.n * xbar * xbar)
        return max(var, 0.0)

    def merge(self, other: RatioStats) -> RatioStats:
        """Pool two disjoint sets of units."""
        return RatioStats(
            self.n + other.n,
            self.sum_num + other.sum_num,
            self.sum_num_squares + other.sum_num_squares,
            self.sum_den + other.sum_den,
            self.sum_den_squares + other.sum_den_squares,
            self.sum_num_den + other.sum_num_den,
        )

    def __add__(self, other: RatioStats) -> RatioStats:
        if not isinstance(other, RatioStats):
            return NotImplemented
        return self.merge(other)


def ratio_stats(numerators: Any, denominators: Any) -> RatioStats:
    """Summarise unit-level numerators y and denominators x (same units, same order).

    Args:
        numerators: array-like of finite floats, one per unit (e.g. revenue).
        denominators: array-like of finite floats, one per unit (e.g. sessions).

    Returns:
        :class:`RatioStats` with the five sums computed with ``np.sum`` / ``np.dot``.
    """
    y = np.asarray(numerators, dtype=np.float64).ravel()
    x = np.asarray(denominators, dtype=np.float64).ravel()
    if y.size != x.size:
        raise ValueError(
            f"numerators and denominators need one value per unit each (got {y.size} and "
            f"{x.size} values)"
        )
    sums = (float(np.sum(y)), float(np.dot(y, y)), float(np.sum(x)), float(np.dot(x, x)),
            float(np.dot(x, y)))
    if not all(math.isfinite(s) for s in sums):
        raise ValueError(
            "numerators or denominators contain NaN or infinity: drop or impute them first"
        )
    return RatioStats(int(y.size), *sums)


@dataclass(frozen=True, kw_only=True)
class RatioTestResult(TwoSampleResult):
    """Outcome of :func:`ratio_test`; ``control_mean`` / ``treatment_mean`` are the arm ratios.

    diff = R_t - R_c with ``diff_se`` = sqrt(Var R_t + Var R_c); lift = R_t / R_c - 1 with
    Fieller's interval (``lift_se`` is its delta-method SE, informational). As for every
    core.stats test, ``p_value`` belongs to ``diff_ci_*`` and
    ``lift_p_value`` to ``lift_ci_*`` (z tests; one-sided intervals for one-sided
    alternatives; confidence sequences when ``sequential``). ``method`` is "delta_ratio".
    """

    method: TestMethod = "delta_ratio"


def ratio_test(
    control: RatioStats,
    treatment: RatioStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential: bool = False,
    tuning_n: float | None = None,
    margin: float = 0.0,
) -> RatioTestResult:
    """Compare a ratio metric between two arms by the delta method (module docstring).

    Args:
        control, treatment: :class:`RatioStats` per arm; n >= 2 and sum_den > 0 each.
        alpha: significance level in (0, 1).
        alternative: "two-sided", "greater" (treatment > control) or "less"; one-sided tests
            get one-sided intervals.
        sequential: always-valid confidence sequence and p-values (core.stats.sequential).
        tuning_n: required when sequential: planned units per variant, > 0.
        margin: relative non-inferiority margin >= 0 for one-sided tests; the difference is
            tested against margin * R_c.

    Returns:
        :class:`RatioTestResult`.

    Formula: z = (R_t - R_c - diff_null) / sqrt(Var R_t + Var R_c), Var R from the delta method
    including the numerator-denominator covariance (Deng et al. 2018). Lift: Fieller's
    interval for R_t / R_c with z quantiles and those two variances (Fieller 1954;
    :mod:`core.stats._effects`), with the p-value of (R_t - r0 R_c) / sqrt(Var R_t +
    r0^2 Var R_c) at r0 = 1 + lift_null; ``lift_se`` = sqrt(Var(R_t)/R_c^2 +
    R_t^2 Var(R_c)/R_c^4) (delta method) is reported beside it.
    """
    for name, s in (("control", control), ("treatment", treatment)):
        if not isinstance(s, RatioStats):
            raise TypeError(f"{name} must be a RatioStats (got {type(s).__name__})")
        if s.n < 2:
            raise ValueError(
                f"{name} has n={s.n}: each arm needs at least 2 units to estimate its variance"
            )
        if not s.sum_den > 0:
            raise ValueError(
                f"{name}.sum_den must be positive (got {s.sum_den!r}): a ratio metric needs a "
                f"positive denominator total, e.g. at least one session"
            )
    return RatioTestResult(**compared(
        control.ratio, control.ratio_variance, treatment.ratio, treatment.ratio_variance,
        control.n, treatment.n, df=math.inf, alpha=alpha, alternative=alternative,
        sequential=sequential, tuning_n=tuning_n, margin=margin))
