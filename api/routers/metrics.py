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
    """Add a metric to the catalogue (write scope). Audited as the key's owner.

    Rules between fields, each refused with 422 naming it: a metric loaded from files gives
    its `kind`; only a ratio metric takes a numerator and a denominator, and a ratio metric
    names both (two different columns, neither the metric's own name). A metric computed in
    the warehouse names an existing `fact_source` and its `aggregation` (`kind`, if given,
    follows from it: sum and count are mean, any is binomial, mean and ratio are ratio);
    sum, mean and ratio name a `value_column`, only a ratio a different
    `denominator_column`, both declared by the fact source; `cuped_days` on any aggregation
    but a quantile (a mean's or ratio's pre-period is its numerator's); a file metric takes
    none of the warehouse fields, a warehouse metric no numerator or denominator."""
    view = catalogue.create_metric(session, data=body, actor=actor)
    response.headers["Location"] = f"/api/v1/metrics/{view.name}"
    return MetricOut.model_validate(view)

