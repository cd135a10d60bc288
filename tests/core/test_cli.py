"""The admin CLI as a user runs it: a real process on a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from core.config import PROJECT_ROOT


def run_cli(*args: str, db: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}",
           "CREDENTIALS_FILE": str(db.parent / "creds.yaml")}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args], cwd=PROJECT_ROOT, env=env, text=True,
        capture_output=True, input=stdin, timeout=300,
    )


def test_cli_migrate_and_seed_demo_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    assert run_cli("migrate", db=db).returncode == 0
    first = run_cli("seed-demo", db=db)
    assert first.returncode == 0, first.stderr
    from core.demo import METRICS, _experiments

    expected = len(_experiments(date.today()))
    assert f"{len(METRICS)} metrics and {expected} experiments added" in first.stdout
    second = run_cli("seed-demo", db=db)
    assert second.returncode == 0, second.stderr
    assert "0 metrics and 0 experiments added" in second.stdout


def test_cli_help_explains_each_command(tmp_path: Path) -> None:
    out = run_cli("--help", db=tmp_path / "x.db")
    assert out.returncode == 0
    for name in ("migrate", "seed-demo", "add-user"):
        assert name in out.stdout


def test_cli_errors_are_clear_and_non_zero(tmp_path: Path) -> None:
    bad = run_cli("add-user", "--username", "x y", "--name", "X", "--role", "viewer",
                  "--password-stdin", db=tmp_path / "x.db", stdin="long enough pw\n")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: username")
    assert "Traceback" not in bad.stderr
    unknown = run_cli("launch-rockets", db=tmp_path / "x.db")
    assert unknown.returncode != 0 and "invalid choice" in unknown.stderr
