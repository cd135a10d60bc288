"""The Ibis expressions of a warehouse refresh, built once and compiled to every engine.

For one experiment (an :class:`~core.warehouse.definitions.ExperimentSpec`):

* :func:`assignment_profile`: one row of checks over the assignment rows of the experiment's
  key (rows, null unit ids and timestamps, the first and last timestamp, unknown variants);
* :func:`exposures`: one row per unit: its first exposure, how many variants it was seen in,
  its variant, each declared dimension's value and each declared covariate's value and
  missingness at its first exposure (a refresh computes
  it once and, where the engine allows, keeps it as a temporary table the queries below read:
  :func:`core.warehouse.compute.compute`);
* :func:`exposure_days`: units per first-exposure day and variant, and units seen in more than
  one variant;
* :func:`fact_statistics`: per fact source, ONE expression (one scan of the facts) that joins
  each unit exposed in exactly one variant to its facts in the span its metrics read (from the
  CUPED pre-period to the end of the longest window), computes every metric of that source per
  unit (units without facts count 0), then per variant × first-exposure day × dimension
  values the sufficient statistics the app stores. Its columns are ``variant, day,
  <dimensions>, n, future_facts``, ``m<i>_<statistic>`` for the i-th metric
  (:data:`STATISTICS`) and, with declared covariates, their cross-products
  (:func:`vector_columns`);
* :func:`order_statistics`: for a fact source's quantile metrics, the per-unit values at the
  ranks of their quantiles and order-statistic bounds per variant (the ranks follow from each
  variant's units, which the statistics above count first).

User SQL is never spliced into strings: each source is wrapped with the backend's ``sql()``,
which parses it and makes it a subquery of the expression.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import ibis
import ibis.expr.datatypes as dt
from ibis import _

from core.warehouse.definitions import (
    AssignmentSource,
    ExperimentSpec,
    FactSource,
    WarehouseMetric,
    covariate_names,
)

STATISTICS: dict[str, tuple[str, ...]] = {
    "plain": ("sum", "sum_squares"),
    "cuped": ("sum", "sum_squares", "sum_x", "sum_x2", "sum_xy"),
    "ratio": ("sum", "sum_squares", "sum_den", "sum_den_squares", "sum_num_den"),
}
"""Which sufficient statistics a metric yields (``m<i>_<name>`` columns)."""
KIND_OF: dict[str, str] = {"sum": "mean", "count": "mean", "any": "binomial", "mean": "ratio",
                           "ratio": "ratio"}
"""The catalogue kind each aggregation gives (core.types.MetricKind)."""


def statistics_of(metric: WarehouseMetric) -> tuple[str, ...]:
    if metric.aggregation in ("mean", "ratio"):
        return STATISTICS["ratio"]
    return STATISTICS["cuped" if metric.cuped_days else "plain"]


def midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def count_if(condition: Any) -> Any:
    """How many rows satisfy ``condition`` (an aggregate; PostgreSQL casts no boolean to a
    number, so the portable CASE)."""
    return ibis.ifelse(condition, 1, 0).sum()


def _timestamp(col: Any) -> Any:
    return col.cast(dt.Timestamp()) if col.type().is_date() else col


def keyed(assignment: ibis.Table, spec: ExperimentSpec) -> ibis.Table:
    """The assignment rows of the experiment's key."""
    return assignment.filter(assignment.experiment_key.cast("string") == spec.experiment_key)


def assignment_profile(rows: ibis.Table, spec: ExperimentSpec) -> ibis.Table:
    """One row: rows, null unit ids, null timestamps, first and last timestamp, rows whose
    variant is not one of the experiment's."""
    ts = _timestamp(rows.timestamp)
    variant = rows.variant.cast("string")
    return rows.aggregate(
        rows=rows.count(),
        null_units=count_if(rows.unit_id.isnull()),
        null_timestamps=count_if(ts.isnull()),
        first_seen=ts.min(),
        last_seen=ts.max(),
        unknown_variants=count_if(variant.isnull() | ~variant.isin(list(spec.variants))),
    )


def unknown_variants(rows: ibis.Table, spec: ExperimentSpec, limit: int = 5) -> ibis.Table:
    """A few of the variant values not in the experiment (for the error message)."""
    variant = rows.variant.cast("string")
    odd = rows.filter(variant.isnull() | ~variant.isin(list(spec.variants)))
    return odd.select(variant=odd.variant.cast("string")).distinct().order_by("variant").limit(
        limit)


def since(rows: ibis.Table, day: date) -> ibis.Table:
    """The assignment rows from ``day`` on (and those without a timestamp, for the checks)."""
    ts = _timestamp(rows.timestamp)
    return rows.filter(ts.isnull() | (ts >= midnight(day)))


def exposures(rows: ibis.Table, source: AssignmentSource, *, since: date | None = None,
              first_from: date | None = None, dimensions: bool = True) -> ibis.Table:
    """One row per unit: ``unit_id, first_seen, variants, variant`` and its dimensions' values
    at its first exposure (``'(none)'`` when null).

    ``variants`` is 1 for a unit seen in one variant, 2 for one seen in two or more (its
    smallest and largest variant compared: an exact distinct count costs DuckDB a third more
    of this grouping, the heaviest step of a refresh). ``since``: only the units with a row on
    or after that day, each with all its rows, so every unit first exposed from that day on is
    there, unchanged: an incremental refresh groups the open days' units, not all of them.
    ``first_from``: only the units first exposed from that day on. ``dimensions=False`` leaves
    the dimension and covariate columns out.

    The j-th declared covariate gives ``_c<j>``, its value at the first exposure with 0 for a
    NULL, and ``_m<j>``, 1 when it is NULL, else 0 (the
    missingness-indicator method, :class:`~core.warehouse.definitions.AssignmentSource`): both
    by ``argmin`` over never-null values, which every engine reads the same way (DuckDB's
    ``arg_min`` skips a NULL argument, PostgreSQL's and Spark's do not)."""
    ts = _timestamp(rows.timestamp)
    rows = rows.filter(rows.unit_id.notnull()).mutate(timestamp=ts)
    if since is not None:
        recent = rows.filter(rows.timestamp >= midnight(since)).select(
            recent_unit=rows.unit_id)
        rows = rows.semi_join(recent, rows.unit_id == recent.recent_unit)
    variant = rows.variant.cast("string")
    dims = {
        d: rows[d].cast("string").argmin(rows.timestamp).fill_null("(none)")
        for d in (source.dimensions if dimensions else ())
    }
    for j, c in enumerate(source.covariates if dimensions else ()):
        value = rows[c].cast("float64")
        dims[f"_c{j}"] = value.fill_null(0.0).argmin(rows.timestamp)
        dims[f"_m{j}"] = ibis.ifelse(value.isnull(), 1.0, 0.0).argmin(rows.timestamp)
    units = rows.group_by("unit_id").aggregate(
        first_seen=rows.timestamp.min(),
        variants=ibis.ifelse(variant.min() == variant.max(), 1, 2),
        variant=variant.min(),
        **dims,
    )
    if first_from is not None:
        units = units.filter(units.first_seen >= midnight(first_from))
    return units


def exposure_days(units: ibis.Table, spec: ExperimentSpec) -> ibis.Table:
    """Units per first-exposure day and variant (``day, variant, units``); units seen in more
    than one variant under a null variant. Only units first exposed by the end of the analysis
    day: the ones the records can hold."""
    units = units.filter(units.first_seen < midnight(spec.end + timedelta(days=1)))
    return units.group_by(
        day=units.first_seen.date(),
        variant=ibis.ifelse(units.variants == 1, units.variant, ibis.null("string")),
    ).aggregate(units=_.count())


def _window(metric: WarehouseMetric, ts: Any, first: Any, end: datetime) -> Any:
    inside = (ts >= first) & (ts < end)
    if metric.window_days is not None:
        inside = inside & (ts < first + ibis.interval(days=metric.window_days))
    return inside


def _pre_period(metric: WarehouseMetric, ts: Any, first: Any) -> Any:
    assert metric.cuped_days
    return (ts >= first - ibis.interval(days=metric.cuped_days)) & (ts < first)


def _per_unit(metric: WarehouseMetric, rows: ibis.Table, inside: Any) -> Any:
    """The metric's per-unit value over the rows where ``inside`` holds (an aggregate)."""
    col = rows[metric.column] if metric.column else None
    if metric.aggregation in ("sum", "mean", "ratio"):
        assert col is not None
        return ibis.ifelse(inside, col.cast("float64"), 0.0).sum()
    if metric.aggregation == "count":
        hit = inside if col is None else inside & col.notnull()
        return count_if(hit)
    hit = inside if col is None else inside & (col > 0)
    return ibis.ifelse(hit, 1, 0).max()


def _denominator(metric: WarehouseMetric, rows: ibis.Table, inside: Any) -> Any:
    if metric.aggregation == "mean":
        assert metric.column
        return count_if(inside & rows[metric.column].notnull())
    assert metric.denominator
    return ibis.ifelse(inside, rows[metric.denominator].cast("float64"), 0.0).sum()


def unit_table(
    units: ibis.Table,
    facts: ibis.Table,
    *,
    spec: ExperimentSpec,
    fact: FactSource,
    metrics: Sequence[WarehouseMetric],
    open_from: date,
    now: datetime,
) -> ibis.Table:
    """One row per unit kept (in one variant, first exposed from ``open_from`` to the
    analysis day): ``variant, <dimensions>, day, future_facts`` and each metric's per-unit
    value ``v<i>`` (``d<i>``: a ratio's denominator, ``x<i>``: the CUPED covariate), capped
    where the plan caps it. :func:`fact_statistics` sums it; :func:`order_statistics` reads
    quantiles from it."""
    dims = list(spec.assignment.dimensions)
    end = midnight(spec.end + timedelta(days=1))
    start = midnight(open_from)
    look_back = max((m.cuped_days or 0) for m in metrics)
    needed = sorted({c for m in metrics for c in (m.column, m.denominator) if c})
    ts = _timestamp(facts.timestamp)
    facts = facts.select(fact_unit=facts.unit_id, timestamp=ts,
                         **{c: facts[c] for c in needed})
    facts = facts.filter(facts.timestamp >= start - timedelta(days=look_back),
                         facts.timestamp < end)
    if units.unit_id.type() != facts.fact_unit.type() and (
            units.unit_id.type().is_string() or facts.fact_unit.type().is_string()):
        facts = facts.mutate(fact_unit=facts.fact_unit.cast("string"))
        units = units.mutate(unit_id=units.unit_id.cast("string"))
    # The units kept (one variant, first exposed in the open days), each joined to its facts
    # in the span any metric of the source reads: from its pre-period to the end of its
    # longest window; units without facts count 0.
    kept = units.filter((units.variants == 1) & (units.first_seen >= start)
                        & (units.first_seen < end))
    windows = [m.window_days for m in metrics]
    spans = kept.select(span_unit=kept.unit_id, span_first=kept.first_seen)
    upper = (ibis.least(spans.span_first + ibis.interval(days=max(windows)), end)  # type: ignore[type-var]
             if None not in windows else end)
    lower = (spans.span_first - ibis.interval(days=look_back) if look_back
             else spans.span_first)
    joined = spans.inner_join(facts, [spans.span_unit == facts.fact_unit,
                                      facts.timestamp >= lower, facts.timestamp < upper])
    first, at = joined.span_first, joined.timestamp
    values: dict[str, Any] = {"future_facts": count_if(at > now)}
    for i, m in enumerate(metrics):
        inside = _window(m, at, first, end)
        values[f"v{i}"] = _per_unit(m, joined, inside)
        if m.aggregation in ("mean", "ratio"):
            values[f"d{i}"] = _denominator(m, joined, inside)
        if m.cuped_days:  # a mean's or ratio's: its numerator's pre-period sum
            values[f"x{i}"] = _per_unit(m, joined, _pre_period(m, at, first))
    # Per unit, keyed on the unit alone, then back onto every kept unit (no facts: 0).
    per_unit = joined.group_by("span_unit").aggregate(**values)
    kept = kept.left_join(per_unit, kept.unit_id == per_unit.span_unit)
    filled = {k: kept[k].fill_null(0) for k in values}
    attributes = [f"_{p}{j}" for j in range(len(spec.assignment.covariates)) for p in "cm"]
    table = kept.select("variant", *dims, *attributes, day=kept.first_seen.date(), **filled)
    return capped(table, metrics)


def fact_statistics(
    units: ibis.Table,
    facts: ibis.Table,
    *,
    spec: ExperimentSpec,
    fact: FactSource,
    metrics: Sequence[WarehouseMetric],
    open_from: date,
    now: datetime,
) -> ibis.Table:
    """The per-variant, per-day (per-dimension-value) statistics of every metric of one fact
    source, for the units first exposed from ``open_from`` on (module docstring)."""
    dims = list(spec.assignment.dimensions)
    table = unit_table(units, facts, spec=spec, fact=fact, metrics=metrics,
                       open_from=open_from, now=now)
    stats: dict[str, Any] = {"n": _.count(), "future_facts": table.future_facts.sum()}
    for i, m in enumerate(metrics):
        v = table[f"v{i}"]
        stats[f"m{i}_sum"] = v.sum()
        stats[f"m{i}_sum_squares"] = (v * v).sum()
        if m.aggregation in ("mean", "ratio"):
            d = table[f"d{i}"]
            stats[f"m{i}_sum_den"] = d.sum()
            stats[f"m{i}_sum_den_squares"] = (d * d).sum()
            stats[f"m{i}_sum_num_den"] = (v * d).sum()
        elif m.cuped_days:
            x = table[f"x{i}"]
            stats[f"m{i}_sum_x"] = x.sum()
            stats[f"m{i}_sum_x2"] = (x * x).sum()
            stats[f"m{i}_sum_xy"] = (x * v).sum()
        if m.cap is not None:
            stats[f"m{i}_cap"] = table[f"c{i}"].max()
            if f"cd{i}" in table.columns:
                stats[f"m{i}_den_cap"] = table[f"cd{i}"].max()
    stats |= vector_sums(table, spec.assignment, metrics)
    return table.group_by(["variant", "day", *dims]).aggregate(**stats)


def order_statistics(table: ibis.Table,
                     ranks: Mapping[int, Mapping[str, Sequence[int]]]) -> ibis.Table:
    """Quantile metrics' per-unit values at given ranks: for each metric index i of ``ranks``
    and each of its variants, the rows of ``table`` (:func:`unit_table`) whose 0-based rank
    among the variant's values ``v<i>`` in ascending order is one of ``ranks[i][variant]``
    (:func:`core.stats.quantile.order_statistic_index`); columns ``variant`` and, per metric,
    ``r<i>`` (the rank) and ``v<i>`` (float64). A discrete quantile, the value at a rank, by
    ``row_number()``, which every engine has; Ibis's ``quantile`` would interpolate (DuckDB's
    quantile_cont), where a user-level file's quantile is DuckDB's quantile_disc (numpy's
    inverted_cdf): both paths give the same numbers. Ties take consecutive ranks, so the value
    at a rank is the same whichever tied unit holds it."""
    ranked = table.select(
        "variant",
        **{f"v{i}": table[f"v{i}"].cast("float64") for i in ranks},
        **{f"r{i}": ibis.row_number().over(group_by=table.variant, order_by=table[f"v{i}"])
           for i in ranks},
    )
    wanted = [(ranked.variant == variant) & ranked[f"r{i}"].isin(sorted(set(at)))
              for i, by_variant in ranks.items() for variant, at in by_variant.items() if at]
    return ranked.filter(functools.reduce(operator.or_, wanted))


def capped(table: ibis.Table, metrics: Sequence[WarehouseMetric]) -> ibis.Table:
    """Each capped metric's per-unit value ``v<i>`` (a ratio's denominator ``d<i>``, the
    covariate ``x<i>`` at the value's cap) replaced by ``least(value, cap)``, with the cap in
    ``c<i>`` (``cd<i>``: the denominator's). A percentile cap is the ``quantile`` of every row
    of ``table`` (every kept unit, pooled across the variants), which Ibis compiles to
    DuckDB's ``quantile_cont``, PostgreSQL's ``percentile_cont`` and Spark's ``percentile``:
    the same linear interpolation (core.stats.capping.pooled_percentile)."""
    caps: dict[str, Any] = {}
    for i, m in enumerate(metrics):
        if m.cap is None:
            continue
        parts = [("v", "c")] + ([("d", "cd")] if f"d{i}" in table.columns else [])
        for value, cap in parts:
            caps[f"{cap}{i}"] = (
                ibis.literal(float(m.cap.value), "float64") if m.cap.kind == "fixed"
                else table[f"{value}{i}"].cast("float64").quantile(m.cap.value).as_scalar())
    if not caps:
        return table
    table = table.mutate(**caps)
    replaced: dict[str, Any] = {}
    for i, m in enumerate(metrics):
        if m.cap is None:
            continue
        for value, cap in (("v", "c"), ("d", "cd"), ("x", "c")):
            if f"{value}{i}" in table.columns:
                replaced[f"{value}{i}"] = ibis.least(
                    table[f"{value}{i}"].cast("float64"), table[f"{cap}{i}"])
    return table.mutate(**replaced)


def _vector_parts(table: ibis.Table, assignment: AssignmentSource,
                  metrics: Sequence[WarehouseMetric]
                  ) -> dict[int, tuple[list[tuple[str, Any]], Any, Any]]:
    """Per metric index with covariates: (its covariates as (name in the query, per-unit
    expression), its per-unit value y, its denominator or None), values capped as the
    metric's own sums are (:func:`capped`: the pre-period ``x<i>`` at the value's cap)."""
    attributes = [(f"_{p}{j}", table[f"_{p}{j}"])
                  for j in range(len(assignment.covariates)) for p in "cm"]
    out = {}
    for i, m in enumerate(metrics):
        if not covariate_names(m, assignment):
            continue
        own = [(f"x{i}", table[f"x{i}"])] if m.cuped_days else []
        den = table[f"d{i}"] if m.aggregation in ("mean", "ratio") else None
        out[i] = ([*own, *attributes], table[f"v{i}"], den)
    return out


def _has_cuped_sums(m: WarehouseMetric) -> bool:
    """Whether the metric's own pre-period sums are its one-covariate CUPED sums
    (``m<i>_sum_x``, ``m<i>_sum_x2``, ``m<i>_sum_xy``): a sum, count or any with
    ``cuped_days``; a mean's or ratio's are in its vector only."""
    return bool(m.cuped_days) and "sum_x" in statistics_of(m)


def vector_sums(table: ibis.Table, assignment: AssignmentSource,
                metrics: Sequence[WarehouseMetric]) -> dict[str, Any]:
    """The aggregates of every sum :class:`~core.stats.CovariateSums` holds, for each metric
    with covariates (:func:`core.warehouse.definitions.covariate_names`), named as
    :func:`vector_columns` lists them. The unit attributes' sums and cross-products are the
    same for every metric: computed once; a sum, count or any metric's own pre-period's sum,
    sum of squares and sum with y are its CUPED sums (``m<i>_sum_x``, ``m<i>_sum_x2``,
    ``m<i>_sum_xy``); a mean's or ratio's are here (it has no CUPED sums). Every
    other name starts with ``_``, which no declared dimension does."""
    out: dict[str, Any] = {}
    for i, (xs, y, den) in _vector_parts(table, assignment, metrics).items():
        for j, (name, x) in enumerate(xs):
            own = name == f"x{i}" and _has_cuped_sums(metrics[i])
            for other, x2 in xs[j + own:]:
                out.setdefault(f"_xx__{name}__{other}", (x * x2).sum())
            if not own:
                out.setdefault(f"_x__{name}", x.sum())
                out[f"_xy{i}__{name}"] = (x * y).sum()
            if den is not None:
                out[f"_xd{i}__{name}"] = (x * den).sum()
    return out


def vector_columns(assignment: AssignmentSource, metrics: Sequence[WarehouseMetric]
                   ) -> dict[int, tuple[list[str], list[str], list[str], list[str] | None]]:
    """Per metric index with covariates, the columns of :func:`vector_sums` that hold its
    sums, in :class:`~core.stats.CovariateSums` field order: (sum x_j, sum x_j x_l for
    j <= l, sum x_j y, sum x_j den or None), its covariates in the order of
    :func:`~core.warehouse.definitions.covariate_names`."""
    attributes = [f"_{p}{j}" for j in range(len(assignment.covariates)) for p in "cm"]
    out = {}
    for i, m in enumerate(metrics):
        if not covariate_names(m, assignment):
            continue
        xs = ([f"x{i}"] if m.cuped_days else []) + attributes
        k = len(xs)
        sx = [f"_x__{x}" for x in xs]
        sxx = [f"_xx__{xs[j]}__{xs[n]}" for j in range(k) for n in range(j, k)]
        sxy = [f"_xy{i}__{x}" for x in xs]
        if _has_cuped_sums(m):  # the own pre-period's sums are the CUPED sums (vector_sums)
            sx[0], sxx[0], sxy[0] = f"m{i}_sum_x", f"m{i}_sum_x2", f"m{i}_sum_xy"
        out[i] = (sx, sxx, sxy,
                  [f"_xd{i}__{x}" for x in xs] if m.aggregation in ("mean", "ratio") else None)
    return out
