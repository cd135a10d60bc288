"""Property-based run of schemathesis against the app's own OpenAPI spec (SQLite, bounded).

Every operation gets generated valid and invalid requests with an admin key; no response may
be a server error, and every response must match the spec (status, content type, body, headers).
Report generation (~0.5-1 s a report) stays in: with these settings only a few generated ids
name a demo experiment (3 reports, ~3 s), and those reports let the download route be checked
too. Their PDFs go to a temporary ARTIFACTS_URL, never to ./data.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from api.deps import get_session
from api.main import create_app
from core import api_keys
from core.config import Settings
from core.demo import seed_demo
from db.session import make_engine

APP = create_app(Settings())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(max_examples=15, deterministic=True)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def fuzz_key(sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An admin key on the seeded demo portfolio, all inside one rolled-back transaction;
    report artifacts go to a temporary folder."""
    settings = APP.state.settings
    APP.state.settings = Settings(artifacts_url=str(tmp_path_factory.mktemp("fuzz-artifacts")))
    engine = make_engine(sqlite_url)
    connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    seed_demo(session)
    key = api_keys.create_api_key(session, name="fuzzer", scope="admin").key
    APP.dependency_overrides[get_session] = lambda: session
    try:
        yield key
    finally:
        APP.dependency_overrides.clear()
        APP.state.settings = settings
        session.close()
        outer.rollback()
        connection.close()
        engine.dispose()


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_api_schemathesis_no_server_errors_and_conformant(case, fuzz_key: str) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(headers={"X-API-Key": fuzz_key}, checks=CHECKS)
