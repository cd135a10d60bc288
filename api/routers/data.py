"""Metric data: upload a file for an experiment, or load it from the experiment's SQL source;
either way a fresh results snapshot follows, as on the Results page (the same services)."""

from __future__ import annotations

import functools
from datetime import date
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, File, Form, Request, UploadFile

from api.deps import ExperimentId, SessionDep, UploadSlot, Writer
from api.errors import responses
from core.data.ingestion import IngestionReport
from core.workflows import loads

router = APIRouter(prefix="/experiments/{experiment_id}/data", tags=["data"])


@router.post(
    "", response_model=IngestionReport, responses=responses(400, 403, 404, 409, 413, 422)
)
async def upload_data(
    request: Request,
    experiment_id: ExperimentId,
    file: Annotated[UploadFile, File(description="A user-level or pre-aggregated CSV/Parquet.")],
    slot: UploadSlot,
    session: SessionDep,
    actor: Writer,
    kind: Annotated[
        Literal["auto", "user", "aggregate"],
        Form(description="`auto` tells user-level (unit_id) from pre-aggregated (n, sum) files."),
    ] = "auto",
    day: Annotated[
        date | None, Form(description="Day of a user-level file without a `date` column.")
    ] = None,
) -> IngestionReport:
    """Load metric data (all or nothing; loading the same data twice changes nothing), then
    store a fresh results snapshot (`GET .../results` serves it).

    The file must be a .csv, .csv.gz or .parquet file of a user-level or pre-aggregated load
    for the experiment's variants and metrics, on days from its launch (422 says what is wrong;
    409 before launch). The body is limited to API_MAX_UPLOAD_MB; a file holding more than
    UPLOAD_MAX_DECOMPRESSED_MB once decompressed, UPLOAD_MAX_ROWS rows or UPLOAD_MAX_COLUMNS
    columns gets 413 before it is parsed. At most UPLOAD_MAX_PARALLEL uploads are parsed at once
    per process, on threads of their own.
    """
    load = functools.partial(loads.load_upload, session, experiment_id=experiment_id,
                             filename=file.filename, data=file.file, kind=kind, day=day,
                             actor=actor, limits=loads.upload_limits(request.app.state.settings))
    report, _ = await anyio.to_thread.run_sync(load, limiter=slot.threads)
    return report


@router.post(
    "/sql-refresh",
    response_model=IngestionReport,
    responses=responses(400, 403, 404, 409, 422),
)
def refresh_from_sql(
    experiment_id: ExperimentId, session: SessionDep, actor: Writer
) -> IngestionReport:
    """Run the experiment's SQL source inside its database, load the rows it returns, then
    store a fresh results snapshot."""
    report, _ = loads.refresh_from_source(session, experiment_id=experiment_id, actor=actor)
    return report
