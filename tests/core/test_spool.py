"""core.spool: scratch files of a killed process are removed when the next process starts; a
running process's are never touched. Real processes, really killed (SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from core import spool
with spool.scratch_dir("upload-") as folder:
    path = folder / "held.csv"
    path.write_bytes(b"unit_id,variant\\n" * 1000)
    print(path, flush=True)
    time.sleep(3600)
"""
START = "from core import spool; print(spool.process_dir(), flush=True)"


def _python(code: str, spool_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "SPOOL_DIR": str(spool_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)


@contextmanager
def holding(spool_dir: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A process holding a scratch file (its path once written), killed after the block."""
    process = _python(HOLD, spool_dir)
    try:
        assert process.stdout is not None
        held = Path(process.stdout.readline().strip())
        assert held.is_file()
        yield process, held
    finally:
        process.kill()
        process.wait(timeout=60)


def _start(spool_dir: Path) -> Path:
    """Start a process that uses the spool (and exits); its own folder."""
    process = _python(START, spool_dir)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    return Path(out.strip())


def test_spool_removes_the_files_of_a_killed_process_at_the_next_start(tmp_path: Path) -> None:
    with holding(tmp_path) as (process, held):
        os.kill(process.pid, signal.SIGKILL)  # no finally block runs
        process.wait(timeout=60)
        assert held.is_file()  # left behind, as a crash leaves it
    own = _start(tmp_path)
    assert not held.exists() and not held.parent.parent.exists()
    # Only the folders of processes still alive remain (none: the last one exited too),
    # and the next start removes those of exited ones as well.
    assert own.parent == tmp_path
    _start(tmp_path)
    assert not own.exists()


def test_spool_never_touches_the_files_of_a_running_process(tmp_path: Path) -> None:
    with holding(tmp_path) as (process, held):
        _start(tmp_path)
        _start(tmp_path)
        assert held.is_file() and process.poll() is None
    _start(tmp_path)
    assert not held.exists()
