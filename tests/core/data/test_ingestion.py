"""Ingestion of metric data on SQLite and PostgreSQL: user-level and pre-aggregated files, every
bad input rejected with nothing written, idempotent reloads. Reference sums come from numpy on
the same unit-level values."""

from __future__ import annotations

import csv
import gc
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_allclose
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.data.ingestion import detect_format, ingest_file
from core.errors import InvalidInput, PermissionDenied
from db import metric_repository as mrepo
from db import state_repository
from db.models import AuditEntry
from tests.conftest import EDITOR, VIEWER

START = date(2026, 3, 2)
END = date(2026, 3, 15)
METRICS = {
    "conv": ("binomial", True),
    "revenue": ("mean", True),
    "refunds": ("binomial", False),
    "load_ms": ("mean", False),
}


def make_experiment(
    session: Session,
    *,
    name: str = "Button test",
    primary: str = "conv",
    guardrails: tuple[str, ...] = ("refunds",),
    secondaries: tuple[str, ...] = ("revenue",),
    variants: tuple[tuple[str, float], ...] = (("control", 0.5), ("treatment", 0.5)),
    planned: int = 1000,
    mode: str = "fixed",
    correction: str = "holm",
    start: date = START,
    end: date | None = END,
) -> int:
    """A running (or, with `end`, completed) experiment over the test metrics; returns its id."""
    known = {m.name for m in catalogue.list_metrics(session)}
    for metric, (kind, hib) in METRICS.items():
        if metric not in known:
            catalogue.create_metric(
                session, data={"name": metric, "kind": kind, "higher_is_better": hib},
                actor=EDITOR,
            )
    view = registry.create_experiment(session, data={
        "name": name, "owner": "tester", "hypothesis": "It helps.", "primary_metric": primary,
        "guardrail_metrics": list(guardrails), "secondary_metrics": list(secondaries),
        "variants": [{"name": n, "weight": w} for n, w in variants],
        "planned_sample_size": planned, "analysis_mode": mode, "correction": correction,
    }, actor=EDITOR)
    view = registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=start,
    )
    if end is not None:
        view = registry.transition_experiment(
            session, experiment_id=view.id, to_status="completed",
            expected_version=view.version, actor=EDITOR, decision="ship", on=end,
        )
    return view.id


def make_units(
    n_per_variant: int,
    *,
    seed: int = 1,
    variants: tuple[str, ...] = ("control", "treatment"),
    lift: dict[str, float] | None = None,
    start: date = START,
    days: int = 14,
) -> dict[str, np.ndarray]:
    """Seeded unit-level data: conv and refunds (0/1), revenue with revenue_pre, load_ms."""
    rng = np.random.default_rng(seed)
    lift = lift or {}
    variant = np.repeat(np.array(variants, dtype=object), n_per_variant)
    total = variant.size
    factor = np.array([1.0 + lift.get(v, 0.0) for v in variant])
    pre = rng.gamma(2.0, 5.0, total)
    return {
        "unit_id": np.array([f"u{i}" for i in range(total)], dtype=object),
        "variant": variant,
        "date": np.array([start + timedelta(days=int(d)) for d in rng.integers(0, days, total)],
                         dtype=object),
        "conv": (rng.random(total) < 0.2 * factor).astype(np.int64),
        "refunds": (rng.random(total) < 0.05).astype(np.int64),
        "revenue": np.round((0.7 * pre + rng.gamma(2.0, 3.0, total)) * factor, 2),
        "revenue_pre": np.round(pre, 2),
        "load_ms": np.round(rng.normal(800, 100, total), 1),
    }


def write_csv(path: Path, cols: dict[str, Any]) -> Path:
    names = list(cols)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in zip(*(cols[n] for n in names), strict=True):
            writer.writerow(row)
    return path


def write_parquet(path: Path, cols: dict[str, Any]) -> Path:
    pq.write_table(pa.table({k: list(v) for k, v in cols.items()}), path)
    return path


def stored(session: Session, experiment_id: int) -> dict[tuple[str, str, date], tuple]:
    """(variant, metric, day) -> (n, sum, sum_squares, cov sums) as stored."""
    from db.models import Metric, Variant

    names = {v.id: v.name for v in session.scalars(select(Variant))}
    metrics = {m.id: m.name for m in session.scalars(select(Metric))}
    return {
        (names[r.variant_id], metrics[r.metric_id], r.day): (
            r.stats.n, r.stats.sum, r.stats.sum_squares, r.stats.sum_x, r.stats.sum_x2,
            r.stats.sum_xy)
        for r in mrepo.daily_stats(session, experiment_id=experiment_id)
    }


def reference(cols: dict[str, np.ndarray], metric: str, pre: str | None = None) -> dict:
    """numpy sums per (variant, day): the independent reference for the stored rows."""
    out = {}
    days = np.array(cols["date"])
    for v in np.unique(cols["variant"]):
        for d in np.unique(days):
            mask = (cols["variant"] == v) & (days == d)
            if not mask.any():
                continue
            y = cols[metric][mask].astype(float)
            row = [int(mask.sum()), y.sum(), (y * y).sum()]
            if pre:
                x = cols[pre][mask].astype(float)
                row += [x.sum(), (x * x).sum(), (x * y).sum()]
            out[(v, metric, d)] = tuple(row)
    return out


def ingest_count(session: Session, experiment_id: int) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.entity_id == experiment_id, AuditEntry.action == "ingest")) or 0


# --------------------------------------------------------------------------- user-level files


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_ingest_user_file_stores_daily_sums_equal_to_numpy(
    session: Session, tmp_path: Path, fmt: str
) -> None:
    exp = make_experiment(session, guardrails=("refunds", "load_ms"))
    cols = make_units(300)
    cols["extra_note"] = np.array(["x"] * cols["variant"].size, dtype=object)
    cols["extra_score"] = np.arange(cols["variant"].size, dtype=float)
    writer = write_csv if fmt == "csv" else write_parquet
    path = writer(tmp_path / f"units.{fmt}", cols)
    seen: list[tuple[float, str]] = []
    report = ingest_file(session, path=path, experiment_id=exp, actor=EDITOR,
                         progress=lambda f, m: seen.append((f, m)))
    assert report.kind == "user_file"
    assert report.rows_read == 600
    assert report.units == {"control": 300, "treatment": 300}
    assert set(report.metrics) == {"conv", "revenue", "refunds", "load_ms"}
    assert report.cuped_metrics == ("revenue",)
    assert report.ignored_columns == ("extra_score",)
    assert report.dimensions == ("extra_note",)  # a text column: a dimension (one value)
    got = stored(session, exp)
    want = {**reference(cols, "revenue", "revenue_pre"), **reference(cols, "conv"),
            **reference(cols, "refunds"), **reference(cols, "load_ms")}
    assert set(got) == set(want)
    for key, values in want.items():
        assert got[key][0] == values[0]
        assert_allclose(got[key][1:1 + len(values) - 1], values[1:], rtol=1e-9)
        if key[1] != "revenue":
            assert got[key][3] is None
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert ingest_count(session, exp) == 1


def test_ingest_same_file_twice_replaces_never_double_counts(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session)
    path = write_parquet(tmp_path / "u.parquet", make_units(200))
    ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    first = stored(session, exp)
    ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    assert stored(session, exp) == first
    counts = mrepo.assignments(session, experiment_id=exp)
    assert sum(a.units for a in counts) == 400


def test_ingest_reload_of_some_days_replaces_only_those_days(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session)
    cols = make_units(200)
    ingest_file(session, path=write_parquet(tmp_path / "a.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    before = stored(session, exp)
    first_day = START
    mask = np.array(cols["date"]) == first_day
    day_only = {k: v[mask] for k, v in cols.items()}
    day_only["conv"] = np.ones(mask.sum(), dtype=np.int64)
    ingest_file(session, path=write_parquet(tmp_path / "b.parquet", day_only),
                experiment_id=exp, actor=EDITOR)
    after = stored(session, exp)
    for key, value in after.items():
        if key[2] == first_day and key[1] == "conv":
            assert value[1] == value[0]  # every unit converts now
        else:
            assert value == before[key]


def test_ingest_every_load_writes_its_ledger_row_one_per_source(
    session: Session, tmp_path: Path
) -> None:
    """Uploads and SQL rows record (kind, key, days, metrics, rows, who) in ingest_loads; a
    second load of the same file name replaces its row."""
    from core.data.ingestion import ingest_records

    exp = make_experiment(session)
    cols = make_units(50)
    path = write_parquet(tmp_path / "u.parquet", cols)
    first = ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    ingest_records(session, experiment_id=exp, actor=EDITOR, kind="sql", label="warehouse",
                   rows=[{"variant": v, "date": START, "metric": "revenue", "n": 10,
                          "sum": 50.0, "sum_squares": 300.0} for v in ("control", "treatment")])
    ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    loads = {r.key: r for r in state_repository.ingest_loads(session, experiment_id=exp)}
    assert {k: r.kind for k, r in loads.items()} == {"u.parquet": "user_file", "warehouse": "sql"}
    upload, sql = loads["u.parquet"], loads["warehouse"]
    assert (upload.first_day, upload.last_day) == (first.first_day, first.last_day)
    assert (upload.rows_read, upload.rows_written) == (100, first.stats_rows_written)
    assert set(upload.metrics) == set(first.metrics) and upload.sha256 is None
    assert (sql.first_day, sql.last_day, sql.metrics, sql.rows_read, sql.rows_written,
            sql.loaded_by) == (START, START, ["revenue"], 2, 2, EDITOR.name)


def test_ingest_file_without_date_column_is_a_full_snapshot_on_one_day(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session)
    cols = make_units(100)
    ingest_file(session, path=write_parquet(tmp_path / "a.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    snapshot = {k: v for k, v in cols.items() if k != "date"}
    ingest_file(session, path=write_csv(tmp_path / "b.csv", snapshot), experiment_id=exp,
                actor=EDITOR, day=END)
    got = stored(session, exp)
    assert {k[2] for k in got} == {END}
    assert got[("control", "conv", END)][0] == 100


def test_ingest_requires_the_editor_role(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session)
    path = write_csv(tmp_path / "u.csv", make_units(10))
    with pytest.raises(PermissionDenied):
        ingest_file(session, path=path, experiment_id=exp, actor=VIEWER)


# --------------------------------------------------------------------------- pre-aggregated


def test_ingest_pre_aggregated_file_stores_rows_as_given(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session)
    rows = {
        "variant": ["control", "treatment", "control", "treatment"],
        "date": ["2026-03-02", "2026-03-02", "2026-03-02", "2026-03-02"],
        "metric": ["conv", "conv", "revenue", "revenue"],
        "n": [100, 104, 100, 104],
        "sum": [20, 27, 1500.5, 1630.25],
        "sum_squares": [20, 27, 40000.0, 43000.0],
    }
    report = ingest_file(session, path=write_csv(tmp_path / "agg.csv", rows),
                         experiment_id=exp, actor=EDITOR)
    assert report.kind == "aggregate_file"
    got = stored(session, exp)
    assert got[("treatment", "conv", START)][:3] == (104, 27.0, 27.0)
    assert got[("control", "revenue", START)][:3] == (100, 1500.5, 40000.0)
    assert {a.units for a in mrepo.assignments(session, experiment_id=exp)} == {100, 104}


# --------------------------------------------------------------------------- bad inputs

def _agg(**changes: Any) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {
        "variant": ["control", "treatment"], "date": ["2026-03-03", "2026-03-03"],
        "metric": ["conv", "conv"], "n": [100, 100], "sum": [10, 12], "sum_squares": [10, 12],
    }
    rows.update(changes)
    return rows


def _units(**changes: Any) -> dict[str, Any]:
    cols: dict[str, Any] = {k: list(v) for k, v in make_units(5).items()}
    cols.update(changes)
    return cols


BAD_FILES: dict[str, tuple[str, Any, str]] = {
    "missing variant column": ("csv", {k: v for k, v in _units().items() if k != "variant"},
                               "lacks the column(s) variant"),
    "no metric column": ("csv", {"unit_id": ["a"], "variant": ["control"]}, "no metric column"),
    "unknown variant": ("csv", _units(variant=["control"] * 5 + ["treatmnet"] * 5),
                        "unknown variant(s) 'treatmnet' (5 rows)"),
    "non-numeric value": ("csv", _units(revenue=["12.5"] * 9 + ["n/a"]),
                          "column revenue: 1 non-numeric values, e.g. unit u9 = 'n/a'"),
    "binomial value above 1": ("parquet", _units(conv=[0] * 9 + [2]),
                               "column conv: 1 values other than 0 or 1"),
    "empty metric value": ("csv", _units(load_ms=[800.0] * 9 + [""]),
                           "column load_ms: 1 rows are empty"),
    "unit in two variants": ("csv", _units(unit_id=[f"u{i}" for i in range(9)] + ["u0"]),
                             "unit u0 in control and treatment"),
    "date before start": ("csv", _units(date=["2026-02-20"] + ["2026-03-05"] * 9),
                          "1 rows are dated before 'Button test' started on 2026-03-02"),
    "date after end": ("parquet", _units(date=[date(2026, 4, 1)] + [date(2026, 3, 5)] * 9),
                       "dated after the experiment's last day 2026-03-15"),
    "unreadable date": ("csv", _units(date=["yesterday"] + ["2026-03-05"] * 9),
                        "date: 1 rows have an unreadable date (use YYYY-MM-DD), e.g. unit u0 = "
                        "'yesterday'"),
    "header only": ("csv", {k: [] for k in _units()}, "has a header but no rows"),
    "aggregate negative count": ("csv", _agg(n=[-5, 100]), "row 2: n is negative (-5)"),
    "aggregate conversions above units": ("csv", _agg(sum=[10, 120], sum_squares=[10, 120]),
                                          "row 3: conversions (120) exceed units (100)"),
    "aggregate unknown metric": ("csv", _agg(metric=["conv", "clicks"]),
                                 "metric 'clicks' is not a metric of 'Button test'"),
    "aggregate missing column": ("csv", {k: v for k, v in _agg().items() if k != "sum_squares"},
                                 "lacks the column(s) sum_squares"),
    "aggregate duplicate row": ("csv", _agg(variant=["control", "control"]),
                                "repeats control/2026-03-03/conv of row 2"),
    "aggregate non-numeric sum": ("csv", _agg(sum=["ten", 12]), "sum 'ten' is not a number"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_ingest_bad_file_is_rejected_and_nothing_written(
    session: Session, tmp_path: Path, case: str
) -> None:
    exp = make_experiment(session, guardrails=("refunds", "load_ms"))
    fmt, cols, message = BAD_FILES[case]
    writer = write_csv if fmt == "csv" else write_parquet
    path = writer(tmp_path / f"bad.{fmt}", cols)
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    assert message in str(err.value)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0
    assert mrepo.assignments(session, experiment_id=exp) == []
    assert ingest_count(session, exp) == 0
    assert state_repository.ingest_loads(session, experiment_id=exp) == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "is empty"),
        ("picture.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is neither CSV nor Parquet"),
        ("sheet.xlsx", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "neither CSV"),
        ("fake.parquet", b"unit_id,variant\nu1,control\n", "is not a Parquet file"),
        ("prose.csv", b"This is a letter, not data.\nRegards\n", "prose.csv could not be read"),
        ("note.txt", b"just one line without separators\n", "is neither CSV nor Parquet"),
    ],
)
def test_ingest_non_tabular_file_is_rejected(
    session: Session, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    exp = make_experiment(session)
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    assert message in str(err.value)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0


def test_ingest_csv_with_text_after_the_type_sniffing_sample_names_the_row(
    session: Session, tmp_path: Path
) -> None:
    """DuckDB infers types from a sample; a bad value far down the file is still named."""
    exp = make_experiment(session)
    cols = {k: list(v) for k, v in make_units(15_000).items()}
    cols["revenue"][-1] = "12,50 EUR"
    path = write_csv(tmp_path / "big.csv", cols)
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    assert "column revenue: 1 non-numeric values, e.g. unit u29999 = '12,50 EUR'" in str(
        err.value)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0


def test_ingest_several_problems_are_reported_together(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session)
    cols = _units(variant=["control"] * 9 + ["other"], conv=[0] * 9 + [3])
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=write_csv(tmp_path / "x.csv", cols), experiment_id=exp,
                    actor=EDITOR)
    assert len(err.value.problems) == 2


def test_detect_format_reads_magic_bytes_not_the_name(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "data.csv", {"a": [1]})
    assert detect_format(path) == "parquet"


def test_ingest_malformed_csv_line_is_named(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session)
    path = tmp_path / "broken.csv"
    path.write_text("unit_id,variant,date,conv\nu1,control,2026-03-03,1\n"
                    "u2,treatment,2026-03-03,0,extra\n")
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    assert err.value.problems == [
        "file: broken.csv could not be read as CSV: line 3: more values than the header's 4 "
        "columns; a value that holds the delimiter ',' must be in double quotes"
    ]
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0


def test_ingest_pauses_the_cyclic_gc_and_gives_it_back(session: Session, tmp_path: Path) -> None:
    """The load runs with the cyclic garbage collector off (its full passes cost about a fifth
    of bench/bench_load.py's load) and leaves it as it found it: after a load, after a refused
    file, and off when it was off."""
    exp = make_experiment(session)
    path = write_parquet(tmp_path / "u.parquet", make_units(50))
    seen: list[bool] = []
    assert gc.isenabled()
    ingest_file(session, path=path, experiment_id=exp, actor=EDITOR,
                progress=lambda _f, _m: seen.append(gc.isenabled()))
    assert not any(seen[:-1]) and seen[-1]  # off while reading and writing; back for the last mark
    assert gc.isenabled()
    fmt, cols, _message = next(iter(BAD_FILES.values()))
    bad = (write_csv if fmt == "csv" else write_parquet)(tmp_path / f"bad.{fmt}", cols)
    with pytest.raises(InvalidInput):
        ingest_file(session, path=bad, experiment_id=exp, actor=EDITOR)
    assert gc.isenabled()
    gc.disable()
    try:
        ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
        assert not gc.isenabled()
    finally:
        gc.enable()
