"""Dependencies shared by the routes: the database session, the caller, the edited version.

How a request reaches the database (so that load never jams it; see docs/api.md, "Under load
and faults"):

* A process lets at most DATABASE_POOL_SIZE requests hold a session at once (the
  :class:`DatabaseGate`); the pool has exactly that many connections, so no request ever
  waits on the pool while holding a thread. Others wait on the event loop, at most
  API_QUEUE_TIMEOUT_SECONDS and at most API_MAX_QUEUED of them; past that they get a 503 with
  Retry-After at once.
* A route's session is closed in the route's own worker thread as soon as the route returns
  (:class:`DatabaseRoute`), so its connection is back in the pool before the response is
  serialised, and never left "idle in transaction".
* The API key is checked from the in-process cache (core.api_keys) without a session; only
  a key not seen for a few seconds is looked up, through the request's session.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Path, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.errors import Overloaded
from api.schemas import MAX_INT
from core import api_keys
from core.auth import Actor
from core.config import Settings
from core.errors import Conflict, InvalidInput
from db.session import get_engine, session_factory, writer

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_REQUEST_SESSION = "experimentos_request_session"
"""Marks, in Session.info, a session this module opened for a request (and so may close)."""


class DatabaseGate:
    """Admits at most `slots` requests of this process to the database at once.

    A request beyond them waits (on the event loop, holding no thread) up to `timeout`
    seconds; when `max_queued` already wait, or the wait runs out, it is refused with
    :class:`Overloaded` (503, Retry-After) instead of queueing without bound.
    """

    def __init__(self, slots: int, *, timeout: float, max_queued: int) -> None:
        self._limiter = anyio.CapacityLimiter(slots)
        self.timeout = timeout
        self.max_queued = max_queued

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseGate:
        return cls(
            settings.database_pool_size,
            timeout=settings.api_queue_timeout_seconds,
            max_queued=settings.api_max_queued,
        )

    async def enter(self) -> object:
        """Take a slot (waiting if need be); returns the token to :meth:`leave` with."""
        token = object()
        limiter = self._limiter
        if limiter.available_tokens >= 1:  # the common case: no cancel scope, no wait
            with contextlib.suppress(anyio.WouldBlock):
                limiter.acquire_on_behalf_of_nowait(token)
                return token
        if limiter.statistics().tasks_waiting >= self.max_queued:
            raise Overloaded(
                f"{self.max_queued} requests already wait for the database in this process"
            )
        with anyio.move_on_after(self.timeout):
            await limiter.acquire_on_behalf_of(token)
            return token
        raise Overloaded(f"no database slot came free within {self.timeout:g} s")

    def leave(self, token: object) -> None:
        self._limiter.release_on_behalf_of(token)

    @property
    def in_use(self) -> int:
        return int(self._limiter.borrowed_tokens)


@functools.lru_cache
def _sessions(write: bool) -> sessionmaker[Session]:
    engine = get_engine()
    return session_factory(writer(engine) if write else engine)


def release_session(session: Session) -> None:
    """Close `session` in the calling thread if it is one opened for a request."""
    if session.info.get(_REQUEST_SESSION):
        session.close()


@asynccontextmanager
async def request_session(request: Request) -> AsyncIterator[Session]:
    """The request's session: the one already open for it, or a new one through the gate.

    Write methods get sessions whose SQLite transactions begin IMMEDIATE (db.session.writer).
    Tests point the app at their own session by overriding :func:`get_session`; that session
    is used as it is (never gated or closed here).
    """
    open_one: Session | None = getattr(request.state, "db_session", None)
    if open_one is not None:
        yield open_one
        return
    override = request.app.dependency_overrides.get(get_session)
    if override is not None:
        yield override()
        return
    gate: DatabaseGate = request.app.state.database_gate
    token = await gate.enter()
    session = _sessions(request.method not in SAFE_METHODS)()
    session.info[_REQUEST_SESSION] = True
    request.state.db_session = session
    try:
        yield session
    finally:
        request.state.db_session = None
        try:
            if session.in_transaction():
                # Hand the connection back from a thread of its own (it may do IO), shielded so
                # a client that hangs up cannot leave the connection checked out.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(
                        session.close, limiter=anyio.CapacityLimiter(1)
                    )
            else:
                session.close()  # nothing checked out: no IO
        finally:
            gate.leave(token)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request (through the gate); the services own their transactions."""
    async with request_session(request) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
"""Function scope: the session (and its gate slot) is released before the response is sent."""


def _released_after(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """`endpoint`, closing the request's session in its own thread right after it returns."""
    if inspect.iscoroutinefunction(endpoint) or getattr(endpoint, "_releases_session", False):
        return endpoint

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return endpoint(*args, **kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session):
                    release_session(value)

    run._releases_session = True  # type: ignore[attr-defined]
    return run


class DatabaseRoute(APIRoute):
    """A route whose (sync) endpoint gives its database connection back before the response
    is serialised: serialising needs a worker thread, and a request must not hold a
    connection while it waits for one."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _released_after(endpoint), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler; after a write on an experiment this process checks its latest results
        snapshot again (api/read_cache.py), whatever the write's outcome."""
        handle = super().get_route_handler()
        if not set(self.methods) - SAFE_METHODS or "{experiment_id}" not in self.path:
            return handle

        async def handle_write(request: Request) -> Response:
            try:
                return await handle(request)
            finally:
                request.app.state.snapshots.forget(request.path_params.get("experiment_id"))

        return handle_write


class DatabaseRouter(APIRouter):
    """A router that makes every route included in it a :class:`DatabaseRoute` (the routers
    themselves stay plain ``APIRouter``s)."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["route_class_override"] = DatabaseRoute
        super().add_api_route(path, endpoint, **kwargs)


api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from `python -m core.cli create-api-key --name <n> --scope <s>`.",
)


def _authenticate(session: Session, key: str | None) -> Actor:
    try:
        return api_keys.authenticate(session, key=key)
    finally:
        release_session(session)  # the route, if it needs the database, begins afresh


async def current_actor(
    request: Request, key: Annotated[str | None, Security(api_key_header)]
) -> Actor:
    """The key's owner (`api:<key name>`), with the role its scope grants; 401 otherwise.

    A key accepted in the last few seconds is not looked up again (core.api_keys), so this
    needs no session, no thread and no database; while the database is down a key this
    process accepted recently still is (core.api_keys.authenticate).
    """
    actor = api_keys.recently_accepted(key)
    if actor is None:
        async with request_session(request) as session:
            actor = await run_in_threadpool(_authenticate, session, key)
    return actor


Reader = Annotated[Actor, Depends(current_actor)]


def current_editor(actor: Reader) -> Actor:
    """A caller allowed to write (write or admin key); 403 for a read key."""
    actor.require("editor", "change data through the API (use a key with the write scope)")
    return actor


Writer = Annotated[Actor, Depends(current_editor)]

ExperimentId = Annotated[int, Path(ge=1, le=MAX_INT, description="The experiment's id.")]

ETAG_PATTERN = r'^(W/)?"?[0-9]{1,10}"?$'
_ETAG = re.compile(ETAG_PATTERN)


def if_match(
    if_match: Annotated[
        str | None,
        Header(
            max_length=64,
            pattern=ETAG_PATTERN,
            description='Optional check: the version you read, as returned in the ETag header '
            '(e.g. "3"); it must name the same version as `version` in the body.',
        ),
    ] = None,
) -> int | None:
    """The version named by an If-Match header, if one was sent."""
    if if_match is None:
        return None
    value = if_match.strip()
    if not _ETAG.match(value):
        raise InvalidInput(
            f'If-Match: send the version you read, as in the ETag header, e.g. If-Match: "3" '
            f"(got {if_match[:20]!r})"
        )
    return int(value.removeprefix("W/").strip('"'))


IfMatch = Annotated[int | None, Depends(if_match)]


def expected_version(header: int | None, body: int) -> int:
    """The version the client edited: `version` in the body; an If-Match header, when sent,
    must name the same one (if they differ, at least one is stale: 409, nothing changes)."""
    if header is not None and header != body:
        raise Conflict(
            f"version: If-Match says {header} but the body says {body}, so at least one of them "
            "is not the current version: reload the record and send the version you read"
        )
    return body
