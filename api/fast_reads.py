"""The two polled reads served straight from memory: ``GET /api/v1/experiments/{id}`` and
``GET /api/v1/experiments/{id}/results``.

A pure ASGI layer, inside the app's middleware (CORS, the body-size limit, the 500 handler),
in front of FastAPI's routing. A request is answered here when all of these hold, and passed on
to the routes, unchanged, otherwise:

* it is a plain GET of one of the two paths (a canonical id, no query string);
* its X-API-Key is one this process accepted in the last few seconds (core.api_keys — the same
  check the routes' Reader dependency makes first);
* the experiment's stamp, read now (db.stamps: one light query beside the pool, no thread), is
  the one the cached document was checked against (experiment), or names a snapshot whose
  document is cached (results).

What it sends is what the route sends for the same request: the same bytes and headers
(``ETag`` for an experiment). Everything else — a missing or unknown key, a 404, a changed
experiment, a database that cannot be read — goes through the routes, which build, store and
answer as they always do (problem+json errors, the pool gate, 503s). The OpenAPI document is
the routes'.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from api.schemas import MAX_INT
from core import api_keys

PREFIX = "/api/v1/experiments/"
_PATH = re.compile(r"([1-9][0-9]{0,9})(/results)?")
_JSON = (b"content-type", b"application/json")


class CachedReads:
    """Serve cached experiment and results reads without FastAPI's routing (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(PREFIX)
            and not scope["query_string"]
            and not scope.get("root_path")
        ):
            answer = await self._cached(scope)
            if answer is not None:
                headers, body = answer
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _cached(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
        match = _PATH.fullmatch(scope["path"], len(PREFIX))
        if match is None:
            return None
        experiment_id = int(match.group(1))
        if experiment_id > MAX_INT or not _accepted(scope):
            return None
        state = scope["app"].state
        stamp = await state.stamps.stamp(experiment_id)
        if stamp is None:
            return None
        if match.group(2):  # …/results
            if stamp.snapshot_id is None:
                return None
            body = state.snapshots.body(stamp.snapshot_id)
            if body is None:
                return None
            return [(b"content-length", b"%d" % len(body)), _JSON], body
        read = state.experiments.served(experiment_id, stamp)
        if read is None:
            return None
        return [(b"etag", b'"%d"' % read.version), (b"content-length", b"%d" % len(read.body)),
                _JSON], read.body


def _accepted(scope: Scope) -> bool:
    """Whether the request's X-API-Key (the first one, as the routes read it) was accepted by
    this process in the last few seconds."""
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return api_keys.recently_accepted(value.decode("latin-1")) is not None
    return False
