"""Every error the API returns, in one shape: RFC 9457 problem details (+ an `errors` list).

Domain errors carry their HTTP status (core.errors); request validation, HTTP errors, the
database failing to serve (503 with Retry-After) and anything unexpected are mapped here and
nowhere else. No response ever holds a stack trace.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from core.errors import DomainError, StorageUnavailable, WarehouseUnavailable
from db.session import is_busy, is_unavailable

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:experimentos:problem:"
logger = logging.getLogger("api")
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]-]*): (.+)$", re.DOTALL)
Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]
RETRY_BUSY_SECONDS = 1
"""Retry-After when this process has too many requests in flight, or SQLite a writer."""
RETRY_DOWN_SECONDS = 5
"""Retry-After when the database does not answer."""
RETRY_WAREHOUSE_SECONDS = 60
"""Retry-After when a team's warehouse cannot be reached or a query there timed out."""
RETRY_STORAGE_SECONDS = 60
"""Retry-After when the artifact store is full, read-only or failing (an operator must act)."""


NOT_UTF8 = (
    "The request body is not UTF-8: it holds NUL bytes, as JSON encoded in UTF-16 or UTF-32 "
    "does. Send the JSON encoded as UTF-8 (RFC 8259)."
)
"""Why a JSON body holding a NUL byte is refused (api.middleware.RequestGuard)."""


class Overloaded(Exception):
    """This API process has more requests waiting for the database than it lets queue."""


class ProblemItem(BaseModel):
    location: str | None = Field(
        description="Where the problem is, e.g. `body.variants` or `query.page`; null if global."
    )
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="A URN naming the kind of problem.")
    title: str = Field(description="The HTTP status phrase.")
    status: int
    detail: str = Field(description="What went wrong and how to fix it.")
    instance: str | None = Field(default=None, description="The path of the request.")
    errors: list[ProblemItem] = Field(default_factory=list)


_DESCRIPTIONS = {
    400: "Malformed request: the body is not valid JSON.",
    401: "Missing, unknown or revoked API key.",
    403: "The key's scope does not allow this (a read key cannot write).",
    404: "No such resource.",
    409: "Conflict with the record's current state: a stale version (someone changed it "
    "first), a name already taken, or a move its state refuses (e.g. launching without a "
    "hypothesis); the detail says how to resolve it.",
    413: "The request body is larger than API_MAX_JSON_KB (a JSON body) or API_MAX_UPLOAD_MB "
    "(a file upload), or an uploaded file holds more than UPLOAD_MAX_DECOMPRESSED_MB, "
    "UPLOAD_MAX_ROWS or UPLOAD_MAX_COLUMNS allow (`upload-too-large`).",
    422: "The input failed validation; `errors` lists each problem.",
    500: "A stored artifact no longer matches its recorded checksum, or an unexpected error.",
    503: "The database does not answer (`database-unavailable`), is busy with another "
    "writer (`database-busy`), this server has too many requests in flight "
    "(`overloaded`), a team's warehouse cannot be reached or timed out "
    "(`warehouse-unavailable`), or the artifact store is full (`storage-full`), refuses "
    "writes (`storage-read-only`) or fails (`storage-unavailable`): retry after the "
    "Retry-After seconds.",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for error codes, all answering with a Problem."""
    return {code: {"model": Problem, "description": _DESCRIPTIONS[code]} for code in codes}


def problem_response(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: list[ProblemItem] | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    phrase = HTTPStatus(status).phrase
    body = Problem(
        type=TYPE_BASE + (kind or phrase.lower().replace(" ", "-").replace("'", "")),
        title=phrase,
        status=status,
        detail=detail,
        instance=instance,
        errors=errors or [],
    )
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _domain_items(problems: list[str]) -> list[ProblemItem]:
    items = []
    for text in problems:
        match = _FIELD_PREFIX.match(text)
        if match:
            items.append(ProblemItem(location=match.group(1), message=match.group(2)))
        else:
            items.append(ProblemItem(location=None, message=text))
    return items


def _location(loc: tuple[Any, ...] | list[Any]) -> str | None:
    return ".".join(str(part) for part in loc) or None


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": 'APIKey header="X-API-Key"'} if exc.http_status == 401 else None
    if isinstance(exc, WarehouseUnavailable):
        logger.warning("Warehouse unavailable on %s %s: %s", request.method, request.url.path,
                       exc.message)
        headers = {"Retry-After": str(RETRY_WAREHOUSE_SECONDS)}
    elif isinstance(exc, StorageUnavailable):
        logger.warning("Artifact store fault on %s %s: %s (cause: %r)", request.method,
                       request.url.path, exc.message, exc.__cause__, exc_info=exc.__cause__)
        headers = {"Retry-After": str(RETRY_STORAGE_SECONDS)}
    return problem_response(
        exc.http_status,
        exc.message,
        kind=_kebab(type(exc).__name__),
        errors=_domain_items(exc.problems),
        instance=request.url.path,
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    invalid_json = [e for e in errors if e.get("type") == "json_invalid"]
    if invalid_json:
        reason = (invalid_json[0].get("ctx") or {}).get("error", "invalid JSON")
        return problem_response(
            400,
            f"The request body is not valid JSON ({reason}): send a JSON object.",
            kind="malformed-json",
            errors=[ProblemItem(location="body", message=str(reason))],
            instance=request.url.path,
        )
    items = [
        ProblemItem(location=_location(e.get("loc", ())), message=str(e.get("msg", "invalid")))
        for e in errors
    ]
    summary = "; ".join(f"{i.location}: {i.message}" if i.location else i.message for i in items)
    return problem_response(
        422,
        f"The request is invalid: {summary}",
        kind="validation-error",
        errors=items,
        instance=request.url.path,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    if status == 400 and detail == "There was an error parsing the body":
        detail = "The request body could not be parsed: send a JSON object (numbers in range)."
        kind = "malformed-json"
    elif status == 400 and detail == NOT_UTF8:
        kind = "malformed-json"
    else:
        kind = None
    if status == 404 and detail == "Not Found":
        detail = f"There is nothing at {request.url.path}: see /docs for the routes."
    headers = exc.headers
    if status == 405:
        allowed = _allowed_methods(request)
        headers = {**(headers or {}), "Allow": allowed}
        detail = f"{request.method} is not allowed on {request.url.path}: use {allowed}."
    return problem_response(status, detail, kind=kind, instance=request.url.path, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method any route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _overloaded(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        503,
        f"The server is busy ({exc}): retry in {RETRY_BUSY_SECONDS} s.",
        kind="overloaded",
        instance=request.url.path,
        headers={"Retry-After": str(RETRY_BUSY_SECONDS)},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database could not serve the request: 503 with Retry-After; else unexpected."""
    if is_busy(exc):
        detail = (
            "The database is busy with another write (SQLite allows one writer at a time) "
            f"and it did not finish in time: retry in {RETRY_BUSY_SECONDS} s. Nothing was "
            "changed."
        )
        return problem_response(
            503,
            detail,
            kind="database-busy",
            instance=request.url.path,
            headers={"Retry-After": str(RETRY_BUSY_SECONDS)},
        )
    if is_unavailable(exc):
        logger.warning("Database unavailable on %s %s: %s", request.method,
                       request.url.path, type(exc).__name__)
        return problem_response(
            503,
            f"The database does not answer ({type(exc).__name__}): retry in "
            f"{RETRY_DOWN_SECONDS} s. A change you sent was not applied unless a retry "
            "finds it stored.",
            kind="database-unavailable",
            instance=request.url.path,
            headers={"Retry-After": str(RETRY_DOWN_SECONDS)},
        )
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        500,
        "An unexpected error occurred on the server; it has been logged. Nothing you sent "
        "caused it: retry later or report it.",
        instance=request.url.path,
    )


_HANDLERS: tuple[tuple[type[Exception], Handler], ...] = (
    (DomainError, _domain_error),
    (RequestValidationError, _validation_error),
    (StarletteHTTPException, _http_error),
    (Overloaded, _overloaded),
    (SQLAlchemyError, _database_error),
    (Exception, _unexpected),
)
"""Every error the API answers, and how: the one mapping of errors to HTTP statuses."""


def install_error_handlers(app: FastAPI) -> None:
    for kind, handler in _HANDLERS:
        app.add_exception_handler(kind, handler)


async def problem_for(request: Request, exc: Exception) -> JSONResponse:
    """The answer the handlers give `exc`, for code that runs outside them (middleware)."""
    handler = next(handler for kind, handler in _HANDLERS if isinstance(exc, kind))
    return await handler(request, exc)


def problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Document every 4xx/5xx response of the OpenAPI `schema` as application/problem+json."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if str(code)[0] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema
