"""Dependencies shared by the routes: the database session, the caller, the edited version."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Header, Path, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.schemas import MAX_INT
from core import api_keys
from core.auth import Actor
from core.errors import Conflict, InvalidInput
from db.session import session_factory


@lru_cache
def _sessions() -> sessionmaker[Session]:
    return session_factory()


async def get_session() -> AsyncIterator[Session]:
    """One session per request; the services own their transactions.

    Opening a session does no IO, so it happens on the event loop; closing it (which hands its
    connection back to the pool) runs in a worker thread of its own, shielded from cancellation.
    """
    session = _sessions()()
    try:
        yield session
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))


SessionDep = Annotated[Session, Depends(get_session)]

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from `python -m core.cli create-api-key --name <n> --scope <s>`.",
)


async def current_actor(
    session: SessionDep, key: Annotated[str | None, Security(api_key_header)]
) -> Actor:
    """The key's owner (`api:<key name>`), with the role its scope grants; 401 otherwise.

    A key accepted in the last few seconds is not looked up again (see core.api_keys).
    """
    actor = api_keys.recently_accepted(key)
    if actor is None:
        actor = await run_in_threadpool(api_keys.authenticate, session, key=key)
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
