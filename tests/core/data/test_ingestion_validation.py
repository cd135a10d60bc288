"""Upload validation lists every problem of a file in one pass, and a CSV DuckDB cannot parse is
described line by line in plain words; each bad file writes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from sqlalchemy.orm import Session

from core.data.ingestion import ingest_file
from core.data.reading import MAX_PROBLEMS, file_reader
from core.data.user_files import duplicate_units
from core.errors import InvalidInput
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import ingest_count, make_experiment

FIVE_PROBLEMS = (
    "unit_id,variant,date,conv,revenue\n"
    "u1,control,2026-03-03,1,12.5\n"
    "u2,treatmnet,2026-03-03,0,3\n"      # unknown variant
    "u3,control,2026-03-03,0,n/a\n"      # non-numeric revenue
    "u1,treatment,2026-03-04,0,1\n"      # u1 again, in the other variant
    "u5,control,2026-05-01,0,1\n"        # after the experiment's last day
    "u6,control,2026-03-05,2,1\n"        # a binomial value of 2
    ",control,2026-03-05,0,1\n"          # no unit id
)


def _reject(session: Session, path: Path, exp: int | None = None) -> list[str]:
    exp = exp or make_experiment(session)
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0
    assert mrepo.assignments(session, experiment_id=exp) == []
    assert ingest_count(session, exp) == 0
    return err.value.problems


def test_ingest_validation_lists_every_problem_of_a_file_in_one_pass(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "six.csv"
    path.write_text(FIVE_PROBLEMS)
    problems = _reject(session, path)
    assert problems == [
        "variant: unknown variant(s) 'treatmnet' (1 rows); the experiment's variants are "
        "control, treatment",
        "unit_id: 1 rows have an empty unit_id",
        "unit_id: 1 extra rows: units appear in two variants (each unit belongs to exactly one "
        "variant and has one row), e.g. unit u1 in control and treatment",
        "date: 1 rows are dated after the experiment's last day 2026-03-15 (latest 2026-05-01)",
        "column conv: 1 values other than 0 or 1 (it is a binomial metric), e.g. unit u6 = '2'",
        "column revenue: 1 non-numeric values, e.g. unit u3 = 'n/a'",
    ]


def test_ingest_validation_finds_every_problem_when_a_bad_value_follows_the_sniffed_sample(
    session: Session, tmp_path: Path
) -> None:
    """DuckDB types CSV columns from a sample; a bad value far below it must not hide others."""
    lines = ["unit_id,variant,date,conv,revenue"]
    lines += [f"u{i},control,2026-03-0{3 + i % 5},{i % 2},{i % 7}.5" for i in range(30_000)]
    lines[25_000] = "u24999x,control,2026-03-04,1,12,50 EUR"  # a decimal comma: a 6th value
    lines[26_000] = "u25999x,control,2026-03-04,1,\"12,50 EUR\""  # quoted: non-numeric
    lines[27_000] = "u26999x,control,2026-03-04,3,1"  # binomial 3
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    exp = make_experiment(session)
    problems = _reject(session, path, exp)
    assert problems == [
        "file: big.csv could not be read as CSV: line 25001: more values than the header's 5 "
        "columns; a value that holds the delimiter ',' must be in double quotes"
    ]
    lines[25_000] = "u24999x,control,2026-03-04,1,12.5"
    path.write_text("\n".join(lines) + "\n")
    problems = _reject(session, path, exp)
    assert problems == [
        "column conv: 1 values other than 0 or 1 (it is a binomial metric), e.g. unit u26999x "
        "= '3'",
        "column revenue: 1 non-numeric values, e.g. unit u25999x = '12,50 EUR'",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('unit_id,variant,date,conv\nu1,control,2026-03-03,1\nu2,"treatment,2026-03-03,0\n',
         "line 3: a double quote (\") opens or sits inside a value without being closed; quote "
         "the whole value and double any quote inside it"),
        ('unit_id,variant,date,conv\nu1,control,2026-03-03,1\nu2,"treat"ment",2026-03-03,0\n',
         "line 3: a double quote (\") opens or sits inside a value without being closed"),
        ("unit_id;variant;date;conv\nu1;control;2026-03-03;1\nu2,treatment,2026-03-03,0\n",
         "line 3: fewer values than the header's 4 columns"),
        ("unit_id,variant,date,conv\n" + "".join(f"u{i},control,2026-03-03,1\n"
                                                 for i in range(3))
         + "u9,control,2026-03-03,1,7\nu10,control,2026-03-03,1,7\n",
         "2 lines: 5, 6: more values than the header's 4 columns"),
    ],
)
def test_ingest_malformed_csv_says_which_lines_and_how_to_fix_them(
    session: Session, tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    problems = _reject(session, path)
    assert len(problems) == 1
    assert problems[0].startswith("file: bad.csv could not be read as CSV: ")
    assert expected in problems[0]
    assert "state machine" not in problems[0] and "Error" not in problems[0]


def test_ingest_unterminated_quote_far_down_a_big_csv_is_named_not_a_raw_parser_error(
    session: Session, tmp_path: Path
) -> None:
    lines = ["unit_id,variant,date,conv"] + [f"u{i},control,2026-03-03,{i % 2}"
                                             for i in range(30_000)]
    lines[25_000] = 'u24999,"control,2026-03-03,1'
    path = tmp_path / "late.csv"
    path.write_text("\n".join(lines) + "\n")
    problems = _reject(session, path)
    assert problems == [
        "file: late.csv could not be read as CSV: line 25001: a double quote (\") opens or sits "
        "inside a value without being closed; quote the whole value and double any quote "
        "inside it, e.g. \"12\"\" screen\""
    ]


def test_ingest_validation_caps_the_list_and_counts_the_rest(
    session: Session, tmp_path: Path
) -> None:
    """Two problems per bad column (text and empty values): 12 columns give 24 problems, listed
    as 20 and a count."""
    make_experiment(session, name="Setup")  # creates the catalogue metrics
    from core import catalogue, registry

    names = [f"m{i:02d}" for i in range(12)]
    for name in names:
        catalogue.create_metric(session, data={"name": name, "kind": "mean"}, actor=EDITOR)
    view = registry.create_experiment(session, data={
        "name": "Wide", "owner": "t", "hypothesis": "h", "primary_metric": names[0],
        "secondary_metrics": names[1:],
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        "planned_sample_size": 100,
    }, actor=EDITOR)
    registry.transition_experiment(session, experiment_id=view.id, to_status="running",
                                   expected_version=view.version, actor=EDITOR)
    header = "unit_id,variant," + ",".join(names)
    rows = [f"u{i},control," + ",".join("" if i == 1 else "x" for _ in names)
            for i in range(3)]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=path, experiment_id=view.id, actor=EDITOR)
    problems = err.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[:2] == [
        "column m00: 2 non-numeric values, e.g. unit u0 = 'x', unit u2 = 'x'",
        "column m00: 1 rows are empty (every unit needs a value; use 0 for none), e.g. unit u1 "
        "= empty",
    ]
    assert problems[-1] == "... and 4 more problems; fix these and retry"
    assert mrepo.count_daily_stats(session, experiment_id=view.id) == 0


@pytest.mark.parametrize("partition_units", [1_000_000, 7_000])
def test_duplicate_units_proof_counts_extra_rows_exactly(
    tmp_path: Path, partition_units: int
) -> None:
    """The sorted-hash proof, in one array or (7,000 hashes a partition: 8 partition files)
    partitioned on disk: 0 for distinct ids; the exact count of extra rows otherwise
    (reference: Python's len - len(set))."""
    rng = np.random.default_rng(3)
    ids = [f"u{i}" for i in range(50_000)] + [f"u{i}" for i in rng.integers(0, 50_000, 37)]
    path = tmp_path / "ids.csv"
    path.write_text("unit_id\n" + "\n".join(ids) + "\n")
    con = duckdb.connect()
    src = file_reader(path, "csv")
    assert duplicate_units(con, src, '"unit_id"', len(ids), partition_units=partition_units) \
        == (len(ids) - len(set(ids)), len(ids))
    path.write_text("unit_id\n" + "\n".join(ids[:50_000]) + "\n")
    src = file_reader(path, "csv")
    assert duplicate_units(con, src, '"unit_id"', 50_000, partition_units=partition_units) \
        == (0, 50_000)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_ingest_validation_counts_infinite_and_nan_values_exactly(
    session: Session, tmp_path: Path, fmt: str
) -> None:
    """Infinite and NaN values are counted only when a column's sums are not finite; the counts
    are exact (reference: the values written, counted by hand) and nothing is written."""
    from tests.core.data.test_ingestion import make_units, write_csv, write_parquet

    cols = {k: list(v) for k, v in make_units(6).items()}
    cols["revenue"][2] = float("inf")
    cols["revenue"][7] = float("nan")
    cols["revenue_pre"][4] = float("-inf")
    cols["load_ms"][0] = float("nan")
    writer = write_csv if fmt == "csv" else write_parquet
    path = writer(tmp_path / f"inf.{fmt}", cols)
    problems = _reject(session, path, make_experiment(session, guardrails=("load_ms",)))
    assert sorted(problems) == [  # the metrics' order is the experiment's (database) order
        "column load_ms: 1 infinite or NaN values, e.g. unit u0 = 'nan'",
        "column revenue: 2 infinite or NaN values, e.g. unit u2 = 'inf', unit u7 = 'nan'",
        "column revenue_pre: 1 infinite or NaN values",
    ]


def test_ingest_parquet_file_without_rows_is_refused_and_its_unit_proof_stopped(
    session: Session, tmp_path: Path
) -> None:
    """The unit proof runs alongside the scan on Parquet; a load that fails still ends it (no
    thread or cursor left behind) and writes nothing."""
    import threading

    from tests.core.data.test_ingestion import make_units, write_parquet

    path = write_parquet(tmp_path / "empty.parquet", {k: v[:0] for k, v in make_units(1).items()})
    problems = _reject(session, path)
    assert problems == ["file: empty.parquet has a header but no rows"]
    assert not [t for t in threading.enumerate() if t.name.startswith("eos-unit-proof")]
