"""Dependencies shared by the routes: the database session, the caller, the edited version.

How a request reaches the database (so that load never jams it; see docs/api.md, "Under load
and faults"):

* A process lets at most DATABASE_POOL_SIZE requests hold a session at once (the
  :class:`DatabaseGate`), and of them at most API_READ_SLOTS reads (1: reads of one process
  take turns; measured in docs/benchmarks.md, "The PostgreSQL tail"); the pool has exactly
  DATABASE_POOL_SIZE connections and there are more worker threads (API_THREADS), so no
  thread ever waits on the pool. Other requests wait on the event loop, at most
  API_QUEUE_TIMEOUT_SECONDS and at most API_MAX_QUEUED of them; past that they get a 503 with
  Retry-After at once.
* :data:`SessionDep` has function scope: the session is closed, and its slot given back, as
  soon as the route returns, before the response is serialised.
* The API key is checked before the request's body is read (api.middleware.RequestGuard),
  from the in-process cache (core.api_keys) first; only a key not seen for a few seconds is
  looked up, on a session of its own through the gate.
* A read request's session sends PostgreSQL its queries and nothing else (db.session.reader:
  no BEGIN, no ROLLBACK; no ping for a connection used in the last second).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Header, Path, Request, Response, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.errors import Overloaded
from api.schemas import MAX_INT
from core import api_keys
from core.auth import Actor
from core.config import Settings
from core.errors import Conflict, InvalidInput
from db.session import get_api_engine, reader, session_factory, writer

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Slots:
    """What a request holds: the limiters it took a slot of (see :meth:`DatabaseGate.leave`)."""

    __slots__ = ("limiters",)

    def __init__(self) -> None:
        self.limiters: list[anyio.CapacityLimiter] = []


class DatabaseGate:
    """Admits at most `slots` requests of this process to the database at once and, of them,
    at most `read_slots` reads (None: no limit of their own).

    A request beyond them waits (on the event loop, holding no thread) up to `timeout`
    seconds in all; when `max_queued` already wait, or the wait runs out, it is refused with
    :class:`Overloaded` (503, Retry-After) instead of queueing without bound.
    """

    def __init__(self, slots: int, *, timeout: float, max_queued: int,
                 waits_for: str = "the database", read_slots: int | None = None) -> None:
        self._limiter = anyio.CapacityLimiter(slots)
        self._readers = (anyio.CapacityLimiter(read_slots)
                         if read_slots is not None and read_slots < slots else None)
        self.timeout = timeout
        self.max_queued = max_queued
        self.waits_for = waits_for

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseGate:
        return cls(
            settings.database_pool_size,
            timeout=settings.api_queue_timeout_seconds,
            max_queued=settings.api_max_queued,
            read_slots=settings.api_read_slots,
        )

    async def enter(self, *, read: bool = False) -> object:
        """Take a slot (a read takes a read slot first), waiting if need be; returns the
        token to :meth:`leave` with."""
        token = _Slots()
        wanted = ((self._readers, self._limiter) if read and self._readers is not None
                  else (self._limiter,))
        deadline: float | None = None
        try:
            for limiter in wanted:
                if limiter.available_tokens < 1 or not _took(limiter, token):
                    # waits are rare: the clock is read only then (anyio.current_time costs
                    # a lookup of the running backend on every call)
                    if deadline is None:
                        deadline = anyio.current_time() + self.timeout
                    await self._wait(limiter, token, deadline)
                token.limiters.append(limiter)
        except BaseException:
            self.leave(token)
            raise
        return token

    async def _wait(self, limiter: anyio.CapacityLimiter, token: _Slots,
                    deadline: float) -> None:
        if limiter.statistics().tasks_waiting >= self.max_queued:
            raise Overloaded(
                f"{self.max_queued} requests already wait for {self.waits_for} in this process"
            )
        with anyio.move_on_after(deadline - anyio.current_time()):
            await limiter.acquire_on_behalf_of(token)
            return
        raise Overloaded(f"no slot for {self.waits_for} came free within {self.timeout:g} s")

    def leave(self, token: object) -> None:
        assert isinstance(token, _Slots)
        while token.limiters:
            token.limiters.pop().release_on_behalf_of(token)

    @property
    def in_use(self) -> int:
        return int(self._limiter.borrowed_tokens)


def _took(limiter: anyio.CapacityLimiter, token: _Slots) -> bool:
    """Whether a free slot of `limiter` was taken for `token` without waiting."""
    try:
        limiter.acquire_on_behalf_of_nowait(token)
    except anyio.WouldBlock:
        return False
    return True


@functools.lru_cache
def _sessions(write: bool) -> sessionmaker[Session]:
    engine = get_api_engine()
    return session_factory(writer(engine) if write else reader(engine))


async def _close(session: Session, *, write: bool) -> None:
    if write and session.in_transaction():
        # Closing may roll back on the server (IO): in a thread, shielded so a client that
        # hangs up cannot leave the connection checked out. A read session's close sends
        # nothing (PostgreSQL reads run in autocommit, SQLite's rollback of a read is
        # local), so it closes here: one thread hop fewer per read.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))
    else:
        session.close()


@contextlib.asynccontextmanager
async def gated_session(gate: DatabaseGate, *, write: bool) -> AsyncIterator[Session]:
    """A session holding one of the gate's slots until it is closed (as :func:`get_session`'s)."""
    token = await gate.enter(read=not write)
    try:
        session = _sessions(write)()
        try:
            yield session
        finally:
            await _close(session, write=write)
    finally:
        gate.leave(token)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, through the gate; the services own their transactions.

    Write methods get sessions whose SQLite transactions begin IMMEDIATE (db.session.writer);
    read methods get sessions that send PostgreSQL no BEGIN or ROLLBACK (db.session.reader).
    Tests point the app at their own session by overriding this dependency. (The same steps
    as :func:`gated_session`, without its context-manager layer: this runs on every request.)
    """
    write = request.method not in SAFE_METHODS
    gate: DatabaseGate = request.app.state.database_gate
    token = await gate.enter(read=not write)
    try:
        session = _sessions(write)()
        try:
            yield session
        finally:
            await _close(session, write=write)
    finally:
        gate.leave(token)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
"""Function scope: the session (and its gate slot) is released before the response is sent."""


class UploadGate:
    """Parses at most UPLOAD_MAX_PARALLEL uploads of this process at once, on threads of their
    own (never the API_THREADS that serve other requests). A route takes its slot
    (:data:`UploadSlot`) before its database session, so uploads waiting for a slot hold no
    database slot; they wait as for one (API_QUEUE_TIMEOUT_SECONDS, API_MAX_QUEUED), then get
    503 ``overloaded``."""

    def __init__(self, settings: Settings) -> None:
        self.gate = DatabaseGate(settings.upload_max_parallel,
                                 timeout=settings.api_queue_timeout_seconds,
                                 max_queued=settings.api_max_queued,
                                 waits_for="an upload slot")
        self.threads = anyio.CapacityLimiter(settings.upload_max_parallel)


async def upload_slot(request: Request) -> AsyncIterator[UploadGate]:
    uploads: UploadGate = request.app.state.upload_gate
    token = await uploads.gate.enter()
    try:
        yield uploads
    finally:
        uploads.gate.leave(token)


UploadSlot = Annotated[UploadGate, Depends(upload_slot, scope="function")]
"""A slot to parse an upload in: declare it before :data:`SessionDep`; run the work with
``anyio.to_thread.run_sync(..., limiter=slot.threads)``."""


API_KEY_HEADER = "X-API-Key"


class ApiKeyAuth(APIKeyHeader):
    """The caller of a keyed route: the security scheme the OpenAPI document states, resolved
    as one dependency (the actor :class:`api.middleware.RequestGuard` authenticated before the
    body was read; authenticated now if it did not)."""

    async def __call__(self, request: Request) -> Actor:  # type: ignore[override]
        actor = getattr(request.state, ACTOR_STATE, None)
        return actor if isinstance(actor, Actor) else await authenticate(request)


api_key_header = ApiKeyAuth(
    name=API_KEY_HEADER,
    scheme_name="APIKeyHeader",  # the name the OpenAPI document has always given it
    auto_error=False,
    description="An API key from `python -m core.cli create-api-key --name <n> --scope <s>`.",
)


ACTOR_STATE = "api_actor"
"""Where :class:`api.middleware.RequestGuard` leaves the caller in the request's state."""


async def authenticate(request: Request) -> Actor:
    """The owner of the request's X-API-Key (`api:<key name>`), with the role its scope grants;
    InvalidApiKey (401) for a missing, malformed, unknown or revoked key.

    Called by api.middleware.RequestGuard before the body is read. A key accepted in the last
    few seconds is not looked up again (core.api_keys), so this uses neither a session nor a
    thread; a malformed one is refused without either. Otherwise the key is looked up on a
    read session through the gate, in a worker thread; while the database is down a key this
    process accepted recently still is (core.api_keys.authenticate). An app whose sessions
    come from a dependency override (tests) looks keys up in that session.
    """
    key = request.headers.get(API_KEY_HEADER)
    actor = api_keys.recently_accepted(key)
    if actor is not None:
        return actor
    api_keys.check_key_format(key)
    override = request.app.dependency_overrides.get(get_session)
    if override is not None:
        return await run_in_threadpool(api_keys.authenticate, override(), key=key)
    async with gated_session(request.app.state.database_gate, write=False) as session:
        return await run_in_threadpool(api_keys.authenticate, session, key=key)


Reader = Annotated[Actor, Security(api_key_header)]
"""The caller (any scope)."""


def current_editor(actor: Reader) -> Actor:
    """A caller allowed to write (write or admin key); 403 for a read key."""
    actor.require("editor", "change data through the API (use a key with the write scope)")
    return actor


Writer = Annotated[Actor, Depends(current_editor)]


def current_admin(actor: Reader) -> Actor:
    """A caller with an admin key; 403 for a read or write key."""
    actor.require("admin", "manage warehouse connections (use a key with the admin scope)")
    return actor


Admin = Annotated[Actor, Depends(current_admin)]

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


IfNoneMatch = Annotated[
    str | None,
    Header(
        max_length=1024,
        description="Optional: the ETag of the copy you hold; while it is still current the "
        "answer is 304 Not Modified, with no body.",
    ),
]
CACHE_CONTROL = "private, no-cache"
"""API data: a client (or its private cache) may keep a copy, but checks it with If-None-Match
before each use; shared caches keep nothing."""
CONDITIONAL_HEADERS = {
    "ETag": {"description": "Names this representation: send it back as If-None-Match.",
             "schema": {"type": "string"}},
    "Cache-Control": {"description": CACHE_CONTROL, "schema": {"type": "string"}},
}


def cache_headers(etag: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": CACHE_CONTROL}


def not_modified(etag: str, if_none_match: str | None) -> Response | None:
    """304 Not Modified (no body) when `if_none_match` names `etag` or is ``*``, else None
    (RFC 9110 13.1.2: weak comparison)."""
    if if_none_match is None:
        return None
    held = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    if "*" in held or etag.removeprefix("W/") in held:
        return Response(status_code=304, headers=cache_headers(etag))
    return None


def expected_version(header: int | None, body: int) -> int:
    """The version the client edited: `version` in the body; an If-Match header, when sent,
    must name the same one (if they differ, at least one is stale: 409, nothing changes)."""
    if header is not None and header != body:
        raise Conflict(
            f"version: If-Match says {header} but the body says {body}, so at least one of them "
            "is not the current version: reload the record and send the version you read"
        )
    return body
