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

    def __post_init__(self) -> None:
        for part, names in (("covariate", COVARIATE_SUMS), ("ratio", RATIO_SUMS)):
            given = [getattr(self, name) is not None for name in names]
            if any(given) and not all(given):
                raise ValueError(
                    f"MetricStats: give all of {', '.join(names)} or none (the {part} sums)")

    @property
    def has_covariate(self) -> bool:
        return self.sum_x is not None

    @property
    def has_ratio(self) -> bool:
        return self.sum_den is not None

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
        return tuple(getattr(self, name) for name in FIELDS)

    def __add__(self, other: MetricStats) -> MetricStats:
        if not isinstance(other, MetricStats):
            return NotImplemented
        cov = _pooled(self, other, COVARIATE_SUMS)
        den = _pooled(self, other, RATIO_SUMS)
        return MetricStats(self.n + other.n, self.sum + other.sum,
                           self.sum_squares + other.sum_squares, *cov, *den)


FIELDS = tuple(f.name for f in fields(MetricStats))
"""The names of every :class:`MetricStats` field, in order (:meth:`MetricStats.key`)."""
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
