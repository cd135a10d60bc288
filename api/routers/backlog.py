"""The backlog: ranked ideas, create, re-score (RICE), promote to the registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import ExperimentId, IfMatch, Reader, SessionDep, Writer, expected_version
from api.errors import responses
from api.schemas import (
    ExperimentCreate,
    ExperimentOut,
    IdeaOut,
    PromoteRequest,
    RiceUpdate,
    SafeText,
)
from core import registry
from core.backlog import rice
from core.registry import ExperimentView

router = APIRouter(prefix="/backlog", tags=["backlog"])


@router.get("", response_model=list[IdeaOut], responses=responses(422))
def ranked_ideas(
    session: SessionDep,
    _actor: Reader,
    owner: Annotated[SafeText | None, Query(max_length=120)] = None,
    tag: Annotated[SafeText | None, Query(max_length=80)] = None,
    segment: Annotated[SafeText | None, Query(max_length=200)] = None,
) -> list[IdeaOut]:
    """Backlog ideas, best RICE score first, each with its testability check."""
    ideas = rice.rank_ideas(session, owner=owner, tag=tag, segment=segment)
    return [IdeaOut.model_validate(i, from_attributes=True) for i in ideas]


@router.post(
    "",
    response_model=ExperimentOut,
    status_code=201,
    responses=responses(400, 403, 409, 413, 422),
)
def create_idea(
    body: ExperimentCreate, session: SessionDep, actor: Writer, response: Response
) -> ExperimentView:
    """Add an idea: a proposed experiment, scored by its reach, impact, confidence, effort.

    The rules of creating an experiment apply (422 names each broken one; a taken name: 409).
    """
    view = registry.create_experiment(session, data=body, actor=actor)
    response.headers["Location"] = f"/api/v1/experiments/{view.id}"
    response.headers["ETag"] = f'"{view.version}"'
    return view


@router.patch(
    "/{experiment_id}",
    response_model=ExperimentOut,
    responses=responses(400, 403, 404, 409, 413, 422),
)
def rescore_idea(
    experiment_id: ExperimentId,
    body: RiceUpdate,
    session: SessionDep,
    actor: Writer,
    version: IfMatch,
    response: Response,
) -> ExperimentView:
    """Change some of an idea's reach, impact, confidence and effort (versioned like any edit)."""
    view = rice.edit_rice(
        session,
        experiment_id=experiment_id,
        changes=body.changes(),
        expected_version=expected_version(version, body.version),
        actor=actor,
    )
    response.headers["ETag"] = f'"{view.version}"'
    return view


@router.post(
    "/{experiment_id}/promote",
    response_model=ExperimentOut,
    responses=responses(400, 403, 404, 409, 413, 422),
)
def promote_idea(
    experiment_id: ExperimentId,
    body: PromoteRequest,
    session: SessionDep,
    actor: Writer,
    version: IfMatch,
    response: Response,
) -> ExperimentView:
    """Take an idea out of the backlog into the registry, ready for planning (it needs a
    hypothesis and a primary metric: 409 otherwise)."""
    view = rice.promote_idea(
        session,
        experiment_id=experiment_id,
        expected_version=expected_version(version, body.version),
        actor=actor,
    )
    response.headers["ETag"] = f'"{view.version}"'
    return view
