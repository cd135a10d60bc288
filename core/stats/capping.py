"""Capping (winsorisation) of per-unit values before their sums are taken.

A mean metric's value per unit (a ratio metric's numerator and denominator per unit, each on
its own) is replaced by ``min(value, cap)``: values above the cap count as the cap, values at
or below it (negative ones included) are unchanged. The cap is either a ``fixed`` value or the
``percentile`` p of the values of every unit of the experiment, pooled across the variants, so
that the rule does not depend on which arm a unit is in (GrowthBook "Capping": absolute and
percentile capping, docs/app/metrics.mdx; Kohavi, Tang & Xu 2020, *Trustworthy Online
Controlled Experiments*, on winsorising outliers to reduce variance).

The percentile is the linear interpolation between order statistics that DuckDB's
``quantile_cont``, PostgreSQL's ``percentile_cont`` and Spark's ``percentile`` compute: with
the n values sorted, x[(n - 1) p] interpolated linearly (Hyndman & Fan 1996, type 7; numpy's
``method="linear"``), so every data path of :mod:`core.data` and :mod:`core.warehouse` caps at
the same number for the same units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.types import CapKind

PERCENTILE_RANGE: tuple[float, float] = (0.5, 1.0)
"""A percentile cap's p lies strictly between these (0.99 = the 99th percentile)."""


@dataclass(frozen=True)
class CapRule:
    """A capping rule: ``kind`` ``"fixed"`` with ``value`` the cap (finite, > 0), or
    ``"percentile"`` with ``value`` the pooled percentile p (0.5 < p < 1)."""

    kind: CapKind
    value: float

    def __post_init__(self) -> None:
        if self.kind == "fixed":
            if isinstance(self.value, bool) or not math.isfinite(self.value) or self.value <= 0:
                raise ValueError(
                    f"a fixed cap must be a finite number above 0 (got {self.value!r}); values "
                    "above it count as the cap")
        elif self.kind == "percentile":
            low, high = PERCENTILE_RANGE
            if isinstance(self.value, bool) or not low < self.value < high:
                raise ValueError(
                    f"a percentile cap is a fraction strictly between {low:g} and {high:g}, "
                    f"e.g. 0.99 for the 99th percentile (got {self.value!r})")
        else:
            raise ValueError(f"a cap is 'fixed' or 'percentile' (got {self.kind!r})")

    @property
    def label(self) -> str:
        """``p99``, ``p99.5`` or ``123.4``: the rule in a few characters."""
        if self.kind == "percentile":
            return f"p{self.value * 100:.10g}"
        return f"{self.value:g}"


def pooled_percentile(values: npt.ArrayLike, p: float) -> float:
    """The p-th percentile of the values of every unit, pooled across the variants.

    ``values``: one finite number per unit (at least one); ``p``: in [0, 1]. Returns
    x[(n - 1) p] of the sorted values, interpolated linearly between the two order statistics
    around it (Hyndman & Fan 1996 type 7, numpy ``percentile(method="linear")``, DuckDB
    ``quantile_cont``, PostgreSQL ``percentile_cont``)."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    if x.size == 0:
        raise ValueError("a percentile cap needs at least one unit's value")
    if not np.all(np.isfinite(x)):
        raise ValueError("values: every unit's value must be a finite number")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1] (got {p!r})")
    h = (x.size - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, x.size - 1)
    return float(x[lo] + (h - lo) * (x[hi] - x[lo]))


def cap_value(rule: CapRule, values: npt.ArrayLike | None = None) -> float:
    """The cap the rule sets: its fixed value, or the pooled percentile of ``values``."""
    if rule.kind == "fixed":
        return float(rule.value)
    if values is None:
        raise ValueError("a percentile cap needs the values of every unit")
    return pooled_percentile(values, rule.value)


def capped(values: npt.ArrayLike, cap: float) -> npt.NDArray[np.float64]:
    """Each value above ``cap`` replaced by ``cap`` (``min(value, cap)``, as SQL's LEAST)."""
    return np.minimum(np.asarray(values, dtype=float), float(cap))


@dataclass(frozen=True)
class AppliedCap:
    """The cap a load applied to a metric: ``cap`` on the per-unit value (a ratio metric's
    numerator), ``denominator_cap`` on a ratio metric's per-unit denominator, over ``units``
    units."""

    cap: float
    denominator_cap: float | None = None
    units: int = 0

    def describe(self, rule: CapRule) -> str:
        """``capped at p99 (value 123.4)``, ``capped at 500`` — the words shown beside the
        metric."""
        if rule.kind == "fixed":
            return f"capped at {rule.value:g}"
        value = f"value {self.cap:.6g}"
        if self.denominator_cap is not None:
            value += f"; denominator {self.denominator_cap:.6g}"
        return f"capped at {rule.label} ({value})"
