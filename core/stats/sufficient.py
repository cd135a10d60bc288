"""Sufficient statistics: everything a mean test needs, computed in one pass and mergeable.

Design after GrowthBook gbstats ``models/statistics.py`` (SampleMeanStatistic,
RegressionAdjustedStatistic): an arm is summarised by ``n``, ``sum`` and ``sum_squares``
(plus covariate sums for CUPED), so results can be computed from warehouse aggregates and
partial aggregates can be added together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def check_n_nonneg(n: Any, name: str = "n") -> None:
    """ValueError unless `n` is a whole, non-negative number of units."""
    if not isinstance(n, (int, np.integer)) and not (
        isinstance(n, (float, np.floating)) and float(n).is_integer()
    ):
        raise ValueError(f"{name} must be a whole number of units (got {n!r})")
    if n < 0:
        raise ValueError(f"{name} must be non-negative (got {n!r})")


def check_sums(n: int, s: float, ss: float, what: str) -> None:
    """ValueError unless the sums are finite, the sum of squares >= 0, and 0 when n is."""
    if not (math.isfinite(s) and math.isfinite(ss)):
        raise ValueError(f"{what}: sums must be finite (got sum={s!r}, sum_squares={ss!r})")
    if ss < 0:
        raise ValueError(f"{what}: a sum of squares cannot be negative (got {ss!r})")
    if n == 0 and (s != 0 or ss != 0):
        raise ValueError(f"{what}: with n=0 the sums must be 0 (got sum={s!r}, sum_squares={ss!r})")
    # Cauchy-Schwarz: sum^2 <= n * sum_squares, up to rounding.
    if n > 0 and s * s > n * ss * (1 + 1e-9) + 1e-12:
        raise ValueError(
            f"{what}: sum^2 ({s * s!r}) exceeds n * sum_squares ({n * ss!r}); "
            f"these cannot come from one set of values"
        )


def centered(n: int, sum_a: float, sum_b: float, sum_ab: float) -> float:
    """sum((a - mean_a)(b - mean_b)) from raw sums."""
    return sum_ab - sum_a * sum_b / n


@dataclass(frozen=True)
class SufficientStats:
    """One arm summarised as ``n`` units, ``sum`` of the metric and ``sum_squares`` of it.

    For a binomial (conversion) metric ``sum`` is the number of conversions and
    ``sum_squares == sum``. Add two with ``a + b`` (or ``a.merge(b)``) to pool disjoint data.
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        check_n_nonneg(self.n)
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "sum", float(self.sum))
        object.__setattr__(self, "sum_squares", float(self.sum_squares))
        check_sums(self.n, self.sum, self.sum_squares, "SufficientStats")

    @property
    def mean(self) -> float:
        """Sample mean; nan when n = 0."""
        return self.sum / self.n if self.n > 0 else math.nan

    @property
    def variance(self) -> float:
        """Sample variance with ddof=1 (clipped at 0 against rounding); nan when n < 2."""
        if self.n < 2:
            return math.nan
        return max(centered(self.n, self.sum, self.sum, self.sum_squares), 0.0) / (self.n - 1)

    @property
    def sd(self) -> float:
        """Sample standard deviation (ddof=1)."""
        return math.sqrt(self.variance)

    def merge(self, other: SufficientStats) -> SufficientStats:
        """Pool two disjoint sets of units."""
        return SufficientStats(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )

    def __add__(self, other: SufficientStats) -> SufficientStats:
        if not isinstance(other, SufficientStats):
            return NotImplemented
        return self.merge(other)


def sufficient_stats(values: Any) -> SufficientStats:
    """Summarise raw metric values (one per unit) in one pass.

    Args:
        values: array-like of finite floats, any shape (flattened); one value per unit.

    Returns:
        ``SufficientStats(n, sum, sum_squares)`` with ``sum = np.sum(x)`` and
        ``sum_squares = np.dot(x, x)`` (BLAS; no temporary arrays).

    Raises:
        ValueError: if any value is NaN or infinite.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    s = float(np.sum(x))
    ss = float(np.dot(x, x))
    if not (math.isfinite(s) and math.isfinite(ss)):
        raise ValueError("values contain NaN or infinity: drop or impute them before summarising")
    return SufficientStats(int(x.size), s, ss)


@dataclass(frozen=True)
class CovariateStats:
    """One arm for CUPED: metric ``y`` during the experiment, covariate ``x`` from the pre-period.

    Holds ``n`` and the sums ``sum_y, sum_y2, sum_x, sum_x2, sum_xy`` (``sum_y2`` is the sum of
    y squared, ``sum_xy`` the sum of x*y). Add two with ``a + b`` to pool disjoint units.
    """

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float
    sum_x2: float
    sum_xy: float

    def __post_init__(self) -> None:
        check_n_nonneg(self.n)
        object.__setattr__(self, "n", int(self.n))
        for name in ("sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy"):
            object.__setattr__(self, name, float(getattr(self, name)))
        check_sums(self.n, self.sum_y, self.sum_y2, "CovariateStats (y)")
        check_sums(self.n, self.sum_x, self.sum_x2, "CovariateStats (x)")
        if not math.isfinite(self.sum_xy):
            raise ValueError(f"CovariateStats: sum_xy must be finite (got {self.sum_xy!r})")

    @property
    def y(self) -> SufficientStats:
        """The metric's own sufficient statistics."""
        return SufficientStats(self.n, self.sum_y, self.sum_y2)

    @property
    def x(self) -> SufficientStats:
        """The covariate's sufficient statistics."""
        return SufficientStats(self.n, self.sum_x, self.sum_x2)

    @property
    def covariance(self) -> float:
        """Sample covariance of x and y (ddof=1); nan when n < 2."""
        if self.n < 2:
            return math.nan
        return centered(self.n, self.sum_x, self.sum_y, self.sum_xy) / (self.n - 1)

    def merge(self, other: CovariateStats) -> CovariateStats:
        """Pool two disjoint sets of units."""
        return CovariateStats(
            self.n + other.n,
            self.sum_y + other.sum_y,
            self.sum_y2 + other.sum_y2,
            self.sum_x + other.sum_x,
            self.sum_x2 + other.sum_x2,
            self.sum_xy + other.sum_xy,
        )

    def __add__(self, other: CovariateStats) -> CovariateStats:
        if not isinstance(other, CovariateStats):
            return NotImplemented
        return self.merge(other)


def covariate_stats(y: Any, x: Any) -> CovariateStats:
    """Summarise a metric ``y`` and its pre-period covariate ``x`` (same units, same order).

    Args:
        y: array-like of finite floats, the experiment-period metric, one per unit.
        x: array-like of finite floats, the same units' pre-experiment value of the covariate.

    Returns:
        ``CovariateStats`` with the five sums, computed with ``np.sum``/``np.dot``.
    """
    ya = np.asarray(y, dtype=np.float64).ravel()
    xa = np.asarray(x, dtype=np.float64).ravel()
    if ya.size != xa.size:
        raise ValueError(
            f"y and x must have one value per unit each (got {ya.size} and {xa.size} values)"
        )
    sums = (
        float(np.sum(ya)),
        float(np.dot(ya, ya)),
        float(np.sum(xa)),
        float(np.dot(xa, xa)),
        float(np.dot(xa, ya)),
    )
    if not all(math.isfinite(v) for v in sums):
        raise ValueError("y or x contain NaN or infinity: drop or impute them before summarising")
    return CovariateStats(int(ya.size), *sums)
