"""Upload validation lists every problem of a file in one pass, and a CSV DuckDB cannot parse is
described line by line in plain words; each bad file writes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest
from sqlalchemy.orm import Session

from core.data.ingestion import ingest_file
from core.data.reading import DECIMAL_COMMA_HINT, MAX_PROBLEMS, file_reader
from core.data.user_files import duplicate_units
from core.errors import InvalidInput
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import ingest_count, make_experiment, stored

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
        + DECIMAL_COMMA_HINT  # "12,50 EUR" split the line in two adjacent integers
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


# --------------------------------------------------------------------------- decimal commas
EU_EXPORT = (  # what Excel saves as CSV in a German or French locale
    "unit_id;variant;date;conv;revenue\n"
    "u1;control;2026-03-03;1;12,5\n"
    "u2;control;2026-03-03;0;0\n"
    "u3;treatment;2026-03-03;1;7,25\n"
    "u4;treatment;2026-03-03;0;-1,5\n"
)


def test_ingest_reads_decimal_commas_in_a_semicolon_separated_file_and_says_so(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "eu.csv"
    path.write_text(EU_EXPORT)
    exp = make_experiment(session)
    report = ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    rows = stored(session, exp)
    day = date(2026, 3, 3)
    assert rows[("control", "revenue", day)][:3] == (2, 12.5, 12.5 ** 2)
    assert rows[("treatment", "revenue", day)][:3] == (2, 5.75, 7.25 ** 2 + 1.5 ** 2)
    assert report.notes == ("Numbers were read with a decimal comma (1,5 = 1.5) in revenue: "
                            "the file is separated by ';'.",)


def test_ingest_refuses_points_beside_decimal_commas_as_ambiguous(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(EU_EXPORT + "u5;control;2026-03-03;0;1.234\n")  # 1.234 or 1234?
    assert _reject(session, path) == [
        "column revenue: 1 numbers are written with a point and 3 with a comma; the file is "
        "separated by ';', so its numbers are read with a decimal comma, and a point could be "
        "a thousands separator (is 1.234 one point two or twelve hundred?): write every number "
        "with a decimal comma and no thousands separator, e.g. unit u5 = '1.234'"
    ]


def test_ingest_names_thousands_separators_in_a_decimal_comma_file(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "thousands.csv"
    path.write_text(EU_EXPORT + "u5;control;2026-03-03;0;1.234,50\n")
    assert _reject(session, path) == [
        "column revenue: 1 non-numeric values, e.g. unit u5 = '1.234,50'; the file is read with "
        "decimal commas (it is separated by ';'): remove the thousands separators "
        "(1.234,5 → 1234,5)"
    ]


def test_ingest_hints_at_decimal_commas_splitting_a_comma_separated_line(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "split.csv"
    path.write_text(EU_EXPORT.replace(";", ","))  # 12,5 is now two values
    problems = _reject(session, path)
    assert problems == [
        "file: split.csv could not be read as CSV: 3 lines: 2, 4, 5: more values than the "
        "header's 5 columns; a value that holds the delimiter ',' must be in double quotes"
        + DECIMAL_COMMA_HINT
    ]


def test_ingest_hints_at_decimal_commas_in_a_comma_separated_file(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text(EU_EXPORT.replace(";", ",").replace(",12,5", ',"12,5"')
                    .replace(",7,25", ',"7,25"').replace(",-1,5", ',"-1,5"'))
    assert _reject(session, path) == [
        "column revenue: 3 non-numeric values, e.g. unit u1 = '12,5', unit u3 = '7,25', "
        "unit u4 = '-1,5'; they look like numbers with a decimal comma: save the file "
        "separated by ';' (Excel's CSV in a European locale), whose numbers are read with a "
        "decimal comma, or write them with a decimal point"
    ]


def test_ingest_reads_decimal_commas_in_a_semicolon_separated_aggregate_file(
    session: Session, tmp_path: Path
) -> None:
    rows = ("variant;date;metric;n;sum;sum_squares\n"
            "control;2026-03-03;revenue;100;250,5;1200,25\n"
            "treatment;2026-03-03;revenue;100;260;1300,75\n")
    path = tmp_path / "daily.csv"
    path.write_text(rows)
    exp = make_experiment(session)
    report = ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    day = date(2026, 3, 3)
    assert stored(session, exp)[("control", "revenue", day)][:3] == (100, 250.5, 1200.25)
    assert report.notes == ("Numbers were read with a decimal comma (1,5 = 1.5) in sum, "
                            "sum_squares: the file is separated by ';'.",)
    path.write_text(rows + "control;2026-03-04;revenue;100;1.250;1300\n")
    problems = _reject(session, path, make_experiment(session, name="Other"))
    assert problems == [
        "file: daily.csv: column sum has 1 numbers written with a point and 1 with a comma; the "
        "file is separated by ';', so its numbers are read with a decimal comma, and a point "
        "could be a thousands separator: write every number with a decimal comma and no "
        "thousands separator, e.g. row 4 = '1.250'"
    ]


def test_ingest_validation_counts_read_with_thousands_separators(
    session: Session, tmp_path: Path
) -> None:
    """Issue 23: a rejection read "25726 rows"; counts carry thousands separators."""
    lines = ["unit_id,variant,date,conv,revenue"]
    lines += [",control,2026-03-04,0,1" for _ in range(1_200)]
    lines += [f"u{i},control,2026-05-01,0,1" for i in range(1_500)]
    path = tmp_path / "counts.csv"
    path.write_text("\n".join(lines) + "\n")
    problems = _reject(session, path)
    assert "unit_id: 1,200 rows have an empty unit_id" in problems
    assert any(p.startswith("date: 1,500 rows are dated after") for p in problems), problems
