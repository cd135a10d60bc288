"""bench/bench_registry.py runs (SQLite, --tiny) and its every case agrees with the
hand-written SQL it is timed against; the times themselves are figures, never asserted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_registry.py"


def test_bench_registry_tiny_run_agrees_with_its_bare_sql(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = importlib.util.spec_from_file_location("bench_registry", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    try:
        spec.loader.exec_module(bench)
    except BaseException:
        del sys.modules[spec.name]
        raise
    assert bench.main(["--tiny"]) == 0  # a disagreement exits with its case
    out = capsys.readouterr().out
    assert out.count("x\n") == 7 * 12  # a ratio per filter and sort
    assert "registry.tags" in out and "registry.owners" in out
    assert "USING INDEX ix_experiments_updated_at" in out
