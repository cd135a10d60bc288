"""The ExperimentOS sidecar API: ``uvicorn api.main:app --port 8000``.

Versioned under /api/v1; OpenAPI at /openapi.json, interactive docs at /docs. Every route but
/health needs an X-API-Key (create one with ``python -m core.cli create-api-key``), checked
before the request's body is read (api.middleware.RequestGuard).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from api.compute import ComputePool
from api.deps import DatabaseGate, UploadGate, get_session
from api.errors import install_error_handlers, logger, problem_media_type, responses
from api.middleware import RequestGuard, upload_paths
from api.openapi import finish_document
from api.routers import (
    backlog,
    data,
    experiments,
    health,
    knowledge,
    metrics,
    planner,
    reports,
    results,
    segments,
    warehouse,
)
from core import spool
from core.config import Settings, get_settings
from db.migrate import SchemaNotCurrent, schema_problem
from db.session import get_api_engine, is_unavailable

API_PREFIX = "/api/v1"
DESCRIPTION = """Everything external tools need from ExperimentOS: the registry, metric data,
results, the metrics catalogue, the planner, the backlog, reports and the warehouse definitions
(connections, assignment and fact sources, refreshes), calling the same services as the app.

Send an API key in the `X-API-Key` header (a read key reads; write and admin keys also write).
Errors are RFC 9457 problem details (`application/problem+json`). Updates send the version
they were based on as `version` in the body (an `If-Match` header, if sent, must name the same
one); a stale one gets 409, as does a request the record's current state refuses."""


_gc_frozen = False


def check_schema(app: FastAPI) -> None:
    """Refuse to start (:class:`SchemaNotCurrent`, naming the command to run) unless the
    database is at the latest migration: the API never migrates. A database that does not
    answer yet is not a reason to refuse: requests get 503 until it does. An app whose
    sessions come from a dependency override (tests) has no database of its own to check."""
    if get_session in app.dependency_overrides:
        return
    try:
        problem = schema_problem(get_api_engine())
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        logger.warning("The database did not answer at start-up, so its schema was not "
                       "checked (%s); requests get 503 until it answers.", exc)
        return
    if problem is not None:
        raise SchemaNotCurrent(problem)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At start-up: check the schema (:func:`check_schema`), claim this process's scratch
    folder, removing those that processes killed before left behind (core.spool), size the
    worker threads (API_THREADS) and, once per process, move the objects built at import
    (modules, routes, schemas: ~170 000) out of the cyclic garbage collector (``gc.freeze``).
    Its full passes over them otherwise stall every request in flight, by up to ~100 ms each
    under load."""
    await anyio.to_thread.run_sync(check_schema, app)
    await anyio.to_thread.run_sync(spool.process_dir)
    settings: Settings = app.state.settings
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
    global _gc_frozen
    if not _gc_frozen:
        gc.collect()
        gc.freeze()
        _gc_frozen = True
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; `settings` defaults to the process-wide ones."""
    settings = settings or get_settings()
    app = FastAPI(
        title="ExperimentOS API", version="1", description=DESCRIPTION, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.database_gate = DatabaseGate.from_settings(settings)
    app.state.upload_gate = UploadGate(settings)
    app.state.planner_pool = ComputePool.planner(settings)
    install_error_handlers(app)
    app.include_router(health.router)
    v1 = APIRouter(prefix=API_PREFIX, responses=responses(400, 401, 503))
    for module in (experiments, data, results, segments, metrics, planner, backlog, knowledge,
                   reports, warehouse):
        v1.include_router(module.router)
    app.include_router(v1)
    app.add_middleware(
        RequestGuard,
        max_json_bytes=settings.api_max_json_kb * 1024,
        max_upload_bytes=settings.api_max_upload_mb * 1024 * 1024,
        uploads=upload_paths(app.routes),
    )
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["X-API-Key", "If-Match", "If-None-Match", "Content-Type"],
            expose_headers=["ETag", "Location"],
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = finish_document(problem_media_type(schema))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()
