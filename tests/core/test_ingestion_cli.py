"""`python -m core.cli ingest` and `refresh` on a seeded demo database (SQLite file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core import cli
from db.session import make_engine
from tests.core.data.test_ingestion import make_units, write_csv


@pytest.fixture
def run(fresh_demo_app: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    engine = make_engine(fresh_demo_app)
    monkeypatch.setattr(cli, "_session", lambda: Session(engine, expire_on_commit=False))

    def call(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    yield call
    engine.dispose()


def test_cli_refresh_all_running_then_again_reuses_snapshots(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _err = run("refresh", "--all-running")
    assert code == 0
    assert "'Onboarding checklist': snapshot" in out and "srm_untrustworthy" in out
    code, again, _err = run("refresh", "--experiment", "Checkout button colour")
    assert code == 0
    snapshot = again.split("snapshot ")[1].split(" ")[0]
    assert f"'Checkout button colour': snapshot {snapshot} " in out


def test_cli_ingest_sql_and_file_errors(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("ingest", "--experiment", "Search ranking v2", "--sql")
    assert code == 0, err
    assert "sql source of 'Search ranking v2'" in out
    path = write_csv(tmp_path / "bad.csv", make_units(5))  # not the experiment's metrics
    code, _out, err = run("ingest", "--experiment", "Checkout button colour", "--file", str(path))
    assert code == 2
    assert ("bad.csv has no metric column; name columns after the experiment's metrics: "
            "checkout_conversion, refund_rate, revenue_per_user") in err
    code, _out, err = run("refresh", "--experiment", "No such thing")
    assert code == 2 and "no experiment named" in err


def test_cli_set_source_then_ingest_sql(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.demo_data import EVENTS_QUERY

    query = tmp_path / "source.sql"
    query.write_text(EVENTS_QUERY)
    code, out, err = run("set-source", "--experiment", "Search ranking v2", "--query-file",
                         str(query))
    assert code == 0, err
    assert "SQL source of 'Search ranking v2' set (the app database)" in out
    code, out, err = run("ingest", "--experiment", "Search ranking v2", "--sql")
    assert code == 0, err
    bad = tmp_path / "bad.sql"
    bad.write_text("DELETE FROM experiments")
    code, _out, err = run("set-source", "--experiment", "Search ranking v2", "--query-file",
                          str(bad))
    assert code == 2 and err.startswith("error: ")
    code, _out, err = run("set-source", "--experiment", "Nope", "--query-file", str(query))
    assert code == 2 and "no experiment named 'Nope'" in err


def test_cli_ingest_file_names_its_dimensions_and_ignored_columns(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    import numpy as np

    cols = make_units(60)
    size = cols["unit_id"].size
    units = {"unit_id": cols["unit_id"], "variant": cols["variant"],
             "checkout_conversion": cols["conv"], "refund_rate": cols["refunds"],
             "platform": np.where(np.arange(size) % 2 == 0, "ios", "web").astype(object),
             "email": np.array([f"{u}@example.com" for u in cols["unit_id"]], dtype=object),
             "score": np.arange(size, dtype=float)}
    path = write_csv(tmp_path / "units.csv", units)
    code, out, err = run("ingest", "--experiment", "Mobile express checkout", "--file",
                         str(path))
    assert code == 0, err
    assert "Dimensions (per-value statistics stored): platform (" in out
    assert "Ignored columns: score, email" in out
    assert ("column email: not used as a dimension (120 distinct values, more than the 100 a "
            "dimension may have)") in out
