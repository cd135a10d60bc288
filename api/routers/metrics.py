"""The metrics catalogue: list, get, create."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import Reader, SessionDep, Writer
from api.errors import responses
from api.schemas import MetricCreate, MetricOut
from core import catalogue

router = APIRouter(prefix="/metrics", tags=["metrics"])

MetricName = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[a-z][a-z0-9_]*$")]


@router.get("", response_model=list[MetricOut])
def list_metrics(session: SessionDep, _actor: Reader) -> list[MetricOut]:
    """Every catalogue metric, by name."""
    return [MetricOut.model_validate(m) for m in catalogue.list_metrics(session)]


@router.get("/{name}", response_model=MetricOut, responses=responses(404, 422))
def get_metric(name: MetricName, session: SessionDep, _actor: Reader) -> MetricOut:
    return MetricOut.model_validate(catalogue.get_metric(session, name=name))


@router.post(
    "", response_model=MetricOut, status_code=201, responses=responses(400, 403, 409, 413, 422)
)
def create_metric(
    body: MetricCreate, session: SessionDep, actor: Writer, response: Response
) -> MetricOut:
    """Add a metric to the catalogue (write scope). Audited as the key's owner."""
    view = catalogue.create_metric(session, data=body, actor=actor)
    response.headers["Location"] = f"/api/v1/metrics/{view.name}"
    return MetricOut.model_validate(view)

