"""The planner: sample size, power, MDE and duration, calling core.stats (stateless)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter

from api.deps import Reader
from api.errors import responses
from api.schemas import (
    BinomialMde,
    BinomialPower,
    BinomialSampleSize,
    DurationRequest,
    DurationResult,
    MdeRequest,
    MdeResult,
    PowerRequest,
    PowerResult,
    SampleSizeRequest,
    SampleSizeResult,
)
from core import stats
from core.errors import InvalidInput

router = APIRouter(prefix="/planner", tags=["planner"], responses=responses(413, 422))

_COMMON = ("alpha", "alternative", "ratio", "variants")
_LARGEST = 2**53


def _calculate(function: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Call a core.stats planner function; its ValueErrors become 422 with its message."""
    try:
        with np.errstate(all="ignore"):
            value = float(function(*args, **kwargs))
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not math.isfinite(value) or abs(value) > _LARGEST:
        raise InvalidInput(
            "No finite answer for these inputs (the effect is too small, or the sample too "
            "small, to reach the power asked for): change mde, n or power."
        )
    return value


def _common(body: Any) -> dict[str, Any]:
    return {name: getattr(body, name) for name in _COMMON}


@router.post("/sample-size", response_model=SampleSizeResult)
def sample_size(body: SampleSizeRequest, _actor: Reader) -> SampleSizeResult:
    """Units in the control arm needed to detect `mde` with the given power."""
    if isinstance(body, BinomialSampleSize):
        n = _calculate(
            stats.sample_size_proportion, body.baseline, body.mde, relative=body.relative,
            power=body.power, **_common(body),
        )
    else:
        n = _calculate(
            stats.sample_size_mean, body.sd, body.mde, baseline_mean=body.baseline_mean,
            relative=body.relative, power=body.power, **_common(body),
        )
    return SampleSizeResult(sample_size=int(n))


@router.post("/power", response_model=PowerResult)
def power(body: PowerRequest, _actor: Reader) -> PowerResult:
    """Power to detect `mde` with `n` units in the control arm."""
    if isinstance(body, BinomialPower):
        value = _calculate(
            stats.power_proportion, body.baseline, body.mde, body.n, relative=body.relative,
            **_common(body),
        )
    else:
        value = _calculate(
            stats.power_mean, body.sd, body.mde, body.n, baseline_mean=body.baseline_mean,
            relative=body.relative, **_common(body),
        )
    return PowerResult(power=value)


@router.post("/mde", response_model=MdeResult)
def mde(body: MdeRequest, _actor: Reader) -> MdeResult:
    """Smallest absolute effect detectable with `n` control units at the given power."""
    if isinstance(body, BinomialMde):
        value = _calculate(
            stats.mde_proportion, body.baseline, body.n, power=body.power, **_common(body)
        )
        return MdeResult(mde=value, relative_mde=value / body.baseline)
    value = _calculate(stats.mde_mean, body.sd, body.n, power=body.power, **_common(body))
    return MdeResult(mde=value, relative_mde=None)


@router.post("/duration", response_model=DurationResult)
def duration(body: DurationRequest, _actor: Reader) -> DurationResult:
    """Days until every arm reaches `n_per_variant` units."""
    days = _calculate(
        stats.duration_days, body.n_per_variant, body.daily_units, exposure=body.exposure,
        variants=body.variants, weights=body.weights,
    )
    return DurationResult(days=int(days))
