"""An API process killed while it loads an upload leaves no file behind once the API starts
again (core.spool). A real uvicorn, really killed (SIGKILL) mid-upload, on PostgreSQL: the test
holds a lock on the experiments table, so the upload waits, its file written to disk, exactly
as long as the test needs to find that file and kill the server."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.live_server import (
    migrate_with_keys,
    seed_through_api,
    uvicorn_process,
    uvicorn_server,
)
from tests.conftest import create_postgres_database, drop_postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
NAME = "crash-upload.csv"
WAIT = 120.0
"""Seconds a broken server is waited for: the bound of a failure, not a speed."""


@pytest.fixture
def postgres_database() -> Iterator[str]:
    url = create_postgres_database("experimentos_api_crash")
    if url is None:
        pytest.skip("no PostgreSQL server answers")
    try:
        yield url
    finally:
        drop_postgres_database(url)


def _found(folder: Path) -> list[Path]:
    return list(folder.rglob(NAME))


def test_upload_files_of_a_killed_api_are_removed_when_it_starts_again(
    postgres_database: str, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    read_key, write_key = migrate_with_keys(postgres_database)
    env = {"TMPDIR": str(temp)}
    csv = b"unit_id,variant,conversion\n" + b"".join(
        b"u%d,control,1\n" % i for i in range(20_000))
    with uvicorn_process(postgres_database, **env) as (base, server):
        seeded = seed_through_api(base, read_key, write_key)
        locker = create_engine(postgres_database)
        with locker.connect() as conn:
            conn.execute(text("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE"))

            def upload() -> None:
                with contextlib.suppress(httpx.HTTPError):  # the server is killed under it
                    httpx.post(f"{base}/api/v1/experiments/{seeded.experiment_id}/data",
                               headers={"X-API-Key": write_key},
                               files={"file": (NAME, csv, "text/csv")}, timeout=WAIT)

            uploading = threading.Thread(target=upload, daemon=True)
            uploading.start()
            # The route writes the upload to disk, then waits for the lock on experiments.
            found = []
            while not found and uploading.is_alive():
                found = _found(temp)
                uploading.join(0.05)
            assert found, "the upload never reached the disk"
            server.kill()  # SIGKILL: no finally block, no clean-up runs
            server.wait(timeout=WAIT)
            uploading.join(WAIT)
            conn.rollback()
        locker.dispose()
    assert _found(temp), "the killed process's upload stays on disk until a start"
    with uvicorn_server(postgres_database, **env) as base:
        assert httpx.get(f"{base}/health/live", timeout=WAIT).status_code == 200
        assert _found(temp) == []
