"""Schemathesis 4 against the real API: every check, every phase (stateful included), 0 failures.

A uvicorn server (loopback, its own port) serves the API over a migrated database seeded with
the demo portfolio; the Schemathesis CLI runs against it with an admin key::

    schemathesis --config-file tests/api/schemathesis.toml run <url>/openapi.json \\
        --checks all --phases examples,coverage,fuzzing,stateful --max-examples 30 --seed 1

so every request valid by the OpenAPI document must be accepted (or refused for state: 404,
409), every invalid one refused, every response must match the document (status, content
type, body, headers), a created resource must be found, and nothing may answer 5xx. The
handful of operations with rules JSON Schema cannot state are listed, with their rules, in
tests/api/schemathesis.toml. Report PDFs go to a temporary ARTIFACTS_URL, never to ./data.
The database is PostgreSQL, the stricter of the two (it refuses NUL characters, integers out
of range and non-finite JSON numbers that SQLite stores), so a run there finds what a run on
SQLite would and more; without a PostgreSQL server (never in CI) it falls back to SQLite. One
run takes about a minute on a quiet 2-core machine, two would exceed the suite's budget for it;
RUN_TIMEOUT bounds it. The same run on SQLite: ``make api`` and the command above.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import api_keys
from core.demo import seed_demo
from db.migrate import upgrade
from db.session import make_engine, session_factory
from tests.conftest import create_postgres_database, drop_postgres_database

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 30
SEED = 1
RUN_TIMEOUT = 600
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seeded(url: str) -> str:
    """Migrate and seed the database at `url`; return an admin key for it."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            seed_demo(session)
            return api_keys.create_api_key(session, name="schemathesis", scope="admin").key
    finally:
        engine.dispose()


def _wait_until_live(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"uvicorn did not answer on {base} within 120 s")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, admin key) of a uvicorn serving the API over a seeded database of its own:
    PostgreSQL, or SQLite where no PostgreSQL server answers (never in CI)."""
    postgres = create_postgres_database("experimentos_schemathesis")
    url = postgres or f"sqlite:///{tmp_path / 'schemathesis.db'}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server: subprocess.Popen[bytes] | None = None
    log = (tmp_path / "uvicorn.log").open("wb")
    try:
        key = _seeded(url)
        env = {**os.environ, "DATABASE_URL": url, "ARTIFACTS_URL": str(tmp_path / "artifacts")}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        _wait_until_live(base, server)
        yield base, key
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()
        if postgres is not None:
            drop_postgres_database(postgres)


def _check_results(ndjson: Path) -> Counter[str]:
    """Every check result of the run's finished scenarios, counted by status."""
    counts: Counter[str] = Counter()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "checks" and isinstance(value, dict):  # {case id: [results]}
                    counts.update(str(result.get("status")) for results in value.values()
                                  for result in results)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            walk(event)
    return counts


def _figures(output: str, junit: Path, ndjson: Path) -> dict[str, str]:
    """What the run reports: operations tested, test cases, checks run, links, failures."""
    suites = ET.parse(junit).getroot()
    cases = suites.findall(".//testcase")
    failed = [c.get("name", "?") for c in cases
              if c.find("failure") is not None or c.find("error") is not None]
    found = {
        "selected": re.search(r"Selected: (\d+/\d+)", output),
        "tested": re.search(r"Tested: (\d+)", output),
        "test cases": re.search(r"Test cases:\s*\n\s*(.+)", output),
        "links": re.search(r"API Links:\s+(.+)", output),
        "scenarios": re.search(r"Scenarios:\s+(\d+)", output),
    }
    figures = {name: match.group(1).strip() for name, match in found.items() if match}
    figures["failing operations"] = ", ".join(failed) or "none"
    checks = _check_results(ndjson)
    figures["checks"] = ", ".join(f"{n} {status}" for status, n in sorted(checks.items()))
    return figures


def test_api_schemathesis_all_checks_all_phases_no_failures(
    served: tuple[str, str], tmp_path: Path
) -> None:
    base, key = served
    junit, ndjson = tmp_path / "junit.xml", tmp_path / "events.ndjson"
    command = [
        str(SCHEMATHESIS), "--no-color", "--config-file", str(CONFIG), "run",
        f"{base}/openapi.json", "--header", f"X-API-Key: {key}",
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--report", "junit,ndjson", "--report-junit-path", str(junit),
        "--report-ndjson-path", str(ndjson),
    ]
    started = time.monotonic()
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                         timeout=RUN_TIMEOUT)
    seconds = time.monotonic() - started
    output = run.stdout + run.stderr
    figures = _figures(output, junit, ndjson)
    print(f"schemathesis on {served[0]} in {seconds:.0f} s:", figures)
    assert run.returncode == 0, output[-20_000:]
    selected, total = figures["selected"].split("/")
    assert selected == total == figures["tested"]  # every operation of the document
    assert figures["failing operations"] == "none"
    assert figures["checks"].endswith(" success") and "," not in figures["checks"]
    summary = [line for line in output.splitlines() if line.startswith("=")][-1]
    assert "failure" not in summary and "error" not in summary, summary
