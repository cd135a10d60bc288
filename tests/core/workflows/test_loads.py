"""Loading an uploaded file, then a stored results snapshot (accepted, or rejected with every
problem and nothing written)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.errors import InvalidInput, PermissionDenied
from core.workflows import loads
from db import metric_repository as mrepo
from tests.conftest import ADMIN, EDITOR, VIEWER


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


def test_loads_load_upload_stores_data_and_a_snapshot(
    session: Session, running: registry.ExperimentView
) -> None:
    assert running.actual_start is not None
    seen: list[float] = []
    report, snap = loads.load_upload(
        session, experiment_id=running.id, filename="day1.csv",
        data=_user_csv(running.actual_start), actor=EDITOR,
        progress=lambda f, _m: seen.append(f))
    assert report.units == {"control": 20, "green": 20}
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert snap.snapshot_id is not None and snap.computed_by == EDITOR.name
    assert mrepo.count_daily_stats(session, experiment_id=running.id) == 2


def test_loads_rejected_upload_lists_problems_and_writes_nothing(
    session: Session, running: registry.ExperimentView
) -> None:
    bad = b"unit_id,variant,conversion\nu1,control,1\nu2,purple,0\nu3,green,maybe\n"
    with pytest.raises(InvalidInput) as err:
        loads.load_upload(session, experiment_id=running.id, filename="bad.csv",
                                 data=bad, actor=EDITOR)
    text = " ".join(err.value.problems)
    assert "maybe" in text and "u3" in text  # names the row and column to fix
    assert mrepo.count_daily_stats(session, experiment_id=running.id) == 0
    with pytest.raises(InvalidInput, match=".csv, .csv.gz or .parquet"):
        loads.load_upload(session, experiment_id=running.id, filename="data.xlsx",
                                 data=b"x", actor=EDITOR)
    with pytest.raises(PermissionDenied):
        loads.load_upload(session, experiment_id=running.id, filename="a.csv",
                                 data=_user_csv(date.today()), actor=VIEWER)
