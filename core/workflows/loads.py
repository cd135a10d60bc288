"""The data loads an editor can start (an uploaded file, the experiment's SQL source, or its
warehouse), each followed by a stored results snapshot. The Results page, the API's data
routes and the CLI all load through here.
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session

from core import spool
from core.analysis import results
from core.analysis.snapshot import ResultsSnapshot
from core.auth import Actor
from core.config import Settings, get_settings
from core.data import metric_sources
from core.data.ingestion import IngestionReport, ProgressCallback, ingest_file
from core.data.reading import UploadLimits, check_upload_limits
from core.errors import InvalidInput
from core.types import FileKind
from core.warehouse.refresh import WarehouseRefreshReport
from core.warehouse.refresh import refresh_from_warehouse as pull_from_warehouse

UPLOAD_SUFFIXES = (".csv", ".parquet", ".csv.gz")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def upload_name(filename: str | None) -> str:
    """The client's file name without folders or odd characters (it names the file in errors
    and the audit entry)."""
    name = _UNSAFE.sub("_", Path(filename or "").name).strip("._")
    return name[:120] or "upload.csv"


def upload_limits(settings: Settings | None = None) -> UploadLimits:
    """UPLOAD_MAX_DECOMPRESSED_MB, UPLOAD_MAX_ROWS and UPLOAD_MAX_COLUMNS of `settings`
    (default: the process's)."""
    settings = settings or get_settings()
    return UploadLimits(max_bytes=settings.upload_max_decompressed_mb * 1024 * 1024,
                        max_rows=settings.upload_max_rows,
                        max_columns=settings.upload_max_columns)


def load_upload(
    session: Session,
    *,
    experiment_id: int,
    filename: str | None,
    data: bytes | IO[bytes],
    actor: Actor,
    kind: FileKind = "auto",
    day: date | None = None,
    progress: ProgressCallback | None = None,
    limits: UploadLimits | None = None,
) -> tuple[IngestionReport, ResultsSnapshot]:
    """Load an uploaded CSV/Parquet file (its bytes, or a stream of them) into the experiment
    (all or nothing, see :func:`core.data.ingestion.ingest_file`; ``kind`` and ``day`` as
    there), then store a fresh results snapshot. The Results page and ``POST
    /experiments/{id}/data`` both load through here.

    A file over `limits` (default: the settings', :func:`upload_limits`) is refused with
    :class:`~core.errors.UploadTooLarge` before it is parsed or the database is touched."""
    actor.require("editor", "load metric data")
    name = upload_name(filename)
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        raise InvalidInput(f"file: {name} must be a .csv, .csv.gz or .parquet file")
    with spool.scratch_dir("upload-") as folder:
        path = folder / name
        with path.open("wb") as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                shutil.copyfileobj(data, out, length=1024 * 1024)
        check_upload_limits(path, limits or upload_limits())
        report = ingest_file(session, path=path, experiment_id=experiment_id, actor=actor,
                             kind=kind, day=day, progress=progress)
    snapshot = results.refresh_results(session, experiment_id=experiment_id, actor=actor)
    return report, snapshot


def refresh_from_source(
    session: Session,
    *,
    experiment_id: int,
    actor: Actor,
    progress: ProgressCallback | None = None,
) -> tuple[IngestionReport, ResultsSnapshot]:
    """Re-run the experiment's SQL metric source, then store a fresh results snapshot."""
    report = metric_sources.ingest_sql(session, experiment_id=experiment_id, actor=actor,
                                       progress=progress)
    snapshot = results.refresh_results(session, experiment_id=experiment_id, actor=actor)
    return report, snapshot


def refresh_from_warehouse(
    session: Session,
    *,
    experiment_id: int,
    actor: Actor,
    full: bool = False,
) -> tuple[WarehouseRefreshReport, ResultsSnapshot]:
    """Refresh the experiment's fact-source metrics from its warehouse (the exposure days
    still open; every day with ``full``; see :func:`core.warehouse.refresh
    .refresh_from_warehouse`), then store a fresh results snapshot. The Data sources page,
    ``POST /experiments/{id}/warehouse/refresh`` and ``python -m core.cli refresh-warehouse``
    all refresh through here."""
    report = pull_from_warehouse(session, experiment_id=experiment_id, actor=actor, full=full)
    snapshot = results.refresh_results(session, experiment_id=experiment_id, actor=actor)
    return report, snapshot
