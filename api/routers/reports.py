"""Reports: generate an experiment's PDF report, list its reports, download one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from api.deps import ExperimentId, Reader, SessionDep, Writer
from api.errors import responses
from api.schemas import MAX_INT, ReportOut
from core import registry, reports
from core.artifacts import ArtifactStore, get_store
from core.reports import ReportArtifactView

router = APIRouter(tags=["reports"])

ReportId = Annotated[int, Path(ge=1, le=MAX_INT, description="The report's id.")]


def artifact_store(request: Request) -> ArtifactStore:
    """The artifact store the app's settings name (ARTIFACTS_URL)."""
    return get_store(request.app.state.settings)


StoreDep = Annotated[ArtifactStore, Depends(artifact_store)]

_LOCATION = {"Location": {"description": "Where to download the PDF.",
                          "schema": {"type": "string"}}}
_PDF: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The PDF, as stored.",
        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            "ETag": {"description": "The PDF's SHA-256 (hex), quoted.",
                     "schema": {"type": "string"}},
            "Content-Disposition": {"description": 'attachment; filename="<name>.pdf"',
                                    "schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/experiments/{experiment_id}/reports",
    response_model=ReportOut,
    status_code=201,
    responses={**responses(403, 404, 409, 422), 201: {"headers": _LOCATION}},
)
def generate_report(
    experiment_id: ExperimentId,
    session: SessionDep,
    actor: Writer,
    store: StoreDep,
    response: Response,
) -> ReportArtifactView:
    """Build the experiment's PDF report, store it and record it (write scope; ~0.5 s)."""
    view = reports.generate_report(session, experiment_id=experiment_id, actor=actor,
                                   store=store)
    response.headers["Location"] = f"/api/v1/reports/{view.id}"
    return view


@router.get(
    "/experiments/{experiment_id}/reports",
    response_model=list[ReportOut],
    responses=responses(404, 422),
)
def list_reports(
    experiment_id: ExperimentId, session: SessionDep, _actor: Reader
) -> list[ReportArtifactView]:
    """The experiment's recorded reports, newest first."""
    registry.get_experiment(session, experiment_id=experiment_id)
    return reports.list_reports(session, experiment_id=experiment_id)


@router.get(
    "/reports/{report_id}",
    response_class=Response,
    responses={**responses(404, 422, 500), **_PDF},
)
def download_report(
    report_id: ReportId, session: SessionDep, _actor: Reader, store: StoreDep
) -> Response:
    """The report's PDF, checked against the SHA-256 recorded when it was written."""
    download = reports.download_report(session, report_id=report_id, store=store)
    return Response(
        content=download.content,
        media_type="application/pdf",
        headers={
            "ETag": f'"{download.report.sha256}"',
            "Content-Disposition": f'attachment; filename="{download.report.filename}"',
        },
    )
