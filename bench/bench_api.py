"""Sidecar API latency and throughput against a trivial endpoint of the same server.

    python bench/bench_api.py [--requests 3000] [--concurrency 32] [--seconds 20] [--keep]

1. Builds a seeded database in a temporary folder: a migrated SQLite file (or the empty
   PostgreSQL database given by --database-url), the demo portfolio with its metric data
   (``core.demo.seed_demo``), a results snapshot for every running experiment and a read key.
2. Starts ``uvicorn api.main:app`` (one worker, 127.0.0.1 only, a free port) on that database.
3. For each endpoint, after a warm-up, keeps ``--concurrency`` requests in flight (httpx async,
   one connection each) until ``--requests`` have completed or ``--seconds`` have passed:

   * baseline: ``GET /health/live`` (no key, no database);
   * ``GET /api/v1/experiments/{id}`` (key check + registry read);
   * ``GET /api/v1/experiments/{id}/results`` (key check + the latest stored snapshot).

Prints requests/s, p50 and p99 latency, and each endpoint's throughput as a share of the
baseline's (target: >= 50 % with p99 <= 50 ms at 32 connections). The load generator shares the
machine with the server, so read the ratios rather than the absolute numbers. No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
SHOWCASE = "Checkout button colour"
"""A running demo experiment with metric data, hence a results snapshot."""


@dataclass(frozen=True)
class Measured:
    label: str
    path: str
    completed: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


def _seed(url: str) -> tuple[int, str]:
    """Migrate and seed the database at `url`; return the showcase experiment's id and a key."""
    from core import api_keys, registry, results
    from core.auth import Actor
    from core.demo import seed_demo
    from db.migrate import upgrade
    from db.session import make_engine, session_factory

    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        print(seed_demo(session))
        snapshots = results.refresh_running(session, actor=Actor(name="bench", role="admin"))
        print(f"{len(snapshots)} results snapshots stored.")
        experiment_id = registry.get_experiment_by_name(session, name=SHOWCASE).id
        key = api_keys.create_api_key(session, name=f"bench-{os.getpid()}", scope="read").key
    engine.dispose()
    return experiment_id, key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", HOST, "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with code {server.returncode}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("uvicorn did not answer /health within 30 s")


async def _load(
    base: str, label: str, path: str, headers: dict[str, str], *, requests: int,
    concurrency: int, seconds: float,
) -> Measured:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=10) as client:
        warm = [client.get(path) for _ in range(concurrency * 4)]
        for response in await asyncio.gather(*warm):
            response.raise_for_status()
        latencies: list[float] = []
        errors = 0
        issued = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal issued, errors
            while issued < requests and time.perf_counter() < stop_at:
                issued += 1
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100)
    return Measured(label, path, len(latencies), errors, elapsed, cuts[49] * 1000,
                    cuts[98] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="time cap per endpoint")
    parser.add_argument("--database-url", help="an EMPTY database to seed (default: SQLite)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="experimentos-bench-api-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    experiment_id, key = _seed(url)
    port = _free_port()
    server = _start_server(url, port)
    base = f"http://{HOST}:{port}"
    try:
        targets = [
            ("baseline /health/live", "/health/live", {}),
            ("experiment", f"/api/v1/experiments/{experiment_id}", {"X-API-Key": key}),
            ("results", f"/api/v1/experiments/{experiment_id}/results", {"X-API-Key": key}),
        ]
        measured = [
            asyncio.run(_load(base, label, path, headers, requests=args.requests,
                              concurrency=args.concurrency, seconds=args.seconds))
            for label, path, headers in targets
        ]
    finally:
        server.terminate()
        server.wait(timeout=10)
        if not args.keep:
            for item in folder.iterdir():
                item.unlink()
            folder.rmdir()

    kind = url.split(":", 1)[0]
    print(f"\nuvicorn (1 worker) on {kind}, {args.concurrency} concurrent connections, "
          f"up to {args.requests} requests or {args.seconds:g} s per endpoint\n")
    print(f"{'endpoint':<24}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'vs baseline':>13}")
    baseline = measured[0]
    for m in measured:
        share = m.rps / baseline.rps if baseline.rps else 0.0
        print(f"{m.label:<24}{m.completed:>9}{m.errors:>8}{m.rps:>9.0f}{m.p50_ms:>9.1f}"
              f"{m.p99_ms:>9.1f}{share:>12.0%}")
    for m in measured[1:]:
        share = m.rps / baseline.rps if baseline.rps else 0.0
        verdict = "meets" if share >= 0.5 and m.p99_ms <= 50 else "misses"
        print(f"{m.label}: {share:.0%} of baseline throughput, p99 {m.p99_ms:.1f} ms "
              f"-> {verdict} the target (>= 50 %, p99 <= 50 ms)")
    if args.keep:
        print(f"Database kept in {folder}")


if __name__ == "__main__":
    main()
