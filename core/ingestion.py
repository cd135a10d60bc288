"""Metric data ingestion: user-level files, pre-aggregated files and SQL push-down, turned into
daily sufficient statistics per (experiment, variant, metric, day). Unit-level rows are never
stored.

Sources
-------
* **User-level file** (CSV or Parquet): one row per unit with ``unit_id``, ``variant``, an optional
  ``date`` (exposure day), one column per metric named as in the catalogue (0/1 for binomial
  metrics, numbers for mean metrics) and optional pre-period columns ``<metric>_pre`` for CUPED
  (mean metrics; an empty pre-period value counts as 0, a unit with no history). The file is
  aggregated by DuckDB in a single streaming ``GROUP BY`` (plus one pass over ``unit_id`` to
  prove each unit appears once) under a memory limit, spilling to disk beyond it, so memory
  stays bounded whatever the file's size.
* **Pre-aggregated file**: ``variant, date, metric, n, sum, sum_squares`` (optionally
  ``sum_x, sum_x2, sum_xy``: the CUPED covariate sums).
* **SQL push-down** (:mod:`core.metric_sources`): the same columns, returned by a query that runs
  inside the source database.

Rules
-----
* A load replaces the (variant, metric, day) rows it contains and never adds to them, so loading
  the same data twice changes nothing. A user-level file without a ``date`` column is a full
  snapshot: it replaces every day of the metrics it carries, and is stored on ``day`` (default:
  the experiment's last day so far). A file declared as one day's data (``for_day``: the
  scheduled refresh's file drops, see :mod:`core.refresh`) replaces only that day, and a row
  dated otherwise is rejected.
* All or nothing: every problem found (missing columns, unknown variants, non-numeric values,
  negative counts, conversions above units, a unit in two variants, dates outside the
  experiment, an empty or unreadable file) is reported together, naming rows and columns, and
  nothing is written.
* Progress is reported through ``progress(fraction, message)``.
"""

from __future__ import annotations

import csv
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
from sqlalchemy.orm import Session

from core.auth import Actor
from core.errors import InvalidInput, NotFound, RuleViolation
from core.registry import transaction
from core.stats import SufficientStats
from core.types import FileKind, SourceKind
from db import metric_repository as mrepo
from db import repositories as repo
from db.models import Experiment

ProgressCallback = Callable[[float, str], None]

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


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class IngestionReport:
    """What a load did: where from, which days, metrics and variants, and how many rows."""

    experiment_id: int
    experiment_name: str
    kind: SourceKind
    source: str
    rows_read: int
    first_day: date | None
    last_day: date | None
    metrics: tuple[str, ...]
    cuped_metrics: tuple[str, ...]
    units: dict[str, int]
    stats_rows_written: int
    ignored_columns: tuple[str, ...] = ()
    seconds: float = 0.0


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
class _Aggregated:
    cells: list[Cell]
    assignments: dict[tuple[str, date], int]
    rows_read: int
    ignored: tuple[str, ...] = ()
    full_replace: bool = False
    metrics: tuple[str, ...] = field(default_factory=tuple)


def _noop(_fraction: float, _message: str) -> None:
    return None


# --------------------------------------------------------------------------- experiment context


def experiment_context(session: Session, *, experiment_id: int) -> ExperimentContext:
    """Variants, metrics (with roles) and the date window data may fall in."""
    exp = session.get(Experiment, experiment_id)
    if exp is None:
        raise NotFound(f"No experiment with id {experiment_id}.")
    if exp.actual_start is None:
        raise RuleViolation(
            f"'{exp.name}' has not launched yet ({exp.status}): metric data can only be loaded "
            "for days from its start."
        )
    today = datetime.now(UTC).date()
    end = exp.actual_end or max(today, exp.actual_start)
    metrics: dict[str, MetricInfo] = {}
    if exp.primary_metric is not None:
        m = exp.primary_metric
        metrics[m.name] = MetricInfo(m.id, m.name, m.kind, "primary", m.higher_is_better)
    for link in exp.metric_links:
        m = link.metric
        metrics.setdefault(
            m.name, MetricInfo(m.id, m.name, m.kind, link.role, m.higher_is_better)
        )
    return ExperimentContext(
        id=exp.id,
        name=exp.name,
        status=exp.status,
        start=exp.actual_start,
        end=end,
        variants={v.name: v.id for v in exp.variants},
        metrics=metrics,
    )


def _resolve(session: Session, experiment_id: int | None, experiment: str | None) -> int:
    if experiment_id is not None:
        return experiment_id
    if experiment:
        found = repo.experiment_id_by_name(session, name=experiment)
        if found is None:
            raise NotFound(f"No experiment named '{experiment}'.")
        return found
    raise InvalidInput("experiment: name the experiment (id or name) to load data into")


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


def _connect(memory_limit: str, threads: int | None) -> duckdb.DuckDBPyConnection:
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


def _reader(path: Path, fmt: str, *, all_varchar: bool = False) -> str:
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


def _columns(
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


def _lower_map(columns: Iterable[str], name: str) -> dict[str, str]:
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


def ingest_file(
    session: Session,
    *,
    path: str | Path,
    actor: Actor,
    experiment_id: int | None = None,
    experiment: str | None = None,
    kind: FileKind = "auto",
    day: date | None = None,
    progress: ProgressCallback | None = None,
    memory_limit: str = DUCKDB_MEMORY_LIMIT,
    threads: int | None = None,
    for_day: date | None = None,
    label: str | None = None,
    sha256: str | None = None,
) -> IngestionReport:
    """Load a user-level or pre-aggregated CSV/Parquet file into an experiment's daily stats.

    ``kind="auto"`` reads a file with ``metric, n, sum, sum_squares`` columns as pre-aggregated
    and one with ``unit_id`` as user-level. ``day`` dates a user-level file that has no ``date``
    column. ``for_day`` declares the file to hold one day's data (a daily drop): every row must
    fall on that day, a user-level file without ``date`` is dated it, and only that day is
    replaced (never a full snapshot). ``label`` names the file in the report and the audit
    entry (default: its name); ``sha256``, if given, is recorded in the audit entry. Raises
    :class:`InvalidInput` listing every problem (nothing written).
    """
    actor.require("editor", "load metric data")
    report = progress or _noop
    started = time.perf_counter()
    path = Path(path)
    with transaction(session):
        ctx = experiment_context(session, experiment_id=_resolve(session, experiment_id,
                                                                 experiment))
        report(0.02, f"Checking {path.name}")
        fmt = detect_format(path)
        con = _connect(memory_limit, threads)
        try:
            src = _reader(path, fmt)
            columns = _columns(con, src, path, fmt)
            lower = _lower_map(columns, path.name)
            chosen = _file_kind(kind, lower, path.name)
            if chosen == "aggregate":
                report(0.1, "Reading pre-aggregated rows")
                raw = _read_aggregate_rows(con, path, fmt, lower)
                agg = aggregate_records(
                    ctx, raw, label=path.name, first_row=2 if fmt == "csv" else 1
                )
                source_kind: SourceKind = "aggregate_file"
            else:
                agg = _aggregate_user_file(
                    con, path, fmt, src, columns, lower, ctx, day=day or for_day,
                    report=report,
                )
                source_kind = "user_file"
        finally:
            con.close()
        if for_day is not None:
            _check_one_day(agg, for_day, path.name)
        report(0.9, "Writing daily statistics")
        result = _write(session, ctx, agg, kind=source_kind, label=label or path.name,
                        actor=actor, started=started, sha256=sha256)
    report(1.0, f"Loaded {result.stats_rows_written} daily rows from {label or path.name}")
    return result


def _check_one_day(agg: _Aggregated, for_day: date, name: str) -> None:
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


def _file_kind(kind: FileKind, lower: Mapping[str, str], name: str) -> Literal["user",
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


def _aggregate_user_file(
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
) -> _Aggregated:
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
    return _Aggregated(
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
    raw = _reader(path, fmt, all_varchar=True)
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


def _read_aggregate_rows(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: str, lower: dict[str, str]
) -> list[dict[str, Any]]:
    missing = [c for c in AGGREGATE_COLUMNS if c not in lower]
    if missing:
        raise InvalidInput(
            f"file: {path.name} lacks the column(s) {', '.join(missing)} of a pre-aggregated "
            f"file ({', '.join(AGGREGATE_COLUMNS)})"
        )
    con.execute("SET preserve_insertion_order = true")
    src = _reader(path, fmt, all_varchar=True)
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


def _day(value: Any) -> date | None:
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
) -> _Aggregated:
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
        day = _day(row.get("date"))
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
    return _Aggregated(
        cells=cells,
        assignments=assignments,
        rows_read=len(rows),
        metrics=tuple(dict.fromkeys(c.metric for c in cells)),
    )


# --------------------------------------------------------------------------- writing


def _write(
    session: Session,
    ctx: ExperimentContext,
    agg: _Aggregated,
    *,
    kind: SourceKind,
    label: str,
    actor: Actor,
    started: float,
    sha256: str | None = None,
) -> IngestionReport:
    metric_ids = [ctx.metrics[m].id for m in agg.metrics]
    if agg.full_replace:
        mrepo.delete_daily_stats(session, experiment_id=ctx.id, metric_ids=metric_ids)
        mrepo.delete_assignments(session, experiment_id=ctx.id)
    rows = [
        mrepo.DailyStatRow(
            variant_id=ctx.variants[c.variant],
            metric_id=ctx.metrics[c.metric].id,
            day=c.day,
            n=c.n,
            sum=c.sum,
            sum_squares=c.sum_squares,
            cov_sum=c.cov_sum,
            cov_sum_squares=c.cov_sum_squares,
            cov_sum_products=c.cov_sum_products,
        )
        for c in agg.cells
    ]
    source = f"{kind}:{label}"[:200]
    written = mrepo.upsert_daily_stats(session, experiment_id=ctx.id, rows=rows, source=source)
    mrepo.upsert_assignments(
        session,
        experiment_id=ctx.id,
        rows=[
            mrepo.AssignmentRow(variant_id=ctx.variants[v], day=d, units=u)
            for (v, d), u in sorted(agg.assignments.items())
        ],
    )
    days = sorted({c.day for c in agg.cells})
    units: dict[str, int] = {v: 0 for v in ctx.variants}
    for (v, _d), u in agg.assignments.items():
        units[v] += u
    cuped = tuple(dict.fromkeys(c.metric for c in agg.cells if c.cov_sum is not None))
    first, last = (days[0], days[-1]) if days else (None, None)
    repo.add_audit(
        session,
        actor=actor.name,
        entity_type="experiment",
        entity_id=ctx.id,
        action="ingest",
        changes={
            "source": [None, source],
            "days": [None, f"{first}..{last}"],
            "metrics": [None, list(agg.metrics)],
            "rows_written": [None, written],
            **({"sha256": [None, sha256]} if sha256 else {}),
        },
    )
    return IngestionReport(
        experiment_id=ctx.id,
        experiment_name=ctx.name,
        kind=kind,
        source=label,
        rows_read=agg.rows_read,
        first_day=first,
        last_day=last,
        metrics=agg.metrics,
        cuped_metrics=cuped,
        units=units,
        stats_rows_written=written,
        ignored_columns=agg.ignored,
        seconds=time.perf_counter() - started,
    )


def ingest_records(
    session: Session,
    *,
    experiment_id: int,
    rows: list[dict[str, Any]],
    actor: Actor,
    kind: SourceKind,
    label: str,
    progress: ProgressCallback | None = None,
) -> IngestionReport:
    """Validate and store per-variant, per-day, per-metric rows (from a SQL source)."""
    actor.require("editor", "load metric data")
    report = progress or _noop
    started = time.perf_counter()
    with transaction(session):
        ctx = experiment_context(session, experiment_id=experiment_id)
        report(0.6, "Checking the aggregated rows")
        agg = aggregate_records(ctx, rows, label=label)
        report(0.9, "Writing daily statistics")
        result = _write(session, ctx, agg, kind=kind, label=label, actor=actor, started=started)
    report(1.0, f"Loaded {result.stats_rows_written} daily rows from {label}")
    return result
