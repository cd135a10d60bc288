"""Pre-aggregated metric data — a pre-aggregated CSV/Parquet file or the result of a SQL push-down
source — checked row by row into :class:`~core.data.reading.Cell` sums. A row holds
``variant, date (or day), metric, n, sum, sum_squares``; optionally ``sum_x, sum_x2, sum_xy``
(CUPED covariate sums of a mean metric), ``sum_den, sum_den_squares, sum_num_den`` (a ratio
metric's denominator sums and numerator x denominator products; then ``sum``/``sum_squares`` are
the numerator's), and ``dimension, dimension_value`` (the row describes the units of one value of
a dimension, e.g. country = DE; both empty: the whole arm), ``duplicate_units`` (the source's
own count of rows beyond the first of each unit: the warehouse's uniqueness proof; non-zero
refuses the load), and the cross-products of several covariates for regression adjustment
(:class:`~core.stats.CovariateSums` as flat columns,
:func:`core.stats.covariates.covariate_columns`: ``sum_x__<a>``, ``sum_xx__<a>__<b>``,
``sum_xy__<a>`` and a ratio metric's ``sum_xden__<a>``; a whole arm's rows only, at most
:data:`~core.data.reading.MAX_COVARIATES` covariates). A quantile metric's arm is one row
without a date, sum or sum_squares: ``n`` (the arm's units) and ``quantile_p, quantile,
quantile_lower, quantile_upper`` [, ``quantile_n_star``]
(:data:`~core.data.reading.QUANTILE_COLUMNS`, a :class:`~core.stats.quantile.QuantileStats`);
its rows with a date are the per-unit value's daily sums, as for a mean metric. Every bad row
is reported (capped),
naming its row number, and nothing is kept unless all rows are good.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from core.data.reading import (
    AGGREGATE_COLUMNS,
    COVARIATE_COLUMNS,
    MAX_AGGREGATE_ROWS,
    MAX_COVARIATES,
    MAX_DIMENSION_VALUE_LENGTH,
    MAX_DIMENSION_VALUES,
    MAX_PROBLEMS,
    PROOF_COLUMNS,
    QUANTILE_COLUMNS,
    RATIO_COLUMNS,
    SLICE_COLUMNS,
    Aggregated,
    Cell,
    ExperimentContext,
    MetricInfo,
    file_reader,
    quote,
    reads_decimal_comma,
    unreadable,
)
from core.errors import InvalidInput
from core.stats import (
    CovariateSums,
    InsufficientDataError,
    MetricStats,
    QuantileStats,
    SufficientStats,
    quantile_levels,
)
from core.stats.capping import AppliedCap
from core.stats.covariates import XX, X, is_covariate_column

MAX_DIMENSION_NAME_LENGTH = 64
_OPTIONAL = (*COVARIATE_COLUMNS, *RATIO_COLUMNS, *SLICE_COLUMNS, *PROOF_COLUMNS,
             *QUANTILE_COLUMNS)


def read_aggregate_rows(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: str, lower: dict[str, str]
) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """The rows of a pre-aggregated file, every value as text (checked by
    :func:`aggregate_records`), and notes for the person loading it (numbers read with a
    decimal comma)."""
    missing = [c for c in AGGREGATE_COLUMNS if c not in lower]
    if missing:
        raise InvalidInput(
            f"file: {path.name} lacks the column(s) {', '.join(missing)} of a pre-aggregated "
            f"file ({', '.join(AGGREGATE_COLUMNS)})"
        )
    con.execute("SET preserve_insertion_order = true")
    src = file_reader(path, fmt, all_varchar=True)
    wanted = [c for c in (*AGGREGATE_COLUMNS, *_OPTIONAL) if c in lower]
    wanted += [c for c in lower if is_covariate_column(c)]
    try:
        count = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]  # type: ignore[index]
        if count > MAX_AGGREGATE_ROWS:
            raise InvalidInput(
                f"file: {path.name} has {count:,} rows, too many for a pre-aggregated file (one "
                "row per variant, day and metric); load unit-level data as a user-level file"
            )
        select = ", ".join(f"CAST({quote(lower[c])} AS VARCHAR) AS {c}" for c in wanted)
        cursor = con.execute(f"SELECT {select} FROM {src}")
        rows = [dict(zip(wanted, row, strict=True)) for row in cursor.fetchall()]
    except duckdb.Error as exc:
        raise unreadable(con, path, fmt, exc) from None
    read = _read_decimal_commas(rows, path.name, first_row=2) if reads_decimal_comma(
        path, fmt) else []
    return rows, ((f"Numbers were read with a decimal comma (1,5 = 1.5) in {', '.join(read)}: "
                   "the file is separated by ';'.",) if read else ())


_NUMBER_COLUMNS = ("n", "sum", "sum_squares", *COVARIATE_COLUMNS, *RATIO_COLUMNS,
                   *PROOF_COLUMNS, *QUANTILE_COLUMNS)


def _read_decimal_commas(rows: list[dict[str, Any]], name: str, *, first_row: int) -> list[str]:
    """A ';'-separated file's numbers have a decimal comma: ``12,5`` becomes ``12.5`` in place;
    returns the columns that had one. A column that also has numbers with a point only is
    refused (is 1.234 one point two or twelve hundred?)."""
    problems = []
    read = []
    vectors = [c for c in (rows[0] if rows else {}) if is_covariate_column(c)]
    for col in (*_NUMBER_COLUMNS, *vectors):
        texts = [(i, str(r[col]).strip()) for i, r in enumerate(rows) if r.get(col) is not None]
        commas = [t for _i, t in texts if "," in t]
        points = [(i, t) for i, t in texts if "." in t and "," not in t]
        if commas and points:
            shown = ", ".join(f"row {i + first_row} = {t!r}" for i, t in points[:3])
            problems.append(
                f"file: {name}: column {col} has {len(points)} numbers written with a point and "
                f"{len(commas)} with a comma; the file is separated by ';', so its numbers are "
                "read with a decimal comma, and a point could be a thousands separator: write "
                f"every number with a decimal comma and no thousands separator, e.g. {shown}")
            continue
        if commas:
            read.append(col)
        for row in rows:
            if isinstance(row.get(col), str):
                row[col] = row[col].replace(",", ".")
    if problems:
        raise InvalidInput(problems)
    return read


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


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _ratio_problems(n: float, nums: dict[str, float | None], row: dict[str, Any]) -> list[str]:
    given = [k for k in RATIO_COLUMNS if nums[k] is not None]
    if len(given) < 3:
        return [f"a ratio metric needs {', '.join(RATIO_COLUMNS)} (the denominator's sums)"]
    if any(not math.isfinite(nums[k]) for k in given):  # type: ignore[arg-type]
        return [f"{', '.join(RATIO_COLUMNS)} must be numbers"]
    s, ss = nums["sum"], nums["sum_squares"]
    sd, sdd, snd = nums["sum_den"], nums["sum_den_squares"], nums["sum_num_den"]
    assert s is not None and ss is not None and sd is not None and sdd is not None
    assert snd is not None
    out = []
    if sd < 0:
        out.append(f"sum_den {row.get('sum_den')} is negative (a denominator counts sessions, "
                   "page views...)")
    for label, total, squares in (("numerator", s, ss), ("denominator", sd, sdd)):
        try:
            SufficientStats(int(n), total, squares)
        except ValueError as exc:
            out.append(f"{label}: " + str(exc).removeprefix("SufficientStats: "))
    if not out and n > 0:
        # Cauchy-Schwarz: the numerator-denominator covariance is bounded by their variances.
        cov = snd - s * sd / n
        bound = math.sqrt(max(ss - s * s / n, 0.0) * max(sdd - sd * sd / n, 0.0))
        if abs(cov) > bound * (1 + 1e-9) + 1e-9 * (abs(snd) + 1.0):
            out.append(
                f"sum_num_den {row.get('sum_num_den')} is impossible for these sums (it implies "
                "a correlation above 1 between numerator and denominator)"
            )
    return out


def _whole(value: float | None, least: int) -> bool:
    return value is not None and math.isfinite(value) and value.is_integer() and value >= least


def _quantile_row(info: MetricInfo | None, row: dict[str, Any]
                  ) -> tuple[list[str], QuantileStats | None]:
    """A quantile metric's row for one arm (module docstring): its problems, or its
    statistics. ``info`` None: the metric is unknown (reported by the caller)."""
    if info is None:
        return [], None
    if info.kind != "quantile":
        return [f"{', '.join(QUANTILE_COLUMNS)} belong to quantile metrics only ({info.name} "
                f"is {info.kind})"], None
    out = []
    if _text(row.get("date")) is not None:
        out.append("a quantile row covers every unit of the arm, not one day: leave its date "
                   "empty (the metric's daily sums go on rows with a date)")
    if any(_text(row.get(k)) is not None for k in ("sum", "sum_squares")):
        out.append("a quantile row takes no sum or sum_squares (give them on the metric's rows "
                   "with a date)")
    if _text(row.get("dimension")) is not None or _text(row.get("dimension_value")) is not None:
        out.append("quantiles are stored per arm, not per dimension value: leave dimension and "
                   "dimension_value empty")
    nums = {k: _number(row.get(k)) for k in ("n", *QUANTILE_COLUMNS)}
    empty = [k for k in QUANTILE_COLUMNS[:4] if nums[k] is None]
    if empty:
        out.append(f"give {', '.join(QUANTILE_COLUMNS[:4])} together ({', '.join(empty)} "
                   f"{'is' if len(empty) == 1 else 'are'} empty)")
    out += [f"{k} {row.get(k)!r} is not a number" for k in ("n", *QUANTILE_COLUMNS)
            if nums[k] is not None and not math.isfinite(nums[k])]  # type: ignore[arg-type]
    if out:
        return out, None
    n, p, n_star = nums["n"], nums["quantile_p"], nums["quantile_n_star"]
    assert p is not None and info.quantile_p is not None
    if not _whole(n, 1):
        out.append(f"n {row.get('n')!r} is not a whole number of units >= 1 (the arm's units)")
    elif n_star is not None and not (_whole(n_star, 1) and n_star <= n):  # type: ignore[operator]
        out.append(f"quantile_n_star {row.get('quantile_n_star')!r} is not a whole number from "
                   f"1 to n ({row.get('n')}): the count the bounds' levels were computed for")
    if not 0.0 < p < 1.0:
        out.append(f"quantile_p {row.get('quantile_p')!r} is not strictly between 0 and 1")
    elif not math.isclose(p, info.quantile_p, rel_tol=1e-12, abs_tol=1e-15):
        out.append(f"quantile_p {row.get('quantile_p')!r} is not the level of {info.name} "
                   f"({info.quantile_p:g}): give its {info.quantile_p:g}-quantile")
    if out:
        return out, None
    assert n is not None
    units, star = int(n), int(n_star if n_star is not None else n)
    try:
        quantile_levels(info.quantile_p, star)
    except InsufficientDataError as exc:
        return [f"{exc}: drop this row (the arm is tested once it has enough units)"], None
    try:
        stats = QuantileStats(units, info.quantile_p, float(nums["quantile"]),  # type: ignore[arg-type]
                              float(nums["quantile_lower"]),  # type: ignore[arg-type]
                              float(nums["quantile_upper"]), star)  # type: ignore[arg-type]
    except ValueError as exc:
        message = str(exc).removeprefix("QuantileStats: ")
        return [message.replace("lower <= quantile <= upper",
                                "quantile_lower <= quantile <= quantile_upper")], None
    return [], stats


def _given_quantile_problems(ctx: ExperimentContext,
                             quantiles: Mapping[tuple[str, str], QuantileStats],
                             metrics: Sequence[str], label: str) -> list[str]:
    """A source's own quantile statistics (the warehouse refresh's): for quantile metrics of
    the experiment that it defines, of its variants, at each metric's level."""
    out = []
    for name in metrics:
        info = ctx.metrics.get(name)
        if info is None or info.kind != "quantile":
            out.append(f"{label}: {name} is not a quantile metric of '{ctx.name}'")
    for (variant, name), q in sorted(quantiles.items()):
        info = ctx.metrics.get(name)
        if variant not in ctx.variants:
            out.append(f"{label}: {name}: unknown variant '{variant}' (expected "
                       f"{', '.join(ctx.variants)})")
        elif name not in metrics:
            out.append(f"{label}: {name}: quantile statistics for a metric the load does not "
                       "define")
        elif info is not None and info.quantile_p != q.p:
            out.append(f"{label}: {name}: quantile statistics at p = {q.p:g}, but its level "
                       f"is {info.quantile_p:g}")
    return out


def _getter(nums: dict[str, float | None]) -> Any:
    return lambda k: float(nums[k])  # type: ignore[arg-type]


def _vector(row: dict[str, Any], ratio: bool, sliced: bool, kind: str | None
            ) -> tuple[CovariateSums | None, str | None]:
    """A row's covariate cross-products (flat columns, module docstring) and what is wrong
    with them."""
    values = {k: _number(v) for k, v in row.items() if is_covariate_column(k)}
    try:
        vector = CovariateSums.from_columns(values, ratio=ratio)
    except ValueError as exc:
        return None, "covariate sums: " + str(exc).removeprefix("CovariateSums: ")
    if vector is None:
        return None, None
    if sliced:
        return None, ("a dimension value's row takes no covariate sums (sum_x__…: the whole "
                      "arm's rows carry them)")
    if kind == "quantile":
        return None, "a quantile metric takes no covariate sums (it is never regression-adjusted)"
    if vector.k > MAX_COVARIATES:
        return None, (f"{vector.k} covariates ({', '.join(vector.names)}); at most "
                      f"{MAX_COVARIATES} per metric")
    return vector, None


def _vector_variance_problems(vector: CovariateSums, n: int) -> list[str]:
    """A covariate whose sum of squares is below sum² / n has a negative variance."""
    out = []
    for j, name in enumerate(vector.names):
        total, squares = vector.x[j], vector.xx[j, j]
        if n == 0 and (total or squares):
            out.append(f"{X}{name} and {XX}{name}__{name} must be 0 over n = 0 units")
        elif n > 0 and squares - total * total / n < -1e-9 * max(squares, 1.0):
            out.append(f"{XX}{name}__{name} {squares:g} is below {X}{name}² / n "
                       f"({total * total / n:g}): impossible sums (a negative variance)")
    return out


def aggregate_records(
    ctx: ExperimentContext, rows: list[dict[str, Any]], *, label: str, first_row: int = 1,
    caps: dict[str, AppliedCap] | None = None,
    quantiles: Mapping[tuple[str, str], QuantileStats] | None = None,
    quantile_metrics: Sequence[str] = (),
) -> Aggregated:
    """Validate per-variant, per-day, per-metric rows (file or SQL) into cells.

    ``rows`` hold the columns of the module docstring (``day`` may stand for ``date``);
    ``first_row`` numbers the first row in messages (2 for a CSV with a header). ``caps``: the
    caps the source applied to capped metrics' per-unit values before summing (the warehouse
    refresh); a metric the plan caps is refused without one, since its rows were summed from
    values nobody capped. ``quantiles``: quantile statistics the source computed itself, by
    (variant, metric), for the ``quantile_metrics`` it defines whole (the warehouse refresh;
    an arm it has none for keeps none); a quantile metric with rows of its own (module
    docstring) is defined whole by them.
    """
    if not rows:
        raise InvalidInput(f"{label}: no rows (expected one row per variant, day and metric)")
    problems: list[str] = []
    cells: list[Cell] = []
    slices: list[Cell] = []
    seen: dict[tuple[str, date, str, str | None, str | None], int] = {}
    values: dict[str, set[str]] = {}
    bad_rows = 0
    duplicates = 0
    uncapped: set[str] = set()
    quantile_rows: dict[tuple[str, str], int] = {}
    read_quantiles: dict[tuple[str, str], QuantileStats] = {}
    for offset, raw in enumerate(rows):
        where = f"row {offset + first_row}"
        row = {str(k).lower(): v for k, v in raw.items()}
        if "date" not in row and "day" in row:
            row["date"] = row["day"]
        variant = _text(row.get("variant"))
        metric = _text(row.get("metric"))
        dimension, value = _text(row.get("dimension")), _text(row.get("dimension_value"))
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
        elif info.cap is not None and metric not in (caps or {}):
            uncapped.add(info.name)
            continue
        if any(_text(row.get(k)) is not None for k in QUANTILE_COLUMNS):
            wrong, arm = _quantile_row(info, row)
            row_problems += wrong
            if not row_problems:
                assert variant is not None and metric is not None and arm is not None
                if (variant, metric) in quantile_rows:
                    row_problems.append(f"repeats the {metric} quantile row of {variant} (row "
                                        f"{quantile_rows[(variant, metric)] + first_row})")
                else:
                    quantile_rows[(variant, metric)] = offset
                    read_quantiles[(variant, metric)] = arm
            if row_problems:
                bad_rows += 1
                if len(problems) < MAX_PROBLEMS:
                    problems.append(f"{label} {where}: " + "; ".join(row_problems))
            continue
        day = parse_day(row.get("date"))
        if day is None:
            row_problems.append(f"date {row.get('date')!r} is not a date (use YYYY-MM-DD)")
        elif not ctx.start <= day <= ctx.end:
            row_problems.append(
                f"date {day} is outside the experiment ({ctx.start} to {ctx.end})"
            )
        if (dimension is None) != (value is None):
            row_problems.append("give both dimension and dimension_value, or neither")
        elif dimension is not None and value is not None:
            if len(dimension) > MAX_DIMENSION_NAME_LENGTH:
                row_problems.append(
                    f"dimension name is longer than {MAX_DIMENSION_NAME_LENGTH} characters")
            if len(value) > MAX_DIMENSION_VALUE_LENGTH:
                row_problems.append(
                    f"dimension_value is longer than {MAX_DIMENSION_VALUE_LENGTH} characters")
            values.setdefault(dimension, set()).add(value)
        nums = {k: _number(row.get(k)) for k in ("n", "sum", "sum_squares", *COVARIATE_COLUMNS,
                                                 *RATIO_COLUMNS, *PROOF_COLUMNS)}
        dup = nums["duplicate_units"]
        if dup is not None and (not math.isfinite(dup) or dup < 0):
            row_problems.append(f"duplicate_units {row.get('duplicate_units')!r} is not a count")
        elif dup:
            duplicates = max(duplicates, int(dup))
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
        ratio = info is not None and info.kind == "ratio"
        if not ratio and any(nums[k] is not None for k in RATIO_COLUMNS):
            row_problems.append(f"{', '.join(RATIO_COLUMNS)} belong to ratio metrics only "
                                f"({metric} is {info.kind if info else 'unknown'})")
        if ratio and cov_given:
            row_problems.append("a ratio metric takes no CUPED sums (sum_x, sum_x2, sum_xy)")
        if cov_given and dimension is not None:
            row_problems.append("a dimension value's row takes no CUPED sums")
        vector, vector_problem = _vector(row, ratio, dimension is not None,
                                         info.kind if info else None)
        if vector_problem:
            row_problems.append(vector_problem)
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
            elif ratio:
                row_problems += _ratio_problems(n, nums, row)
            else:
                try:
                    SufficientStats(int(n), s, ss)
                except ValueError as exc:
                    row_problems.append(str(exc).removeprefix("SufficientStats: "))
            if vector is not None and float(n).is_integer() and n >= 0:
                row_problems += _vector_variance_problems(vector, int(n))
        if not row_problems:
            assert variant is not None and metric is not None and day is not None
            key = (variant, day, metric, dimension, value)
            if key in seen:
                what = f"{variant}/{day}/{metric}" + (
                    f"/{dimension}={value}" if dimension else "")
                row_problems.append(f"repeats {what} of row {seen[key] + first_row}")
            else:
                seen[key] = offset
        if row_problems:
            bad_rows += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(f"{label} {where}: " + "; ".join(row_problems))
            continue
        assert variant is not None and metric is not None and day is not None
        num = _getter(nums)
        parts = [*(COVARIATE_COLUMNS if cov_given else ()), *(RATIO_COLUMNS if ratio else ())]
        stats = MetricStats(int(num("n")), num("sum"), num("sum_squares"),
                            **{k: num(k) for k in parts}, covariates=vector)
        cell = Cell(variant, day, metric, stats, dimension=dimension, value=value)
        (cells if dimension is None else slices).append(cell)
    for dim, found in sorted(values.items()):
        if len(found) > MAX_DIMENSION_VALUES:
            problems.append(
                f"{label}: dimension {dim} has {len(found)} distinct values, more than the "
                f"{MAX_DIMENSION_VALUES} a dimension may have; group the rare ones (e.g. "
                "'other') before loading"
            )
    for name in sorted(uncapped):
        rule = ctx.metrics[name].cap
        assert rule is not None
        problems.append(
            f"{label}: metric {name} is capped at {rule.label} in the plan of '{ctx.name}', "
            "and rows already summed cannot be capped (the cap applies to each unit's value "
            "before the sums): load it from unit-level data, a user-level file or a metric "
            "computed in the warehouse, which apply the cap")
    if duplicates:
        problems.append(
            f"{label}: unit_id: the source counted {duplicates} extra rows of units that appear "
            "more than once or in two variants (each unit belongs to exactly one variant and is "
            "counted once); fix the assignment data and reload"
        )
    if bad_rows > MAX_PROBLEMS:
        problems.append(f"{label}: ... and {bad_rows - MAX_PROBLEMS} more bad rows; fix these "
                        "and retry")
    problems += _given_quantile_problems(ctx, quantiles or {}, quantile_metrics, label)
    if problems:
        raise InvalidInput(problems)
    from_rows = tuple(dict.fromkeys(m for _v, m in read_quantiles))
    assignments: dict[tuple[str, date], int] = {}
    for c in cells:
        key2 = (c.variant, c.day)
        assignments[key2] = max(assignments.get(key2, 0), c.stats.n)
    slice_units: dict[tuple[str, date, str, str], int] = {}
    for c in slices:
        assert c.dimension is not None and c.value is not None
        key4 = (c.variant, c.day, c.dimension, c.value)
        slice_units[key4] = max(slice_units.get(key4, 0), c.stats.n)
    defined = tuple(dict.fromkeys([*quantile_metrics, *from_rows]))
    return Aggregated(
        cells=cells,
        assignments=assignments,
        rows_read=len(rows),
        metrics=tuple(dict.fromkeys(c.metric for c in [*cells, *slices])),
        slices=slices,
        slice_assignments=slice_units,
        dimensions=tuple(sorted(values)),
        caps=dict(caps or {}),
        quantiles={**dict(quantiles or {}), **read_quantiles},
        quantile_metrics=defined,
        notes=tuple(f"{m}: its quantile rows replace the stored statistics of every arm: "
                    "quantiles do not add up across loads, so each row must cover all of its "
                    "arm's units" for m in from_rows),
    )
