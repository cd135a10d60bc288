"""Results-page service: experiment choices, daily units, the results table and CSV."""

from __future__ import annotations

import csv
import io

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
