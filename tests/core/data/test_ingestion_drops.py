"""File drops: the scheduled refresh loads ``incoming/experiment-<id>/<YYYY-MM-DD>.csv|.parquet``
from the artifact store for the window's days, once per content (SHA-256), a changed file
replacing its day; a bad drop is rejected with nothing written and reported. On the local
folder store (SQLite and PostgreSQL) and on S3 (moto's server on loopback). Reference sums:
numpy on the same unit rows."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_allclose
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.artifacts import ArtifactStore, LocalArtifactStore, S3ArtifactStore, sha256_hex
from core.data.ingestion import ingest_file
from core.errors import InvalidInput
from core.workflows import refresh
from db import state_repository
from db.models import AuditEntry, IngestLoad, MetricDailyStat
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import make_experiment, make_units, reference, stored
from tests.s3server import moto_s3_server

D1 = date(2026, 3, 3)
D2 = date(2026, 3, 4)
LATER = date(2026, 3, 8)
METRIC_COLS = ("conv", "revenue", "revenue_pre", "refunds", "load_ms")


def _units(day: date, *, seed: int, n: int = 40, prefix: str = "u") -> dict[str, np.ndarray]:
    cols = make_units(n, seed=seed, start=day, days=1)
    cols["unit_id"] = np.array([f"{prefix}{day:%m%d}-{u}" for u in cols["unit_id"]],
                               dtype=object)
    return cols


def _csv(cols: dict[str, Any], *, with_date: bool = True) -> bytes:
    names = ["unit_id", "variant", *(["date"] if with_date else []), *METRIC_COLS]
    lines = [",".join(names)]
    lines += [",".join(str(cols[c][i]) for c in names) for i in range(len(cols["unit_id"]))]
    return ("\n".join(lines) + "\n").encode()


def _aggregate_parquet(cols: dict[str, np.ndarray]) -> bytes:
    """The pre-aggregated form (variant, date, metric, n, sum, sum_squares) of unit rows."""
    rows: dict[str, list[Any]] = {k: [] for k in ("variant", "date", "metric", "n", "sum",
                                                  "sum_squares")}
    for metric in ("conv", "refunds"):
        for (variant, metric_name, day), (n, s, ss) in reference(cols, metric).items():
            for k, v in zip(rows, (variant, day, metric_name, n, s, ss), strict=True):
                rows[k].append(v)
    buffer = io.BytesIO()
    pq.write_table(pa.table(rows), buffer)
    return buffer.getvalue()


def _check(session: Session, exp: int, cols: dict[str, np.ndarray], metrics: tuple[str, ...]
           ) -> None:
    got = stored(session, exp)
    for metric in metrics:
        for key, want in reference(cols, metric).items():
            assert got[key][0] == want[0], key
            assert_allclose(got[key][1:3], want[1:3], rtol=1e-9)


def _drop(store: ArtifactStore, key: str, data: bytes) -> None:
    """Drop (or overwrite, as a user copying a new file would) ``key``."""
    if isinstance(store, LocalArtifactStore):
        path = store.root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        assert isinstance(store, S3ArtifactStore)
        store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}", Body=data)


def _ingest(session: Session, exp: int, store: ArtifactStore, first: date = D1,
            days: int = 2) -> refresh.IngestOutcome:
    return refresh.ingest_interval(
        session, experiment_id=exp, interval_start=first,
        interval_end=first + timedelta(days=days), actor=EDITOR, store=store,
    )


def _audit_count(session: Session, exp: int) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry)
                          .where(AuditEntry.entity_id == exp)) or 0


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"drops-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return S3ArtifactStore(bucket, "prod", endpoint_url=endpoint)


def test_drops_load_the_window_once_and_reload_a_changed_file(
    session: Session, store: ArtifactStore
) -> None:
    exp = make_experiment(session, end=None)
    day1, day2, later = _units(D1, seed=1), _units(D2, seed=2), _units(LATER, seed=3)
    k1 = refresh.drop_key(exp, D1, "csv")
    k2 = refresh.drop_key(exp, D2, "parquet")
    _drop(store, k1, _csv(day1, with_date=False))  # user-level, dated by its key
    _drop(store, k2, _aggregate_parquet(day2))     # pre-aggregated
    _drop(store, refresh.drop_key(exp, LATER), _csv(later))  # outside the window
    _drop(store, f"incoming/experiment-{exp}/notes.txt", b"not a drop")

    first = _ingest(session, exp, store)
    assert first.source == "files" and first.changed
    assert first.files_loaded == (k1, k2) and first.files_skipped == () == first.rejected
    assert first.rows_read == 80 + 4  # 80 unit rows, 2 variants x 2 metrics aggregated
    _check(session, exp, day1, ("conv", "revenue", "refunds"))
    _check(session, exp, day2, ("conv", "refunds"))
    assert {k[2] for k in stored(session, exp)} == {D1, D2}
    entries = session.scalars(select(AuditEntry).where(
        AuditEntry.entity_id == exp, AuditEntry.action == "ingest")).all()
    assert [(e.changes["source"][1], e.changes["sha256"][1]) for e in entries] == [
        (f"user_file:{k1}", sha256_hex(_csv(day1, with_date=False))),
        (f"aggregate_file:{k2}", sha256_hex(_aggregate_parquet(day2))),
    ]

    audits = _audit_count(session, exp)
    loaded_at = session.scalars(select(MetricDailyStat.loaded_at).where(
        MetricDailyStat.experiment_id == exp).order_by(MetricDailyStat.id)).all()
    again = _ingest(session, exp, store)
    assert not again.changed and again.files_loaded == ()
    assert again.files_skipped == (k1, k2) and again.stats_rows_written == 0
    assert _audit_count(session, exp) == audits
    assert session.scalars(select(MetricDailyStat.loaded_at).where(
        MetricDailyStat.experiment_id == exp).order_by(MetricDailyStat.id)).all() == loaded_at

    corrected = _units(D1, seed=11, n=55, prefix="v")  # the day's file, re-exported
    _drop(store, k1, _csv(corrected))
    third = _ingest(session, exp, store)
    assert third.files_loaded == (k1,) and third.files_skipped == (k2,)
    _check(session, exp, corrected, ("conv", "revenue", "refunds"))  # replaced
    _check(session, exp, day2, ("conv", "refunds"))  # the other day is untouched
    assert _ingest(session, exp, store).files_loaded == ()


def test_drops_bad_file_is_rejected_with_nothing_written_and_the_rest_goes_on(
    session: Session, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    exp = make_experiment(session, end=None)
    good = _units(D1, seed=1)
    bad = _units(D2, seed=2)
    bad["variant"][0] = "treatmnet"
    _drop(store, refresh.drop_key(exp, D1), _csv(good))
    _drop(store, refresh.drop_key(exp, D2), _csv(bad))

    outcome = _ingest(session, exp, store)
    assert outcome.files_loaded == (refresh.drop_key(exp, D1),)
    [message] = outcome.rejected
    assert message.startswith(f"{refresh.drop_key(exp, D2)}: ")
    assert "unknown variant" in message and "treatmnet" in message
    assert {k[2] for k in stored(session, exp)} == {D1}
    # Still rejected (and reported) while the file is unchanged; loaded once it is fixed.
    assert _ingest(session, exp, store).rejected == (message,)
    bad["variant"][0] = "treatment"
    _drop(store, refresh.drop_key(exp, D2), _csv(bad))
    fixed = _ingest(session, exp, store)
    assert fixed.rejected == () and fixed.files_loaded == (refresh.drop_key(exp, D2),)
    _check(session, exp, bad, ("conv",))


def test_drops_ledger_is_the_ingest_loads_table_not_the_audit_log(
    session: Session, tmp_path: Path
) -> None:
    """Each load writes its (experiment, key) ledger row with the data; a rejected drop writes
    none. Deleting the `ingest` audit entries still skips an unchanged drop; altering the
    ledger's SHA-256 reloads it."""
    store = LocalArtifactStore(tmp_path / "artifacts")
    exp = make_experiment(session, end=None)
    good, bad = _units(D1, seed=1), _units(D2, seed=2)
    bad["variant"][0] = "treatmnet"
    k1, k2 = refresh.drop_key(exp, D1), refresh.drop_key(exp, D2)
    _drop(store, k1, _csv(good))
    _drop(store, k2, _csv(bad))
    outcome = _ingest(session, exp, store)
    assert outcome.files_loaded == (k1,) and len(outcome.rejected) == 1

    [row] = state_repository.ingest_loads(session, experiment_id=exp)
    assert (row.key, row.kind, row.sha256, row.first_day, row.last_day, row.rows_read,
            row.loaded_by) == (k1, "user_file", sha256_hex(_csv(good)), D1, D1,
                               outcome.rows_read, EDITOR.name)
    assert row.rows_written == outcome.stats_rows_written and row.loaded_at is not None
    assert set(row.metrics) >= {"conv", "refunds"}

    session.execute(delete(AuditEntry).where(AuditEntry.action == "ingest"))
    session.commit()
    assert _ingest(session, exp, store).files_skipped == (k1,)

    session.execute(update(IngestLoad).where(IngestLoad.key == k1).values(sha256="0" * 64))
    session.commit()
    again = _ingest(session, exp, store)
    assert again.files_loaded == (k1,)
    [row] = state_repository.ingest_loads(session, experiment_id=exp)
    assert row.sha256 == sha256_hex(_csv(good))  # one row per key, replaced


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("csv", lambda: _csv(_units(D2, seed=4)), "holds the data of 2026-03-03 but has rows "
                                                  "dated 2026-03-04"),
        ("parquet", lambda: b"%PDF-1.4 not parquet", "is not a Parquet file"),
        ("csv", lambda: b"unit_id,variant,conv\n", "has a header but no rows"),
    ],
)
def test_drops_wrong_day_or_unreadable_file_is_rejected(
    session: Session, tmp_path: Path, name: str, data: Any, message: str
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    exp = make_experiment(session, end=None)
    _drop(store, refresh.drop_key(exp, D1, name), data())
    outcome = _ingest(session, exp, store, days=1)
    assert len(outcome.rejected) == 1 and message in outcome.rejected[0]
    assert not outcome.changed and stored(session, exp) == {}


def test_drops_two_files_for_one_day_are_both_rejected(
    session: Session, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    exp = make_experiment(session, end=None)
    cols = _units(D1, seed=1)
    _drop(store, refresh.drop_key(exp, D1, "csv"), _csv(cols))
    _drop(store, refresh.drop_key(exp, D1, "parquet"), _aggregate_parquet(cols))
    outcome = _ingest(session, exp, store, days=1)
    assert len(outcome.rejected) == 2 and all("keep one per day" in r for r in outcome.rejected)
    assert stored(session, exp) == {}


def test_refresh_reports_a_rejected_drop_and_still_recomputes(
    session: Session, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    exp = make_experiment(session, end=None)
    _drop(store, refresh.drop_key(exp, D1), _csv(_units(D1, seed=1)))
    _drop(store, refresh.drop_key(exp, D2), b"\x00\x01binary")
    out = refresh.refresh_experiment(session, experiment_id=exp, interval_start=D1,
                                     interval_end=D2 + timedelta(days=1), actor=EDITOR,
                                     store=store)
    assert out.results.new_snapshot and out.results.data_through == D1
    assert out.report.rejected == out.ingest.rejected and len(out.ingest.rejected) == 1
    [line] = refresh.summarise([out.report.to_dict()])
    assert f"rejected {refresh.drop_key(exp, D2)}: file: " in line
    assert "neither CSV nor Parquet" in line


def test_ingest_file_for_one_day_replaces_only_that_day(session: Session, tmp_path: Path
                                                        ) -> None:
    """Without ``for_day`` a dateless user-level file is a full snapshot; with it, one day."""
    exp = make_experiment(session, end=None)
    day1 = _units(D1, seed=1)
    path = tmp_path / "day1.csv"
    path.write_bytes(_csv(day1))
    ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    path.write_bytes(_csv(_units(D2, seed=2), with_date=False))
    ingest_file(session, path=path, experiment_id=exp, actor=EDITOR, for_day=D2)
    assert {k[2] for k in stored(session, exp)} == {D1, D2}
    _check(session, exp, day1, ("conv",))
    with pytest.raises(InvalidInput, match="holds the data of 2026-03-04"):
        path.write_bytes(_csv(day1))
        ingest_file(session, path=path, experiment_id=exp, actor=EDITOR, for_day=D2)
