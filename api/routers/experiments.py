"""Experiments: list, get, create, update (optimistic concurrency), transitions, audit history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from api.body_cache import BodyCache
from api.deps import (
    CONDITIONAL_HEADERS,
    ExperimentId,
    IfMatch,
    IfNoneMatch,
    Reader,
    SessionDep,
    Writer,
    cache_headers,
    expected_version,
    not_modified,
)
from api.errors import responses
from api.schemas import (
    AuditEntryOut,
    ExperimentCreate,
    ExperimentListQuery,
    ExperimentOut,
    ExperimentPage,
    ExperimentUpdate,
    TransitionRequest,
)
from core import registry
from core.registry import ExperimentView

router = APIRouter(prefix="/experiments", tags=["experiments"])

_ETAG_HEADER = {"ETag": {"description": 'The version, e.g. "3": send it back as If-Match.',
                         "schema": {"type": "string"}}}


def _tagged(response: Response, view: ExperimentView) -> ExperimentView:
    response.headers["ETag"] = f'"{view.version}"'
    return view


LIST_CACHE_BYTES = 16 * 1024 * 1024
"""Serialized list pages each API process keeps (api.body_cache): a page of 50 is ~90 kB."""
list_pages = BodyCache(LIST_CACHE_BYTES)
"""Kept by the page's stamp (core.registry.PageIndex): ids, versions and updated_at of its
experiments and the total. A live database never gives an id back, so a stamp never comes
back with other content; tests that roll back clear it (tests/api/conftest.py)."""


@router.get(
    "",
    response_model=ExperimentPage,
    responses={**responses(422),
               200: {"headers": CONDITIONAL_HEADERS},
               304: {"description": "Not modified: the page named by If-None-Match is still "
                                    "current (no body)."}},
)
def list_experiments(
    session: SessionDep,
    _actor: Reader,
    query: Annotated[ExperimentListQuery, Query()],
    if_none_match: IfNoneMatch = None,
) -> Response:
    """Experiments matching every filter given, sorted and paginated (pages count from 1; ties
    by id in the sort's direction). The ETag names the page's content: send it back as
    If-None-Match for a 304 while no experiment on it (nor the total) has changed."""
    index = registry.find_experiments(
        session,
        status=query.status,
        owner=query.owner,
        tag=query.tag,
        search=query.q,
        include_archived=query.include_archived,
        sort=query.sort.removeprefix("-"),
        descending=query.sort.startswith("-"),
        page=query.page,
        page_size=query.page_size,
    )
    etag = f'"{index.stamp}"'
    unchanged = not_modified(etag, if_none_match)
    if unchanged is not None:
        return unchanged

    def serialize() -> bytes:
        result = registry.read_page(session, index)
        return ExperimentPage(
            items=result.items,  # type: ignore[arg-type]  # validated as ExperimentOut
            total=result.total,
            page=result.page,
            page_size=result.page_size,
            pages=result.pages,
        ).model_dump_json().encode()

    # Equal stamps name equal pages, so a kept body is served without reading the experiments.
    body = list_pages.get_or_make(index.stamp, serialize)
    return Response(body, media_type="application/json", headers=cache_headers(etag))


@router.post(
    "",
    response_model=ExperimentOut,
    status_code=201,
    responses={**responses(400, 403, 409, 413, 422), 201: {"headers": _ETAG_HEADER}},
)
def create_experiment(
    body: ExperimentCreate, session: SessionDep, actor: Writer, response: Response
) -> ExperimentView:
    """Register a new experiment in `proposed` (write scope).

    Besides the schema: variants' weights sum to 1 and their names are unique, planned_end
    is not before planned_start, named metrics exist in the catalogue and the primary metric
    is no guardrail, each of guardrail_margins names a guardrail of the experiment, a
    one-sided `alternative` points the way the primary metric calls better ("greater" when
    higher is better, "less" when lower is), and prior_lift_mean and prior_lift_sd come
    together or not at all (422 names each broken rule); a taken name gets 409.
    """
    view = registry.create_experiment(session, data=body, actor=actor)
    response.headers["Location"] = f"/api/v1/experiments/{view.id}"
    return _tagged(response, view)


@router.get(
    "/{experiment_id}",
    response_model=ExperimentOut,
    responses={**responses(404, 422),
               200: {"headers": {**CONDITIONAL_HEADERS, **_ETAG_HEADER}},
               304: {"description": "Not modified: the version named by If-None-Match is "
                                    "still current (no body)."}},
)
async def get_experiment(
    experiment_id: ExperimentId,
    session: SessionDep,
    _actor: Reader,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> ExperimentView | Response:
    """One experiment; its ETag is the version to send back when updating it (every change
    to an experiment makes a new version), and as If-None-Match for a 304 while it is current."""
    # async, the read in the thread pool: the response model is then validated on the event
    # loop rather than in a second thread hop (FastAPI validates a sync route's return there)
    view = await run_in_threadpool(registry.get_experiment, session, experiment_id=experiment_id)
    etag = f'"{view.version}"'
    unchanged = not_modified(etag, if_none_match)
    if unchanged is not None:
        return unchanged
    response.headers.update(cache_headers(etag))
    return view


@router.patch(
    "/{experiment_id}",
    response_model=ExperimentOut,
    responses={**responses(400, 403, 404, 409, 413, 422), 200: {"headers": _ETAG_HEADER}},
)
def update_experiment(
    experiment_id: ExperimentId,
    body: ExperimentUpdate,
    session: SessionDep,
    actor: Writer,
    response: Response,
    version: IfMatch,
) -> ExperimentView:
    """Change the fields sent, based on the `version` you read.

    A stale version gets 409 and changes nothing: reload, re-apply, resend. The experiment
    with the changes applied must keep the create rules (422 names each broken one).
    """
    view = registry.update_experiment(
        session,
        experiment_id=experiment_id,
        changes=body.changes(),
        expected_version=expected_version(version, body.version),
        actor=actor,
        reason=body.reason,
    )
    return _tagged(response, view)


@router.post(
    "/{experiment_id}/transitions",
    response_model=ExperimentOut,
    responses={**responses(400, 403, 404, 409, 413, 422), 200: {"headers": _ETAG_HEADER}},
)
def transition_experiment(
    experiment_id: ExperimentId,
    body: TransitionRequest,
    session: SessionDep,
    actor: Writer,
    response: Response,
    version: IfMatch,
) -> ExperimentView:
    """Launch (`running`), complete (needs a decision) or abandon (needs a reason)."""
    view = registry.transition_experiment(
        session,
        experiment_id=experiment_id,
        to_status=body.to_status,
        expected_version=expected_version(version, body.version),
        actor=actor,
        reason=body.reason,
        decision=getattr(body, "decision", None),
        learnings=body.learnings,
    )
    return _tagged(response, view)


@router.get(
    "/{experiment_id}/audit", response_model=list[AuditEntryOut], responses=responses(404, 422)
)
def audit_history(
    experiment_id: ExperimentId, session: SessionDep, _actor: Reader
) -> list[AuditEntryOut]:
    """Every change to the experiment, oldest first."""
    registry.get_experiment(session, experiment_id=experiment_id)
    records = registry.audit_history(session, experiment_id=experiment_id)
    return [AuditEntryOut.model_validate(r) for r in records]


@router.get(
    "/{experiment_id}/audit.csv",
    response_class=Response,
    responses={
        **responses(404, 422),
        200: {
            "description": "One row per changed field.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
)
def audit_history_csv(experiment_id: ExperimentId, session: SessionDep, _actor: Reader) -> Response:
    """The audit history as CSV (one row per changed field)."""
    registry.get_experiment(session, experiment_id=experiment_id)
    records = registry.audit_history(session, experiment_id=experiment_id)
    return Response(
        content=registry.audit_csv(records),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="experiment-{experiment_id}-audit.csv"'
        },
    )
