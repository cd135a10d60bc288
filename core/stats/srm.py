"""Sample-ratio mismatch: do assignment counts match the planned traffic split?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from core.stats import _validation as v


@dataclass(frozen=True)
class SrmResult:
    """Chi-square goodness-of-fit of observed counts vs planned weights.

    ``expected`` holds the expected counts (total * weight) in the input order; ``flagged`` is
    ``p_value < threshold``.
    """

    statistic: float
    df: int
    p_value: float
    flagged: bool
    threshold: float
    expected: tuple[float, ...]
    observed: tuple[int, ...]


def srm_test(counts: Any, weights: Any, *, threshold: float = 0.001) -> SrmResult:
    """Sample-ratio-mismatch check (Pearson chi-square goodness of fit).

    Args:
        counts: units assigned to each variant, non-negative whole numbers, at least 2 entries,
            total > 0.
        weights: planned traffic share of each variant, same length, each > 0, summing to 1.
        threshold: flag when p < threshold, in (0, 1); default 0.001 (SRM checks run on every
            experiment, so a strict level keeps false alarms rare; Fabijan et al. 2019,
            "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD).

    Returns:
        :class:`SrmResult` with statistic = sum (O - E)^2 / E, df = k - 1 and the chi-square
        upper-tail p-value (= R ``chisq.test(x, p = weights)``).
    """
    c = np.asarray(counts, dtype=float).ravel()
    if c.size < 2:
        raise ValueError(f"counts needs one entry per variant, at least 2 (got {c.size})")
    if not np.all(np.isfinite(c)) or np.any(c < 0) or np.any(c != np.round(c)):
        raise ValueError(f"counts must be non-negative whole numbers (got {counts!r})")
    if c.sum() <= 0:
        raise ValueError("counts are all zero: there is nothing to check yet")
    w = v.check_weights(weights, c.size)
    v.check_alpha(threshold, "threshold")
    expected = c.sum() * w
    statistic = float(np.sum((c - expected) ** 2 / expected))
    df = int(c.size - 1)
    p = float(stats.chi2.sf(statistic, df))
    return SrmResult(
        statistic=statistic,
        df=df,
        p_value=p,
        flagged=bool(p < threshold),
        threshold=float(threshold),
        expected=tuple(float(e) for e in expected),
        observed=tuple(int(x) for x in c),
    )
