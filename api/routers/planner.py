"""The planner: sample size, power, MDE and duration, each the Planner page's own plan
(:mod:`core.planning`), so the API, the page and the backlog give the same answer (stateless).

Each is computed on the planner's own threads (api.compute), never on those the database
routes run on; when they are all busy and too many wait, 503 with Retry-After."""

from __future__ import annotations

from fastapi import APIRouter

from api.compute import PlannerPool
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
    MeanMde,
    MeanPower,
    PowerRequest,
    PowerResult,
    SampleSizeRequest,
    SampleSizeResult,
)
from core import planning
from core.errors import InvalidInput

router = APIRouter(prefix="/planner", tags=["planner"], responses=responses(413, 422, 503))


def _inputs(body: SampleSizeRequest | PowerRequest | MdeRequest) -> planning.PlanInputs:
    """The request as the planner's inputs (the API's names for the same things)."""
    common = {"alpha": body.alpha, "alternative": body.alternative, "weights": body.split,
              "daily_traffic": body.daily_traffic, "exposure": body.exposure}
    if not isinstance(body, BinomialPower | MeanPower):  # the power route solves for it
        common["power"] = body.power
    if isinstance(body, BinomialSampleSize | BinomialPower | BinomialMde):
        effect = {} if isinstance(body, BinomialMde) else {"mde": body.mde,
                                                           "relative": body.relative}
        return planning.make_inputs(kind="binomial", baseline=body.baseline, **effect, **common)
    common["r_squared"] = body.r_squared
    if isinstance(body, MeanMde):
        return planning.make_inputs(kind="mean", baseline=0.0, sd=body.sd, relative=False,
                                    **common)
    return planning.make_inputs(kind="mean", baseline=body.baseline_mean or 0.0, sd=body.sd,
                                mde=body.mde, relative=body.relative, **common)


@router.post("/sample-size", response_model=SampleSizeResult)
async def sample_size(
    body: SampleSizeRequest, _actor: Reader, pool: PlannerPool
) -> SampleSizeResult:
    """Units in the control arm needed to detect `mde` with the given power; with
    `daily_traffic`, the days too."""
    return await pool.run(_sample_size, body)


def _sample_size(body: SampleSizeRequest) -> SampleSizeResult:
    plan = planning.plan_sample_size(_inputs(body))
    return SampleSizeResult(sample_size=plan.n_control, n_per_variant=plan.n_per_variant,
                            total=plan.total, days=plan.days)


@router.post("/power", response_model=PowerResult)
async def power(body: PowerRequest, _actor: Reader, pool: PlannerPool) -> PowerResult:
    """Power to detect `mde` with `n` units in the control arm."""
    return await pool.run(_power, body)


def _power(body: PowerRequest) -> PowerResult:
    plan = planning.plan_for_sample(_inputs(body), n_per_variant=body.n)
    return PowerResult(power=plan.power)


@router.post("/mde", response_model=MdeResult)
async def mde(body: MdeRequest, _actor: Reader, pool: PlannerPool) -> MdeResult:
    """Smallest absolute effect detectable with `n` control units at the given power."""
    return await pool.run(_mde, body)


def _mde(body: MdeRequest) -> MdeResult:
    plan = planning.plan_for_units(_inputs(body), n_control=body.n)
    if plan.mde_absolute is None:
        raise InvalidInput(plan.summary)
    return MdeResult(mde=plan.mde_absolute, relative_mde=plan.mde_relative)


@router.post("/duration", response_model=DurationResult)
async def duration(body: DurationRequest, _actor: Reader, pool: PlannerPool) -> DurationResult:
    """Days until every arm reaches `n_per_variant` units (the smallest share binds)."""
    return await pool.run(_duration, body)


def _duration(body: DurationRequest) -> DurationResult:
    return DurationResult(days=planning.duration(
        body.n_per_variant, daily_traffic=body.daily_units, exposure=body.exposure,
        weights=body.weights, variants=body.variants))
