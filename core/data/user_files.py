"""User-level files (one row per unit) aggregated by DuckDB into daily sufficient statistics.

One streaming scan computes, per (variant, day), every metric's count, sum and sum of squares,
the CUPED covariate sums, a ratio metric's denominator sums and numerator x denominator
products, every validation counter (non-numeric, empty, non-0/1 and negative values, empty unit
ids, unreadable or out-of-window dates) and — through ``GROUPING SETS`` in the same scan — the
same statistics and unit counts per value of each dimension column. Values are read with
``TRY_CAST``, so one bad value never hides the others: every problem of the file is listed
together (capped at :data:`~core.data.reading.MAX_PROBLEMS`). Infinite and NaN values make their
column's sums non-finite, so they are counted exactly only when a sum is (a clean file never
pays for that count). The "each unit once, in one variant" proof is a second query that reads
only the unit id column — which the aggregation never reads, so no column of a Parquet file is
read twice (a CSV is parsed twice); on Parquet it runs on a second cursor alongside the
aggregation — and streams the ids' 64-bit hashes into one numpy array, sorts it and looks for
equal neighbours (distinct hashes prove distinct ids; only if some repeat are the ids themselves
compared); beyond :data:`PARTITION_UNITS` rows the hashes are split by
their top bits into partition files sorted one at a time, so memory stays flat.
bench/bench_ingestion.py measures this against the two single-scan shapes (per unit first;
hashes listed inside the aggregation): both cost more.
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from core import spool
from core.data.reading import (
    COVARIATE_PREFIX,
    EMPTY_DIMENSION_VALUE,
    EXAMPLES,
    MAX_COVARIATES,
    MAX_DIMENSION_VALUE_LENGTH,
    MAX_DIMENSION_VALUES,
    MAX_DIMENSIONS,
    PRE_SUFFIX,
    Aggregated,
    Cell,
    ExperimentContext,
    ProgressCallback,
    capped,
    csv_structure_problems,
    duck_problem,
    file_reader,
    is_numeric,
    quote,
    reads_decimal_comma,
)
from core.errors import InvalidInput
from core.stats import (
    CovariateSums,
    InsufficientDataError,
    MetricStats,
    QuantileStats,
    quantile_levels,
)
from core.stats.capping import AppliedCap

PARTITION_UNITS = 16_000_000
"""Up to this many rows the unit proof sorts the ids' hashes in memory (8 bytes a row, 128 MB at
most); beyond, in partitions of about this size on disk, one at a time."""
_HASH_BATCH = 1 << 20
_V, _D = "__eos_v", "__eos_d"


@dataclass
class _Plan:
    """Which column plays which part."""

    unit: str
    variant: str
    date: str | None
    values: list[str] = field(default_factory=list)
    """Numeric source columns, each read once (a column may serve several metrics)."""
    binomial: set[str] = field(default_factory=set)
    denominators: set[str] = field(default_factory=set)
    metric_col: dict[str, str] = field(default_factory=dict)
    ratio_cols: dict[str, tuple[str, str]] = field(default_factory=dict)
    pre_cols: dict[str, str] = field(default_factory=dict)
    covariates: list[str] = field(default_factory=list)
    """``cov_*`` columns: unit attributes every metric is regression-adjusted on."""
    vector_cols: dict[str, list[str]] = field(default_factory=dict)
    """Metric -> the columns of its covariate vector (its own pre-period ones, then
    :attr:`covariates`); only when the file has ``cov_*`` columns."""
    dimensions: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    decimal_comma: bool = False
    """Text values are numbers with a decimal comma (a ';'-separated CSV)."""
    caps: dict[str, AppliedCap] = field(default_factory=dict)
    """The capped metrics' caps (core.stats.capping), set once the percentiles are known."""

    @property
    def metrics(self) -> list[str]:
        return [*self.metric_col, *self.ratio_cols]


def _plan(columns: dict[str, str], lower: dict[str, str], ctx: ExperimentContext,
          name: str) -> _Plan:
    problems = []
    missing = [c for c in ("unit_id", "variant") if c not in lower]
    if missing:
        problems.append(f"file: {name} lacks the column(s) {', '.join(missing)}")
    plan = _Plan(unit=lower.get("unit_id", ""), variant=lower.get("variant", ""),
                 date=lower.get("date"))
    for metric, info in ctx.metrics.items():
        if info.kind == "ratio":
            num, den = info.numerator or "", info.denominator or ""
            have = [c for c in (num, den) if c.lower() in lower]
            if len(have) == 2:
                plan.ratio_cols[metric] = (lower[num.lower()], lower[den.lower()])
            elif have:
                lacking = den if have == [num] else num
                problems.append(
                    f"file: {name} has {have[0]} but not {lacking}: ratio metric {metric} is "
                    f"{num} / {den}, so both columns are needed"
                )
        elif metric.lower() in lower:
            plan.metric_col[metric] = lower[metric.lower()]
            pre = lower.get((metric + PRE_SUFFIX).lower())
            if pre and info.kind == "mean":
                plan.pre_cols[metric] = pre
    if not plan.metrics and not problems:
        wanted = [
            f"{m} ({i.numerator} and {i.denominator})" if i.kind == "ratio" else m
            for m, i in ctx.metrics.items()
        ]
        problems.append(
            f"file: {name} has no metric column; name columns after the experiment's metrics: "
            f"{', '.join(wanted) or '(none: add metrics to the experiment first)'}"
        )
    if problems:
        raise InvalidInput(problems)
    for metric, col in plan.metric_col.items():
        if col not in plan.values:
            plan.values.append(col)
        if ctx.metrics[metric].kind == "binomial":
            plan.binomial.add(col)
    for num, den in plan.ratio_cols.values():
        for col in (num, den):
            if col not in plan.values:
                plan.values.append(col)
        plan.denominators.add(den)
    plan.covariates = [c for c in columns if c.lower().startswith(COVARIATE_PREFIX)
                       and len(c) > len(COVARIATE_PREFIX)]
    # A ratio metric's own pre-period columns (<numerator>_pre, <denominator>_pre) make it a
    # covariate vector with or without cov_ columns (its one-covariate CUPED has no ratio
    # form); a mean metric's <metric>_pre joins a vector only beside cov_ columns (alone it is
    # the one-covariate CUPED of pre_cols).
    for metric in plan.metrics:
        if metric in plan.ratio_cols:
            own = [lower[(c + PRE_SUFFIX).lower()] for c in plan.ratio_cols[metric]
                   if (c + PRE_SUFFIX).lower() in lower]
        elif plan.covariates:
            pre = lower.get((metric + PRE_SUFFIX).lower())
            own = [pre] if pre else []
        else:
            continue
        if own or plan.covariates:
            plan.vector_cols[metric] = [*own, *plan.covariates]
    if plan.vector_cols:
        widest = max(len(v) for v in plan.vector_cols.values())
        if widest > MAX_COVARIATES:
            raise InvalidInput(f"file: {name} gives {widest} covariates for a metric; at most "
                               f"{MAX_COVARIATES} (its own _pre columns and the cov_ columns)")
    used = {plan.unit, plan.variant, plan.date, *plan.values, *plan.pre_cols.values(),
            *plan.covariates, *(c for cols in plan.vector_cols.values() for c in cols)}
    for col, kind in columns.items():
        if col in used:
            continue
        text = kind.startswith(("VARCHAR", "BOOLEAN")) or kind == "ENUM"
        if not text or col.lower().endswith(PRE_SUFFIX):
            plan.ignored.append(col)
        elif len(plan.dimensions) >= MAX_DIMENSIONS:
            plan.ignored.append(col)
            plan.notes.append(f"column {col}: not used as a dimension (at most "
                              f"{MAX_DIMENSIONS} dimension columns per file)")
        else:
            plan.dimensions.append(col)
    return plan


def _value(col: str, columns: dict[str, str], comma: bool = False) -> str:
    """The column read as a number: NULL where empty or not a number (counted separately).
    ``comma``: text is written with a decimal comma (``1,5``); a value with a point and a comma
    (``1.234,5``) is then not a number."""
    q = quote(col)
    if is_numeric(columns[col]):
        return f"CAST({q} AS DOUBLE)"
    text = f"NULLIF(trim(CAST({q} AS VARCHAR)), '')"
    if comma:
        text = f"replace({text}, ',', '.')"
    return f"TRY_CAST({text} AS DOUBLE)"


def _not_a_number(col: str, columns: dict[str, str], comma: bool = False) -> str:
    q = quote(col)
    return (f"(NULLIF(trim(CAST({q} AS VARCHAR)), '') IS NOT NULL AND "
            f"{_value(col, columns, comma)} IS NULL)")


def _comma_columns(plan: _Plan, columns: dict[str, str]) -> list[str]:
    """The text columns read as numbers with a decimal comma (each once)."""
    if not plan.decimal_comma:
        return []
    read = [*plan.values, *plan.pre_cols.values(), *plan.covariates,
            *(c for cols in plan.vector_cols.values() for c in cols)]
    return [c for c in dict.fromkeys(read) if not is_numeric(columns[c])]


_DECIMAL_COMMA = re.compile(r"[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+")
_THOUSANDS_POINTS = re.compile(r"[+-]?\d{1,3}(\.\d{3})+,\d+")


def _number_hint(values: list[str], plan: _Plan) -> str:
    """Why values that look like numbers were not read, when their shape says it."""
    shown = [v.strip() for v in values]
    if plan.decimal_comma and any(_THOUSANDS_POINTS.fullmatch(v) for v in shown):
        return ("; the file is read with decimal commas (it is separated by ';'): remove the "
                "thousands separators (1.234,5 → 1234,5)")
    if not plan.decimal_comma and any(_DECIMAL_COMMA.fullmatch(v) for v in shown):
        return ("; they look like numbers with a decimal comma: save the file separated by "
                "';' (Excel's CSV in a European locale), whose numbers are read with a decimal "
                "comma, or write them with a decimal point")
    return ""


def _day_expr(plan: _Plan, columns: dict[str, str]) -> str:
    if not plan.date:
        return "NULL::DATE"
    if columns[plan.date].startswith(("DATE", "TIMESTAMP")):
        return f"CAST({quote(plan.date)} AS DATE)"
    return f"TRY_CAST(NULLIF(trim(CAST({quote(plan.date)} AS VARCHAR)), '') AS DATE)"


def _capped_values(plan: _Plan, columns: dict[str, str], metric: str) -> tuple[str, str | None]:
    """A metric's per-unit value read as a number (a ratio metric's numerator), and a ratio
    metric's denominator, each ``least(value, cap)`` when the metric is capped."""
    comma = plan.decimal_comma
    if metric in plan.ratio_cols:
        num_col, den_col = plan.ratio_cols[metric]
        num, den = _value(num_col, columns, comma), _value(den_col, columns, comma)
    else:
        num, den = _value(plan.metric_col[metric], columns, comma), None
    cap = plan.caps.get(metric)
    if cap is None:
        return num, den
    num = f"least({num}, {cap.cap!r})"
    if den is not None and cap.denominator_cap is not None:
        den = f"least({den}, {cap.denominator_cap!r})"
    return num, den


def _caps(con: duckdb.DuckDBPyConnection, src: str, columns: dict[str, str], plan: _Plan,
          ctx: ExperimentContext) -> dict[str, AppliedCap]:
    """Each capped metric's cap: a fixed rule's value, or the percentile of every unit's value
    in the file pooled across the variants, by DuckDB's ``quantile_cont`` (linear
    interpolation, Hyndman & Fan type 7: core.stats.capping.pooled_percentile), in one query
    that only runs for a percentile. Units whose value is empty or not a number are left out
    here and reported by the scan. ``units`` is set once the scan has counted them."""
    comma = plan.decimal_comma
    wanted = [m for m in plan.metrics if ctx.metrics[m].cap is not None]
    parts = []
    for k, metric in enumerate(wanted):
        rule = ctx.metrics[metric].cap
        assert rule is not None
        cols = plan.ratio_cols.get(metric) or (plan.metric_col[metric],)
        for side, col in zip(("n", "d"), cols, strict=False):
            parts.append(f"{rule.value!r} AS {side}{k}" if rule.kind == "fixed" else
                         f"quantile_cont({_value(col, columns, comma)}, {rule.value!r}) "
                         f"AS {side}{k}")
    if not any(ctx.metrics[m].cap.kind == "percentile" for m in wanted):  # type: ignore[union-attr]
        row: dict[str, Any] = {}
        for k, metric in enumerate(wanted):
            value = ctx.metrics[metric].cap.value  # type: ignore[union-attr]
            row[f"n{k}"] = value
            if metric in plan.ratio_cols:
                row[f"d{k}"] = value
    else:
        row = _fetch(con, f"SELECT {', '.join(parts)} FROM {src}")[0]
    caps = {}
    for k, metric in enumerate(wanted):
        num, den = row[f"n{k}"], row.get(f"d{k}")
        if num is None or (metric in plan.ratio_cols and den is None):
            continue  # no readable value at all: the scan reports the column
        caps[metric] = AppliedCap(float(num), None if den is None else float(den))
    return caps


def _scan_query(plan: _Plan, columns: dict[str, str], src: str) -> tuple[str, list[str]]:
    """The one aggregation query, and the names of its dimension key columns."""
    keys = [f"__eos_k{i}" for i in range(len(plan.dimensions))]
    inner = [f"CAST({quote(plan.variant)} AS VARCHAR) AS {_V}",
             f"{_day_expr(plan, columns)} AS {_D}"]
    for key, col in zip(keys, plan.dimensions, strict=True):
        inner.append(
            f"coalesce(NULLIF(trim(CAST({quote(col)} AS VARCHAR)), ''), "
            f"'{EMPTY_DIMENSION_VALUE}') AS {key}"
        )
    agg = ["count(*) AS rows"]
    if not plan.date:
        agg.append("0 AS bad_day, 0 AS empty_day")
    elif columns[plan.date].startswith(("DATE", "TIMESTAMP")):
        # A typed date column is never unreadable, only empty.
        agg.append(f"0 AS bad_day, count_if({quote(plan.date)} IS NULL) AS empty_day")
    else:
        agg.append(f"count_if({_D} IS NULL AND NULLIF(trim(CAST({quote(plan.date)} AS VARCHAR)), "
                   f"'') IS NOT NULL) AS bad_day, count_if({quote(plan.date)} IS NULL) "
                   "AS empty_day")
    # Infinite and NaN values are not counted here: one of them makes its column's sum (or sum
    # of squares) non-finite, and only then does :func:`_nonfinite_counts` count them exactly.
    comma = plan.decimal_comma
    for j, col in enumerate(plan.values):
        x = _value(col, columns, comma)
        agg += [f"count({x}) AS nn{j}", f"sum({x}) AS s{j}", f"sum({x} * {x}) AS ss{j}"]
        agg.append(f"count_if({_not_a_number(col, columns, comma)}) AS nan{j}"
                   if not is_numeric(columns[col]) else f"0 AS nan{j}")
        if col in plan.binomial:
            agg.append(f"count_if({x} NOT IN (0, 1)) AS bin{j}")
        if col in plan.denominators:
            agg.append(f"count_if({x} < 0) AS neg{j}")
    for k, metric in enumerate(plan.caps):
        num, den = _capped_values(plan, columns, metric)
        agg += [f"sum({num}) AS cs{k}", f"sum({num} * {num}) AS css{k}"]
        if den is not None:
            agg += [f"sum({den}) AS cds{k}", f"sum({den} * {den}) AS cdss{k}"]
    for i, metric in enumerate(plan.pre_cols):
        p_raw, x = plan.pre_cols[metric], _capped_values(plan, columns, metric)[0]
        p = f"coalesce({_value(p_raw, columns, comma)}, 0)"
        if metric in plan.caps:  # the covariate is capped at the metric's cap (GrowthBook)
            p = f"least({p}, {plan.caps[metric].cap!r})"
        agg += [f"sum({p}) AS px{i}", f"sum({p} * {p}) AS pxx{i}", f"sum({p} * {x}) AS pxy{i}"]
        agg.append(f"count_if({_not_a_number(p_raw, columns, comma)}) AS pnan{i}"
                   if not is_numeric(columns[p_raw]) else f"0 AS pnan{i}")
    for i, metric in enumerate(plan.ratio_cols):
        num, den = _capped_values(plan, columns, metric)
        agg.append(f"sum({num} * {den}) AS nd{i}")
    agg += _vector_sums(plan, columns)
    for k, col in enumerate(_comma_columns(plan, columns)):
        # values with a decimal comma, and numbers with a point only: both in one column is
        # ambiguous (is 1.234 one point two or twelve hundred?)
        text = f"CAST({quote(col)} AS VARCHAR)"
        agg += [f"count_if(contains({text}, ',')) AS dc{k}",
                f"count_if(NOT contains({text}, ',') AND contains({text}, '.') AND "
                f"{_value(col, columns, comma)} IS NOT NULL) AS dp{k}"]
    body = f"(SELECT *, {', '.join(inner)} FROM {src})"
    if not keys:
        return f"SELECT {_V} AS v, {_D} AS d, {', '.join(agg)} FROM {body} GROUP BY ALL", keys
    sets = ", ".join([f"({_V}, {_D})", *(f"({_V}, {_D}, {k})" for k in keys)])
    grouped = (f"SELECT {_V} AS v, {_D} AS d, {', '.join(keys)}, {', '.join(agg)} FROM {body} "
               f"GROUP BY GROUPING SETS ({sets})")
    card = ", ".join(f"count(DISTINCT {k}) AS c_{k}, coalesce(max(length({k})), 0) AS l_{k}"
                     for k in keys)
    keep = " AND ".join(
        f"({k} IS NULL OR (c_{k} <= {MAX_DIMENSION_VALUES} AND "
        f"l_{k} <= {MAX_DIMENSION_VALUE_LENGTH}))" for k in keys
    )
    # Only the slices of dimensions within the caps leave DuckDB (a high-cardinality text
    # column never reaches Python), with each dimension's count of values to say why.
    query = (f"WITH g AS MATERIALIZED ({grouped}), card AS (SELECT {card} FROM g) "
             f"SELECT g.*, card.* FROM g, card WHERE {keep}")
    return query, keys


def _example_rows(con: duckdb.DuckDBPyConnection, src: str, unit: str, col: str,
                  where: str) -> list[tuple[str, str | None]]:
    """Up to :data:`EXAMPLES` (unit, value as text) pairs where ``where`` holds."""
    return con.execute(
        f"SELECT CAST({unit} AS VARCHAR), CAST({col} AS VARCHAR) FROM {src} "
        f"WHERE {where} LIMIT {EXAMPLES}"
    ).fetchall()


def _listed(rows: list[tuple[str, str | None]]) -> str:
    return ", ".join(f"unit {u} = {v!r}" if v is not None else f"unit {u} = empty"
                     for u, v in rows)


def _examples(con: duckdb.DuckDBPyConnection, src: str, unit: str, col: str, where: str) -> str:
    return _listed(_example_rows(con, src, unit, col, where))


def _repeats(hashes: np.ndarray) -> int:
    """Equal neighbours once sorted (in place): 0 proves the hashes distinct."""
    hashes.sort()
    return int(np.count_nonzero(hashes[1:] == hashes[:-1]))


def duplicate_units(
    con: duckdb.DuckDBPyConnection,
    src: str,
    unit: str,
    rows: int,
    *,
    partition_units: int = PARTITION_UNITS,
) -> tuple[int, int]:
    """Rows beyond the first of each unit id (0 proves every unit appears once), and the rows
    with a unit id. The only query that reads the ids.

    Distinct 64-bit hashes prove distinct ids. The hashes are streamed out of DuckDB; up to
    ``partition_units`` rows they are sorted in one numpy array, beyond it they are split by
    their top bits into ``2**k`` partition files of at most about ``partition_units`` hashes
    (equal hashes share a partition) that are sorted one at a time, so memory stays flat. Only
    when two hashes are equal (a real duplicate, or a ~1e-6 collision) are the ids counted
    exactly."""
    bits = max(0, math.ceil(math.log2(max(rows, 1) / partition_units)))
    reader = con.execute(
        f"SELECT hash({unit}) FROM {src} WHERE {unit} IS NOT NULL"
    ).fetch_record_batch(_HASH_BATCH)
    filled = repeats = 0
    if not bits:
        hashes = np.empty(rows, dtype=np.uint64)
        for batch in reader:
            chunk = batch.column(0).to_numpy()
            hashes[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
        repeats = _repeats(hashes[:filled])
        del hashes
    else:
        with spool.scratch_dir("units-") as folder:
            names = [folder / f"{p}.u64" for p in range(1 << bits)]
            bounds = np.arange(1, 1 << bits, dtype=np.uint64) << np.uint64(64 - bits)
            handles = [name.open("wb") for name in names]
            try:
                for batch in reader:
                    # Sorted, a batch's partitions (ranges of the top bits) lie end to end.
                    chunk = np.sort(batch.column(0).to_numpy())
                    ends = [0, *np.searchsorted(chunk, bounds), len(chunk)]
                    for p, handle in enumerate(handles):
                        chunk[ends[p]:ends[p + 1]].tofile(handle)
                    filled += len(chunk)
            finally:
                for handle in handles:
                    handle.close()
            for name in names:
                repeats += _repeats(np.fromfile(name, dtype=np.uint64))
    if not repeats:
        return 0, filled
    return int(con.execute(
        f"SELECT count({unit}) - count(DISTINCT {unit}) FROM {src}").fetchone()[0]), filled  # type: ignore[index]


def _duplicate_problem(
    con: duckdb.DuckDBPyConnection, src: str, unit: str, variant: str, dupes: int
) -> str:
    rows = con.execute(
        f"SELECT CAST({unit} AS VARCHAR) AS u, list(DISTINCT CAST({variant} AS VARCHAR)) AS vs, "
        f"count(*) AS c FROM {src} WHERE {unit} IS NOT NULL GROUP BY {unit} HAVING count(*) > 1 "
        f"ORDER BY len(list(DISTINCT CAST({variant} AS VARCHAR))) DESC, u LIMIT {EXAMPLES}"
    ).fetchall()
    crossed = [r for r in rows if len(r[1]) > 1]
    listed = "; ".join(
        f"unit {u} in {' and '.join(sorted(str(v) for v in vs))}" if len(vs) > 1
        else f"unit {u} on {c:,} rows" for u, vs, c in rows
    )
    what = "appear in two variants" if crossed else "appear on more than one row"
    return (
        f"unit_id: {dupes} extra rows: units {what} (each unit belongs to exactly one variant "
        f"and has one row), e.g. {listed}"
    )


def _vector_sums(plan: _Plan, columns: dict[str, str]) -> list[str]:
    """The cross-products of every metric's covariate vector (:class:`CovariateSums`): per
    metric i and covariates j <= l, sum x_j (``vi_x<j>``), sum x_j x_l (``vi_xx<j>_<l>``),
    sum x_j y (``vi_xy<j>``) and, for a ratio, sum x_j den (``vi_xd<j>``); an empty covariate
    counts as 0 (as a pre-period column's), a non-numeric one is a problem (``cnan<c>``)."""
    comma = plan.decimal_comma
    agg = []
    for c, col in enumerate(plan.covariates):
        agg.append(f"count_if({_not_a_number(col, columns, comma)}) AS cnan{c}"
                   if not is_numeric(columns[col]) else f"0 AS cnan{c}")
    for i, metric in enumerate(plan.vector_cols):
        # the outcome as the metric's sums count it: capped when the plan caps the metric
        y, d = _capped_values(plan, columns, metric)
        # only the units the metric counts (n = count(y)) enter its covariate sums; its own
        # pre-period at its cap, as its one-covariate CUPED sums and the warehouse take it
        xs = []
        for col in plan.vector_cols[metric]:
            x = f"coalesce({_value(col, columns, comma)}, 0)"
            limit = _pre_cap(plan, metric, col)
            if limit is not None:
                x = f"least({x}, {limit!r})"
            xs.append(f"(CASE WHEN {y} IS NOT NULL THEN {x} END)")
        for j, x in enumerate(xs):
            agg += [f"sum({x}) AS v{i}_x{j}", f"sum({x} * {y}) AS v{i}_xy{j}"]
            agg += [f"sum({x} * {xs[m]}) AS v{i}_xx{j}_{m}" for m in range(j, len(xs))]
            if d is not None:
                agg.append(f"sum({x} * {d}) AS v{i}_xd{j}")
    return agg


def _pre_cap(plan: _Plan, metric: str, col: str) -> float | None:
    """The cap of a capped metric's own pre-period column ``col`` in its covariate vector:
    the value's cap (a ratio's numerator's), or a ratio's denominator cap for its denominator's
    pre-period (GrowthBook caps the covariate as the value); None for a ``cov_`` column or an
    uncapped metric."""
    cap = plan.caps.get(metric)
    if cap is None or col in plan.covariates:
        return None
    if metric in plan.ratio_cols:
        num, den = plan.ratio_cols[metric]
        if col.lower() == (den + PRE_SUFFIX).lower():
            return cap.denominator_cap
        return cap.cap if col.lower() == (num + PRE_SUFFIX).lower() else None
    return cap.cap


def _vector(plan: _Plan, metric: str, i: int, g: dict[str, Any]) -> CovariateSums:
    """Metric ``metric``'s (the i-th vector) :class:`CovariateSums` from a scan group."""
    cols = plan.vector_cols[metric]
    k = len(cols)

    def num(name: str) -> float:
        return float(g[name] or 0.0)

    return CovariateSums(
        tuple(cols), tuple(num(f"v{i}_x{j}") for j in range(k)),
        tuple(num(f"v{i}_xx{j}_{m}") for j in range(k) for m in range(j, k)),
        tuple(num(f"v{i}_xy{j}") for j in range(k)),
        tuple(num(f"v{i}_xd{j}") for j in range(k)) if metric in plan.ratio_cols else None)


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
    """Aggregate and validate a user-level file (see the module docstring); raises
    :class:`InvalidInput` listing every problem found."""
    name = path.name
    plan = _plan(columns, lower, ctx, name)
    plan.decimal_comma = reads_decimal_comma(path, fmt)
    report(0.1, f"Aggregating {name}")
    unit = quote(plan.unit)
    alongside = _ProofAlongside.start(con, src, unit) if fmt == "parquet" else None
    try:
        groups, src, columns, keys = _aggregate(con, path, fmt, src, columns, plan, ctx)
        whole = [g for g in groups if all(g[k] is None for k in keys)]
        total_rows = sum(int(g["rows"]) for g in whole)
        if total_rows == 0:
            raise InvalidInput(f"file: {name} has a header but no rows")
        report(0.6, "Checking that each unit appears once")
        dupes, with_unit = (alongside.result() if alongside
                            else duplicate_units(con, src, unit, total_rows))
    finally:
        if alongside:
            alongside.close()
    problems = _problems(con, src, plan, columns, ctx, whole, total_rows, dupes,
                         total_rows - with_unit)
    plan.caps = {m: replace(cap, units=total_rows) for m, cap in plan.caps.items()}
    if problems:
        raise InvalidInput(capped(problems))

    on_day = day or min(ctx.end, datetime.now(UTC).date())
    if not plan.date and not (ctx.start <= on_day <= ctx.end):
        raise InvalidInput(
            f"day: {on_day} is outside '{ctx.name}' ({ctx.start} to {ctx.end}); the file has no "
            "date column, so pass the day its data belongs to"
        )
    cells, assignments = _cells(plan, ctx, whole, on_day, None)
    quantiles, quantile_notes = _quantiles(con, src, plan, columns, ctx, whole)
    slices: list[Cell] = []
    slice_units: dict[tuple[str, date, str, str], int] = {}
    dimensions = []
    notes = [*plan.notes, *quantile_notes]
    read_with_comma = [col for k, col in enumerate(_comma_columns(plan, columns))
                       if sum(int(g[f"dc{k}"] or 0) for g in whole)]
    if read_with_comma:
        notes.append(f"Numbers were read with a decimal comma (1,5 = 1.5) in "
                     f"{', '.join(read_with_comma)}: the file is separated by ';'.")
    for metric, cap in plan.caps.items():
        rule = ctx.metrics[metric].cap
        assert rule is not None
        notes.append(f"{metric}: per-unit values {cap.describe(rule)}, as the plan says.")
    ignored = list(plan.ignored)
    for key, col in zip(keys, plan.dimensions, strict=True):
        rows = [g for g in groups if g[key] is not None]
        if not rows:
            count = int(whole[0][f"c_{key}"]) if whole else 0
            longest = int(whole[0][f"l_{key}"]) if whole else 0
            why = (f"{count} distinct values, more than the {MAX_DIMENSION_VALUES} a dimension "
                   "may have" if count > MAX_DIMENSION_VALUES else
                   f"values up to {longest} characters, longer than the "
                   f"{MAX_DIMENSION_VALUE_LENGTH} a dimension value may have")
            notes.append(f"column {col}: not used as a dimension ({why})")
            ignored.append(col)
            continue
        dimensions.append(col)
        slices += _cells(plan, ctx, rows, on_day, (col, key))[0]
        for g in rows:
            d = g["d"] if plan.date else on_day
            slice_units[(g["v"], d, col, g[key])] = int(g["rows"])
    return Aggregated(
        cells=cells,
        assignments=assignments,
        rows_read=total_rows,
        ignored=tuple(ignored),
        full_replace=plan.date is None,
        metrics=tuple(plan.metrics),
        slices=slices,
        slice_assignments=slice_units,
        dimensions=tuple(dimensions),
        notes=tuple(notes),
        caps=dict(plan.caps),
        quantiles=quantiles,
        quantile_metrics=tuple(m for m in plan.metric_col if ctx.metrics[m].kind == "quantile"),
    )


def _quantiles(
    con: duckdb.DuckDBPyConnection,
    src: str,
    plan: _Plan,
    columns: dict[str, str],
    ctx: ExperimentContext,
    whole: list[dict[str, Any]],
) -> tuple[dict[tuple[str, str], QuantileStats], list[str]]:
    """Each quantile metric's :class:`QuantileStats` per variant over the file's units, in one
    more scan: ``quantile_disc`` (the smallest value x with F_n(x) >= level, numpy's
    "inverted_cdf") at p and at :func:`core.stats.quantile_levels` (p, n) for the arm's n,
    read from the aggregation's counts. An arm too small for its interval gets no record and a
    note."""
    wanted = [(m, col) for m, col in plan.metric_col.items() if ctx.metrics[m].kind == "quantile"]
    if not wanted:
        return {}, []
    index = {col: j for j, col in enumerate(plan.values)}
    counts: dict[tuple[str, str], int] = {}
    for g in whole:
        for metric, col in wanted:
            key = (str(g["v"]), metric)
            counts[key] = counts.get(key, 0) + int(g[f"nn{index[col]}"])
    notes: list[str] = []
    selects: list[str] = []
    order: list[tuple[str, str, int, float]] = []
    for (variant, metric), n in sorted(counts.items()):
        p = ctx.metrics[metric].quantile_p
        assert p is not None
        try:
            low, high = quantile_levels(p, n)
        except InsufficientDataError as exc:
            notes.append(f"{metric}: no quantile for {variant}: {exc}")
            continue
        x = f"x{index[plan.metric_col[metric]]}"
        selects.append(f"quantile_disc({x}, [{low!r}, {p!r}, {high!r}]) FILTER (WHERE {_V} = "
                       f"'{variant.replace(chr(39), chr(39) * 2)}') AS q{len(order)}")
        order.append((variant, metric, n, p))
    if not selects:
        return {}, notes
    comma = plan.decimal_comma
    inner = ", ".join([f"CAST({quote(plan.variant)} AS VARCHAR) AS {_V}", *(
        f"{_value(col, columns, comma)} AS x{index[col]}" for col in dict.fromkeys(
            c for _m, c in wanted))])
    row = con.execute(f"SELECT {', '.join(selects)} FROM (SELECT {inner} FROM {src})").fetchone()
    assert row is not None
    out = {}
    for (variant, metric, n, p), (low, q, high) in zip(order, row, strict=True):
        out[(variant, metric)] = QuantileStats(n, p, float(q), float(low), float(high))
    for metric in dict.fromkeys(m for _v, m, _n, _p in order):
        notes.append(f"{metric}: its quantile is computed over this file's units; quantiles "
                     "do not add up across loads, so the latest file with this metric must "
                     "hold all of its units")
    return out, notes


def _aggregate(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str,
    src: str,
    columns: dict[str, str],
    plan: _Plan,
    ctx: ExperimentContext,
) -> tuple[list[dict[str, Any]], str, dict[str, str], list[str]]:
    """The scan's groups, and the source, column types and dimension keys they were read with
    (a CSV whose types DuckDB guessed wrong is read again as text)."""
    name = path.name
    try:
        plan.caps = _caps(con, src, columns, plan, ctx)
        query, keys = _scan_query(plan, columns, src)
        return _fetch(con, query), src, columns, keys
    except duckdb.Error as exc:
        if fmt != "csv":
            raise InvalidInput(f"file: {name} could not be read: {duck_problem(exc)}") from None
        structure = csv_structure_problems(con, path)
        if structure:
            raise InvalidInput(capped(structure)) from None
    # A value DuckDB's type sniffer did not expect (far down the file): read every column as
    # text, so each bad value is counted with the others.
    src = file_reader(path, fmt, all_varchar=True)
    columns = {c: "VARCHAR" for c in columns}
    try:
        plan.caps = _caps(con, src, columns, plan, ctx)
        query, keys = _scan_query(plan, columns, src)
        return _fetch(con, query), src, columns, keys
    except duckdb.Error as again:
        raise InvalidInput(f"file: {name} could not be read: {duck_problem(again)}") from None


class _ProofAlongside:
    """The unit proof of a Parquet file, run on a second cursor while the aggregation scans (the
    proof's numpy work then overlaps DuckDB's). Its row count comes from the file's metadata."""

    def __init__(self, con: duckdb.DuckDBPyConnection, src: str, unit: str, rows: int) -> None:
        self._cursor = con.cursor()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="eos-unit-proof")
        self._future = self._pool.submit(duplicate_units, self._cursor, src, unit, rows)

    @classmethod
    def start(
        cls, con: duckdb.DuckDBPyConnection, src: str, unit: str
    ) -> _ProofAlongside | None:
        try:
            rows = int(con.execute(f"SELECT count(*) FROM {src}").fetchone()[0])  # type: ignore[index]
        except duckdb.Error:
            return None  # the aggregation reports what is wrong with the file
        return cls(con, src, unit, rows)

    def result(self) -> tuple[int, int]:
        return self._future.result()

    def close(self) -> None:
        """Stop the proof if it is still running (a load that failed), and free its cursor."""
        if not self._future.done():
            self._cursor.interrupt()
        self._pool.shutdown(wait=True)
        self._cursor.close()


def _fetch(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    cursor = con.execute(query)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _cells(
    plan: _Plan,
    ctx: ExperimentContext,
    groups: list[dict[str, Any]],
    on_day: date,
    dimension: tuple[str, str] | None,
) -> tuple[list[Cell], dict[tuple[str, date], int]]:
    dim, key = dimension if dimension else (None, None)
    index = {col: j for j, col in enumerate(plan.values)}
    pre_index = {m: i for i, m in enumerate(plan.pre_cols)}
    vector_index = {m: i for i, m in enumerate(plan.vector_cols)}
    cap_index = {m: k for k, m in enumerate(plan.caps)}
    cells: list[Cell] = []
    assignments: dict[tuple[str, date], int] = {}
    for g in groups:
        d = g["d"] if plan.date else on_day
        value = None if key is None else str(g[key])
        assignments[(g["v"], d)] = assignments.get((g["v"], d), 0) + int(g["rows"])
        for metric, col in plan.metric_col.items():
            j = index[col]
            cov: tuple[float | None, float | None, float | None] = (None, None, None)
            if metric in pre_index and dim is None:
                i = pre_index[metric]
                cov = (float(g[f"px{i}"]), float(g[f"pxx{i}"]), float(g[f"pxy{i}"]))
            total, squares = (f"s{j}", f"ss{j}") if metric not in cap_index else (
                f"cs{cap_index[metric]}", f"css{cap_index[metric]}")
            stats = MetricStats(int(g[f"nn{j}"]), float(g[total] or 0.0),
                                float(g[squares] or 0.0), *cov,
                                covariates=(_vector(plan, metric, vector_index[metric], g)
                                            if metric in vector_index and dim is None else None))
            cells.append(Cell(g["v"], d, metric, stats, dimension=dim, value=value))
        for i, (metric, (num, den)) in enumerate(plan.ratio_cols.items()):
            a, b = index[num], index[den]
            names = (f"s{a}", f"ss{a}", f"s{b}", f"ss{b}")
            if metric in cap_index:
                k = cap_index[metric]
                names = (f"cs{k}", f"css{k}", f"cds{k}", f"cdss{k}")
            s, ss, sd, sdd = (float(g[name] or 0.0) for name in names)
            stats = MetricStats(int(g[f"nn{a}"]), s, ss, sum_den=sd, sum_den_squares=sdd,
                                sum_num_den=float(g[f"nd{i}"] or 0.0),
                                covariates=(_vector(plan, metric, vector_index[metric], g)
                                            if metric in vector_index and dim is None
                                            else None))
            cells.append(Cell(g["v"], d, metric, stats, dimension=dim, value=value))
    return cells, assignments


def _finite(groups: list[dict[str, Any]], names: tuple[str, ...]) -> bool:
    return all(g[k] is None or math.isfinite(g[k]) for g in groups for k in names)


def _nonfinite_counts(
    con: duckdb.DuckDBPyConnection,
    src: str,
    plan: _Plan,
    columns: dict[str, str],
    groups: list[dict[str, Any]],
) -> dict[str, int]:
    """Infinite and NaN values per value column (``inf<j>``) and pre-period column
    (``pinf<i>``). A sum over values that are all finite is finite (IEEE arithmetic carries an
    infinity or NaN through every addition), so only columns whose sums are not are counted,
    in one extra query that a clean file never runs."""
    counts = []
    comma = plan.decimal_comma
    for j, col in enumerate(plan.values):
        if not _finite(groups, (f"s{j}", f"ss{j}")):
            counts.append(f"count_if(NOT isfinite({_value(col, columns, comma)})) AS inf{j}")
    for i, metric in enumerate(plan.pre_cols):
        if not _finite(groups, (f"px{i}", f"pxx{i}", f"pxy{i}")):
            p = f"coalesce({_value(plan.pre_cols[metric], columns, comma)}, 0)"
            counts.append(f"count_if(NOT isfinite({p})) AS pinf{i}")
    if not counts:
        return {}
    found = _fetch(con, f"SELECT {', '.join(counts)} FROM {src}")[0]
    return {k: int(v or 0) for k, v in found.items()}


def _problems(
    con: duckdb.DuckDBPyConnection,
    src: str,
    plan: _Plan,
    columns: dict[str, str],
    ctx: ExperimentContext,
    groups: list[dict[str, Any]],
    total_rows: int,
    dupes: int,
    null_units: int,
) -> list[str]:
    """Every problem of the file, from the scan's counters (examples looked up only then)."""
    unit, variant = quote(plan.unit), quote(plan.variant)
    problems: list[str] = []
    infinite = _nonfinite_counts(con, src, plan, columns, groups)
    known = set(ctx.variants)
    unknown: dict[str, int] = {}
    for g in groups:
        if g["v"] is None or not str(g["v"]).strip():
            unknown["(empty)"] = unknown.get("(empty)", 0) + int(g["rows"])
        elif g["v"] not in known:
            unknown[g["v"]] = unknown.get(g["v"], 0) + int(g["rows"])
    if unknown:
        listed = ", ".join(f"'{v}' ({n:,} rows)" for v, n in sorted(unknown.items()))
        problems.append(
            f"variant: unknown variant(s) {listed}; the experiment's variants are "
            f"{', '.join(ctx.variants)}"
        )
    if null_units:
        problems.append(f"unit_id: {null_units:,} rows have an empty unit_id")
    if dupes:
        problems.append(_duplicate_problem(con, src, unit, variant, dupes))
    if plan.date:
        bad_days = sum(int(g["bad_day"]) for g in groups)
        empty_days = sum(int(g["empty_day"]) for g in groups)
        q = quote(plan.date)
        if bad_days:
            where = (f"{_day_expr(plan, columns)} IS NULL AND "
                     f"NULLIF(trim(CAST({q} AS VARCHAR)), '') IS NOT NULL")
            problems.append(
                f"date: {bad_days:,} rows have an unreadable date (use YYYY-MM-DD), e.g. "
                + _examples(con, src, unit, q, where)
            )
        if empty_days:
            problems.append(f"date: {empty_days:,} rows have an empty date, e.g. "
                            + _examples(con, src, unit, q, f"{q} IS NULL"))
        early = [g for g in groups if g["d"] is not None and g["d"] < ctx.start]
        late = [g for g in groups if g["d"] is not None and g["d"] > ctx.end]
        if early:
            n = sum(int(g["rows"]) for g in early)
            problems.append(
                f"date: {n:,} rows are dated before '{ctx.name}' started on {ctx.start} "
                f"(earliest {min(g['d'] for g in early)})"
            )
        if late:
            n = sum(int(g["rows"]) for g in late)
            problems.append(
                f"date: {n:,} rows are dated after the experiment's last day {ctx.end} "
                f"(latest {max(g['d'] for g in late)})"
            )
    comma = plan.decimal_comma
    for k, col in enumerate(_comma_columns(plan, columns)):
        commas = sum(int(g[f"dc{k}"] or 0) for g in groups)
        points = sum(int(g[f"dp{k}"] or 0) for g in groups)
        if commas and points:
            q = quote(col)
            problems.append(
                f"column {col}: {points} numbers are written with a point and {commas} with a "
                "comma; the file is separated by ';', so its numbers are read with a decimal "
                "comma, and a point could be a thousands separator (is 1.234 one point two or "
                "twelve hundred?): write every number with a decimal comma and no thousands "
                "separator, e.g. " + _examples(
                    con, src, unit, q, f"NOT contains(CAST({q} AS VARCHAR), ',') AND "
                    f"contains(CAST({q} AS VARCHAR), '.')"))
    for j, col in enumerate(plan.values):
        q = quote(col)
        x = _value(col, columns, comma)
        nan = sum(int(g[f"nan{j}"] or 0) for g in groups)
        if nan:
            rows = _example_rows(con, src, unit, q, _not_a_number(col, columns, comma))
            problems.append(f"column {col}: {nan} non-numeric values, e.g. "
                            + _listed(rows) + _number_hint([v for _u, v in rows if v], plan))
        empty = total_rows - sum(int(g[f"nn{j}"]) for g in groups) - nan
        if empty:
            problems.append(
                f"column {col}: {empty:,} rows are empty (every unit needs a value; use 0 for "
                f"none), e.g. " + _examples(con, src, unit, q,
                                            f"NULLIF(trim(CAST({q} AS VARCHAR)), '') IS NULL")
            )
        inf = infinite.get(f"inf{j}", 0)
        if inf:
            problems.append(f"column {col}: {inf} infinite or NaN values, e.g. "
                            + _examples(con, src, unit, q, f"NOT isfinite({x})"))
        if col in plan.binomial:
            bad = sum(int(g[f"bin{j}"] or 0) for g in groups)
            if bad:
                problems.append(
                    f"column {col}: {bad} values other than 0 or 1 (it is a binomial metric), "
                    "e.g. " + _examples(con, src, unit, q, f"{x} NOT IN (0, 1)")
                )
        if col in plan.denominators:
            neg = sum(int(g[f"neg{j}"] or 0) for g in groups)
            if neg:
                users = [m for m, (_n, d) in plan.ratio_cols.items() if d == col]
                problems.append(
                    f"column {col}: {neg} negative values (it is the denominator of "
                    f"{', '.join(users)}: a count such as sessions or page views), e.g. "
                    + _examples(con, src, unit, q, f"{x} < 0")
                )
    for i, metric in enumerate(plan.pre_cols):
        col = plan.pre_cols[metric]
        nan = sum(int(g[f"pnan{i}"] or 0) for g in groups)
        if nan:
            rows = _example_rows(con, src, unit, quote(col), _not_a_number(col, columns, comma))
            problems.append(f"column {col}: {nan} non-numeric values, e.g. "
                            + _listed(rows) + _number_hint([v for _u, v in rows if v], plan))
        inf = infinite.get(f"pinf{i}", 0)
        if inf:
            problems.append(f"column {col}: {inf} infinite or NaN values")
    for c, col in enumerate(plan.covariates):
        nan = sum(int(g[f"cnan{c}"] or 0) for g in groups)
        if nan:
            rows = _example_rows(con, src, unit, quote(col), _not_a_number(col, columns, comma))
            problems.append(f"column {col}: {nan} non-numeric values, e.g. "
                            + _listed(rows) + _number_hint([v for _u, v in rows if v], plan))
    for i, metric in enumerate(plan.vector_cols):
        sums = [k for k in groups[0] if k.startswith(f"v{i}_")] if groups else []
        if not _finite(groups, tuple(sums)):
            problems.append(f"metric {metric}: its covariates "
                            f"({', '.join(plan.vector_cols[metric])}) hold infinite or NaN values")
    return problems
