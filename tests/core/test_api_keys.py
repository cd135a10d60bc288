"""API key service and its CLI commands: shown once, stored hashed, scopes, revocation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core import api_keys, cli
from core.config import get_settings
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from db.models import ApiKey, AuditEntry
from db.session import make_engine, session_factory
from tests.conftest import EDITOR


def test_api_keys_create_stores_only_hash_and_prefix(session: Session) -> None:
    created = api_keys.create_api_key(session, name="airflow-prod", scope="write")
    assert created.key.startswith("eos_") and len(created.key) > 40
    row = session.scalar(select(ApiKey).where(ApiKey.name == "airflow-prod"))
    assert row is not None
    assert row.key_hash == hashlib.sha256(created.key.encode()).hexdigest()
    assert row.prefix == created.key[:12] and created.view.prefix == row.prefix
    stored = " ".join(str(v) for v in (row.name, row.prefix, row.key_hash, row.scope))
    assert created.key not in stored
    audit = session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "api_key")).all()
    assert [a.action for a in audit] == ["create"]
    assert created.key not in str(audit[0].changes)


@pytest.mark.parametrize(("scope", "role"), [("read", "viewer"), ("write", "editor"),
                                             ("admin", "admin")])
def test_api_keys_authenticate_maps_scope_to_role(session: Session, scope: str, role: str) -> None:
    created = api_keys.create_api_key(session, name=f"tool-{scope}", scope=scope)
    actor = api_keys.authenticate(session, key=created.key)
    assert actor.name == f"api:tool-{scope}" and actor.role == role


@pytest.mark.parametrize("key", [None, "", "eos_unknown", "not-a-key", "eos_" + "a" * 200])
def test_api_keys_authenticate_refuses_bad_keys(session: Session, key: str | None) -> None:
    with pytest.raises(api_keys.InvalidApiKey) as info:
        api_keys.authenticate(session, key=key)
    assert info.value.http_status == 401


def test_api_keys_revoke_disables_the_key(session: Session) -> None:
    created = api_keys.create_api_key(session, name="old-tool", scope="read")
    view = api_keys.revoke_api_key(session, name="old-tool")
    assert view.revoked_at is not None
    with pytest.raises(api_keys.InvalidApiKey, match="revoked"):
        api_keys.authenticate(session, key=created.key)
    assert api_keys.revoke_api_key(session, name="old-tool").revoked_at is not None
    revokes = session.scalars(select(AuditEntry).where(AuditEntry.action == "revoke")).all()
    assert len(revokes) == 1
    with pytest.raises(NotFound):
        api_keys.revoke_api_key(session, name="never-existed")


@pytest.mark.parametrize(
    ("name", "scope", "error"),
    [("bad name!", "read", InvalidInput), ("", "read", InvalidInput),
     ("tool", "superuser", InvalidInput), ("taken", "read", Conflict)],
)
def test_api_keys_create_refuses_bad_input_and_writes_nothing(
    session: Session, name: str, scope: str, error: type[Exception]
) -> None:
    api_keys.create_api_key(session, name="taken", scope="read")
    before = len(api_keys.list_api_keys(session))
    with pytest.raises(error):
        api_keys.create_api_key(session, name=name, scope=scope)
    assert len(api_keys.list_api_keys(session)) == before


def test_api_keys_only_admins_manage_keys(session: Session) -> None:
    with pytest.raises(PermissionDenied):
        api_keys.create_api_key(session, name="sneaky", scope="admin", actor=EDITOR)


def test_api_keys_cli_create_prints_key_once_and_revoke(
    session: Session, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_session", lambda: session)
    assert cli.main(["create-api-key", "--name", "ci-bot", "--scope", "read"]) == 0
    out = capsys.readouterr().out
    key = out.strip().splitlines()[-1]
    assert api_keys.authenticate(session, key=key).name == "api:ci-bot"
    assert cli.main(["revoke-api-key", "--name", "ci-bot"]) == 0
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(api_keys.InvalidApiKey):
        api_keys.authenticate(session, key=key)
    assert cli.main(["revoke-api-key", "--name", "nobody"]) == 2
    assert "No API key named 'nobody'" in capsys.readouterr().err


# --------------------------------------------------------------------------- offline allowance


@pytest.fixture
def down() -> Iterator[Session]:
    """A session on a PostgreSQL address where nothing listens: the database does not answer."""
    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none")
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


def _revoke_elsewhere(session: Session, name: str) -> None:
    """Revoke as another process would: in the database, unseen by this process's caches."""
    session.execute(update(ApiKey).where(ApiKey.name == name).values(revoked_at=func.now()))
    session.commit()


def test_api_keys_offline_allowance_holds_for_its_max_age_only(
    session: Session, key_clock: list[float], down: Session
) -> None:
    key = api_keys.create_api_key(session, name="planner-bot", scope="read").key
    api_keys.authenticate(session, key=key)
    key_clock[0] += api_keys.AUTH_CACHE_SECONDS + 1
    assert api_keys.authenticate(down, key=key).name == "api:planner-bot"
    key_clock[0] += get_settings().api_key_offline_grace_seconds
    with pytest.raises(OperationalError):
        api_keys.authenticate(down, key=key)


def test_api_keys_revocation_seen_in_a_lookup_is_refused_offline(
    session: Session, key_clock: list[float], down: Session
) -> None:
    """A lookup that finds a key revoked evicts it (it stays refused while the database is
    down), and no key checked before that is trusted offline until checked again."""
    revoked = api_keys.create_api_key(session, name="leaked", scope="read").key
    other = api_keys.create_api_key(session, name="other", scope="read").key
    api_keys.authenticate(session, key=revoked)
    api_keys.authenticate(session, key=other)
    _revoke_elsewhere(session, "leaked")
    key_clock[0] += api_keys.AUTH_CACHE_SECONDS + 1
    with pytest.raises(api_keys.InvalidApiKey, match="revoked"):
        api_keys.authenticate(session, key=revoked)
    assert api_keys.hash_key(revoked) not in api_keys._accepted
    key_clock[0] += 1
    with pytest.raises(api_keys.InvalidApiKey, match="revoked"):
        api_keys.authenticate(down, key=revoked)
    with pytest.raises(OperationalError):
        api_keys.authenticate(down, key=other)  # checked before the revocation was seen
    assert api_keys.authenticate(session, key=other).name == "api:other"
    key_clock[0] += api_keys.AUTH_CACHE_SECONDS + 1
    assert api_keys.authenticate(down, key=other).name == "api:other"


def test_api_keys_revoked_in_process_is_refused_at_once_even_offline(
    session: Session, key_clock: list[float], down: Session
) -> None:
    key = api_keys.create_api_key(session, name="gone", scope="write").key
    api_keys.authenticate(session, key=key)
    api_keys.revoke_api_key(session, name="gone")
    for where in (session, down):
        with pytest.raises(api_keys.InvalidApiKey, match="revoked"):
            api_keys.authenticate(where, key=key)
    with pytest.raises(api_keys.InvalidApiKey, match="revoked"):
        api_keys.recently_accepted(key)


def test_api_keys_lookup_overtaken_by_a_revocation_is_not_cached(
    session: Session, key_clock: list[float]
) -> None:
    """A check that began before a revocation was seen answers, but is not trusted later."""
    key = api_keys.create_api_key(session, name="racing", scope="read").key
    other = api_keys.create_api_key(session, name="revoked-meanwhile", scope="read").key
    api_keys.authenticate(session, key=other)
    real_lookup = api_keys.repo.api_key_by_hash

    def lookup_while_revoking(session: Session, *, key_hash: str) -> ApiKey | None:
        row = real_lookup(session, key_hash=key_hash)
        api_keys.revoke_api_key(session, name="revoked-meanwhile")
        return row

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api_keys.repo, "api_key_by_hash", lookup_while_revoking)
        assert api_keys.authenticate(session, key=key).name == "api:racing"
    assert api_keys.recently_accepted(key) is None
