"""The one record of a metric's sums: what ingestion yields, the database stores, the results,
segments, refresh and backlog read, and the tests take.

Design after GrowthBook gbstats ``models/statistics.py``: one statistic class holds every sum
of a set of units and adds with ``+`` from the query to the test. Here one class covers the
three kinds of data: ``n``, ``sum`` and ``sum_squares`` always (a ratio metric's numerator),
the CUPED covariate sums ``sum_x``, ``sum_x2``, ``sum_xy`` when a pre-period covariate was
given, and the ratio sums ``sum_den``, ``sum_den_squares``, ``sum_num_den`` for a ratio metric.
:meth:`MetricStats.key` lists every field, so a fingerprint or a comparison built on it cannot
leave a sum out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from core.stats.covariates import CovariateSums, covariate_sums
from core.stats.ratio import RatioStats
from core.stats.sufficient import CovariateStats, SufficientStats

COVARIATE_SUMS = ("sum_x", "sum_x2", "sum_xy")
"""The covariate x's sum, sum of squares and the sum of x * y (CUPED)."""
RATIO_SUMS = ("sum_den", "sum_den_squares", "sum_num_den")
"""A ratio metric's denominator sum, its sum of squares and the sum of numerator x denominator
(``sum`` and ``sum_squares`` are then the numerator's)."""


@dataclass(frozen=True)
class MetricStats:
    """A metric's sums over a set of units (an arm, a day of an arm, a dimension value of it).

    ``n`` units, ``sum`` and ``sum_squares`` of the metric (of the numerator for a ratio
    metric); optionally the covariate part (:data:`COVARIATE_SUMS`) and the ratio part
    (:data:`RATIO_SUMS`), each given whole or not at all. ``a + b`` pools disjoint units; a part
    survives pooling only when both sides carry it (CUPED needs the covariate of every unit) or
    one side holds no units, so ``sum(records, EMPTY_STATS)`` pools a list.
    """

    n: int
    sum: float
    sum_squares: float
    sum_x: float | None = None
    sum_x2: float | None = None
    sum_xy: float | None = None
    sum_den: float | None = None
    sum_den_squares: float | None = None
    sum_num_den: float | None = None
    covariates: CovariateSums | None = None

    def __post_init__(self) -> None:
        for part, names in (("covariate", COVARIATE_SUMS), ("ratio", RATIO_SUMS)):
            given = [getattr(self, name) is not None for name in names]
            if any(given) and not all(given):
                raise ValueError(
                    f"MetricStats: give all of {', '.join(names)} or none (the {part} sums)")
        c = self.covariates
        if c is not None:
            if not isinstance(c, CovariateSums):
                raise ValueError(f"MetricStats: covariates must be a CovariateSums "
                                 f"(got {type(c).__name__})")
            if (c.sum_xden is not None) != self.has_ratio:
                raise ValueError("MetricStats: a ratio metric's covariate sums need sum_xden "
                                 "(sum x_j * denominator), and only a ratio metric's have it")

    @property
    def has_covariate(self) -> bool:
        return self.sum_x is not None

    @property
    def has_ratio(self) -> bool:
        return self.sum_den is not None

    @property
    def has_covariates(self) -> bool:
        """True when the multi-covariate cross-products are carried."""
        return self.covariates is not None

    @property
    def sufficient(self) -> SufficientStats:
        """``n``, ``sum``, ``sum_squares`` as :class:`SufficientStats` (validated)."""
        return SufficientStats(self.n, self.sum, self.sum_squares)

    @property
    def covariate(self) -> CovariateStats | None:
        """The metric y with its covariate x as :class:`CovariateStats`; None without one."""
        if self.sum_x is None or self.sum_x2 is None or self.sum_xy is None:
            return None
        return CovariateStats(self.n, self.sum, self.sum_squares, self.sum_x, self.sum_x2,
                              self.sum_xy)

    @property
    def ratio(self) -> RatioStats | None:
        """Numerator and denominator as :class:`RatioStats`; None without the ratio sums."""
        if self.sum_den is None or self.sum_den_squares is None or self.sum_num_den is None:
            return None
        return RatioStats(self.n, self.sum, self.sum_squares, self.sum_den,
                          self.sum_den_squares, self.sum_num_den)

    def key(self) -> tuple[int | float | None, ...]:
        """Every field, in declaration order: what fingerprints and comparisons are built on."""
        return tuple(getattr(self, name) for name in SUM_FIELDS) + (
            None if self.covariates is None else self.covariates.key(),)

    def __add__(self, other: MetricStats) -> MetricStats:
        if not isinstance(other, MetricStats):
            return NotImplemented
        cov = _pooled(self, other, COVARIATE_SUMS)
        den = _pooled(self, other, RATIO_SUMS)
        vec = _pooled_covariates(self, other)
        return MetricStats(self.n + other.n, self.sum + other.sum,
                           self.sum_squares + other.sum_squares,
                           **dict(zip(COVARIATE_SUMS + RATIO_SUMS, cov + den, strict=True)),
                           covariates=vec)


FIELDS = tuple(f.name for f in fields(MetricStats))
"""The names of every :class:`MetricStats` field, in order (:meth:`MetricStats.key`)."""
SUM_FIELDS = tuple(name for name in FIELDS if name != "covariates")
"""The scalar sums (a column each in the stats tables); ``covariates`` is a vector part."""
EMPTY_STATS = MetricStats(0, 0.0, 0.0)
"""No units: the start of a pool (``EMPTY_STATS + s == s``, parts included)."""


def _pooled(a: MetricStats, b: MetricStats, names: tuple[str, ...]
            ) -> tuple[float | None, ...]:
    """The part ``names`` of ``a + b``: both sides' sums added; one side's as they are when the
    other holds no units (zero units have zero sums, given or not); else not known (None)."""
    left = tuple(getattr(a, name) for name in names)
    right = tuple(getattr(b, name) for name in names)
    if None not in left and None not in right:
        return tuple(x + y for x, y in zip(left, right, strict=True))
    if a.n == 0 and None in left:
        return right
    if b.n == 0 and None in right:
        return left
    return (None,) * len(names)


def _pooled_covariates(a: MetricStats, b: MetricStats) -> CovariateSums | None:
    """The covariate vector part of ``a + b``, by the rule of :func:`_pooled`."""
    if a.covariates is not None and b.covariates is not None:
        return a.covariates + b.covariates
    if a.n == 0 and a.covariates is None:
        return b.covariates
    if b.n == 0 and b.covariates is None:
        return a.covariates
    return None


def unit_metric_stats(values: npt.ArrayLike, *, denominators: npt.ArrayLike | None = None,
                      covariates: npt.ArrayLike | None = None,
                      names: tuple[str, ...] | list[str] = ()) -> MetricStats:
    """Summarise units' values into a :class:`MetricStats`.

    Args:
        values: (n,) the metric per unit (a ratio metric's numerator; 0/1 for a proportion).
        denominators: (n,) a ratio metric's denominators, or None.
        covariates: (n, k) pre-exposure covariates, one row per unit, or None.
        names: the k covariate names (with ``covariates``).

    Returns:
        The record with ``n``, the sums, the ratio part with ``denominators`` and the
        :class:`CovariateSums` part with ``covariates``.
    """
    y = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(y)):
        raise ValueError("values contain NaN or infinity: drop or impute them first")
    ratio: dict[str, Any] = {}
    if denominators is not None:
        d = np.asarray(denominators, dtype=np.float64).ravel()
        if d.size != y.size or not np.all(np.isfinite(d)):
            raise ValueError(f"denominators need one finite value per unit ({y.size})")
        ratio = dict(zip(RATIO_SUMS, (float(d.sum()), float(d @ d), float(d @ y)), strict=True))
    vec = None
    if covariates is not None:
        vec = covariate_sums(covariates, y, names,
                             None if denominators is None else denominators)
    return MetricStats(int(y.size), float(y.sum()), float(y @ y), **ratio, covariates=vec)
