"""Segment slices: grouping a dimension's values into the top N plus "(other)".

Results per dimension value (country, platform, ...) are exploratory: test every slice, then
correct across the slices with :func:`core.stats.adjust_pvalues` (Holm for the family-wise error
rate, BH for the false discovery rate); tests/core/stats/test_simulations.py shows by seeded A/A
simulation that either keeps its error rate at alpha.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

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
