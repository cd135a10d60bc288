"""Liveness and database health; the only routes that answer without an API key."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from api.deps import SessionDep
from api.errors import RETRY_DOWN_SECONDS, logger, problem_response, responses
from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses=responses(503))
def health(session: SessionDep) -> Health | JSONResponse:
    """Liveness plus a database round trip: 200 when both answer, 503 otherwise."""
    try:
        session.execute(select(1))
    except SQLAlchemyError as exc:
        logger.warning("Health check: the database does not answer: %r",
                       getattr(exc, "orig", None) or exc)
        return problem_response(
            503,
            f"The database does not answer ({type(exc).__name__}): check DATABASE_URL and "
            "that the server is up.",
            kind="database-unavailable",
            instance="/health",
            headers={"Retry-After": str(RETRY_DOWN_SECONDS)},
        )
    return Health(database="ok")


@router.get("/health/live", response_model=Health, response_model_exclude_none=True)
async def live() -> Health:
    """Liveness only: the process answers (no database access, no worker thread)."""
    return Health()
