"""Results: the latest stored snapshot, the snapshot history, the cumulative series, refresh."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import (
    CONDITIONAL_HEADERS,
    ExperimentId,
    IfNoneMatch,
    Reader,
    SessionDep,
    Writer,
    cache_headers,
    not_modified,
)
from api.errors import responses
from api.schemas import SafeText
from core.analysis import results
from core.analysis.snapshot import ResultsSnapshot, SeriesPoint
from core.errors import NotFound
from core.registry import Day

router = APIRouter(prefix="/experiments/{experiment_id}/results", tags=["results"])


@router.get(
    "",
    response_model=ResultsSnapshot,
    responses={**responses(404, 422), 200: {"headers": CONDITIONAL_HEADERS},
               304: {"description": "Not modified: the snapshot named by If-None-Match is "
                                    "still the newest (no body)."}},
)
def latest_results(
    experiment_id: ExperimentId,
    session: SessionDep,
    _actor: Reader,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The newest stored snapshot, served as stored (not recomputed); send its ETag back as
    If-None-Match to get 304 while it is still the newest."""
    body = results.latest_snapshot_json(session, experiment_id=experiment_id)
    if body is None:
        raise NotFound(
            f"Experiment {experiment_id} has no results yet: load data, then POST "
            f"/api/v1/experiments/{experiment_id}/results/refresh."
        )
    etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    unchanged = not_modified(etag, if_none_match)
    if unchanged is not None:
        return unchanged
    return Response(body, media_type="application/json", headers=cache_headers(etag))


@router.get("/history", response_model=list[ResultsSnapshot], responses=responses(404, 422))
def results_history(
    experiment_id: ExperimentId,
    session: SessionDep,
    _actor: Reader,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> list[ResultsSnapshot]:
    """Stored snapshots, newest first."""
    return results.snapshot_history(session, experiment_id=experiment_id, limit=limit)


@router.get("/series", response_model=list[SeriesPoint], responses=responses(404, 422))
def results_series(
    experiment_id: ExperimentId,
    session: SessionDep,
    _actor: Reader,
    metric: Annotated[SafeText | None, Query(max_length=80)] = None,
    as_of: Annotated[
        Day | None,
        Query(description="Last day of the series (YYYY-MM-DD): from the experiment's start "
              "to today (UTC); 422 outside that range. Default: all data."),
    ] = None,
) -> list[SeriesPoint]:
    """Per day, per metric × treatment: the cumulative effect and its confidence band."""
    results.check_as_of(session, experiment_id=experiment_id, as_of=as_of)
    return results.cumulative_series(
        session, experiment_id=experiment_id, metric=metric, as_of=as_of
    )


@router.post(
    "/refresh", response_model=ResultsSnapshot, responses=responses(400, 403, 404, 409, 422)
)
def refresh_results(
    experiment_id: ExperimentId,
    session: SessionDep,
    actor: Writer,
    as_of: Annotated[
        Day | None,
        Query(
            description="Compute as of this day (YYYY-MM-DD): from the experiment's start to "
            "today (UTC); 422 outside that range. Default: all data."
        ),
    ] = None,
) -> ResultsSnapshot:
    """Recompute from the stored data and store a snapshot (none when nothing changed)."""
    return results.refresh_results(session, experiment_id=experiment_id, actor=actor, as_of=as_of)
