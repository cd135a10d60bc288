"""Every bench script runs as written, at a tiny size (issue 25: a bench that no longer runs, or
that writes into the checkout, fails CI). The numbers are not read here: timing is the benches'
business (docs/benchmarks.md), never a test's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, list[str]] = {
    "bench_api.py": ["--seconds", "1", "--warm-up", "0.2", "--concurrency", "2",
                     "--stress-seconds", "1",
                     "--stress-concurrency", "8", "--workers", "1", "--generator", "httpx",
                     "--requests", "200"],
    "bench_ingestion.py": ["--rows", "20000", "--scale-rows", "0", "--repeat", "1"],
    "bench_load.py": ["--tiny"],
    "bench_registry.py": ["--tiny"],  # its answers: tests/bench/test_bench_registry.py
    "bench_report.py": ["--tiny"],
    "bench_results_page.py": ["--tiny"],
    "bench_stats.py": ["--tiny"],
    "bench_warehouse.py": ["--exposures", "2000", "--facts", "20000", "--small-facts", "5000",
                           "--repeat", "1", "--no-spark"],
}
"""Each bench script and the arguments that make it small."""


def test_every_bench_script_has_a_tiny_run() -> None:
    assert sorted(TINY) == sorted(p.name for p in (ROOT / "bench").glob("bench_*.py"))


WRITTEN_BY_RUNS = ("data", "artifacts", ".airflow")
"""Ignored folders the app and its jobs write by default: no bench may write there."""


def _tree() -> tuple[str, list[str]]:
    """Untracked and changed files, and what lies in the folders the app writes by default
    (caches that other processes touch, like .mypy_cache, are left out)."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    written = sorted(str(p.relative_to(ROOT)) for folder in WRITTEN_BY_RUNS
                     for p in (ROOT / folder).rglob("*"))
    return status, written


@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_runs_as_written_at_a_tiny_size(script: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "ARTIFACTS_URL", "SPOOL_DIR"}}
    extra = (["--postgres", os.environ["TEST_POSTGRES_URL"]]
             if script in {"bench_api.py", "bench_load.py"} and os.environ.get("TEST_POSTGRES_URL")
             else [])
    before = _tree()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *TINY[script], *extra],
                          cwd=ROOT, env=env | {"TMPDIR": str(tmp_path)}, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip(), "the bench printed nothing"
    assert _tree() == before, "the bench wrote into the checkout"
