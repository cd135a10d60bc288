"""Real small filesystems for storage-fault tests: a tmpfs filled to the last byte, or one
mounted read-only, so writes fail with the kernel's own ENOSPC or EROFS (no simulated error).
Mounting needs root (CAP_SYS_ADMIN), which the test machines and CI have; elsewhere the tests
that use them skip."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(folder: Path, *, size_kb: int = 64, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size_kb` mounted on `folder` (created), unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode()[:200]}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True, capture_output=True,
                       timeout=30)


def fill(folder: Path) -> None:
    """Write zeros into `folder` until its filesystem has no byte left (ENOSPC)."""
    with (folder / "ballast").open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
