"""Quantile metrics (p50 / p90 / p99 of a per-unit value) from order statistics.

A quantile metric compares the p-quantile of a per-unit value (e.g. each unit's page load time)
between two arms. Quantiles do not add up, so an arm's statistics are not sums but
:class:`QuantileStats`: the number of units ``n``, the sample quantile q(p) and the sample
quantiles at the two levels

    p_lower, p_upper = p -/+ z sqrt(p (1 - p) / n_star),   z = Phi^-1(0.975),

which any SQL engine returns (``quantile_disc`` at three constant levels plus ``count``).
[q(p_lower), q(p_upper)] is the distribution-free order-statistic confidence interval of the
p-quantile at 95% (the normal approximation to the binomial count of units below the
quantile; Woodruff 1952, "Confidence intervals for medians and other position measures",
JASA 47; the same bounds GrowthBook's warehouse queries return, ``quantile_lower`` /
``quantile_upper``). Its width gives the standard error of q(p) without estimating the
density at the quantile (Woodruff's variance; Sitter & Wu 2001, Biometrika 88):

    se(q(p)) = (q(p_upper) - q(p_lower)) / (2 z) * sqrt(n_star / n).

``n_star`` is the count the levels were computed for: the arm's ``n`` when the engine can use
it, or a smaller fixed grid value when it needs constant levels before counting (GrowthBook's
``N_STAR_VALUES``); the interval then belongs to n_star units and the factor rescales it to n
(gbstats ``QuantileStatistic.variance_init``, which also carries a factor (n - 1) / n).

The quantile used throughout is the inverse of the empirical distribution function, the
smallest value x with F_n(x) >= p (Hyndman & Fan 1996 type 1; numpy ``method="inverted_cdf"``,
DuckDB and PostgreSQL ``quantile_disc`` / ``percentile_disc``).

The two arms are independent, so the difference of quantiles has
se = sqrt(se_c^2 + se_t^2) and a z interval; the relative difference q_t / q_c - 1 gets
Fieller's interval at the same z with the delta-method SE reported beside it, as every
core.stats test (:mod:`core.stats._effects`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import special

from core.stats import _effects
from core.stats import _validation as v
from core.stats.two_sample import TwoSampleResult, compared
from core.types import Alternative, TestMethod

BOUND_Z = float(special.ndtri(0.975))
"""z of the 95% order-statistic interval whose ends :class:`QuantileStats` carries."""


def quantile_levels(p: float, n_star: int) -> tuple[float, float]:
    """The levels p -/+ z sqrt(p (1 - p) / n_star) at which the interval's ends are read.

    Args:
        p: the quantile's level, strictly between 0 and 1 (0.9 for p90).
        n_star: the number of units the levels are computed for, >= 1 (usually the arm's n).

    Returns:
        (p_lower, p_upper), both strictly inside (0, 1).

    Raises:
        InsufficientDataError: when n_star is too small for p (a level would leave (0, 1),
            i.e. n_star <= z^2 max(p / (1 - p), (1 - p) / p); about 35 units for p90, 381
            for p99).
    """
    v.check_probability_open(p, "p", " (the quantile's level, e.g. 0.9 for p90)")
    if not (isinstance(n_star, (int, np.integer)) and n_star >= 1):
        raise ValueError(f"n_star must be a whole number of units >= 1 (got {n_star!r})")
    half = BOUND_Z * math.sqrt(p * (1.0 - p) / n_star)
    low, high = p - half, p + half
    if not (low > 0.0 and high < 1.0):
        need = math.floor(BOUND_Z**2 * max(p / (1.0 - p), (1.0 - p) / p)) + 1
        raise v.InsufficientDataError(
            f"{n_star} units are too few for the {p:g}-quantile's interval: it needs at least "
            f"{need} units per arm")
    return low, high


def order_statistic_index(level: float, n: int) -> int:
    """Where the sample quantile at ``level`` sits among n sorted values: its 0-based index.

    The inverse of the empirical distribution function (module docstring) is the k-th smallest
    value with k = ceil(n level), i.e. the index ceil(n level) - 1, computed in floating point
    exactly as numpy's ``method="inverted_cdf"`` does (``_inverted_cdf``: the virtual index
    n level - 1, rounded up unless it is whole). An engine without a discrete quantile
    function reads the value at this index with ``row_number()`` (core.warehouse.queries).

    Args:
        level: in (0, 1): p, or one of :func:`quantile_levels`.
        n: the number of values, >= 1.

    Returns:
        An index in 0 .. n - 1.
    """
    v.check_probability_open(level, "level", " (a quantile's level, e.g. 0.9)")
    if not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"n must be a whole number of values >= 1 (got {n!r})")
    virtual = int(n) * float(level) - 1.0
    below = math.floor(virtual)
    index = below if virtual == below else below + 1
    return min(max(index, 0), int(n) - 1)


@dataclass(frozen=True)
class QuantileStats:
    """One arm of a quantile metric: what a warehouse returns for it (module docstring).

    ``n`` units; ``p`` the level in (0, 1); ``quantile`` the sample p-quantile; ``lower`` and
    ``upper`` the sample quantiles at :func:`quantile_levels` (p, ``n_star``); ``n_star`` the
    count those levels were computed for (defaults to ``n``). Quantiles do not pool: there is
    no ``+``; compute the record again over the pooled units.
    """

    n: int
    p: float
    quantile: float
    lower: float
    upper: float
    n_star: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.n, (int, np.integer)) and not isinstance(self.n, bool)
                and self.n >= 1):
            raise ValueError(f"QuantileStats: n must be a whole number of units >= 1 "
                             f"(got {self.n!r})")
        object.__setattr__(self, "n", int(self.n))
        v.check_probability_open(self.p, "QuantileStats: p", " (e.g. 0.9 for p90)")
        object.__setattr__(self, "p", float(self.p))
        if self.n_star is None:
            object.__setattr__(self, "n_star", self.n)
        elif not (isinstance(self.n_star, (int, np.integer)) and self.n_star >= 1):
            raise ValueError(f"QuantileStats: n_star must be a whole number >= 1 "
                             f"(got {self.n_star!r})")
        object.__setattr__(self, "n_star", int(self.n_star))  # type: ignore[arg-type]
        for name in ("quantile", "lower", "upper"):
            value = getattr(self, name)
            if not (_effects.is_number(value) and math.isfinite(float(value))):
                raise ValueError(f"QuantileStats: {name} must be a finite number "
                                 f"(got {value!r})")
            object.__setattr__(self, name, float(value))
        if not self.lower <= self.quantile <= self.upper:
            raise ValueError(
                f"QuantileStats: need lower <= quantile <= upper (got {self.lower!r}, "
                f"{self.quantile!r}, {self.upper!r}): the interval's ends are the quantiles "
                f"at p -/+ z sqrt(p (1 - p) / n_star)")

    @property
    def se(self) -> float:
        """Woodruff's standard error of ``quantile``: (upper - lower) / (2 z) sqrt(n_star / n)."""
        assert self.n_star is not None
        return (self.upper - self.lower) / (2.0 * BOUND_Z) * math.sqrt(self.n_star / self.n)

    @property
    def variance(self) -> float:
        """se squared: the variance of the sample quantile."""
        return self.se * self.se

    def key(self) -> tuple[int | float | None, ...]:
        """Every field, in declaration order: what fingerprints and comparisons are built on."""
        return tuple(getattr(self, name) for name in QUANTILE_FIELDS)


QUANTILE_FIELDS = tuple(f.name for f in fields(QuantileStats))
"""The names of every :class:`QuantileStats` field, in order (:meth:`QuantileStats.key`)."""


def quantile_stats(values: Any, p: float) -> QuantileStats:
    """Summarise unit-level values of one arm for its p-quantile.

    Args:
        values: array-like of finite floats, one per unit (e.g. each unit's load time in ms).
        p: the level, strictly between 0 and 1.

    Returns:
        :class:`QuantileStats` with n_star = n and the three quantiles by the inverse of the
        empirical distribution function (numpy ``method="inverted_cdf"``, the definition of
        SQL's ``quantile_disc``).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("values is empty: give one value per unit of the arm")
    if not np.all(np.isfinite(x)):
        raise ValueError("values contain NaN or infinity: drop or impute them first")
    low, high = quantile_levels(p, int(x.size))
    q_low, q, q_high = np.quantile(x, [low, p, high], method="inverted_cdf")
    return QuantileStats(int(x.size), p, float(q), float(q_low), float(q_high))


@dataclass(frozen=True, kw_only=True)
class QuantileTestResult(TwoSampleResult):
    """Outcome of :func:`quantile_test`; ``control_mean`` / ``treatment_mean`` are the arms'
    p-quantiles (the shared field names of :class:`TwoSampleResult`).

    diff = q_t - q_c with ``diff_se`` = sqrt(se_c^2 + se_t^2) (Woodruff's SEs) and a z
    interval; lift = q_t / q_c - 1 with Fieller's interval at the same z (``lift_se`` is the
    delta-method SE). ``p`` is the level; ``method`` is "quantile_woodruff".
    """

    p: float
    control_se: float
    treatment_se: float
    method: TestMethod = "quantile_woodruff"


def quantile_test(
    control: QuantileStats,
    treatment: QuantileStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential: bool = False,
    tuning_n: float | None = None,
    margin: float = 0.0,
) -> QuantileTestResult:
    """Compare the p-quantile of a per-unit value between two arms (module docstring).

    Args:
        control, treatment: :class:`QuantileStats` per arm, at the same ``p``.
        alpha: significance level in (0, 1).
        alternative: "two-sided", "greater" (treatment > control) or "less"; one-sided tests
            get one-sided intervals.
        sequential: always-valid confidence sequence and p-values (core.stats.sequential).
        tuning_n: required when sequential: planned units per variant, > 0.
        margin: relative non-inferiority margin >= 0 for one-sided tests.

    Returns:
        :class:`QuantileTestResult`.

    Raises:
        InsufficientDataError: an arm's interval has zero width (the values around its
            quantile are all tied), so its quantile has no usable standard error.

    Formula: z = (q_t - q_c - diff_null) / sqrt(se_c^2 + se_t^2), se from the order-statistic
    interval (Woodruff 1952); lift by Fieller's interval for q_t / q_c with the same z
    quantile (:mod:`core.stats._effects`).
    """
    for name, s in (("control", control), ("treatment", treatment)):
        if not isinstance(s, QuantileStats):
            raise TypeError(f"{name} must be a QuantileStats (got {type(s).__name__})")
        assert s.n_star is not None
        quantile_levels(s.p, s.n_star)  # refuses arms too small for their levels
        if s.upper == s.lower:
            raise v.InsufficientDataError(
                f"{name}'s order-statistic interval has zero width (every value around its "
                f"{s.p:g}-quantile equals {s.quantile!r}): its quantile has no usable standard "
                f"error; a quantile test needs values that vary around the quantile")
    if control.p != treatment.p:
        raise ValueError(f"control and treatment must be at the same level p (got "
                         f"{control.p!r} and {treatment.p!r})")
    return QuantileTestResult(
        **compared(control.quantile, control.variance, treatment.quantile, treatment.variance,
                   control.n, treatment.n, df=math.inf, alpha=alpha, alternative=alternative,
                   sequential=sequential, tuning_n=tuning_n, margin=margin),
        p=control.p, control_se=control.se, treatment_se=treatment.se)
