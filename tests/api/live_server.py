"""A real uvicorn on 127.0.0.1 over a real database, and a bounded load generator for it.

Used by the load and fault tests: the server runs in its own process (as deployed), the load
in another (so the test's own measurements are not slowed by it), both on loopback only.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from core import api_keys, catalogue
from db.migrate import upgrade
from db.session import make_engine, session_factory
from tests.conftest import ADMIN

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
URL = "/api/v1/experiments"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def uvicorn_server(database_url: str, *, workers: int = 1, **env: str) -> Iterator[str]:
    """``uvicorn api.main:app`` on a free loopback port, as deployed (docs/api.md "In production":
    keep-alive longer than a client's idle gaps); yields its base URL, stops it after."""
    with uvicorn_process(database_url, workers=workers, **env) as (base, _server):
        yield base


@contextmanager
def uvicorn_process(
    database_url: str, *, workers: int = 1, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As :func:`uvicorn_server`, yielding the process too (with one worker, the process that
    serves: its /proc/<pid>/status tells its memory; kill it to crash the server)."""
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": database_url, **env}
    server: subprocess.Popen[bytes] = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", HOST, "--port", str(port),
         "--workers", str(workers), "--timeout-keep-alive", "75", "--log-level", "warning",
         "--no-access-log"],
        cwd=ROOT, env=environment,
    )
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"uvicorn exited with code {server.returncode}")
            try:
                if httpx.get(base + "/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not answer /health/live within 90 s")
            time.sleep(0.2)
        yield base, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@dataclass(frozen=True)
class Seeded:
    experiment_id: int
    read_key: str
    write_key: str


def migrate_with_keys(database_url: str) -> tuple[str, str]:
    """Migrate the empty database, add the metrics the experiments use; (read, write) keys."""
    upgrade(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        for name, kind in [("conversion", "binomial"), ("latency", "mean")]:
            catalogue.create_metric(session, data={"name": name, "kind": kind}, actor=ADMIN)
        read = api_keys.create_api_key(session, name="load-reader", scope="read").key
        write = api_keys.create_api_key(session, name="load-writer", scope="write").key
    engine.dispose()
    return read, write


def draft(name: str) -> dict[str, object]:
    return {
        "name": name,
        "owner": "maria",
        "hypothesis": "A green button lifts conversion.",
        "primary_metric": "conversion",
        "guardrail_metrics": ["latency"],
        "variants": [{"name": "control", "weight": 0.5}, {"name": "green", "weight": 0.5}],
        "planned_sample_size": 1000,
    }


def seed_through_api(base: str, read_key: str, write_key: str) -> Seeded:
    """A running experiment with a day of data and a results snapshot, made over HTTP."""
    writer = {"X-API-Key": write_key}
    with httpx.Client(base_url=base, headers=writer, timeout=60) as client:
        created = client.post(URL, json=draft("Green button"))
        created.raise_for_status()
        experiment_id = created.json()["id"]
        client.post(f"{URL}/{experiment_id}/transitions",
                    json={"to_status": "running", "version": 1}).raise_for_status()
        today = datetime.now(UTC).date().isoformat()
        rows = ["variant,date,metric,n,sum,sum_squares"]
        for variant, conversions in [("control", 100), ("green", 130)]:
            rows.append(f"{variant},{today},conversion,1000,{conversions},{conversions}")
            rows.append(f"{variant},{today},latency,1000,250000,65000000")
        csv = ("\n".join(rows) + "\n").encode()
        client.post(f"{URL}/{experiment_id}/data",
                    files={"file": ("daily.csv", csv, "text/csv")}).raise_for_status()
        client.post(f"{URL}/{experiment_id}/results/refresh").raise_for_status()
    return Seeded(experiment_id, read_key, write_key)


# --------------------------------------------------------------------------- the load


@dataclass
class LoadReport:
    """What a load run saw: responses by status, timeouts, other client errors."""

    statuses: Counter[int] = field(default_factory=Counter)
    timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    retry_after_missing: int = 0
    """503 responses without a Retry-After header."""
    wrong_type: int = 0
    """Error responses that were not application/problem+json."""
    error_notes: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.timeouts + sum(self.errors.values())


async def _load(base: str, paths: list[str], headers: dict[str, str], concurrency: int,
                seconds: float, max_requests: int, timeout: float,
                bodies: list[dict[str, object]] | None = None) -> LoadReport:
    report = LoadReport()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    issued = 0
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=timeout) as client:
        began = time.monotonic()
        stop_at = began + seconds

        async def worker(offset: int) -> None:
            nonlocal issued
            turn = offset
            while time.monotonic() < stop_at and issued < max_requests:
                issued += 1
                path = paths[turn % len(paths)]
                body = None if bodies is None else bodies[turn % len(bodies)]
                turn += 1
                try:
                    response = await (client.get(path) if body is None
                                      else client.post(path, json=body))
                except httpx.TimeoutException:
                    report.timeouts += 1
                    continue
                except httpx.HTTPError as exc:
                    report.errors[type(exc).__name__] += 1
                    report.error_notes.append(
                        f"{type(exc).__name__} {path} after {time.monotonic() - began:.1f} s: "
                        f"{exc!r}"
                    )
                    continue
                report.statuses[response.status_code] += 1
                if response.status_code >= 400:
                    if not response.headers.get("content-type", "").startswith(
                        "application/problem+json"
                    ):
                        report.wrong_type += 1
                    if response.status_code == 503 and "retry-after" not in response.headers:
                        report.retry_after_missing += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return report


def _load_process(queue: multiprocessing.Queue, *args: object) -> None:  # type: ignore[type-arg]
    queue.put(asyncio.run(_load(*args)))  # type: ignore[arg-type]


def start_load(base: str, paths: list[str], headers: dict[str, str], *, concurrency: int,
               seconds: float, max_requests: int, timeout: float = 15.0,
               bodies: list[dict[str, object]] | None = None):  # type: ignore[no-untyped-def]
    """Run the load in a process of its own; returns (process, queue) — see :func:`finish`.
    With `bodies`, each request POSTs the body of the same turn (paths[i], bodies[i])."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=_load_process,
        args=(queue, base, paths, headers, concurrency, seconds, max_requests, timeout, bodies),
        daemon=True,
    )
    process.start()
    return process, queue


def finish(process, queue, *, within: float) -> LoadReport:  # type: ignore[no-untyped-def]
    """The load's report, waiting at most `within` seconds (then the load is killed)."""
    try:
        report: LoadReport = queue.get(timeout=within)
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
    return report


def probe_liveness(base: str, *, while_alive, every: float = 0.05) -> list[float]:  # type: ignore[no-untyped-def]
    """Latencies (s) of sequential ``GET /health/live`` probes, on a connection of their own,
    for as long as the process `while_alive` runs; a failed probe counts as infinite."""
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=5) as client:
        while while_alive.is_alive():
            started = time.perf_counter()
            try:
                ok = client.get("/health/live").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started if ok else float("inf"))
            time.sleep(every)
    return latencies
