"""The ASGI middleware that guards a request before FastAPI reads a byte of its body.

FastAPI reads (and parses, on the event loop) a request's body before it solves any dependency,
the API key's among them, so a key checked by a dependency is checked too late: a client with
no key could make the process read and parse a body of any size. :class:`RequestGuard` runs
first, on the raw ASGI messages (docs/api.md, "Under load and faults"):

1. A request under ``/api/`` is authenticated from its ``X-API-Key`` header
   (:func:`api.deps.authenticate`) before its body is read: a missing, unknown or revoked key
   gets 401 at once, a key that cannot be checked 503, both problem+json as from the routes.
   The caller is left in the request's state for :class:`api.deps.ApiKeyAuth`.
   ``/health``, ``/health/live``, ``/docs`` and ``/openapi.json`` need no key.
2. The body is capped: ``API_MAX_UPLOAD_MB`` on a route that takes a file upload,
   ``API_MAX_JSON_KB`` on every other one. A ``Content-Length`` over the cap gets 413 before a
   byte is read; a body without one is counted as it arrives and refused with 413 as soon as
   it passes the cap, so no request ever holds more than its cap in memory.
3. A JSON body is UTF-8 (RFC 8259 §8.1): one holding a NUL byte, as UTF-16 and UTF-32 JSON
   always does and UTF-8 JSON never can, is refused with 400 saying so.

A body left unread after such an answer is read and dropped by the server (uvicorn), never
kept: the client gets the answer at once and may stop sending.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi.params import Form
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ACTOR_STATE, authenticate
from api.errors import NOT_UTF8, problem_for, problem_response

KEYED_PREFIX = "/api/"
"""Requests under this path need a key; the health checks and the documentation do not."""


def upload_paths(routes: Sequence[BaseRoute]) -> tuple[re.Pattern[str], ...]:
    """The path patterns of the routes that take a file upload (a form body)."""
    return tuple(
        route.path_regex for route in routes
        if isinstance(route, APIRoute) and route.body_field is not None
        and isinstance(route.body_field.field_info, Form)
    )


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit % (1024 * 1024) == 0 else f"{limit // 1024} KB"


class RequestGuard:
    """Authenticate, then cap the body, before the application reads it (module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_json_bytes: int,
        max_upload_bytes: int,
        uploads: Sequence[re.Pattern[str]],
    ) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes
        self.uploads = tuple(uploads)

    def _too_large(self, upload: bool) -> str:
        if upload:
            return (f"The upload is larger than the {_size(self.max_upload_bytes)} limit "
                    "(API_MAX_UPLOAD_MB): send a smaller file.")
        return (f"The request body is larger than the {_size(self.max_json_bytes)} limit for "
                "JSON bodies (API_MAX_JSON_KB): send less.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(KEYED_PREFIX):
            request = Request(scope)
            try:
                actor = await authenticate(request)
            except Exception as exc:  # noqa: BLE001 - answered as the routes answer it
                await (await problem_for(request, exc))(scope, receive, send)
                return
            scope.setdefault("state", {})[ACTOR_STATE] = actor
        upload = any(pattern.match(path) for pattern in self.uploads)
        limit = self.max_upload_bytes if upload else self.max_json_bytes
        if _content_length(scope) > limit:
            response = problem_response(413, self._too_large(upload), instance=path)
            await response(scope, receive, send)
            return
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                body: bytes = message.get("body", b"")
                seen += len(body)
                if seen > limit:
                    raise HTTPException(413, self._too_large(upload))
                if not upload and b"\x00" in body:
                    raise HTTPException(400, NOT_UTF8)
            return message

        await self.app(scope, capped, send)


def _content_length(scope: Scope) -> int:
    """The declared body size; 0 when none is declared (a body streamed in chunks)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
