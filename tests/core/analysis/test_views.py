"""Results-page service: experiment choices, daily units, the results table and CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from core import registry
from core.analysis import results, views
from core.demo_data import DEMO_TRUTH, generate_units
from db.session import make_engine, session_factory


@pytest.fixture(scope="module")
def demo_session(demo_db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db_url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


def test_views_lists_running_then_completed(demo_session: Session) -> None:
    choices = views.experiments_with_results(demo_session)
    statuses = [c.status for c in choices]
    assert statuses == sorted(statuses, key=["running", "completed"].index)
    shown = [e for e in registry.all_experiments(demo_session)
             if e.status in ("running", "completed")]
    assert len(choices) == len(shown) == 15  # the demo: 11 running (3 from its warehouse), 4 done
    assert [c.name for c in choices if c.has_sql_source] == ["Search ranking v2"]


def test_views_daily_units_match_the_raw_demo_data(demo_session: Session) -> None:
    name = "Trust badges on cart"
    exp = registry.get_experiment_by_name(demo_session, name=name)
    assert exp.actual_start is not None and exp.actual_end is not None
    raw = generate_units(name, DEMO_TRUTH[name], start=exp.actual_start, last=exp.actual_end)
    rows = views.daily_units(demo_session, experiment_id=exp.id)
    for row in rows[:6]:
        expected = np.sum((raw["variant"] == row.variant)
                          & (raw["date"] == np.datetime64(row.day)))
        assert row.units == expected
    assert sum(r.units for r in rows) == raw["variant"].size


def test_views_table_and_csv_carry_cores_decisions(demo_session: Session) -> None:
    exp = registry.get_experiment_by_name(demo_session, name="Onboarding checklist")
    snap = results.compute_results(demo_session, experiment_id=exp.id)
    table = views.results_table(snap)
    assert [r["decision_state"] for r in table] == [c.decision_state for c in snap.comparisons]
    parsed = list(csv.DictReader(io.StringIO(views.results_csv(snap).removeprefix("\ufeff"))))
    assert tuple(parsed[0]) == views.TABLE_COLUMNS
    assert [r["metric"] for r in parsed] == ["retention_d7", "page_load_time_ms"]
    assert {r["decision_state"] for r in parsed} == {"srm_untrustworthy"}
    # SRM: the effects are withheld in the export too.
    assert {(r["lift"], r["p_value"], r["blocked"]) for r in parsed} == {("", "", "True")}
    clean = registry.get_experiment_by_name(demo_session, name="Checkout button colour")
    snap = results.compute_results(demo_session, experiment_id=clean.id)
    parsed = list(csv.DictReader(io.StringIO(views.results_csv(snap).removeprefix("\ufeff"))))
    assert float(parsed[0]["lift"]) == pytest.approx(snap.comparisons[0].lift, rel=1e-12)
    assert parsed[0]["blocked"] == "False"


def formula_experiment(session: Session, tmp_path: Path) -> int:
    """A running experiment whose treatment is named like a spreadsheet formula, with data
    in which it does worse (negative effects)."""
    from core.data.ingestion import ingest_file
    from tests.conftest import EDITOR
    from tests.core.data.test_ingestion import make_experiment, make_units, write_parquet

    arm = "=HYPERLINK(\"http://evil.example\")"
    exp = make_experiment(session, name="@risky", variants=(("control", 0.5), (arm, 0.5)),
                          end=None)
    cols = make_units(400, variants=("control", arm), lift={arm: -0.5})
    ingest_file(session, path=write_parquet(tmp_path / "u.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    return exp


def test_views_results_csv_neutralises_formulas(session: Session, tmp_path: Path) -> None:
    """OWASP "CSV Injection": the Results page's CSV quotes a treatment named like a formula;
    its numbers, negative ones included, stay numbers."""
    exp = formula_experiment(session, tmp_path)
    snap = results.compute_results(session, experiment_id=exp)
    parsed = list(csv.DictReader(io.StringIO(views.results_csv(snap).removeprefix("\ufeff"))))
    assert {r["treatment"] for r in parsed} == {"'=HYPERLINK(\"http://evil.example\")"}
    conv = next(r for r in parsed if r["metric"] == "conv")
    assert conv["diff"].startswith("-") and float(conv["diff"]) < 0
