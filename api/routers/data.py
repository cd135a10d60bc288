"""Metric data: upload a file for an experiment, or load it from the experiment's SQL source."""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile

from api.deps import ExperimentId, SessionDep, Writer
from api.errors import responses
from core.data.ingestion import IngestionReport, ingest_file
from core.data.metric_sources import ingest_sql

router = APIRouter(prefix="/experiments/{experiment_id}/data", tags=["data"])

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _file_name(upload: UploadFile) -> str:
    """The client's file name without folders or odd characters (it names the file in errors)."""
    name = _SAFE_NAME.sub("_", Path(upload.filename or "").name).strip("._")
    return name[:120] or "upload.csv"


@router.post(
    "", response_model=IngestionReport, responses=responses(400, 403, 404, 409, 413, 422)
)
def upload_data(
    experiment_id: ExperimentId,
    file: Annotated[UploadFile, File(description="A user-level or pre-aggregated CSV/Parquet.")],
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
    """Load metric data (all or nothing; loading the same data twice changes nothing).

    The file must be a CSV or Parquet file of a user-level or pre-aggregated load for the
    experiment's variants and metrics, on days from its launch (422 says what is wrong; 409
    before launch). The body is limited to API_MAX_UPLOAD_MB. Refresh the results afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="experimentos-upload-") as folder:
        path = Path(folder) / _file_name(file)
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, length=1024 * 1024)
        return ingest_file(
            session, path=path, experiment_id=experiment_id, kind=kind, day=day, actor=actor
        )


@router.post(
    "/sql-refresh",
    response_model=IngestionReport,
    responses=responses(400, 403, 404, 409, 422),
)
def refresh_from_sql(
    experiment_id: ExperimentId, session: SessionDep, actor: Writer
) -> IngestionReport:
    """Run the experiment's SQL source inside its database and load the rows it returns."""
    return ingest_sql(session, experiment_id=experiment_id, actor=actor)
