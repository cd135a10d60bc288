"""API key service and its CLI commands: shown once, stored hashed, scopes, revocation."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import api_keys, cli
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from db.models import ApiKey, AuditEntry
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
