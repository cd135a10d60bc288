"""API keys of the sidecar API: create (the plaintext is shown once), revoke, authenticate.

Only the SHA-256 hash of a key and its first characters (to recognise it in a list) are
stored. A key acts as ``api:<key name>`` with the role its scope grants, so every audit entry
made through it records whose key it was.

A process remembers a key it accepted for :data:`AUTH_CACHE_SECONDS` (by its hash, never the
plaintext), so a client polling the API is not looked up on every request. Other processes (API
workers, when the CLI revokes) refuse a revoked key at most that many seconds later.

A revocation this process sees — one it makes, or a lookup that finds a key revoked — is final
here: the key is dropped from the cache and remembered as revoked (refused with 401 without a
lookup, even while the database is down), and every key checked before that moment is looked
up again before it is trusted, in the cache or offline.

While the database does not answer, a key whose last successful check is newer than the last
revocation this process saw, and at most API_KEY_OFFLINE_GRACE_SECONDS old, is still accepted
(no key can be revoked while the database is down), so routes that need no database, such as
the planner, keep serving the clients they served; any other key gets the database error (503
through the API), never a wrong 401. The age bound caps how long a revocation made elsewhere
just before an outage, which this process never saw, can go unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from core.auth import SYSTEM, Actor
from core.config import get_settings
from core.errors import Conflict, DomainError, InvalidInput, NotFound
from core.transactions import transaction
from core.types import API_SCOPES, ApiScope, Role
from db import repositories as repo
from db.models import ApiKey
from db.session import is_unavailable

KEY_PREFIX = "eos_"
PREFIX_LENGTH = 12
"""Characters of the plaintext kept (``eos_`` plus 8) so an admin can tell keys apart."""
SCOPE_ROLES: dict[str, Role] = {"read": "viewer", "write": "editor", "admin": "admin"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_KEY_LENGTH = 128
AUTH_CACHE_SECONDS = 5.0
"""How long a process keeps accepting a key it checked without looking it up again."""
_AUTH_CACHE_SIZE = 1024
_accepted: dict[str, tuple[float, Actor]] = {}
"""Key hash -> (monotonic time the last successful check began, actor)."""
_revoked: dict[str, str] = {}
"""Key hash -> name, of the keys this process saw revoked (a revocation is for good)."""
_revocation_seen = float("-inf")
"""Monotonic time of the last revocation this process saw: older checks are not trusted."""
_lock = threading.Lock()


class InvalidApiKey(DomainError):
    """No key, an unknown key or a revoked key was presented."""

    http_status = 401


@dataclass(frozen=True)
class ApiKeyView:
    id: int
    name: str
    prefix: str
    scope: ApiScope
    created_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key: `key` is the plaintext, shown this once and never stored."""

    key: str
    view: ApiKeyView


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def actor_for(name: str, scope: str) -> Actor:
    """The actor a key acts as: ``api:<key name>`` with its scope's role."""
    return Actor(name=f"api:{name}", role=SCOPE_ROLES[scope])


def _view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scope=row.scope,  # type: ignore[arg-type]
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _by_name(session: Session, name: str) -> ApiKey | None:
    return repo.api_key_by_name(session, name=name)


def list_api_keys(session: Session) -> list[ApiKeyView]:
    return [_view(k) for k in repo.api_keys(session)]


def create_api_key(
    session: Session, *, name: str, scope: str, actor: Actor = SYSTEM
) -> CreatedApiKey:
    """Create a key named `name` with `scope` (read, write or admin). Audited, without the key."""
    actor.require("admin", "create API keys")
    name = name.strip()
    problems = []
    if not _NAME.match(name):
        problems.append(
            "name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(e.g. airflow-prod)"
        )
    if scope not in API_SCOPES:
        problems.append(f"scope: use one of {', '.join(API_SCOPES)} (got '{scope}')")
    if problems:
        raise InvalidInput(problems)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction(session):
        if _by_name(session, name) is not None:
            raise Conflict(
                f"An API key named '{name}' already exists: pick another name, or revoke it "
                f"and create a new one under a new name."
            )
        row = ApiKey(name=name, prefix=key[:PREFIX_LENGTH], key_hash=hash_key(key), scope=scope)
        session.add(row)
        session.flush()
        repo.add_audit(
            session,
            actor=actor.name,
            entity_type="api_key",
            entity_id=row.id,
            action="create",
            changes={"name": [None, name], "scope": [None, scope], "prefix": [None, row.prefix]},
        )
    return CreatedApiKey(key=key, view=_view(row))


def revoke_api_key(session: Session, *, name: str, actor: Actor = SYSTEM) -> ApiKeyView:
    """Revoke the key named `name` for good; revoking a revoked key changes nothing."""
    actor.require("admin", "revoke API keys")
    with transaction(session):
        row = _by_name(session, name.strip())
        if row is None:
            raise NotFound(f"No API key named '{name}'.")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            session.flush()
            repo.add_audit(
                session,
                actor=actor.name,
                entity_type="api_key",
                entity_id=row.id,
                action="revoke",
                changes={"revoked_at": [None, row.revoked_at.isoformat()]},
            )
    saw_revoked(row.key_hash, row.name)
    return _view(row)


def saw_revoked(digest: str, name: str) -> None:
    """Record that the key hashed `digest` is revoked: out of the cache, refused from now on,
    and every key checked before now checked again before it is trusted."""
    global _revocation_seen
    with _lock:
        _accepted.pop(digest, None)
        if len(_revoked) >= _AUTH_CACHE_SIZE:
            _revoked.pop(next(iter(_revoked)))
        _revoked[digest] = name
        _revocation_seen = time.monotonic()


def _revoked_error(name: str) -> InvalidApiKey:
    return InvalidApiKey(f"The API key '{name}' was revoked: ask an admin for a new one.")


def recently_accepted(key: str | None) -> Actor | None:
    """The actor behind `key` if this process accepted it in the last AUTH_CACHE_SECONDS, and
    saw no revocation since (no IO); InvalidApiKey for a key this process saw revoked."""
    if not key or len(key) > _MAX_KEY_LENGTH:
        return None
    digest = hash_key(key)
    name = _revoked.get(digest)
    if name is not None:
        raise _revoked_error(name)
    return _accepted_within(digest, AUTH_CACHE_SECONDS)


def _accepted_within(digest: str, seconds: float) -> Actor | None:
    found = _accepted.get(digest)
    if found is None or found[0] <= _revocation_seen or time.monotonic() - found[0] >= seconds:
        return None
    return found[1]


def check_key_format(key: str | None) -> str:
    """`key` when it looks like an API key (no IO); InvalidApiKey when it is missing or could
    not be one."""
    if not key:
        raise InvalidApiKey("Send your API key in the X-API-Key header.")
    if len(key) > _MAX_KEY_LENGTH or not key.startswith(KEY_PREFIX):
        raise InvalidApiKey("The X-API-Key header does not hold an ExperimentOS API key.")
    return key


def authenticate(session: Session, *, key: str | None) -> Actor:
    """The actor behind `key`; raises InvalidApiKey when it is missing, unknown or revoked."""
    actor = recently_accepted(key)
    if actor is not None:
        return actor
    key = check_key_format(key)
    digest = hash_key(key)
    began = time.monotonic()
    try:
        row = repo.api_key_by_hash(session, key_hash=digest)
    except Exception as exc:
        grace = get_settings().api_key_offline_grace_seconds
        offline = _accepted_within(digest, grace)
        if offline is not None and is_unavailable(exc):
            session.rollback()
            return offline
        raise
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise InvalidApiKey("Unknown API key: check it, or ask an admin to create one.")
    if row.revoked_at is not None:
        saw_revoked(digest, row.name)
        raise _revoked_error(row.name)
    actor = actor_for(row.name, row.scope)
    with _lock:
        if began > _revocation_seen:  # else a revocation was seen meanwhile: check again
            if len(_accepted) >= _AUTH_CACHE_SIZE:
                _accepted.clear()
            _accepted[digest] = (began, actor)
    return actor
