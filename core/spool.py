"""Scratch files (an upload being loaded, the unit proof's partitions, a file drop being read,
DuckDB's spill) live in one folder per process under SPOOL_DIR, and a folder whose process
died is removed by the next process that starts using the spool.

A process that is killed (OOM, SIGKILL, a container stopped) never runs its ``finally``
blocks, so its temporary files would stay in /tmp for good. Here each process holds an
exclusive ``flock`` on ``<pid>-<token>.lock`` beside its folder for as long as it lives; the
kernel releases it however the process ends. :func:`process_dir` (the API calls it at
start-up; every other process on first use) removes every folder whose lock it can take, and
never one of a process still running — even one that shares the spool from another worker or
container on the same host.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.config import get_settings

_claimed: tuple[int, Path, int] | None = None
"""(pid, folder, lock file descriptor) of this process; a forked child claims its own."""


def spool_root() -> Path:
    """The spool: SPOOL_DIR, or ``experimentos-spool`` in the system's temporary folder."""
    configured = get_settings().spool_dir
    return configured if configured is not None else Path(tempfile.gettempdir()) / (
        "experimentos-spool")


def process_dir() -> Path:
    """This process's scratch folder, created (after removing those of dead processes) on the
    first call."""
    global _claimed
    if _claimed is not None and _claimed[0] == os.getpid():
        return _claimed[1]
    root = spool_root()
    root.mkdir(parents=True, exist_ok=True)
    folder, fd = _claim(root)
    _claimed = (os.getpid(), folder, fd)
    remove_orphans(root)
    return folder


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A fresh folder in this process's spool folder, removed on leaving the block (and, if
    the process dies first, by the next process to start)."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=process_dir()) as folder:
        yield Path(folder)


def _claim(root: Path) -> tuple[Path, int]:
    """Lock a new ``<pid>-<token>.lock`` (kept open for the life of the process), then create
    its folder; retried if a cleaner removed the lock file between its creation and the lock."""
    while True:
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        lock = root / f"{name}.lock"
        fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            kept = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            kept = False
        if kept:
            folder = root / name
            folder.mkdir(mode=0o700)
            return folder, fd
        os.close(fd)


def remove_orphans(root: Path | None = None) -> list[Path]:
    """Remove the folders of processes that ended (their lock is free) and stray folders with
    no lock; return them. Folders of running processes are left alone."""
    root = root or spool_root()
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for lock in sorted(root.glob("*.lock")):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # another cleaner took it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive
            folder = lock.with_suffix("")
            shutil.rmtree(folder, ignore_errors=True)
            lock.unlink(missing_ok=True)
            removed.append(folder)
        finally:
            os.close(fd)
    for folder in root.iterdir():
        # A process locks its file before it creates its folder, so a folder without a lock
        # is what a cleaner interrupted between the two left behind.
        if folder.is_dir() and not folder.with_suffix(".lock").exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
