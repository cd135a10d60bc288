"""The API when the database fails (issue 16 items 2 and 3), on a real uvicorn.

* PostgreSQL stopped mid-run (a throwaway cluster of this test's own, never the shared server):
  every /api/v1 route that needs the database answers 503 problem+json
  ``database-unavailable`` with Retry-After, the planner keeps answering for a key this process
  knows, a bogus key is still 401, service is back within 5 s of the server, and no
  acknowledged write is lost.
* A key revoked (through the CLI, as an admin does) and refused once stays refused after
  PostgreSQL stops, on the planner too (issue 24 item 3).
* PostgreSQL frozen (SIGSTOP on every process of the throwaway cluster: the kernel still
  acknowledges every packet, so only the API's own bound ends the wait): a read and a write
  each get 503 ``database-unavailable`` within DATABASE_TIMEOUT_SECONDS + 1 s (and a margin),
  and service is back once the server thaws (SIGCONT).
* Concurrent writes on SQLite: two PATCHes of the same version end in one 200 and one 409,
  never "database is locked".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from db.models import Experiment
from tests.api.live_server import URL, draft, free_port, migrate_with_keys, uvicorn_server

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


class Cluster:
    """A PostgreSQL cluster in a temporary folder, on a port of its own, run as `postgres`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bin = PG_BIN[-1]
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if self._as:
            shutil.chown(self.folder, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-l",
                  str(self.folder / "server.log"), "-w", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off", "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
                  "-w", "stop")

    def pids(self) -> list[int]:
        """The postmaster's pid and its children's (the backends and helpers)."""
        postmaster = int((self.folder / "data" / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # the fields after the command name, which is in parentheses
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    def signal(self, signum: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not PG_BIN or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("needs Debian's PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    # Directly under /tmp (as scripts/ensure-postgres.sh does): the postgres user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="experimentos-fault-pg-"))
    server = Cluster(folder)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()  # unless already stopped
        shutil.rmtree(folder, ignore_errors=True)


def _problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(kind), response.text


@pytest.mark.slow
@pytest.mark.postgres
def test_api_postgres_stopped_then_started_503_then_full_service_no_lost_write(
    cluster: Cluster,
) -> None:
    read_key, write_key = migrate_with_keys(cluster.url)
    reader = {"X-API-Key": read_key}
    writer = {"X-API-Key": write_key}
    acknowledged: list[str] = []
    outcomes: Counter[int] = Counter()
    stop_writing = threading.Event()

    with uvicorn_server(cluster.url) as base:
        created = httpx.post(base + URL, json=draft("Before the outage"), headers=writer,
                             timeout=10)
        assert created.status_code == 201, created.text
        one = f"{base}{URL}/{created.json()['id']}"
        planner = f"{base}/api/v1/planner/sample-size"
        sizing = {"kind": "binomial", "baseline": 0.05, "mde": 0.1}
        assert httpx.post(planner, json=sizing, headers=reader, timeout=10).status_code == 200

        def write_continuously() -> None:
            with httpx.Client(headers=writer, timeout=15) as client:
                for i in range(10_000):
                    if stop_writing.is_set():
                        return
                    name = f"Written during the run {i}"
                    try:
                        response = client.post(base + URL, json=draft(name))
                    except httpx.HTTPError:
                        outcomes[-1] += 1
                        continue
                    outcomes[response.status_code] += 1
                    if response.status_code == 201:
                        acknowledged.append(name)
                    time.sleep(0.02)

        writing = threading.Thread(target=write_continuously, daemon=True)
        writing.start()
        time.sleep(2.0)
        cluster.stop()
        down_since = time.monotonic()
        while time.monotonic() - down_since < 7.0:  # past the 5 s key cache: the grace path
            _problem(httpx.get(one, headers=reader, timeout=10), 503, "database-unavailable")
            time.sleep(0.5)
        got = httpx.get(one, headers=reader, timeout=10)
        _problem(got, 503, "database-unavailable")
        assert int(got.headers["retry-after"]) > 0
        _problem(httpx.get(base + URL, headers=reader, timeout=10), 503, "database-unavailable")
        _problem(httpx.post(base + URL, json=draft("While down"), headers=writer, timeout=10),
                 503, "database-unavailable")
        _problem(httpx.get(base + "/health", timeout=10), 503, "database-unavailable")
        _problem(httpx.get(one, headers={"X-API-Key": "not-a-key"}, timeout=10), 401,
                 "invalid-api-key")
        # The planner needs no database: it keeps answering a key this process knows.
        assert httpx.post(planner, json=sizing, headers=reader, timeout=10).status_code == 200
        assert httpx.get(base + "/health/live", timeout=10).status_code == 200

        cluster.start()
        back_at = time.monotonic()
        while True:
            response = httpx.get(one, headers=reader, timeout=10)
            if response.status_code == 200:
                recovered = time.monotonic() - back_at
                break
            _problem(response, 503, "database-unavailable")
            assert time.monotonic() - back_at < 30, "no service 30 s after the database"
            time.sleep(0.1)
        time.sleep(1.5)  # the writer succeeds again
        stop_writing.set()
        writing.join(timeout=30)
        assert httpx.get(base + URL, headers=reader, timeout=10).status_code == 200
        assert httpx.get(base + "/health", timeout=10).status_code == 200

    assert recovered <= 5.0, f"full service {recovered:.1f} s after the database returned"
    assert set(outcomes) <= {201, 503}, outcomes
    assert outcomes[503] > 0 and outcomes[201] == len(acknowledged) > 0, outcomes
    engine = create_engine(cluster.url)
    with engine.connect() as conn:
        stored = set(conn.scalars(select(Experiment.name)))
    engine.dispose()
    lost = [name for name in acknowledged if name not in stored]
    assert not lost, f"acknowledged but not stored: {lost}"
    assert "While down" not in stored


@pytest.mark.slow
@pytest.mark.postgres
def test_api_revoked_key_stays_refused_on_the_planner_after_postgres_stops(
    cluster: Cluster,
) -> None:
    read_key, write_key = migrate_with_keys(cluster.url)
    revoked = {"X-API-Key": read_key}
    kept = {"X-API-Key": write_key}
    sizing = {"kind": "binomial", "baseline": 0.05, "mde": 0.1}
    with uvicorn_server(cluster.url) as base, httpx.Client(base_url=base, timeout=10) as client:
        planner = "/api/v1/planner/sample-size"
        assert client.post(planner, json=sizing, headers=revoked).status_code == 200
        assert client.get(URL, headers=revoked).status_code == 200
        subprocess.run(
            [sys.executable, "-m", "core.cli", "revoke-api-key", "--name", "load-reader"],
            cwd=Path(__file__).resolve().parents[2], check=True, capture_output=True,
            env={**os.environ, "DATABASE_URL": cluster.url}, timeout=60,
        )
        deadline = time.monotonic() + 30  # the server's key cache holds it a few seconds
        while (response := client.get(URL, headers=revoked)).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still works after 30 s"
            time.sleep(0.25)
        _problem(response, 401, "invalid-api-key")
        assert client.get(URL, headers=kept).status_code == 200  # checked after the revocation
        cluster.stop()
        for _ in range(3):  # past the key cache too: the offline allowance decides
            refused = client.post(planner, json=sizing, headers=revoked)
            _problem(refused, 401, "invalid-api-key")
            assert "revoked" in refused.json()["detail"]
            assert client.post(planner, json=sizing, headers=kept).status_code == 200
            time.sleep(3)
        _problem(client.get(URL, headers=kept), 503, "database-unavailable")


FROZEN_TIMEOUT = 2.0
"""DATABASE_TIMEOUT_SECONDS for the frozen-server test (5 by default)."""


@pytest.mark.slow
@pytest.mark.postgres
def test_api_postgres_frozen_503_within_the_timeout_then_recovers(cluster: Cluster) -> None:
    read_key, write_key = migrate_with_keys(cluster.url)
    reader = {"X-API-Key": read_key}
    writer = {"X-API-Key": write_key}
    bound = FROZEN_TIMEOUT + 1.0 + 2.0  # the watchdog's grace, and a margin for a loaded CI
    with uvicorn_server(cluster.url, DATABASE_TIMEOUT_SECONDS=str(FROZEN_TIMEOUT),
                        DATABASE_CONNECT_TIMEOUT_SECONDS="2") as base:
        created = httpx.post(base + URL, json=draft("Before the freeze"), headers=writer,
                             timeout=10)
        assert created.status_code == 201, created.text
        one = f"{base}{URL}/{created.json()['id']}"
        assert httpx.get(one, headers=reader, timeout=10).status_code == 200
        cluster.signal(signal.SIGSTOP)
        try:
            timings = []
            for method, body in (("GET", None), ("POST", draft("While frozen")), ("GET", None)):
                started = time.monotonic()
                response = httpx.request(method, one if method == "GET" else base + URL,
                                         json=body, headers=writer, timeout=30)
                timings.append(time.monotonic() - started)
                _problem(response, 503, "database-unavailable")
                assert int(response.headers["retry-after"]) > 0
        finally:
            cluster.signal(signal.SIGCONT)
        thawed = time.monotonic()
        while (response := httpx.get(one, headers=reader, timeout=30)).status_code != 200:
            _problem(response, 503, "database-unavailable")
            assert time.monotonic() - thawed < 30, "no service 30 s after the thaw"
            time.sleep(0.2)
        listed = httpx.get(base + URL, headers=reader, timeout=10)
    assert all(took < bound for took in timings), (timings, bound)
    assert listed.status_code == 200
    assert "While frozen" not in {e["name"] for e in listed.json()["items"]}


# --------------------------------------------------------------------------- write races


ROUNDS = 45


@pytest.mark.slow
def test_api_concurrent_patches_one_200_one_409_never_locked(own_database: str) -> None:
    """Two workers, two clients PATCHing the same version at once, 45 times."""
    _read_key, write_key = migrate_with_keys(own_database)
    writer = {"X-API-Key": write_key}
    rounds: list[tuple[int, int]] = []
    with uvicorn_server(own_database, workers=2) as base:
        created = httpx.post(base + URL, json=draft("Raced"), headers=writer, timeout=10)
        assert created.status_code == 201, created.text
        one = f"{URL}/{created.json()['id']}"

        async def race() -> None:
            async with httpx.AsyncClient(base_url=base, headers=writer, timeout=30) as a, \
                    httpx.AsyncClient(base_url=base, headers=writer, timeout=30) as b:
                version = 1
                for i in range(ROUNDS):
                    patches = [
                        client.patch(one, json={"owner": f"owner-{i}-{side}",
                                                "version": version},
                                     headers={"If-Match": f'"{version}"'})
                        for side, client in (("a", a), ("b", b))
                    ]
                    first, second = await asyncio.gather(*patches)
                    rounds.append((first.status_code, second.status_code))
                    for response in (first, second):
                        if response.status_code >= 500:
                            pytest.fail(f"round {i}: {response.status_code} {response.text}")
                    version += 1

        asyncio.run(race())
    outcomes = Counter(tuple(sorted(r)) for r in rounds)
    assert outcomes == {(200, 409): ROUNDS}, outcomes
    engine = create_engine(own_database)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version FROM experiments WHERE name = 'Raced'"))
        assert version.scalar_one() == ROUNDS + 1
    engine.dispose()
