"""Multiple-comparison corrections of p-values."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from core.stats import _validation as v
from core.types import Correction


def adjust_pvalues(p_values: Any, method: Correction = "holm") -> npt.NDArray[np.float64]:
    """Adjust p-values for multiple comparisons.

    Args:
        p_values: array-like of p-values in [0, 1] (no NaN), any length (empty gives empty).
        method: "holm" (Holm 1979, family-wise error rate) or "bh" (Benjamini & Hochberg 1995,
            false discovery rate).

    Returns:
        Adjusted p-values as a float numpy array, in the input order; compare each to alpha.

    Formulas (= R ``p.adjust(p, method = "holm" | "BH")``, statsmodels ``multipletests``), with
    p_(1) <= ... <= p_(m) sorted:

    * Holm: p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)).
    * BH:   p~_(i) = min(1, min_{j >= i} m p_(j) / j).
    """
    v.check_method(method)
    p = np.asarray(p_values, dtype=float).ravel()
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p_values must all lie in [0, 1] with no NaN (got {p_values!r})")
    m = p.size
    if m == 0:
        return p.copy()
    if method == "holm":
        order = np.argsort(p, kind="stable")
        adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    else:
        order = np.argsort(p, kind="stable")[::-1]
        adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out
