"""Reading and validating metric data: CSV/Parquet files through DuckDB, and per-variant,
per-day, per-metric rows from pre-aggregated files or SQL sources.

A user-level file is aggregated by DuckDB in a streaming scan under a memory limit (spilling to
disk beyond it) into :class:`Cell` sufficient statistics per (variant, day, metric) and
assignment counts per (variant, day); a pre-aggregated file or a SQL result is checked row by
row (:func:`aggregate_records`). Every problem found is collected and raised together as one
:class:`~core.errors.InvalidInput` naming rows and columns; nothing here touches the database,
so a bad input can never write anything (:mod:`core.data.writing` stores what this returns).
"""

from __future__ import annotations

import csv
import math
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

from core.errors import InvalidInput
from core.stats import SufficientStats
from core.types import FileKind

ProgressCallback = Callable[[float, str], None]
"""``progress(fraction, message)``: how far a load is, 0 to 1, and what it is doing."""

DUCKDB_MEMORY_LIMIT = "1GB"
"""DuckDB's working-memory cap for file aggregation; beyond it DuckDB spills to a temp folder."""
PRE_SUFFIX = "_pre"
AGGREGATE_COLUMNS = ("variant", "date", "metric", "n", "sum", "sum_squares")
COVARIATE_COLUMNS = ("sum_x", "sum_x2", "sum_xy")
MAX_AGGREGATE_ROWS = 1_000_000
"""A pre-aggregated input larger than this is almost surely a user-level file by mistake."""
_EXAMPLES = 3
_NUMERIC_PREFIXES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "BOOLEAN",
)



# --------------------------------------------------------------------------- what reading yields


@dataclass(frozen=True)
class MetricInfo:
    id: int
    name: str
    kind: str
    role: str
    higher_is_better: bool


@dataclass(frozen=True)
class ExperimentContext:
    """What ingestion needs to know about an experiment: variants, metrics, date window."""

    id: int
    name: str
    status: str
    start: date
    end: date
    variants: dict[str, int]
    metrics: dict[str, MetricInfo]


@dataclass(frozen=True)
class Cell:
    """Sufficient statistics of one (variant, day, metric), before they are stored."""

    variant: str
    day: date
    metric: str
    n: int
    sum: float
    sum_squares: float
    cov_sum: float | None = None
    cov_sum_squares: float | None = None
    cov_sum_products: float | None = None


@dataclass
class Aggregated:
    cells: list[Cell]
    assignments: dict[tuple[str, date], int]
    rows_read: int
    ignored: tuple[str, ...] = ()
    full_replace: bool = False
    metrics: tuple[str, ...] = field(default_factory=tuple)



# --------------------------------------------------------------------------- files


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def detect_format(path: Path) -> Literal["csv", "parquet"]:
    """CSV or Parquet, from the file's first bytes (the name alone is not trusted)."""
    if not path.exists():
        raise InvalidInput(f"file: {path} does not exist")
    if path.is_dir():
        raise InvalidInput(f"file: {path} is a folder, not a CSV or Parquet file")
    with path.open("rb") as handle:
        head = handle.read(65536)
    if not head.strip():
        raise InvalidInput(f"file: {path.name} is empty")
    if head[:4] == b"PAR1":
        return "parquet"
    if path.suffix.lower() == ".parquet":
        raise InvalidInput(
            f"file: {path.name} is named .parquet but is not a Parquet file (no PAR1 header)"
        )
    if head[:2] == b"\x1f\x8b" and path.name.lower().endswith((".csv.gz", ".gz")):
        return "csv"
    not_csv = (
        f"file: {path.name} is neither CSV nor Parquet; export the data as CSV (comma-"
        "separated, header row) or Parquet"
    )
    if b"\x00" in head:
        raise InvalidInput(not_csv)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            raise InvalidInput(not_csv + " (it is not UTF-8 text)") from None
        text = head[: exc.start].decode("utf-8")
    header = text.splitlines()[0] if text.splitlines() else ""
    if not any(sep in header for sep in (",", ";", "\t", "|")):
        raise InvalidInput(not_csv + " (its first line is not a header of column names)")
    return "csv"


def connect(memory_limit: str, threads: int | None) -> duckdb.DuckDBPyConnection:
    config: dict[str, Any] = {
        "memory_limit": memory_limit,
        "temp_directory": str(Path(tempfile.gettempdir()) / "experimentos_duckdb"),
        "preserve_insertion_order": False,
    }
    if threads:
        config["threads"] = threads
    return duckdb.connect(config=config)


def _csv_delimiter(path: Path) -> str:
    """The separator of the header line: the most frequent of , ; tab |."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:  # type: ignore[operator]
        header = handle.readline()
    return max((",", ";", "\t", "|"), key=header.count)


def file_reader(path: Path, fmt: str, *, all_varchar: bool = False) -> str:
    """DuckDB table function for the file. CSV: header on line 1, RFC 4180 quotes, the header's
    delimiter (DuckDB's sniffer is left to infer only column types)."""
    lit = _sql_literal(str(path))
    if fmt == "parquet":
        return f"read_parquet({lit})"
    extra = ", all_varchar=true" if all_varchar else ""
    delim = _sql_literal(_csv_delimiter(path))
    return (f"read_csv({lit}, header=true, skip=0, delim={delim}, quote='\"', escape='\"'"
            f"{extra})")


def _duck_problem(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:2])[:400]


def column_types(
    con: duckdb.DuckDBPyConnection, src: str, path: Path, fmt: str
) -> dict[str, str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    except duckdb.Error as exc:
        problem = (_csv_structure_problem(con, path) if fmt == "csv" else None) or (
            _duck_problem(exc))
        raise InvalidInput(f"file: {path.name} could not be read: {problem}") from None
    return {str(r[0]): str(r[1]).upper() for r in rows}


def _csv_structure_problem(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """When DuckDB cannot sniff a CSV, read it strictly as text to name the offending line."""
    delim = _csv_delimiter(path)
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader([handle.readline()], delimiter=delim), [])
    if not header:
        return None
    columns = "{" + ", ".join(f"{_sql_literal(h)}: 'VARCHAR'" for h in header) + "}"
    try:
        con.execute(
            f"SELECT count(*) FROM read_csv({_sql_literal(str(path))}, header=true, skip=0, "
            f"auto_detect=false, delim={_sql_literal(delim)}, quote='\"', escape='\"', "
            f"columns={columns})"
        ).fetchall()
    except duckdb.Error as exc:
        text = str(exc)
        line = next((ln.strip() for ln in text.splitlines() if "Line:" in ln), "")
        detail = next((ln.strip() for ln in text.splitlines() if "Expected Number" in ln), "")
        return " ".join(x for x in (line, detail) if x) or _duck_problem(exc)
    return None


def lower_map(columns: Iterable[str], name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    clashes = []
    for col in columns:
        key = col.strip().lower()
        if key in out:
            clashes.append(col)
        out[key] = col
    if clashes:
        raise InvalidInput(
            f"file: {name} has columns that differ only in case or spaces: {', '.join(clashes)}"
        )
    return out


def _is_numeric(duck_type: str) -> bool:
    return duck_type.startswith(_NUMERIC_PREFIXES)



def check_one_day(agg: Aggregated, for_day: date, name: str) -> None:
    """A file for one day holds only that day, and replaces only that day."""
    other = sorted({c.day for c in agg.cells} - {for_day})
    if other:
        shown = ", ".join(str(d) for d in other[:_EXAMPLES])
        if len(other) > _EXAMPLES:
            shown += f" (and {len(other) - _EXAMPLES} more days)"
        raise InvalidInput(
            f"file: {name} holds the data of {for_day} but has rows dated {shown}; a file for "
            "one day may hold only that day"
        )
    agg.full_replace = False


def file_kind(kind: FileKind, lower: Mapping[str, str], name: str) -> Literal["user",
                                                                            "aggregate"]:
    if kind != "auto":
        return kind
    if "unit_id" in lower:
        return "user"
    if {"metric", "n", "sum"} <= set(lower):
        return "aggregate"
    raise InvalidInput(
        f"file: {name} has neither a unit_id column (a user-level file: unit_id, variant, "
        "[date], one column per metric) nor metric/n/sum columns (a pre-aggregated file: "
        f"{', '.join(AGGREGATE_COLUMNS)}); its columns are {', '.join(lower.values())}"
    )



# --------------------------------------------------------------------------- user-level files


def _examples(
    con: duckdb.DuckDBPyConnection, src: str, unit: str, col: str, where: str
) -> str:
    rows = con.execute(
        f"SELECT CAST({unit} AS VARCHAR), CAST({col} AS VARCHAR) FROM {src} "
        f"WHERE {where} LIMIT {_EXAMPLES}"
    ).fetchall()
    return ", ".join(f"unit {u} = {v!r}" if v is not None else f"unit {u} = empty"
                     for u, v in rows)


def aggregate_user_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str,
    src: str,
    columns: dict[str, str],
    lower: dict[str, str],
    ctx: ExperimentContext,
    *,
    day: date | None,
    report: ProgressCallback,
) -> Aggregated:
    name = path.name
    missing = [c for c in ("unit_id", "variant") if c not in lower]
    metric_cols = {m: lower[m.lower()] for m in ctx.metrics if m.lower() in lower}
    problems: list[str] = []
    if missing:
        problems.append(f"file: {name} lacks the column(s) {', '.join(missing)}")
    if not metric_cols:
        problems.append(
            f"file: {name} has no metric column; name columns after the experiment's metrics: "
            f"{', '.join(ctx.metrics) or '(none: add metrics to the experiment first)'}"
        )
    if problems:
        raise InvalidInput(problems)
    pre_cols: dict[str, str] = {}
    used = {lower["unit_id"], lower["variant"], *metric_cols.values()}
    date_col = lower.get("date")
    if date_col:
        used.add(date_col)
    for metric in metric_cols:
        pre = lower.get((metric + PRE_SUFFIX).lower())
        if pre and ctx.metrics[metric].kind == "mean":
            pre_cols[metric] = pre
            used.add(pre)
    ignored = [c for c in columns if c not in used]

    unit, variant = _quote(lower["unit_id"]), _quote(lower["variant"])
    text_cols = [
        c for c in [*metric_cols.values(), *pre_cols.values()] if not _is_numeric(columns[c])
    ]
    if text_cols:
        if not con.execute(f"SELECT 1 FROM {src} LIMIT 1").fetchall():
            raise InvalidInput(f"file: {name} has a header but no rows")
        raise InvalidInput(_non_numeric_problems(con, src, unit, text_cols))
    date_type = columns.get(date_col or "", "")
    if date_col and not (date_type.startswith(("DATE", "TIMESTAMP"))):
        day_expr = f"TRY_CAST({_quote(date_col)} AS DATE)"
    elif date_col:
        day_expr = f"CAST({_quote(date_col)} AS DATE)"
    else:
        day_expr = "NULL::DATE"

    select = [
        f"CAST({variant} AS VARCHAR) AS v",
        f"{day_expr} AS d",
        "count(*) AS rows",
        f"count({unit}) AS units_nn",
        f"count_if({day_expr} IS NULL) AS bad_day" if date_col else "0 AS bad_day",
    ]
    order = list(metric_cols)
    for i, metric in enumerate(order):
        col = _quote(metric_cols[metric])
        x = f"CAST({col} AS DOUBLE)"
        select += [f"count({col}) AS nn{i}", f"sum({x}) AS s{i}", f"sum({x} * {x}) AS ss{i}"]
        if ctx.metrics[metric].kind == "binomial":
            select.append(f"count_if({x} NOT IN (0, 1)) AS bad{i}")
        else:
            select.append(f"count_if(NOT isfinite({x})) AS bad{i}")
        if metric in pre_cols:
            p = f"coalesce(CAST({_quote(pre_cols[metric])} AS DOUBLE), 0)"
            select += [
                f"sum({p}) AS px{i}",
                f"sum({p} * {p}) AS pxx{i}",
                f"sum({p} * {x}) AS pxy{i}",
                f"count_if(NOT isfinite({p})) AS pbad{i}",
            ]
    query = f"SELECT {', '.join(select)} FROM {src} GROUP BY ALL"
    report(0.1, f"Aggregating {name}")
    try:
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description]
        groups = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
        try:
            found = _csv_value_problems(con, path, fmt, lower, metric_cols, pre_cols, date_col)
        except duckdb.Error:
            found = []
        raise InvalidInput(
            found or [f"file: {name} could not be read: {_duck_problem(exc)}"]
        ) from None
    total_rows = sum(int(g["rows"]) for g in groups)
    if total_rows == 0:
        raise InvalidInput(f"file: {name} has a header but no rows")

    report(0.6, "Checking that each unit appears once")
    # Distinct 64-bit hashes prove distinct ids and cost a third of hashing the strings into a
    # set; only when some hashes repeat (a real duplicate, or a ~1e-6 collision) is the exact
    # count taken.
    dupes = int(con.execute(
        f"SELECT count({unit}) - count(DISTINCT hash({unit})) FROM {src}"
    ).fetchone()[0])  # type: ignore[index]
    if dupes:
        dupes = int(con.execute(
            f"SELECT count({unit}) - count(DISTINCT {unit}) FROM {src}"
        ).fetchone()[0])  # type: ignore[index]

    problems = []
    known = set(ctx.variants)
    unknown: dict[str, int] = {}
    for g in groups:
        if g["v"] is None:
            unknown["(empty)"] = unknown.get("(empty)", 0) + int(g["rows"])
        elif g["v"] not in known:
            unknown[g["v"]] = unknown.get(g["v"], 0) + int(g["rows"])
    if unknown:
        listed = ", ".join(f"'{v}' ({n} rows)" for v, n in sorted(unknown.items()))
        problems.append(
            f"variant: unknown variant(s) {listed}; the experiment's variants are "
            f"{', '.join(ctx.variants)}"
        )
    null_units = total_rows - sum(int(g["units_nn"]) for g in groups)
    if null_units:
        problems.append(f"unit_id: {null_units} rows have an empty unit_id")
    if dupes:
        problems.append(_duplicate_problem(con, src, unit, variant, dupes))
    bad_days = sum(int(g["bad_day"]) for g in groups)
    if bad_days:
        where = f"{day_expr} IS NULL"
        problems.append(
            f"date: {bad_days} rows have an empty or unreadable date (use YYYY-MM-DD), e.g. "
            + _examples(con, src, unit, _quote(date_col or ""), where)
        )
    if date_col:
        early = [g for g in groups if g["d"] is not None and g["d"] < ctx.start]
        late = [g for g in groups if g["d"] is not None and g["d"] > ctx.end]
        if early:
            n = sum(int(g["rows"]) for g in early)
            problems.append(
                f"date: {n} rows are dated before '{ctx.name}' started on {ctx.start} "
                f"(earliest {min(g['d'] for g in early)})"
            )
        if late:
            n = sum(int(g["rows"]) for g in late)
            problems.append(
                f"date: {n} rows are dated after the experiment's last day {ctx.end} "
                f"(latest {max(g['d'] for g in late)})"
            )
    for i, metric in enumerate(order):
        col = _quote(metric_cols[metric])
        empty = total_rows - sum(int(g[f"nn{i}"]) for g in groups)
        if empty:
            problems.append(
                f"column {metric_cols[metric]}: {empty} rows are empty (every unit needs a value; "
                f"use 0 for none), e.g. " + _examples(con, src, unit, col, f"{col} IS NULL")
            )
        bad = sum(int(g[f"bad{i}"] or 0) for g in groups)
        if bad:
            x = f"CAST({col} AS DOUBLE)"
            if ctx.metrics[metric].kind == "binomial":
                what, where = "values other than 0 or 1 (it is a binomial metric)", (
                    f"{x} NOT IN (0, 1)")
            else:
                what, where = "infinite or NaN values", f"NOT isfinite({x})"
            problems.append(
                f"column {metric_cols[metric]}: {bad} {what}, e.g. "
                + _examples(con, src, unit, col, where)
            )
        if metric in pre_cols:
            pbad = sum(int(g[f"pbad{i}"] or 0) for g in groups)
            if pbad:
                problems.append(f"column {pre_cols[metric]}: {pbad} infinite or NaN values")
    if problems:
        raise InvalidInput(problems)

    on_day = day or min(ctx.end, datetime.now(UTC).date())
    if not date_col and not (ctx.start <= on_day <= ctx.end):
        raise InvalidInput(
            f"day: {on_day} is outside '{ctx.name}' ({ctx.start} to {ctx.end}); the file has no "
            "date column, so pass the day its data belongs to"
        )
    cells: list[Cell] = []
    assignments: dict[tuple[str, date], int] = {}
    for g in groups:
        d = g["d"] if date_col else on_day
        assignments[(g["v"], d)] = assignments.get((g["v"], d), 0) + int(g["rows"])
        for i, metric in enumerate(order):
            cov: tuple[float | None, float | None, float | None] = (None, None, None)
            if metric in pre_cols:
                cov = (float(g[f"px{i}"]), float(g[f"pxx{i}"]), float(g[f"pxy{i}"]))
            cells.append(Cell(g["v"], d, metric, int(g[f"nn{i}"]), float(g[f"s{i}"] or 0.0),
                              float(g[f"ss{i}"] or 0.0), *cov))
    return Aggregated(
        cells=cells,
        assignments=assignments,
        rows_read=total_rows,
        ignored=tuple(ignored),
        full_replace=date_col is None,
        metrics=tuple(order),
    )


def _non_numeric_problems(
    con: duckdb.DuckDBPyConnection, src: str, unit: str, cols: list[str]
) -> list[str]:
    problems = []
    for col in cols:
        q = _quote(col)
        where = f"{q} IS NOT NULL AND TRY_CAST(CAST({q} AS VARCHAR) AS DOUBLE) IS NULL"
        count = con.execute(f"SELECT count(*) FROM {src} WHERE {where}").fetchone()[0]  # type: ignore[index]
        if count:
            problems.append(
                f"column {col}: {count} non-numeric values, e.g. "
                + _examples(con, src, unit, q, where)
            )
        else:
            problems.append(f"column {col}: is not numeric (are all its values empty?)")
    return problems


def _csv_value_problems(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str,
    lower: dict[str, str],
    metric_cols: dict[str, str],
    pre_cols: dict[str, str],
    date_col: str | None,
) -> list[str]:
    """Re-read a CSV as text to name the values that failed to convert."""
    if fmt != "csv":
        return []
    raw = file_reader(path, fmt, all_varchar=True)
    unit = _quote(lower["unit_id"])
    problems = []
    for col in [*metric_cols.values(), *pre_cols.values()]:
        q = _quote(col)
        where = f"{q} IS NOT NULL AND TRY_CAST({q} AS DOUBLE) IS NULL"
        count = con.execute(f"SELECT count(*) FROM {raw} WHERE {where}").fetchone()[0]  # type: ignore[index]
        if count:
            problems.append(f"column {col}: {count} non-numeric values, e.g. "
                            + _examples(con, raw, unit, q, where))
    if date_col:
        q = _quote(date_col)
        where = f"{q} IS NOT NULL AND TRY_CAST({q} AS DATE) IS NULL"
        count = con.execute(f"SELECT count(*) FROM {raw} WHERE {where}").fetchone()[0]  # type: ignore[index]
        if count:
            problems.append(f"date: {count} values are not dates (use YYYY-MM-DD), e.g. "
                            + _examples(con, raw, unit, q, where))
    return problems


def _duplicate_problem(
    con: duckdb.DuckDBPyConnection, src: str, unit: str, variant: str, dupes: int
) -> str:
    rows = con.execute(
        f"SELECT CAST({unit} AS VARCHAR) AS u, list(DISTINCT CAST({variant} AS VARCHAR)) AS vs, "
        f"count(*) AS c FROM {src} GROUP BY {unit} HAVING count(*) > 1 "
        f"ORDER BY len(list(DISTINCT CAST({variant} AS VARCHAR))) DESC, u LIMIT {_EXAMPLES}"
    ).fetchall()
    crossed = [r for r in rows if len(r[1]) > 1]
    listed = "; ".join(
        f"unit {u} in {' and '.join(sorted(str(v) for v in vs))}" if len(vs) > 1
        else f"unit {u} on {c} rows" for u, vs, c in rows
    )
    what = "appear in two variants" if crossed else "appear on more than one row"
    return (
        f"unit_id: {dupes} extra rows: units {what} (each unit belongs to exactly one variant "
        f"and has one row), e.g. {listed}"
    )


# --------------------------------------------------------------------------- aggregated inputs


def read_aggregate_rows(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: str, lower: dict[str, str]
) -> list[dict[str, Any]]:
    missing = [c for c in AGGREGATE_COLUMNS if c not in lower]
    if missing:
        raise InvalidInput(
            f"file: {path.name} lacks the column(s) {', '.join(missing)} of a pre-aggregated "
            f"file ({', '.join(AGGREGATE_COLUMNS)})"
        )
    con.execute("SET preserve_insertion_order = true")
    src = file_reader(path, fmt, all_varchar=True)
    wanted = [c for c in (*AGGREGATE_COLUMNS, *COVARIATE_COLUMNS) if c in lower]
    count = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]  # type: ignore[index]
    if count > MAX_AGGREGATE_ROWS:
        raise InvalidInput(
            f"file: {path.name} has {count} rows, too many for a pre-aggregated file (one row "
            "per variant, day and metric); load unit-level data as a user-level file"
        )
    select = ", ".join(f"CAST({_quote(lower[c])} AS VARCHAR) AS {c}" for c in wanted)
    cursor = con.execute(f"SELECT {select} FROM {src}")
    return [dict(zip(wanted, row, strict=True)) for row in cursor.fetchall()]


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def parse_day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


def aggregate_records(
    ctx: ExperimentContext, rows: list[dict[str, Any]], *, label: str, first_row: int = 1
) -> Aggregated:
    """Validate per-variant, per-day, per-metric rows (file or SQL) into cells.

    ``rows`` hold ``variant, date (or day), metric, n, sum, sum_squares`` and optionally the
    covariate sums; ``first_row`` numbers the first row in messages (2 for a CSV with a header).
    """
    if not rows:
        raise InvalidInput(f"{label}: no rows (expected one row per variant, day and metric)")
    problems: list[str] = []
    cells: list[Cell] = []
    seen: dict[tuple[str, date, str], int] = {}
    for offset, raw in enumerate(rows):
        where = f"row {offset + first_row}"
        row = {str(k).lower(): v for k, v in raw.items()}
        if "date" not in row and "day" in row:
            row["date"] = row["day"]
        variant = None if row.get("variant") is None else str(row["variant"]).strip()
        metric = None if row.get("metric") is None else str(row["metric"]).strip()
        row_problems = []
        if variant not in ctx.variants:
            row_problems.append(
                f"unknown variant '{variant}' (expected {', '.join(ctx.variants)})"
            )
        info = ctx.metrics.get(metric or "")
        if info is None:
            row_problems.append(
                f"metric '{metric}' is not a metric of '{ctx.name}' "
                f"({', '.join(ctx.metrics) or 'none'})"
            )
        day = parse_day(row.get("date"))
        if day is None:
            row_problems.append(f"date {row.get('date')!r} is not a date (use YYYY-MM-DD)")
        elif not ctx.start <= day <= ctx.end:
            row_problems.append(
                f"date {day} is outside the experiment ({ctx.start} to {ctx.end})"
            )
        nums = {k: _number(row.get(k)) for k in ("n", "sum", "sum_squares", *COVARIATE_COLUMNS)}
        for k in ("n", "sum", "sum_squares"):
            if nums[k] is None:
                row_problems.append(f"{k} is empty")
            elif not math.isfinite(nums[k]):  # type: ignore[arg-type]
                row_problems.append(f"{k} {row.get(k)!r} is not a number")
        cov_given = [k for k in COVARIATE_COLUMNS if nums[k] is not None]
        if cov_given and len(cov_given) < 3:
            row_problems.append("give all of sum_x, sum_x2, sum_xy or none")
        if any(nums[k] is not None and not math.isfinite(nums[k]) for k in cov_given):  # type: ignore[arg-type]
            row_problems.append("sum_x, sum_x2 and sum_xy must be numbers")
        if not row_problems:
            n, s, ss = nums["n"], nums["sum"], nums["sum_squares"]
            assert n is not None and s is not None and ss is not None
            if n < 0:
                row_problems.append(f"n is negative ({row.get('n')})")
            elif not float(n).is_integer():
                row_problems.append(f"n {row.get('n')} is not a whole number of units")
            elif info is not None and info.kind == "binomial":
                if s < 0 or not float(s).is_integer():
                    row_problems.append(f"sum {row.get('sum')} is not a count of conversions")
                elif s > n:
                    row_problems.append(
                        f"conversions ({s:g}) exceed units ({n:g}) for binomial metric {metric}"
                    )
                elif ss != s:
                    row_problems.append(
                        f"sum_squares ({ss:g}) must equal sum ({s:g}) for a 0/1 metric"
                    )
            else:
                try:
                    SufficientStats(int(n), s, ss)
                except ValueError as exc:
                    row_problems.append(str(exc).removeprefix("SufficientStats: "))
        if not row_problems:
            assert variant is not None and metric is not None and day is not None
            key = (variant, day, metric)
            if key in seen:
                row_problems.append(
                    f"repeats {variant}/{day}/{metric} of row {seen[key] + first_row}"
                )
            else:
                seen[key] = offset
        if row_problems:
            problems.append(f"{label} {where}: " + "; ".join(row_problems))
            if len(problems) >= 20:
                problems.append(f"{label}: stopped after 20 bad rows; fix these and retry")
                break
            continue
        cov = tuple(float(nums[k]) for k in COVARIATE_COLUMNS) if cov_given else (None,) * 3  # type: ignore[arg-type]
        cells.append(Cell(variant, day, metric, int(nums["n"]), float(nums["sum"]),  # type: ignore[arg-type]
                          float(nums["sum_squares"]), *cov))  # type: ignore[arg-type]
    if problems:
        raise InvalidInput(problems)
    assignments: dict[tuple[str, date], int] = {}
    for c in cells:
        key2 = (c.variant, c.day)
        assignments[key2] = max(assignments.get(key2, 0), c.n)
    return Aggregated(
        cells=cells,
        assignments=assignments,
        rows_read=len(rows),
        metrics=tuple(dict.fromkeys(c.metric for c in cells)),
    )

