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

Flat, one number a column (what a SQL ``GROUP BY`` returns: a pre-aggregated file, a SQL source,
the warehouse's records), the same sums are named after the covariates
(:func:`covariate_columns`): ``sum_x__<a>``, ``sum_xx__<a>__<b>`` (a before b in the names'
order, or the other way round; ``sum_xx__<a>__<a>`` the sum of squares), ``sum_xy__<a>`` and
``sum_xden__<a>``; :meth:`CovariateSums.columns` writes them, :meth:`CovariateSums.from_columns`
reads them back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

SEPARATOR = "__"
"""Between the parts of a flat column's name (a covariate's name may not contain it)."""
X, XX, XY, XDEN = "sum_x__", "sum_xx__", "sum_xy__", "sum_xden__"
COLUMN_PREFIXES: tuple[str, ...] = (X, XX, XY, XDEN)
"""The flat columns' prefixes (module docstring)."""


def covariate_columns(names: Sequence[str], *, ratio: bool) -> tuple[str, ...]:
    """The flat column of every sum of ``names``' :class:`CovariateSums`, in field order:
    ``sum_x__<a>`` per name, ``sum_xx__<a>__<b>`` per pair a <= b (the upper triangle, row by
    row), ``sum_xy__<a>``, and with ``ratio`` ``sum_xden__<a>``."""
    k = len(names)
    return (*(X + a for a in names),
            *(f"{XX}{names[j]}{SEPARATOR}{names[m]}" for j in range(k) for m in range(j, k)),
            *(XY + a for a in names), *((XDEN + a for a in names) if ratio else ()))


def is_covariate_column(name: str) -> bool:
    """Whether ``name`` is a flat covariate column (by its prefix)."""
    return name.startswith(COLUMN_PREFIXES)


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

    def columns(self) -> dict[str, float]:
        """The sums as flat columns (:func:`covariate_columns`), in field order."""
        names = covariate_columns(self.names, ratio=self.sum_xden is not None)
        values = (*self.sum_x, *self.sum_xx, *self.sum_xy, *(self.sum_xden or ()))
        return dict(zip(names, values, strict=True))

    @classmethod
    def from_columns(cls, values: Mapping[str, float | None], *, ratio: bool
                     ) -> CovariateSums | None:
        """The sums from flat columns (:func:`covariate_columns`; other keys are ignored).

        Args:
            values: column -> number, None where empty. The covariates are the names of the
                ``sum_x__`` columns given, in their order.
            ratio: the metric is a ratio (its ``sum_xden__`` columns are then required, and
                refused otherwise).

        Returns:
            None when no flat covariate column holds a number, else the sums. ValueError
            naming each missing, unknown or non-numeric column.
        """
        given = {k: v for k, v in values.items() if is_covariate_column(k) and v is not None}
        if not given:
            return None
        names = [k[len(X):] for k in given if k.startswith(X)]
        if not names:
            raise ValueError(f"give each covariate's {X}<name> column (the covariates are "
                             f"named by them); got only {', '.join(given)}")
        expected = covariate_columns(names, ratio=ratio)
        if len(set(expected)) < len(expected) or "" in names:
            raise ValueError(f"the covariate names {', '.join(map(repr, names))} make two "
                             f"sums share one column name: rename them")
        problems = []
        known: set[str] = set()
        pairs: list[tuple[str, ...]] = []
        k = len(names)
        for j in range(k):
            for m in range(j, k):
                a, b = names[j], names[m]
                forms = (f"{XX}{a}{SEPARATOR}{b}", f"{XX}{b}{SEPARATOR}{a}")
                present = [f for f in dict.fromkeys(forms) if f in given]
                if len(present) > 1:
                    problems.append(f"{present[0]} and {present[1]} are the same sum: give one")
                known.update(forms)
                pairs.append(forms)
        wanted = [*(XY + a for a in names), *((XDEN + a for a in names) if ratio else ())]
        known.update(X + a for a in names)
        known.update(wanted)
        missing = [c for c in wanted if c not in given]
        missing += [forms[0] for forms in pairs if not any(f in given for f in forms)]
        if missing:
            problems.append(f"missing {', '.join(missing)} (each covariate needs its "
                            f"{X}, {XY}{' and ' + XDEN if ratio else ''} column and each pair "
                            f"its {XX}<a>{SEPARATOR}<b> cross-product)")
        if not ratio and any(c.startswith(XDEN) for c in given):
            problems.append(f"{XDEN} columns belong to ratio metrics only")
        unknown = [c for c in given if c not in known and not (not ratio and c.startswith(XDEN))]
        if unknown:
            problems.append(f"{', '.join(unknown)} name(s) no covariate of the {X} columns "
                            f"({', '.join(names)})")
        nan = [c for c, v in given.items() if not math.isfinite(v)]
        if nan:
            problems.append(f"{', '.join(nan)} must be finite numbers")
        if problems:
            raise ValueError("; ".join(problems))

        def pick(forms: tuple[str, ...]) -> float:
            return next(float(given[f]) for f in forms if f in given)

        return cls(tuple(names), tuple(float(given[X + a]) for a in names),
                   tuple(pick(forms) for forms in pairs),
                   tuple(float(given[XY + a]) for a in names),
                   tuple(float(given[XDEN + a]) for a in names) if ratio else None)

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
