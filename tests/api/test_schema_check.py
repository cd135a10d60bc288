"""The API never migrates: it refuses to start on a database that is not at the latest
migration, naming the command, and starts on a migrated one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.config import Settings, get_settings
from db.migrate import MIGRATE_COMMAND, SchemaNotCurrent, upgrade
from db.session import get_api_engine


@pytest.fixture
def app_database(own_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The API's engine points at the test's own (unmigrated) database."""
    monkeypatch.setenv("DATABASE_URL", own_database)
    get_settings.cache_clear()
    get_api_engine.cache_clear()
    try:
        yield own_database
    finally:
        get_api_engine().dispose()
        monkeypatch.undo()
        get_settings.cache_clear()
        get_api_engine.cache_clear()


def test_schema_check_api_refuses_an_unmigrated_database_then_starts_once_migrated(
    app_database: str,
) -> None:
    upgrade(app_database, "0004")
    app = create_app(Settings())
    with pytest.raises(SchemaNotCurrent, match=MIGRATE_COMMAND), TestClient(app):
        pass
    upgrade(app_database)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
