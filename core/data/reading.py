"""Reading metric-data files: CSV or Parquet recognised by their bytes, opened by DuckDB under a
memory limit (spilling to disk beyond it), their columns typed and mapped case-insensitively, and
a CSV that DuckDB cannot parse diagnosed line by line in plain words (which lines, what is wrong
with them, how to fix it) instead of DuckDB's raw parser message. It also defines what reading
yields: :class:`Cell` sums (a :class:`~core.stats.MetricStats`) per (variant, day, metric[,
dimension value]) and assignment counts, gathered in :class:`Aggregated` by
:mod:`core.data.user_files` (user-level files) and :mod:`core.data.aggregates` (pre-aggregated
files and SQL results). Nothing here touches the database: every problem is raised as one
:class:`~core.errors.InvalidInput` listing them all, so a bad input never writes anything
(:mod:`core.data.writing` stores the result).
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import duckdb

from core import spool
from core.errors import InvalidInput, UploadTooLarge
from core.stats.capping import AppliedCap, CapRule
from core.stats.metric_stats import COVARIATE_SUMS, RATIO_SUMS, MetricStats
from core.stats.quantile import QuantileStats
from core.types import FileKind

ProgressCallback = Callable[[float, str], None]
"""``progress(fraction, message)``: how far a load is, 0 to 1, and what it is doing."""

DUCKDB_MEMORY_LIMIT = "1GB"
"""DuckDB's working-memory cap for file aggregation; beyond it DuckDB spills to a temp folder."""
PRE_SUFFIX = "_pre"
COVARIATE_PREFIX = "cov_"
"""User-level files: a numeric column named ``cov_<name>`` is a pre-exposure unit attribute
(tenure, age, last month's spend); with one or more of them every metric is regression-adjusted
on them and on its own ``<column>_pre`` (core.stats.regression)."""
MAX_COVARIATES = 10
"""At most this many covariates per metric (the cross-products grow as k squared)."""
AGGREGATE_COLUMNS = ("variant", "date", "metric", "n", "sum", "sum_squares")
COVARIATE_COLUMNS = COVARIATE_SUMS
"""Aggregate columns of a CUPED covariate x: its sum, sum of squares and the sum of x * y."""
RATIO_COLUMNS = RATIO_SUMS
"""Aggregate columns of a ratio metric's denominator: its sum, sum of squares, and the sum of
numerator x denominator (``sum`` and ``sum_squares`` hold the numerator's)."""
PROOF_COLUMNS = ("duplicate_units",)
"""Optional aggregate column: rows beyond the first of each unit, as the source counted them
(the warehouse's "each unit once, in one variant" proof); any non-zero value refuses the load."""
SLICE_COLUMNS = ("dimension", "dimension_value")
QUANTILE_COLUMNS = ("quantile_p", "quantile", "quantile_lower", "quantile_upper",
                    "quantile_n_star")
"""Aggregate columns of a quantile metric's row for one arm over all its units (no date): its
level p, the sample p-quantile, the quantiles at p -/+ z sqrt(p (1 - p) / n_star) and n_star
(optional, default n): :class:`~core.stats.quantile.QuantileStats`."""
"""Aggregate columns naming the segment a row describes (both empty: the whole arm)."""
MAX_AGGREGATE_ROWS = 1_000_000
"""A pre-aggregated input larger than this is almost surely a user-level file by mistake."""
MAX_PROBLEMS = 20
"""At most this many problems are listed; the rest are counted."""
MAX_DIMENSIONS = 8
MAX_DIMENSION_VALUES = 100
"""A dimension with more distinct values than this is not stored (docs/data-and-sources.md)."""
MAX_DIMENSION_VALUE_LENGTH = 100
EMPTY_DIMENSION_VALUE = "(none)"
"""The dimension value stored for units whose value is empty."""
EXAMPLES = 3
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
    numerator: str | None = None
    """A ratio metric's numerator column (per-unit values summed over units)."""
    denominator: str | None = None
    quantile_p: float | None = None
    """A quantile metric's level p (0.9 = p90)."""
    cap: CapRule | None = None
    """The plan's capping rule (core.stats.capping): per-unit values above the cap count as
    it before the sums are taken; None = not capped."""


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
    """The sums of one (variant, day, metric) — or of one dimension value of it — before they
    are stored."""

    variant: str
    day: date
    metric: str
    stats: MetricStats
    dimension: str | None = None
    value: str | None = None


@dataclass
class Aggregated:
    """Everything one input holds, validated: cells of whole arms and of dimension values, and
    units assigned per (variant, day) and per (variant, day, dimension, value)."""

    cells: list[Cell]
    assignments: dict[tuple[str, date], int]
    rows_read: int
    ignored: tuple[str, ...] = ()
    full_replace: bool = False
    metrics: tuple[str, ...] = field(default_factory=tuple)
    slices: list[Cell] = field(default_factory=list)
    slice_assignments: dict[tuple[str, date, str, str], int] = field(default_factory=dict)
    dimensions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """Plain-language remarks for the person loading (e.g. a column not used as a dimension)."""
    quantiles: dict[tuple[str, str], QuantileStats] = field(default_factory=dict)
    """A quantile metric's statistics per (variant, metric) over the input's units."""
    quantile_metrics: tuple[str, ...] = ()
    """The quantile metrics the input carries: their stored quantile statistics are replaced
    by :attr:`quantiles` (an arm with too few units for its interval has none)."""
    caps: dict[str, AppliedCap] = field(default_factory=dict)
    """The cap applied to each capped metric's per-unit values, by metric name."""


def capped(problems: list[str]) -> list[str]:
    """The first :data:`MAX_PROBLEMS` problems, and how many more there are."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS],
            f"... and {len(problems) - MAX_PROBLEMS} more problems; fix these and retry"]


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


@dataclass(frozen=True)
class UploadLimits:
    """What an uploaded file may hold (UPLOAD_MAX_DECOMPRESSED_MB, UPLOAD_MAX_ROWS,
    UPLOAD_MAX_COLUMNS)."""

    max_bytes: int
    max_rows: int
    max_columns: int


_CHUNK = 1 << 20
_DELIMITERS = (b",", b";", b"\t", b"|")


def check_upload_limits(path: Path, limits: UploadLimits) -> None:
    """Refuse (:class:`UploadTooLarge`, naming the setting) a file that holds more than
    `limits` allow, reading no more of it than that proves: a Parquet file's metadata (its
    rows, columns and uncompressed size); a CSV's header for its columns, then its text —
    decompressed as it is read, a chunk at a time, for a .csv.gz — counting bytes and lines,
    so a small file that expands without end is stopped at the cap. A file that is not CSV or
    Parquet is left to the reader to refuse."""
    fmt = detect_format(path)
    if fmt == "parquet":
        _check_parquet(path, limits)
    else:
        _check_csv(path, limits)


def _too_many(name: str, what: str, limit: int, setting: str, fix: str) -> UploadTooLarge:
    return UploadTooLarge(f"file: {name} has more than {limit:,} {what}, the limit "
                          f"({setting}): {fix}")


_SPLIT = "split it (e.g. one file per day), or load it from the warehouse"


def _check_parquet(path: Path, limits: UploadLimits) -> None:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # noqa: BLE001 - an unreadable file is refused by the reader, in words
        return
    name = path.name
    if meta.num_columns > limits.max_columns:
        raise _too_many(name, "columns", limits.max_columns, "UPLOAD_MAX_COLUMNS",
                        f"it has {meta.num_columns:,}; keep only unit_id, variant, date, the "
                        "metrics and the dimensions")
    if meta.num_rows > limits.max_rows:
        raise _too_many(name, "rows", limits.max_rows, "UPLOAD_MAX_ROWS",
                        f"it has {meta.num_rows:,}; {_SPLIT}")
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > limits.max_bytes:
        raise _too_many(name, "bytes uncompressed", limits.max_bytes,
                        "UPLOAD_MAX_DECOMPRESSED_MB", f"it has {size:,}; {_SPLIT}")


def _check_csv(path: Path, limits: UploadLimits) -> None:
    name = path.name
    with path.open("rb") as raw:
        packed = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if packed else open
    seen = lines = 0
    header = True
    quoted = False
    counts = dict.fromkeys(_DELIMITERS, 0)
    last = b"\n"
    with opener(path, "rb") as handle:  # type: ignore[operator]
        while chunk := handle.read(_CHUNK):
            seen += len(chunk)
            if seen > limits.max_bytes:
                what = "bytes once decompressed" if packed else "bytes"
                raise _too_many(name, what, limits.max_bytes, "UPLOAD_MAX_DECOMPRESSED_MB",
                                _SPLIT)
            if header:
                header, quoted = _count_header(chunk, counts, quoted)
                if max(counts.values()) >= limits.max_columns:
                    raise _too_many(name, "columns", limits.max_columns,
                                    "UPLOAD_MAX_COLUMNS", "keep only unit_id, variant, date, "
                                    "the metrics and the dimensions")
            lines += chunk.count(b"\n")
            last = chunk[-1:]
            if lines - 1 > limits.max_rows:
                raise _too_many(name, "rows", limits.max_rows, "UPLOAD_MAX_ROWS", _SPLIT)
    if last != b"\n":
        lines += 1
    if lines - 1 > limits.max_rows:
        raise _too_many(name, "rows", limits.max_rows, "UPLOAD_MAX_ROWS", _SPLIT)


def _count_header(chunk: bytes, counts: dict[bytes, int], quoted: bool) -> tuple[bool, bool]:
    """Add the delimiters of the header line found in `chunk` (outside double quotes) to
    `counts`; returns (whether the header goes on past the chunk, whether a quote is open)."""
    for part in chunk.split(b'"'):
        if not quoted:
            end = part.find(b"\n")
            text = part if end < 0 else part[:end]
            for delimiter in counts:
                counts[delimiter] += text.count(delimiter)
            if end >= 0:
                return False, False
        quoted = not quoted
    return True, not quoted


def connect(memory_limit: str, threads: int | None) -> duckdb.DuckDBPyConnection:
    config: dict[str, Any] = {
        "memory_limit": memory_limit,
        "temp_directory": str(spool.process_dir() / "duckdb"),
        "preserve_insertion_order": False,
    }
    if threads:
        config["threads"] = threads
    return duckdb.connect(config=config)


def csv_delimiter(path: Path) -> str:
    """The separator of the header line: the most frequent of , ; tab |."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:  # type: ignore[operator]
        header = handle.readline()
    return max((",", ";", "\t", "|"), key=header.count)


def reads_decimal_comma(path: Path, fmt: str) -> bool:
    """Whether the file's numbers are read with a decimal comma (``1,5`` = 1.5): a CSV
    separated by ``;``, as Excel saves one in a locale whose decimal mark is a comma."""
    return fmt == "csv" and csv_delimiter(path) == ";"


def file_reader(path: Path, fmt: str, *, all_varchar: bool = False) -> str:
    """DuckDB table function for the file. CSV: header on line 1, RFC 4180 quotes, the header's
    delimiter (DuckDB's sniffer is left to infer only column types)."""
    lit = _sql_literal(str(path))
    if fmt == "parquet":
        return f"read_parquet({lit})"
    extra = ", all_varchar=true" if all_varchar else ""
    delim = _sql_literal(csv_delimiter(path))
    return (f"read_csv({lit}, header=true, skip=0, delim={delim}, quote='\"', escape='\"'"
            f"{extra})")


def duck_problem(exc: Exception) -> str:
    """DuckDB's message, first two lines, for errors with nothing better to say."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:2])[:400]


def column_types(
    con: duckdb.DuckDBPyConnection, src: str, path: Path, fmt: str
) -> dict[str, str]:
    """Column name -> DuckDB type; an unreadable file raises with what to fix."""
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    except duckdb.Error as exc:
        raise unreadable(con, path, fmt, exc) from None
    return {str(r[0]): str(r[1]).upper() for r in rows}


def unreadable(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: str, exc: Exception
) -> InvalidInput:
    """The error for a file DuckDB refused: for a CSV, every malformed line named in plain words
    (:func:`csv_structure_problems`); otherwise DuckDB's message."""
    problems = csv_structure_problems(con, path) if fmt == "csv" else []
    if problems:
        return InvalidInput(problems)
    return InvalidInput(f"file: {path.name} could not be read: {duck_problem(exc)}"
                        + (_CSV_HINT if fmt == "csv" else ""))


_CSV_HINT = (
    " (save it as comma-separated UTF-8 text with a header row, each value that holds the "
    "delimiter or a line break in double quotes, and each double quote inside a value doubled)"
)
DECIMAL_COMMA_HINT = (
    " (numbers written with a decimal comma, as Excel writes them in a European locale? Save "
    "the file separated by ';' — its numbers are then read with a decimal comma — or write "
    "them with a decimal point)"
)
"""Said where a comma-separated file's values look like numbers with a decimal comma."""
_REJECT_WORDS: dict[str, str] = {
    "UNQUOTED VALUE": (
        "a double quote (\") opens or sits inside a value without being closed; quote the whole "
        "value and double any quote inside it, e.g. \"12\"\" screen\""
    ),
    "TOO MANY COLUMNS": (
        "more values than the header's {n} columns; a value that holds the delimiter {d} must be "
        "in double quotes{comma}"
    ),
    "MISSING COLUMNS": (
        "fewer values than the header's {n} columns; give every column a value (leave it empty "
        "between two delimiters)"
    ),
    "INVALID ENCODING": "the text is not UTF-8; save the file as UTF-8",
    "INVALID UNICODE": "the text is not UTF-8; save the file as UTF-8",
    "LINE SIZE OVER MAXIMUM": (
        "the line is too long, usually an unclosed double quote swallowing the lines after it"
    ),
}


def _split_decimals(line: str | None, columns: int) -> bool:
    """Whether a comma-separated line has too many values because numbers with a decimal comma
    were split in two: joining as many adjacent integer, digits pairs ("12", "5") as it has
    extra values would fit the header."""
    if not line:
        return False
    fields = next(csv.reader([line]), [])
    extra = len(fields) - columns
    pairs = sum(1 for a, b in zip(fields, fields[1:], strict=False)
                if _INTEGER.fullmatch(a.strip()) and _DIGITS.fullmatch(b.strip()))
    return 0 < extra <= pairs


_INTEGER = re.compile(r"[+-]?\d+")
_DIGITS = re.compile(r"\d+")


def csv_structure_problems(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Read a CSV strictly as text, keeping DuckDB's rejected lines, and describe each kind of
    malformed line once: its count, the first line numbers, and how to fix it. Empty when
    every line parses (the problem is elsewhere)."""
    delim = csv_delimiter(path)
    try:
        with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
            header = next(csv.reader([handle.readline()], delimiter=delim), [])
    except OSError:
        return []
    if not header:
        return []
    columns = "{" + ", ".join(f"{_sql_literal(h)}: 'VARCHAR'" for h in header) + "}"
    con.execute("DROP TABLE IF EXISTS eos_rejects; DROP TABLE IF EXISTS eos_scans")
    try:
        con.execute(
            f"SELECT count(*) FROM read_csv({_sql_literal(str(path))}, header=true, skip=0, "
            f"auto_detect=false, delim={_sql_literal(delim)}, quote='\"', escape='\"', "
            f"columns={columns}, store_rejects=true, rejects_table='eos_rejects', "
            "rejects_scan='eos_scans')"
        ).fetchall()
        kinds = con.execute(
            "SELECT error_type, count(DISTINCT line), list(DISTINCT line ORDER BY line)[1:3], "
            "min(line), arg_min(csv_line, line) "
            "FROM eos_rejects GROUP BY error_type ORDER BY min(line)"
        ).fetchall()
    except duckdb.Error:
        return []
    name, shown = path.name, {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}[delim]
    problems = []
    for kind, count, lines, _first, first_line in kinds:
        where = ", ".join(str(n) for n in lines)
        more = f" (and {count - len(lines)} more)" if count > len(lines) else ""
        what = _REJECT_WORDS.get(str(kind), f"DuckDB reports {str(kind).lower()}").format(
            n=len(header), d=shown,
            comma=DECIMAL_COMMA_HINT if delim == "," and _split_decimals(first_line, len(header))
            else "")
        label = "line" if count == 1 else f"{count} lines:"
        problems.append(f"file: {name} could not be read as CSV: {label} {where}{more}: {what}")
    return problems


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


def check_one_day(agg: Aggregated, for_day: date, name: str) -> None:
    """A file for one day holds only that day, and replaces only that day."""
    other = sorted({c.day for c in [*agg.cells, *agg.slices]} - {for_day})
    if other:
        shown = ", ".join(str(d) for d in other[:EXAMPLES])
        if len(other) > EXAMPLES:
            shown += f" (and {len(other) - EXAMPLES} more days)"
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


def is_numeric(duck_type: str) -> bool:
    return duck_type.startswith(_NUMERIC_PREFIXES)


def sql_literal(text: str) -> str:
    return _sql_literal(text)


def quote(name: str) -> str:
    """A column name as a DuckDB identifier."""
    return _quote(name)
