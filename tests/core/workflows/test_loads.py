"""Loading an uploaded file, then a stored results snapshot (accepted, or rejected with every
problem and nothing written)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.data.reading import UploadLimits, check_upload_limits
from core.errors import InvalidInput, PermissionDenied, UploadTooLarge
from core.workflows import loads
from db import metric_repository as mrepo
from tests.conftest import ADMIN, EDITOR, VIEWER
from tests.hostile_uploads import gzip_csv_rows, parquet_rows, wide_csv


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


# --------------------------------------------------------------------------- upload limits


HOSTILE: dict[str, tuple[str, Callable[[Path], bytes], str]] = {
    "gzip of 100 M rows": ("rows.csv.gz", lambda _tmp: gzip_csv_rows(100_000_000),
                           "UPLOAD_MAX_ROWS"),
    "parquet of 25 M rows": ("rows.parquet",
                             lambda tmp: parquet_rows(tmp / "p.parquet", 25_000_000).read_bytes(),
                             "UPLOAD_MAX_ROWS"),
    "csv of 10**6 columns": ("wide.csv", lambda _tmp: wide_csv(1_000_000), "UPLOAD_MAX_COLUMNS"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_loads_upload_over_the_default_limits_is_refused_and_writes_nothing(
    session: Session, running: registry.ExperimentView, tmp_path: Path, case: str
) -> None:
    name, build, setting = HOSTILE[case]
    with pytest.raises(UploadTooLarge, match=setting) as refused:
        loads.load_upload(session, experiment_id=running.id, filename=name,
                          data=build(tmp_path), actor=EDITOR)
    assert refused.value.http_status == 413
    assert mrepo.count_daily_stats(session, experiment_id=running.id) == 0


def _limits(**caps: int) -> UploadLimits:
    return UploadLimits(**{"max_bytes": 1 << 30, "max_rows": 100, "max_columns": 10, **caps})


def test_loads_upload_limits_decompressed_bytes_of_a_gzip(
    session: Session, running: registry.ExperimentView
) -> None:
    assert running.actual_start is not None
    packed = gzip.compress(_user_csv(running.actual_start, rows=40_000))
    small = _limits(max_bytes=256 * 1024, max_rows=10**6)
    assert len(packed) < small.max_bytes
    with pytest.raises(UploadTooLarge, match="bytes once decompressed.*UPLOAD_MAX_DECOMPRESSED"):
        loads.load_upload(session, experiment_id=running.id, filename="day.csv.gz",
                          data=packed, actor=EDITOR, limits=small)
    assert mrepo.count_daily_stats(session, experiment_id=running.id) == 0
    report, _ = loads.load_upload(session, experiment_id=running.id, filename="day.csv.gz",
                                  data=packed, actor=EDITOR, limits=_limits(max_rows=10**6))
    assert report.rows_read == 40_000


@pytest.mark.parametrize(("text", "limits", "refused"), [
    (b'unit_id,"a,b;c",variant\nu1,1,x\n', _limits(max_columns=3), None),
    (b'unit_id,"a,b;c",variant,d\nu1,1,x,2\n', _limits(max_columns=3), "UPLOAD_MAX_COLUMNS"),
    (b"unit_id;variant;a;b\nu1;x;1;2\n", _limits(max_columns=3), "UPLOAD_MAX_COLUMNS"),
    (b"unit_id,variant\nu1,x\nu2,y", _limits(max_rows=2), None),
    (b"unit_id,variant\nu1,x\nu2,y\n", _limits(max_rows=2), None),
    (b"unit_id,variant\nu1,x\nu2,y\nu3,z", _limits(max_rows=2), "UPLOAD_MAX_ROWS"),
    (b"unit_id,variant\n" + b"u1,x\n" * 1000, _limits(max_bytes=4096), "DECOMPRESSED"),
])
def test_loads_upload_limits_count_columns_outside_quotes_and_rows_exactly(
    tmp_path: Path, text: bytes, limits: UploadLimits, refused: str | None
) -> None:
    path = tmp_path / "file.csv"
    path.write_bytes(text)
    if refused is None:
        check_upload_limits(path, limits)
    else:
        with pytest.raises(UploadTooLarge, match=refused):
            check_upload_limits(path, limits)
