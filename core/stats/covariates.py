"""The covariate-vector part of :class:`core.stats.MetricStats`: cross-products of several
pre-exposure covariates, for regression adjustment (Lin 2013) from sufficient statistics.

For ``k`` named covariates x_1..x_k (the metric's own pre-period value, numeric unit attributes,
stratum indicators) a set of units is summarised by

* ``sum_x[j]`` = sum x_j,
* ``sum_xx`` = sum x_j x_l for j <= l (the upper triangle of X'X, row by row: k(k+1)/2 sums),
* ``sum_xy[j]`` = sum x_j y (y the metric; a ratio metric's numerator),
* ``sum_xden[j]`` = sum x_j den (ratio metrics only: the denominator).

With ``n``, sum y and sum y^2 (and a ratio's denominator sums) held by :class:`MetricStats`,
these are every number the per-arm regression of y on the covariates needs: X'X, X'y and y'y of
the design [1, X]. Sums add, so disjoint units (days, arms' shards) pool with ``+``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt


def _floats(values: tuple[float, ...] | list[float], what: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"CovariateSums: {what} must be finite numbers (got {values!r})")
    return out


@dataclass(frozen=True)
class CovariateSums:
    """Cross-product sums of ``names`` (k covariates) over a set of units (module docstring).

    ``sum_xden`` is given for a ratio metric and None otherwise. ``a + b`` pools disjoint units
    of the same covariates (same names, same order).
    """

    names: tuple[str, ...]
    sum_x: tuple[float, ...]
    sum_xx: tuple[float, ...]
    sum_xy: tuple[float, ...]
    sum_xden: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        names = tuple(self.names)
        k = len(names)
        if k == 0:
            raise ValueError("CovariateSums: name at least one covariate")
        if len(set(names)) != k or not all(isinstance(s, str) and s for s in names):
            raise ValueError(f"CovariateSums: covariate names must be distinct, non-empty "
                             f"strings (got {names!r})")
        object.__setattr__(self, "names", names)
        for field, size in (("sum_x", k), ("sum_xx", k * (k + 1) // 2), ("sum_xy", k),
                            ("sum_xden", k)):
            value = getattr(self, field)
            if value is None:
                continue
            if len(value) != size:
                raise ValueError(f"CovariateSums: {field} needs {size} sums for {k} covariates "
                                 f"(got {len(value)})")
            object.__setattr__(self, field, _floats(value, field))
        diag = np.diag(self.xx)
        if np.any(diag < 0):
            raise ValueError("CovariateSums: a covariate's sum of squares cannot be negative")

    @property
    def k(self) -> int:
        """The number of covariates."""
        return len(self.names)

    @cached_property
    def x(self) -> npt.NDArray[np.float64]:
        """sum x_j as a vector (k,)."""
        return np.asarray(self.sum_x, dtype=np.float64)

    @cached_property
    def xx(self) -> npt.NDArray[np.float64]:
        """X'X, the k x k symmetric matrix of sum x_j x_l."""
        k = len(self.names)
        m = np.zeros((k, k))
        m[np.triu_indices(k)] = self.sum_xx
        return m + np.triu(m, 1).T

    @cached_property
    def xy(self) -> npt.NDArray[np.float64]:
        """sum x_j y as a vector (k,)."""
        return np.asarray(self.sum_xy, dtype=np.float64)

    @cached_property
    def xden(self) -> npt.NDArray[np.float64] | None:
        """sum x_j den as a vector (k,); None unless a ratio metric's."""
        return None if self.sum_xden is None else np.asarray(self.sum_xden, dtype=np.float64)

    def key(self) -> tuple[object, ...]:
        """Every field, flattened in declaration order (fingerprints, comparisons)."""
        return (self.names, self.sum_x, self.sum_xx, self.sum_xy, self.sum_xden)

    def __add__(self, other: CovariateSums) -> CovariateSums:
        if not isinstance(other, CovariateSums):
            return NotImplemented
        if other.names != self.names:
            raise ValueError(f"CovariateSums: cannot pool different covariates "
                             f"({self.names!r} and {other.names!r})")
        if (self.sum_xden is None) != (other.sum_xden is None):
            raise ValueError("CovariateSums: cannot pool a ratio metric's sums (with sum_xden) "
                             "with a mean metric's")

        def add(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
            return tuple(u + v for u, v in zip(a, b, strict=True))

        den = (None if self.sum_xden is None or other.sum_xden is None
               else add(self.sum_xden, other.sum_xden))
        return CovariateSums(self.names, add(self.sum_x, other.sum_x),
                             add(self.sum_xx, other.sum_xx), add(self.sum_xy, other.sum_xy),
                             den)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (the database column); :meth:`from_json` reads it back."""
        return {"names": list(self.names), "sum_x": list(self.sum_x),
                "sum_xx": list(self.sum_xx), "sum_xy": list(self.sum_xy),
                "sum_xden": None if self.sum_xden is None else list(self.sum_xden)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> CovariateSums:
        """The sums from :meth:`to_json`'s dict; ValueError on a malformed one."""
        try:
            den = data.get("sum_xden")
            return cls(tuple(data["names"]), tuple(data["sum_x"]),  # type: ignore[arg-type]
                       tuple(data["sum_xx"]), tuple(data["sum_xy"]),  # type: ignore[arg-type]
                       None if den is None else tuple(den))  # type: ignore[arg-type]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"CovariateSums: malformed stored sums ({exc})") from exc


def covariate_sums(x: npt.ArrayLike, y: npt.ArrayLike, names: tuple[str, ...] | list[str],
                   den: npt.ArrayLike | None = None) -> CovariateSums:
    """Summarise units' covariates.

    Args:
        x: (n, k) array of finite covariate values, one row per unit.
        y: (n,) the metric (a ratio metric's numerator), same units in the same order.
        names: the k covariate names.
        den: (n,) a ratio metric's denominators, or None.

    Returns:
        :class:`CovariateSums` computed with ``X.sum`` and ``X.T @ X`` / ``X.T @ y``.
    """
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim == 1:
        xa = xa[:, None]
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.ndim != 2 or xa.shape[0] != ya.size or xa.shape[1] != len(names):
        raise ValueError(f"x must have one row per unit ({ya.size}) and one column per "
                         f"covariate ({len(names)}); got shape {xa.shape}")
    if not np.all(np.isfinite(xa)):
        raise ValueError("covariates contain NaN or infinity: drop or impute them first")
    xx = xa.T @ xa
    k = xa.shape[1]
    d = None
    if den is not None:
        da = np.asarray(den, dtype=np.float64).ravel()
        if da.size != ya.size:
            raise ValueError(f"den needs one value per unit ({ya.size}); got {da.size}")
        d = tuple((xa.T @ da).tolist())
    return CovariateSums(tuple(names), tuple(xa.sum(axis=0).tolist()),
                         tuple(xx[np.triu_indices(k)].tolist()), tuple((xa.T @ ya).tolist()), d)
