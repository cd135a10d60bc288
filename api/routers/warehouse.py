"""Warehouse-native metrics: connections (admin scope), assignment and fact sources (write
scope to change them), an experiment's refresh from its warehouse and the queries that ran.
The same services as the Data sources page and the CLI (core.warehouse)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api.deps import Admin, ExperimentId, Reader, SessionDep, Writer
from api.errors import responses
from api.schemas import (
    AssignmentSourceCreate,
    AssignmentSourceOut,
    AssignmentSourceUpdate,
    ConnectionCreate,
    ConnectionOut,
    ConnectionUpdate,
    FactSourceCreate,
    FactSourceOut,
    FactSourceUpdate,
    WarehouseRefreshOut,
    WarehouseRunOut,
)
from core.warehouse import catalog
from core.warehouse.refresh import latest_runs
from core.workflows import loads

router = APIRouter(tags=["warehouse"])

CONNECTIONS = "/warehouse/connections"
ASSIGNMENT_SOURCES = "/warehouse/assignment-sources"
FACT_SOURCES = "/warehouse/fact-sources"
SourceName = Annotated[str, Path(min_length=1, max_length=80, pattern=catalog.SNAKE,
                                 description="The connection's or source's name.")]
_WRITE = responses(400, 403, 404, 409, 413, 422)
_ONE = responses(404, 422)


# --------------------------------------------------------------------------- connections


@router.get(CONNECTIONS, response_model=list[ConnectionOut], responses=responses(403))
def list_connections(session: SessionDep, _actor: Admin) -> list[ConnectionOut]:
    """Every warehouse connection, by name (admin scope)."""
    return [ConnectionOut.model_validate(c) for c in catalog.list_connections(session)]


@router.get(f"{CONNECTIONS}/{{name}}", response_model=ConnectionOut,
            responses=responses(403, 404, 422))
def get_connection(name: SourceName, session: SessionDep, _actor: Admin) -> ConnectionOut:
    return ConnectionOut.model_validate(catalog.get_connection(session, name=name))


@router.post(CONNECTIONS, response_model=ConnectionOut, status_code=201,
             responses=responses(400, 403, 409, 413, 422))
def create_connection(body: ConnectionCreate, session: SessionDep, actor: Admin,
                      response: Response) -> ConnectionOut:
    """Add a warehouse connection (admin scope). The URL names a known engine and holds no
    credential: write each as `${ENV_VAR}`, read where the refresh runs (422 otherwise); a
    URL pointing at the app's own database needs `allow_app_database`. Audited."""
    view = catalog.create_connection(session, data=body, actor=actor)
    response.headers["Location"] = f"/api/v1{CONNECTIONS}/{view.name}"
    return ConnectionOut.model_validate(view)


@router.patch(f"{CONNECTIONS}/{{name}}", response_model=ConnectionOut, responses=_WRITE)
def update_connection(name: SourceName, body: ConnectionUpdate, session: SessionDep,
                      actor: Admin) -> ConnectionOut:
    """Change a connection's URL or its consent to the app database (admin scope; the same
    rules as at creation). Audited."""
    return ConnectionOut.model_validate(catalog.update_connection(
        session, name=name, changes=body, actor=actor))


@router.delete(f"{CONNECTIONS}/{{name}}", status_code=204, response_class=Response,
               responses=responses(403, 404, 409, 422))
def delete_connection(name: SourceName, session: SessionDep, actor: Admin) -> Response:
    """Remove a connection no source uses (admin scope; 409 while one does). Audited."""
    catalog.delete_connection(session, name=name, actor=actor)
    return Response(status_code=204)


# --------------------------------------------------------------------------- sources


@router.get(ASSIGNMENT_SOURCES, response_model=list[AssignmentSourceOut])
def list_assignment_sources(session: SessionDep, _actor: Reader) -> list[AssignmentSourceOut]:
    """Every assignment source, by name, with the experiments that read it."""
    return [AssignmentSourceOut.model_validate(s)
            for s in catalog.list_assignment_sources(session)]


@router.get(f"{ASSIGNMENT_SOURCES}/{{name}}", response_model=AssignmentSourceOut,
            responses=_ONE)
def get_assignment_source(name: SourceName, session: SessionDep,
                          _actor: Reader) -> AssignmentSourceOut:
    return AssignmentSourceOut.model_validate(catalog.get_assignment_source(session, name=name))


@router.post(ASSIGNMENT_SOURCES, response_model=AssignmentSourceOut, status_code=201,
             responses=responses(400, 403, 409, 413, 422))
def create_assignment_source(body: AssignmentSourceCreate, session: SessionDep, actor: Writer,
                             response: Response) -> AssignmentSourceOut:
    """Add an assignment source (write scope): one SELECT (or WITH … SELECT) statement in the
    warehouse's dialect returning `unit_id, timestamp, experiment_key, variant` and the
    declared dimension columns (lower_snake_case), on a known connection; its name unique
    among assignment and fact sources (409). Audited."""
    view = catalog.create_assignment_source(session, data=body, actor=actor)
    response.headers["Location"] = f"/api/v1{ASSIGNMENT_SOURCES}/{view.name}"
    return AssignmentSourceOut.model_validate(view)


@router.patch(f"{ASSIGNMENT_SOURCES}/{{name}}", response_model=AssignmentSourceOut,
              responses=_WRITE)
def update_assignment_source(name: SourceName, body: AssignmentSourceUpdate,
                             session: SessionDep, actor: Writer) -> AssignmentSourceOut:
    """Change an assignment source's connection, SQL, dimensions or covariates (write scope;
    the same rules as at creation). Audited."""
    return AssignmentSourceOut.model_validate(catalog.update_assignment_source(
        session, name=name, changes=body, actor=actor))


@router.delete(f"{ASSIGNMENT_SOURCES}/{{name}}", status_code=204, response_class=Response,
               responses=responses(403, 404, 409, 422))
def delete_assignment_source(name: SourceName, session: SessionDep, actor: Writer) -> Response:
    """Remove an assignment source no experiment reads (409 while one does). Audited."""
    catalog.delete_assignment_source(session, name=name, actor=actor)
    return Response(status_code=204)


@router.get(FACT_SOURCES, response_model=list[FactSourceOut])
def list_fact_sources(session: SessionDep, _actor: Reader) -> list[FactSourceOut]:
    """Every fact source, by name, with the metrics computed from it."""
    return [FactSourceOut.model_validate(s) for s in catalog.list_fact_sources(session)]


@router.get(f"{FACT_SOURCES}/{{name}}", response_model=FactSourceOut, responses=_ONE)
def get_fact_source(name: SourceName, session: SessionDep, _actor: Reader) -> FactSourceOut:
    return FactSourceOut.model_validate(catalog.get_fact_source(session, name=name))


@router.post(FACT_SOURCES, response_model=FactSourceOut, status_code=201,
             responses=responses(400, 403, 409, 413, 422))
def create_fact_source(body: FactSourceCreate, session: SessionDep, actor: Writer,
                       response: Response) -> FactSourceOut:
    """Add a fact source (write scope): one SELECT (or WITH … SELECT) statement returning
    `unit_id, timestamp` and the declared numeric columns (lower_snake_case), on a known
    connection; its name unique among assignment and fact sources (409). Audited."""
    view = catalog.create_fact_source(session, data=body, actor=actor)
    response.headers["Location"] = f"/api/v1{FACT_SOURCES}/{view.name}"
    return FactSourceOut.model_validate(view)


@router.patch(f"{FACT_SOURCES}/{{name}}", response_model=FactSourceOut, responses=_WRITE)
def update_fact_source(name: SourceName, body: FactSourceUpdate, session: SessionDep,
                       actor: Writer) -> FactSourceOut:
    """Change a fact source's connection, SQL or columns (write scope; the same rules as at
    creation, and a column a metric uses stays declared). Audited."""
    return FactSourceOut.model_validate(catalog.update_fact_source(
        session, name=name, changes=body, actor=actor))


@router.delete(f"{FACT_SOURCES}/{{name}}", status_code=204, response_class=Response,
               responses=responses(403, 404, 409, 422))
def delete_fact_source(name: SourceName, session: SessionDep, actor: Writer) -> Response:
    """Remove a fact source no metric is computed from (409 while one is). Audited."""
    catalog.delete_fact_source(session, name=name, actor=actor)
    return Response(status_code=204)


# --------------------------------------------------------------------------- experiments


@router.post("/experiments/{experiment_id}/warehouse/refresh",
             response_model=WarehouseRefreshOut,
             responses=responses(400, 403, 404, 409, 422, 503))
def refresh_from_warehouse(
    experiment_id: ExperimentId,
    session: SessionDep,
    actor: Writer,
    full: Annotated[bool, Query(description="Recompute every exposure day, not only the "
                                "open ones.")] = False,
) -> WarehouseRefreshOut:
    """Refresh the experiment's metrics computed from fact sources inside its warehouse (the
    generated SQL; only aggregates come back), store what changed, then a fresh results
    snapshot. 409 when it is not attached to an assignment source, has not launched or has no
    such metric; 422 when the warehouse refuses the definitions or the data (the message names
    the source and the column; nothing is written); 503 with Retry-After when the warehouse
    cannot be reached or a query ran past WAREHOUSE_STATEMENT_TIMEOUT_SECONDS."""
    report, _ = loads.refresh_from_warehouse(session, experiment_id=experiment_id, actor=actor,
                                             full=full)
    return WarehouseRefreshOut.model_validate(report)


@router.get("/experiments/{experiment_id}/warehouse/runs", response_model=list[WarehouseRunOut],
            responses=_ONE)
def warehouse_runs(experiment_id: ExperimentId, session: SessionDep,
                   _actor: Reader) -> list[WarehouseRunOut]:
    """The latest refresh's queries, one per source (the assignment source first): the exact
    SQL that ran, rows returned and scanned, seconds; empty before the first refresh."""
    return [WarehouseRunOut.model_validate(r) for r in latest_runs(session, experiment_id)]
