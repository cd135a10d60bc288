"""A plain pandas computation of the warehouse metric semantics, written apart from the engine
(core.warehouse.queries/compute) so that the engine is checked against something it did not
write. The semantics are those of the shared design ("Metric semantics" in the warehouse spec
of issue 21) and of :class:`core.warehouse.definitions.WarehouseMetric`:

- the assignment rows of the experiment's key; a unit seen in more than one variant (in any
  of its rows) is excluded and counted; every other unit counts once, at its first exposure
  (the earliest timestamp), in its variant, on the UTC day of that exposure, with the
  dimension values of that first exposure row; a unit first exposed after ``spec.end`` is
  outside the analysis: in neither the records nor the units (or two-variant units) counted;
- per unit and metric, the fact rows of the unit with ``first <= timestamp < first +
  window_days`` and ``timestamp <`` the day after ``spec.end`` (window None: only the latter),
  aggregated: ``sum`` of the column
  (0 without rows); ``count`` of rows (of non-null column values when a column is given);
  ``any``: 1 when a row exists (with column > 0 when given); ``mean``: numerator sum(column),
  denominator count(rows); ``ratio``: numerator sum(column), denominator sum(denominator);
- the CUPED covariate: the same aggregate over ``first - cuped_days <= timestamp < first``;
- per variant x first-exposure day (x dimension value) the sums of the record format
  (core/data/aggregates.py): ``n, sum, sum_squares``; with CUPED ``sum_x, sum_x2, sum_xy``
  (not on dimension rows, which take none); for mean and ratio ``sum``/``sum_squares`` are the
  numerator's and ``sum_den, sum_den_squares, sum_num_den`` are added.

On windows and the analysis day: the design's "Metric semantics" writes a window as ``[first,
first + window_days)`` and says nothing of ``spec.end`` for it; ``ExperimentSpec.end`` is "the
analysis day, inclusive", and facts after the analysis day are outside the analysis (Statsig
Warehouse Native, "Understanding experiments": metric data is read between the experiment's
start and end dates). So a window is cut at the end of the analysis day: a unit exposed near
``spec.end`` has a shorter window. The engine does the same; the design text should say so.

Plain pandas: a merge of units and facts, boolean masks for the windows, group-bys; no SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from core.warehouse.definitions import ExperimentSpec, WarehouseMetric

KEY_FIELDS: tuple[str, ...] = ("metric", "variant", "day", "dimension", "dimension_value")
SUM_FIELDS: tuple[str, ...] = (
    "n", "sum", "sum_squares", "sum_x", "sum_x2", "sum_xy",
    "sum_den", "sum_den_squares", "sum_num_den",
)
RATIO_AGGREGATIONS = ("mean", "ratio")


@dataclass(frozen=True)
class Reference:
    """What the engine must return for one spec: records, and the exposure check."""

    records: list[dict[str, Any]]
    units: int
    multi_variant_units: int
    units_by_variant: dict[str, int]
    by_day: dict[date, dict[str | None, int]]
    """Units per first-exposure day and variant (None: seen in more than one variant)."""


def first_exposures(assignment: pd.DataFrame, spec: ExperimentSpec) -> tuple[pd.DataFrame, int]:
    """One row per kept unit (``unit_id, first, variant, day``, the dimension and covariate
    columns) and the number of units seen in more than one variant."""
    rows = assignment[assignment["experiment_key"] == spec.experiment_key]
    per_unit = rows.groupby("unit_id")
    variants = per_unit["variant"].nunique()
    first_day = pd.to_datetime(per_unit["timestamp"].min()).dt.floor("D")
    multi = set(variants[variants > 1].index)
    # Two-variant units are counted among the units the analysis covers (first exposed by the
    # end of the analysis day).
    counted = len(multi & set(first_day[first_day <= pd.Timestamp(spec.end)].index))
    kept = rows[~rows["unit_id"].isin(multi)]
    ordered = kept.sort_values(["unit_id", "timestamp"], kind="stable")
    first = ordered.groupby("unit_id", sort=True).head(1)
    out = pd.DataFrame(
        {
            "unit_id": first["unit_id"].to_numpy(),
            "first": pd.to_datetime(first["timestamp"]).to_numpy(),
            "variant": first["variant"].to_numpy(),
        }
    )
    out["day"] = out["first"].dt.floor("D")  # the UTC day (timestamps are naive UTC)
    for dim in spec.assignment.dimensions:
        out[dim] = first[dim].to_numpy()
    for col in spec.assignment.covariates:  # the value at the first exposure, NULL kept
        out[col] = first[col].to_numpy()
    # A unit first exposed after the analysis day is outside the analysis (as its facts are).
    out = out[out["day"] <= pd.Timestamp(spec.end)]
    return out.reset_index(drop=True), counted


def multi_variant_days(assignment: pd.DataFrame, spec: ExperimentSpec) -> dict[date, int]:
    """Units seen in more than one variant, per first-exposure day (through the analysis
    day)."""
    rows = assignment[assignment["experiment_key"] == spec.experiment_key]
    per_unit = rows.groupby("unit_id")
    first_day = pd.to_datetime(per_unit["timestamp"].min()).dt.floor("D")
    multi = first_day[(per_unit["variant"].nunique() > 1)
                      & (first_day <= pd.Timestamp(spec.end))]
    return {d.date(): int(n) for d, n in multi.value_counts().items()}


def _per_unit(rows: pd.DataFrame, metric: WarehouseMetric) -> tuple[pd.Series, pd.Series]:
    """Per unit_id present in ``rows``: (value or numerator, denominator); the denominator is 0
    for the aggregations without one."""
    col = metric.column
    units = rows.groupby("unit_id", sort=False)
    size = units.size().astype(float)
    zero = size * 0.0
    if metric.aggregation == "sum":
        assert col is not None
        return units[col].sum(min_count=0).astype(float), zero
    if metric.aggregation == "count":
        return (size if col is None else units[col].count().astype(float)), zero
    if metric.aggregation == "any":
        if col is None:
            return (size > 0).astype(float), zero
        return (rows[col] > 0).groupby(rows["unit_id"], sort=False).any().astype(float), zero
    if metric.aggregation == "mean":
        assert col is not None
        return units[col].sum(min_count=0).astype(float), size
    if metric.aggregation == "ratio":
        assert col is not None and metric.denominator is not None
        return (units[col].sum(min_count=0).astype(float),
                units[metric.denominator].sum(min_count=0).astype(float))
    raise AssertionError(f"unknown aggregation {metric.aggregation}")


def unit_facts(units: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    """The fact rows of the kept units, each beside its unit's first exposure (``first``)."""
    joined = units[["unit_id", "first"]].merge(facts, on="unit_id", how="inner")
    joined["timestamp"] = pd.to_datetime(joined["timestamp"])
    return joined


def unit_values(
    units: pd.DataFrame, joined: pd.DataFrame, metric: WarehouseMetric, spec: ExperimentSpec
) -> pd.DataFrame:
    """Per kept unit (in ``units`` order): ``value`` (the numerator for mean/ratio), ``den``
    and, with CUPED, ``x``, from the unit's facts (:func:`unit_facts`); units without fact rows
    in the window get 0."""
    ts = joined["timestamp"]
    first = joined["first"]
    end_of_analysis = pd.Timestamp(spec.end + timedelta(days=1))
    end = pd.Series(end_of_analysis, index=joined.index)
    if metric.window_days is not None:
        end = end.where(first + pd.Timedelta(days=metric.window_days) > end_of_analysis,
                        first + pd.Timedelta(days=metric.window_days))
    value, den = _per_unit(joined[(ts >= first) & (ts < end)], metric)
    ids = units["unit_id"]
    out = pd.DataFrame(
        {
            "value": value.reindex(ids, fill_value=0.0).to_numpy(),
            "den": den.reindex(ids, fill_value=0.0).to_numpy(),
        },
        index=units.index,
    )
    if metric.cuped_days is not None:
        begin = first - pd.Timedelta(days=metric.cuped_days)
        x, _ = _per_unit(joined[(ts >= begin) & (ts < first)], metric)
        out["x"] = x.reindex(ids, fill_value=0.0).to_numpy()
    return out


def _parts(values: pd.DataFrame, metric: WarehouseMetric, *, cuped: bool) -> dict[str, Any]:
    """The per-unit terms whose sums make the record format for ``metric``."""
    v = values["value"]
    parts = {"sum": v, "sum_squares": v * v}
    if cuped:
        x = values["x"]
        parts |= {"sum_x": x, "sum_x2": x * x, "sum_xy": x * v}
    if metric.aggregation in RATIO_AGGREGATIONS:
        d = values["den"]
        parts |= {"sum_den": d, "sum_den_squares": d * d, "sum_num_den": v * d}
    return parts


def reference(
    spec: ExperimentSpec,
    assignment: pd.DataFrame,
    facts: Mapping[str, pd.DataFrame],
) -> Reference:
    """The records and exposure check for ``spec``, from the frames its sources return
    (``facts`` by fact source name)."""
    units, multi = first_exposures(assignment, spec)
    joined = {name: unit_facts(units, frame) for name, frame in facts.items()}
    # One column per (metric, sum) of the per-unit terms, whole-arm and dimension variants.
    whole: dict[tuple[str, str], Any] = {}
    sliced: dict[tuple[str, str], Any] = {}
    for metric in spec.metrics:
        values = unit_values(units, joined[metric.fact_source], metric, spec)
        # a mean's or ratio's pre-period is in its covariate vector, not in CUPED sums
        cuped = metric.cuped_days is not None and metric.aggregation not in RATIO_AGGREGATIONS
        whole |= {(metric.name, k): v for k, v in _parts(values, metric, cuped=cuped).items()}
        # CUPED sums on the whole arm's rows only: a dimension row takes none.
        sliced |= {(metric.name, k): v for k, v in _parts(values, metric, cuped=False).items()}
    records: list[dict[str, Any]] = []
    groupings: list[tuple[str | None, list[str], dict[tuple[str, str], Any]]] = [
        (None, ["variant", "day"], whole)]
    groupings += [(dim, ["variant", "day", dim], sliced) for dim in spec.assignment.dimensions]
    for dim, keys, parts in groupings:
        table = pd.DataFrame({("", "n"): 1, **parts}, index=units.index)
        groups = table.groupby([units[k] for k in keys], sort=True).sum()
        for group, row in zip(groups.index, groups.to_numpy(), strict=True):
            sums = dict(zip(groups.columns, row, strict=True))
            n = int(sums[("", "n")])
            for metric in spec.metrics:
                record: dict[str, Any] = {"metric": metric.name, "variant": group[0],
                                          "day": group[1].date()}
                if dim is not None:
                    record |= {"dimension": dim, "dimension_value": str(group[2])}
                record["n"] = n
                record |= {k: float(v) for (m, k), v in sums.items() if m == metric.name}
                records.append(record)
    by_variant = units.groupby("variant").size()
    by_day: dict[date, dict[str | None, int]] = {}
    for (day, variant), n in units.groupby(["day", "variant"]).size().items():
        by_day.setdefault(day.date(), {})[str(variant)] = int(n)
    for day, n in multi_variant_days(assignment, spec).items():
        by_day.setdefault(day, {})[None] = n
    return Reference(
        records=records,
        units=len(units),
        multi_variant_units=multi,
        units_by_variant={str(k): int(v) for k, v in by_variant.items()},
        by_day=dict(sorted(by_day.items())),
    )


def final_through(spec: ExperimentSpec, fact_source: str, *, today: date,
                  late_data_days: int) -> date | None:
    """The last exposure day whose values are final on ``today``: the design's ``today - max
    window - late_data_days - 1``, never past ``spec.end``; None when no day is final yet, or
    when a metric of the fact source has no window, until the analysis day and its late-data
    allowance have passed (windows end with the analysis day, so then every day is final)."""
    if spec.end + timedelta(days=late_data_days + 1) <= today:
        return spec.end
    windows = [m.window_days for m in spec.metrics if m.fact_source == fact_source]
    if not windows or any(w is None for w in windows):
        return None
    last = today - timedelta(days=max(w for w in windows if w is not None) + late_data_days + 1)
    return min(last, spec.end) if last >= spec.start else None


# -------------------------------------------------------------------------- comparison


def _key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    day = record.get("day", record.get("date"))
    if isinstance(day, datetime):  # pd.Timestamp too
        day = day.date()
    elif isinstance(day, str):
        day = date.fromisoformat(day[:10])
    dim = record.get("dimension") or None
    value = record.get("dimension_value")
    value = None if value is None or value == "" else str(value)
    return (str(record["metric"]), str(record["variant"]), day, dim, value)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return None if math.isnan(out) else out


def index_records(records: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Records by (metric, variant, day, dimension, dimension_value); repeats raise."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in records:
        key = _key(record)
        if key in out:
            raise AssertionError(f"record repeated: {key}")
        out[key] = {f: _number(record.get(f)) for f in SUM_FIELDS}
    return out


def record_differences(
    got: Iterable[Mapping[str, Any]],
    expected: Iterable[Mapping[str, Any]],
    *,
    rtol: float = 1e-9,
    limit: int = 25,
) -> list[str]:
    """Every difference between two record sets, in words: keys only one side has, and per
    shared key each sum field whose values differ by more than ``rtol`` relative to the
    expected value (exactly, when it is 0) or that one side leaves out."""
    got_idx, exp_idx = index_records(got), index_records(expected)
    problems: list[str] = []
    for key in sorted(exp_idx.keys() - got_idx.keys(), key=str):
        problems.append(f"missing {key}: expected {_present(exp_idx[key])}")
    for key in sorted(got_idx.keys() - exp_idx.keys(), key=str):
        problems.append(f"unexpected {key}: got {_present(got_idx[key])}")
    for key in sorted(exp_idx.keys() & got_idx.keys(), key=str):
        for field in SUM_FIELDS:
            e, g = exp_idx[key][field], got_idx[key][field]
            if e is None and g is None:
                continue
            if e is None or g is None or not abs(g - e) <= rtol * abs(e):
                problems.append(f"{key} {field}: expected {e!r}, got {g!r}")
    if len(problems) > limit:
        problems = [*problems[:limit], f"... and {len(problems) - limit} more"]
    return problems


def _present(fields: Mapping[str, float | None]) -> dict[str, float]:
    return {k: v for k, v in fields.items() if v is not None}
