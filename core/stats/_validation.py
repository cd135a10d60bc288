"""Argument checks for the statistics functions; each raises ``ValueError`` saying what to fix."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from core.types import ALTERNATIVES, CORRECTIONS


class InsufficientDataError(ValueError):
    """The data are valid but too few for the requested method; the message says what is needed.

    Callers showing results may treat it as "not enough data yet" (e.g. a sequential test on an
    arm with fewer than 5 conversions); every other ``ValueError`` is a bad argument.
    """


def check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {', '.join(repr(a) for a in ALTERNATIVES)} "
            f"(got {alternative!r})"
        )


def check_method(method: str) -> None:
    if method not in CORRECTIONS:
        raise ValueError(
            f"method must be one of {', '.join(repr(m) for m in CORRECTIONS)} (got {method!r})"
        )


def _scalar(x: Any) -> bool:
    """A plain (or numpy) real scalar, for which the checks below skip numpy arrays (speed)."""
    return isinstance(x, (float, int, np.floating, np.integer)) and not isinstance(x, bool)


def check_alpha(alpha: Any, name: str = "alpha") -> None:
    if _scalar(alpha):
        if not 0.0 < alpha < 1.0:
            raise ValueError(
                f"{name} must lie strictly between 0 and 1 (got {alpha!r}); "
                f"e.g. 0.05 for a 5% false-positive rate"
            )
        return
    a = np.asarray(alpha, dtype=float)
    if not np.all((a > 0) & (a < 1)):
        raise ValueError(
            f"{name} must lie strictly between 0 and 1 (got {alpha!r}); "
            f"e.g. 0.05 for a 5% false-positive rate"
        )


def check_power(power: Any) -> None:
    p = np.asarray(power, dtype=float)
    if not np.all((p > 0) & (p < 1)):
        raise ValueError(
            f"power must lie strictly between 0 and 1 (got {power!r}); e.g. 0.8 for 80% power"
        )


def check_n(n: Any, name: str) -> None:
    if not isinstance(n, (int, np.integer)) and not (
        isinstance(n, (float, np.floating)) and float(n).is_integer()
    ):
        raise ValueError(f"{name} must be a whole number of units (got {n!r})")
    if n < 2:
        raise ValueError(
            f"{name} must be at least 2 (got {n!r}): a variant needs two units to "
            f"estimate its variance"
        )


def check_sd(sd: Any, name: str) -> None:
    if _scalar(sd):
        if not (math.isfinite(sd) and sd >= 0):
            raise ValueError(
                f"{name} must be a finite, non-negative standard deviation (got {sd!r})"
            )
        return
    s = np.asarray(sd, dtype=float)
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"{name} must be a finite, non-negative standard deviation (got {sd!r})")


def check_finite(value: Any, name: str) -> None:
    if _scalar(value):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number (got {value!r})")
        return
    v = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be a finite number (got {value!r})")


def check_count(x: Any, n: Any, x_name: str, n_name: str) -> None:
    if not isinstance(x, (int, np.integer)) and not (
        isinstance(x, (float, np.floating)) and float(x).is_integer()
    ):
        raise ValueError(f"{x_name} must be a whole number of conversions (got {x!r})")
    if x < 0:
        raise ValueError(f"{x_name} must be non-negative (got {x!r}): it counts conversions")
    if x > n:
        raise ValueError(
            f"{x_name} ({x!r}) cannot exceed {n_name} ({n!r}): a unit converts at most once"
        )


def check_positive(value: Any, name: str, hint: str = "") -> None:
    v = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name} must be positive (got {value!r}){hint}")


def check_probability_open(value: Any, name: str, hint: str = "") -> None:
    v = np.asarray(value, dtype=float)
    if not np.all((v > 0) & (v < 1)):
        raise ValueError(f"{name} must lie strictly between 0 and 1 (got {value!r}){hint}")


def check_variants(variants: Any) -> None:
    v = np.asarray(variants)
    if not np.all(np.equal(np.mod(v, 1), 0)) or np.any(v < 2):
        raise ValueError(
            f"variants must be a whole number >= 2 (got {variants!r}): control plus at least "
            f"one treatment"
        )


def check_weights(
    weights: Any, k: int | None = None, name: str = "weights"
) -> npt.NDArray[np.float64]:
    w = np.asarray(weights, dtype=float).ravel()
    if w.size < 2:
        raise ValueError(f"{name} needs one entry per variant, at least 2 (got {w.size})")
    if k is not None and w.size != k:
        raise ValueError(
            f"{name} has {w.size} entries but there are {k} variants: give one per variant"
        )
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"every entry of {name} must be positive (got {weights!r})")
    if not math.isclose(float(w.sum()), 1.0, rel_tol=0.0, abs_tol=1e-6):
        raise ValueError(
            f"{name} must sum to 1 (got sum {float(w.sum())!r}): divide each by their total"
        )
    return w
