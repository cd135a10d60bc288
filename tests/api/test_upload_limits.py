"""Uploads that hold unbounded work (issue 24 item 5): refused with 413 ``upload-too-large``
naming the setting, before they are parsed, nothing written; and while an upload is worked on
(on threads of its own), /health/live and reads keep answering on a real uvicorn."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from api.deps import get_session
from db.models import MetricDailyStat
from tests.api.conftest import headers, make_app
from tests.api.live_server import URL, migrate_with_keys, seed_through_api, uvicorn_server
from tests.hostile_uploads import gzip_csv_rows, parquet_rows, wide_csv


def _stat_rows(session: Session) -> int | None:
    return session.scalar(select(func.count()).select_from(MetricDailyStat))


@pytest.mark.parametrize(("name", "setting"), [
    ("rows.csv.gz", "UPLOAD_MAX_ROWS"), ("rows.parquet", "UPLOAD_MAX_ROWS"),
    ("wide.csv", "UPLOAD_MAX_COLUMNS")])
def test_upload_over_a_limit_is_413_naming_the_setting_and_writes_nothing(
    client: TestClient, session: Session, writer: dict[str, str], running: int,
    tmp_path: Path, name: str, setting: str,
) -> None:
    content = {"rows.csv.gz": lambda: gzip_csv_rows(100_000_000),
               "rows.parquet": lambda: parquet_rows(tmp_path / name, 25_000_000).read_bytes(),
               "wide.csv": lambda: wide_csv(1_000_000)}[name]()
    before = _stat_rows(session)
    response = client.post(f"{URL}/{running}/data", headers=writer,
                           files={"file": (name, content, "application/octet-stream")})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("upload-too-large") and setting in problem["detail"]
    assert _stat_rows(session) == before


def test_upload_waits_for_its_slot_before_a_database_session_then_503(
    session: Session, keys: dict[str, str], metrics: list[str]
) -> None:
    app = make_app(session, upload_max_parallel=1, api_queue_timeout_seconds=0.2)
    sessions: list[Session] = []

    def counted() -> Session:
        sessions.append(session)
        return session

    app.dependency_overrides[get_session] = counted
    gate = app.state.upload_gate.gate
    files = {"file": ("day.csv", b"unit_id,variant,conversion\nu1,control,1\n", "text/csv")}
    with TestClient(app) as client:
        assert client.get("/api/v1/metrics", headers=headers(keys["write"])).status_code == 200
        sessions.clear()  # the key is checked (and remembered); now only routes take sessions
        token = client.portal.call(gate.enter)  # type: ignore[union-attr]
        busy = client.post(f"{URL}/1/data", headers=headers(keys["write"]), files=files)
        assert busy.status_code == 503, busy.text
        assert busy.json()["type"].endswith("overloaded") and "upload slot" in busy.text
        assert busy.headers["retry-after"] == "1"
        assert sessions == []  # refused before a database session was taken
        gate.leave(token)
        again = client.post(f"{URL}/1/data", headers=headers(keys["write"]), files=files)
        assert again.status_code == 404 and sessions  # no experiment 1: served this time


@pytest.mark.slow
def test_upload_worked_on_while_liveness_and_reads_answer(tmp_path: Path) -> None:
    """A 2.5 MB gzip expanding to 1.3 GB is read to the UPLOAD_MAX_DECOMPRESSED_MB cap (a
    second or two of work) while /health/live and a read are polled: every poll answers."""
    own_database = f"sqlite:///{tmp_path / 'own.db'}"
    read_key, write_key = migrate_with_keys(own_database)
    bomb = gzip_csv_rows(100_000_000)
    with uvicorn_server(own_database, UPLOAD_MAX_ROWS="1000000000",
                        UPLOAD_MAX_DECOMPRESSED_MB="512") as base:
        seeded = seed_through_api(base, read_key, write_key)
        one = f"{URL}/{seeded.experiment_id}"
        answer: list[httpx.Response] = []

        def upload() -> None:
            with httpx.Client(base_url=base, timeout=120) as client:
                answer.append(client.post(
                    f"{one}/data", headers=headers(write_key),
                    files={"file": ("bomb.csv.gz", bomb, "application/octet-stream")}))

        uploading = threading.Thread(target=upload)
        began = time.monotonic()
        uploading.start()
        polls: list[tuple[int, int, float]] = []
        with httpx.Client(base_url=base, timeout=30) as client:
            while uploading.is_alive():
                started = time.monotonic()
                live = client.get("/health/live").status_code
                read = client.get(one, headers=headers(read_key)).status_code
                polls.append((live, read, time.monotonic() - started))
                time.sleep(0.05)
        uploading.join()
        took = time.monotonic() - began
    response = answer[0]
    assert response.status_code == 413, response.text
    assert "UPLOAD_MAX_DECOMPRESSED_MB" in response.json()["detail"]
    assert took < 60, f"the refusal took {took:.0f} s"  # all of 100 M rows: minutes
    assert polls and all(live == read == 200 for live, read, _ in polls), polls
    slowest = max(seconds for *_, seconds in polls)
    assert slowest < 5, f"a liveness and read poll took {slowest:.1f} s during the upload"
    engine = create_engine(own_database)
    with engine.connect() as conn:
        rows = conn.scalar(select(func.count()).select_from(MetricDailyStat))
    engine.dispose()
    assert rows == 4  # the seeded day only
