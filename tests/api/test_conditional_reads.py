"""Conditional reads (RFC 9110): ETag, If-None-Match -> 304, Cache-Control; the stored snapshot
document served as stored; reads see what other processes committed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from core import registry
from db import metric_repository as mrepo
from tests.api.conftest import draft
from tests.api.live_server import migrate_with_keys, seed_through_api, uvicorn_server
from tests.api.test_data_results_backlog import aggregate_csv
from tests.conftest import EDITOR

URL = "/api/v1/experiments"


def _with_results(client: TestClient, writer: dict[str, str], running: int) -> dict[str, Any]:
    client.post(f"{URL}/{running}/data", headers=writer,
                files={"file": ("daily.csv", aggregate_csv(), "text/csv")}).raise_for_status()
    stored = client.post(f"{URL}/{running}/results/refresh", headers=writer)
    stored.raise_for_status()
    return dict(stored.json())


def test_results_latest_same_snapshot_304_without_a_body(
    client: TestClient, writer: dict[str, str], running: int
) -> None:
    _with_results(client, writer, running)
    results = f"{URL}/{running}/results"
    first = client.get(results, headers=writer)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "private, no-cache"
    for held in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(results, headers={**writer, "If-None-Match": held})
        assert again.status_code == 304, held
        assert again.content == b""
        assert again.headers["etag"] == etag
    assert client.get(results, headers=writer).content == first.content


def test_results_latest_other_etag_200_and_a_new_snapshot_a_new_etag(
    client: TestClient, session: Session, writer: dict[str, str], running: int
) -> None:
    stored = _with_results(client, writer, running)
    results = f"{URL}/{running}/results"
    etag = client.get(results, headers=writer).headers["etag"]
    other = client.get(results, headers={**writer, "If-None-Match": '"not-this-one"'})
    assert other.status_code == 200 and other.json() == stored
    # Stored behind the API's back (another process: the app, a DAG): the next read has it.
    newer = mrepo.add_snapshot(
        session, experiment_id=running, computed_by="elsewhere",
        computed_at=datetime.now(UTC), as_of=None, data_through=None, fingerprint="newer",
        payload={**stored, "fingerprint": "newer"},
    ).id
    session.commit()
    changed = client.get(results, headers={**writer, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    served = changed.json()
    assert (served["snapshot_id"], served["computed_by"], served["fingerprint"]) == (
        newer, "elsewhere", "newer")


def test_results_latest_serves_the_stored_document_as_stored(
    client: TestClient, session: Session, writer: dict[str, str], running: int
) -> None:
    stored = _with_results(client, writer, running)
    found = mrepo.latest_snapshot_document(session, experiment_id=running)
    assert found is not None and found.snapshot_id == stored["snapshot_id"]
    served = client.get(f"{URL}/{running}/results", headers=writer)
    assert served.content == found.document.encode()  # not serialised again
    assert served.json() == stored


def test_results_latest_conditional_still_needs_a_key_and_a_snapshot(
    client: TestClient, writer: dict[str, str], running: int
) -> None:
    results = f"{URL}/{running}/results"
    none_yet = client.get(results, headers={**writer, "If-None-Match": "*"})
    assert none_yet.status_code == 404 and "no results yet" in none_yet.json()["detail"]
    _with_results(client, writer, running)
    etag = client.get(results, headers=writer).headers["etag"]
    refused = client.get(results, headers={"X-API-Key": "eos_" + "x" * 40,
                                           "If-None-Match": etag})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"


def test_experiment_read_304_until_it_changes(
    client: TestClient, session: Session, writer: dict[str, str], metrics: list[str]
) -> None:
    created = client.post(URL, json=draft(), headers=writer).json()
    one = f"{URL}/{created['id']}"
    first = client.get(one, headers=writer)
    assert first.headers["etag"] == '"1"'
    assert first.headers["cache-control"] == "private, no-cache"
    unchanged = client.get(one, headers={**writer, "If-None-Match": '"1"'})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == '"1"'
    assert client.get(one, headers={**writer, "If-None-Match": '"7"'}).status_code == 200
    # Changed behind the API's back: the version moves, so the held ETag no longer matches.
    registry.update_experiment(session, experiment_id=created["id"], changes={"owner": "sam"},
                               expected_version=1, actor=EDITOR)
    changed = client.get(one, headers={**writer, "If-None-Match": '"1"'})
    assert changed.status_code == 200 and changed.headers["etag"] == '"2"'
    assert changed.json()["owner"] == "sam"
    missing = client.get(f"{URL}/999999", headers={**writer, "If-None-Match": "*"})
    assert missing.status_code == 404


@pytest.mark.slow
def test_reads_two_workers_every_read_after_a_write_sees_it(own_database: str) -> None:
    """Two uvicorn workers on one database: whichever answers, a read after a write (through
    the other worker or this one) sees it, and a held ETag gets 200 with the new one."""
    read_key, write_key = migrate_with_keys(own_database)
    with uvicorn_server(own_database, workers=2) as base:
        seeded = seed_through_api(base, read_key, write_key)
        one = f"{base}{URL}/{seeded.experiment_id}"
        reader = {"X-API-Key": read_key}
        version = httpx.get(one, headers=reader, timeout=10).json()["version"]
        for round_ in range(5):
            held = f'"{version}"'
            for _ in range(4):  # fresh connections land on either worker
                read = httpx.get(one, headers={**reader, "If-None-Match": held}, timeout=10)
                assert read.status_code == 304
            patched = httpx.patch(one, json={"owner": f"owner-{round_}", "version": version},
                                  headers={"X-API-Key": write_key}, timeout=10)
            assert patched.status_code == 200, patched.text
            version += 1
            for _ in range(4):
                read = httpx.get(one, headers={**reader, "If-None-Match": held}, timeout=10)
                assert read.status_code == 200 and read.headers["etag"] == f'"{version}"'
                assert read.json()["owner"] == f"owner-{round_}"
        results = f"{one}/results"
        before = httpx.get(results, headers=reader, timeout=10)
        refreshed = httpx.post(f"{results}/refresh",
                               params={"as_of": datetime.now(UTC).date().isoformat()},
                               headers={"X-API-Key": write_key}, timeout=60)
        assert refreshed.status_code == 200, refreshed.text
        newest = refreshed.json()["snapshot_id"]
        assert newest != before.json()["snapshot_id"]
        for _ in range(4):
            read = httpx.get(results, headers={**reader, "If-None-Match": before.headers["etag"]},
                             timeout=10)
            assert read.status_code == 200 and read.json()["snapshot_id"] == newest
