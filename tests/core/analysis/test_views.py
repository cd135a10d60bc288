"""Results-page service: experiment choices, daily units, the results table and CSV, and loading
an uploaded file (accepted, or rejected with every problem and nothing written)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.analysis import results, views
from core.demo_data import DEMO_TRUTH, generate_units
from core.errors import InvalidInput, PermissionDenied
from db import metric_repository as mrepo
from db.session import make_engine, session_factory
from tests.conftest import ADMIN, EDITOR, VIEWER


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
    assert len(choices) == len(shown) == 12  # the demo: 8 running, 4 completed
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
    parsed = list(csv.DictReader(io.StringIO(views.results_csv(snap))))
    assert tuple(parsed[0]) == views.TABLE_COLUMNS
    assert [r["metric"] for r in parsed] == ["retention_d7", "page_load_time_ms"]
    assert {r["decision_state"] for r in parsed} == {"srm_untrustworthy"}
    # SRM: the effects are withheld in the export too.
    assert {(r["lift"], r["p_value"], r["blocked"]) for r in parsed} == {("", "", "True")}
    clean = registry.get_experiment_by_name(demo_session, name="Checkout button colour")
    snap = results.compute_results(demo_session, experiment_id=clean.id)
    parsed = list(csv.DictReader(io.StringIO(views.results_csv(snap))))
    assert float(parsed[0]["lift"]) == pytest.approx(snap.comparisons[0].lift, rel=1e-12)
    assert parsed[0]["blocked"] == "False"


@pytest.fixture
def running(session: Session) -> registry.ExperimentView:
    catalogue.create_metric(session, data={"name": "conversion", "kind": "binomial"},
                            actor=ADMIN)
    view = registry.create_experiment(session, actor=EDITOR, data={
        "name": "Upload test", "owner": "maria", "hypothesis": "h",
        "primary_metric": "conversion", "planned_sample_size": 100,
        "variants": [{"name": "control", "weight": 0.5}, {"name": "green", "weight": 0.5}],
    })
    return registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=date.today() - timedelta(days=3))


def _user_csv(start: date, rows: int = 40) -> bytes:
    lines = ["unit_id,variant,date,conversion"]
    for i in range(rows):
        lines.append(f"u{i},{'control' if i % 2 else 'green'},{start},{i % 3 == 0:d}")
    return ("\n".join(lines) + "\n").encode()


def test_views_load_upload_stores_data_and_a_snapshot(
    session: Session, running: registry.ExperimentView
) -> None:
    assert running.actual_start is not None
    seen: list[float] = []
    report, snap = views.load_upload(
        session, experiment_id=running.id, filename="day1.csv",
        data=_user_csv(running.actual_start), actor=EDITOR,
        progress=lambda f, _m: seen.append(f))
    assert report.units == {"control": 20, "green": 20}
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert snap.snapshot_id is not None and snap.computed_by == EDITOR.name
    assert mrepo.count_daily_stats(session, experiment_id=running.id) == 2


def test_views_rejected_upload_lists_problems_and_writes_nothing(
    session: Session, running: registry.ExperimentView
) -> None:
    bad = b"unit_id,variant,conversion\nu1,control,1\nu2,purple,0\nu3,green,maybe\n"
    with pytest.raises(InvalidInput) as err:
        views.load_upload(session, experiment_id=running.id, filename="bad.csv",
                                 data=bad, actor=EDITOR)
    text = " ".join(err.value.problems)
    assert "maybe" in text and "u3" in text  # names the row and column to fix
    assert mrepo.count_daily_stats(session, experiment_id=running.id) == 0
    with pytest.raises(InvalidInput, match=".csv, .csv.gz or .parquet"):
        views.load_upload(session, experiment_id=running.id, filename="data.xlsx",
                                 data=b"x", actor=EDITOR)
    with pytest.raises(PermissionDenied):
        views.load_upload(session, experiment_id=running.id, filename="a.csv",
                                 data=_user_csv(date.today()), actor=VIEWER)
