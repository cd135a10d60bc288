"""Segment slices: grouping a dimension's values into the top N plus "(other)".

Results per dimension value (country, platform, ...) are exploratory: test every slice, then
correct across the slices with :func:`core.stats.adjust_pvalues` (Holm for the family-wise error
rate, BH for the false discovery rate); tests/core/stats/test_simulations.py shows by seeded A/A
simulation that either keeps its error rate at alpha.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scipy import special

OTHER = "(other)"


def top_n_groups(units: Mapping[str, float], n: int, *, other: str = OTHER) -> dict[str, str]:
    """Map each dimension value to itself if it is among the ``n`` largest, else to ``other``.

    Args:
        units: units (or any non-negative size) per dimension value, e.g. {"US": 5200, ...}.
        n: how many values keep their own slice, >= 1; ties are broken by value name so the
            grouping is deterministic.
        other: label of the pooled remainder; must not be one of the values.

    Returns:
        ``{value: group}`` for every key of ``units``; when there are at most ``n`` values
        every value is its own group (no ``other``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1 of slices to keep (got {n!r})")
    for value, size in units.items():
        if not isinstance(value, str):
            raise ValueError(f"dimension values must be strings (got {value!r})")
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not (
            math.isfinite(size) and size >= 0
        ):
            raise ValueError(f"units for {value!r} must be a non-negative number (got {size!r})")
    if other in units and len(units) > n:
        raise ValueError(
            f"{other!r} is itself a dimension value: pass another label for the remainder"
        )
    ranked = sorted(units, key=lambda k: (-units[k], k))
    keep = set(ranked[:n])
    return {k: (k if k in keep else other) for k in units}


@dataclass(frozen=True)
class EffectDifferenceResult:
    """Difference between a slice's treatment effect and the rest of the experiment's.

    ``difference`` = ``slice_effect`` - ``rest_effect``; ``se`` its standard error; ``p_value``
    two-sided; ``ci_low`` / ``ci_high`` the two-sided (1 - alpha) interval of the difference.
    """

    slice_effect: float
    rest_effect: float
    difference: float
    se: float
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    alpha: float


def effect_difference_test(
    slice_effect: float,
    slice_se: float,
    rest_effect: float,
    rest_se: float,
    *,
    alpha: float = 0.05,
) -> EffectDifferenceResult:
    """Test whether a slice's treatment effect differs from the effect in the rest of the units
    (the test of interaction of Altman & Bland 2003, "Interaction revisited: the difference
    between two estimates", BMJ 326:219).

    Args:
        slice_effect: treatment minus control inside the slice (any scale: a mean difference,
            a difference of proportions or of ratios).
        slice_se: its standard error, > 0.
        rest_effect: the same effect over every unit outside the slice (the complement).
        rest_se: its standard error, > 0.
        alpha: level of the interval, in (0, 1).

    Returns:
        :class:`EffectDifferenceResult` with z = (d_slice - d_rest) / sqrt(se_slice^2 +
        se_rest^2) and its two-sided normal p-value: the slice and its complement hold disjoint
        units, so the two estimates are independent. Equals the treatment x in-slice
        interaction of an OLS with heteroscedasticity-robust (HC2) errors on the unit data.
    """
    values = (slice_effect, slice_se, rest_effect, rest_se)
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in values):
        raise ValueError(f"effects and standard errors must be finite numbers (got {values!r})")
    if slice_se <= 0 or rest_se <= 0:
        raise ValueError("standard errors must be > 0: a slice or its complement with no "
                         f"variation cannot be compared (got {slice_se!r}, {rest_se!r})")
    if isinstance(alpha, bool) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1 (got {alpha!r})")
    diff = float(slice_effect) - float(rest_effect)
    se = math.sqrt(float(slice_se) ** 2 + float(rest_se) ** 2)
    z = diff / se
    p = math.erfc(abs(z) / math.sqrt(2.0))  # = 2 * (1 - Phi(|z|))
    half = float(special.ndtri(1.0 - alpha / 2.0)) * se
    return EffectDifferenceResult(float(slice_effect), float(rest_effect), diff, se, z, p,
                                  diff - half, diff + half, float(alpha))
