"""One experiment's refresh inside the team's warehouse: check the sources, run one query per
fact source, and return the records the app stores (:class:`WarehouseResult`).

Only aggregates leave the engine: a few rows per variant, exposure day and dimension value.
Every problem with the team's data is an :class:`~core.errors.InvalidInput` naming the source
and the column; an engine that cannot be reached is :class:`~core.errors.WarehouseUnavailable`
(a scheduled refresh retries it). docs/warehouse.md describes the method.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pandas as pd

from core.data.reading import MAX_COVARIATES
from core.errors import InvalidInput, WarehouseUnavailable
from core.stats import InsufficientDataError, QuantileStats, order_statistic_index, quantile_levels
from core.stats.capping import AppliedCap
from core.stats.covariates import CovariateSums
from core.stats.metric_stats import COVARIATE_SUMS
from core.types import QUANTILE_AGGREGATIONS
from core.warehouse import engines, queries
from core.warehouse.definitions import (
    ASSIGNMENT_COLUMNS,
    AssignmentSource,
    ExperimentSpec,
    Exposure,
    FactSource,
    Limits,
    QueryRun,
    WarehouseMetric,
    WarehouseResult,
    covariate_names,
)

MAX_NAMED = 5
"""Unknown variants named in an error message."""
StoredDays = tuple[Mapping[date, Mapping[str | None, int]], date | None]
"""A previous refresh's units per exposure day and variant, and the last day it counted."""


# --------------------------------------------------------------------------- definitions


def metrics_by_fact(spec: ExperimentSpec) -> dict[str, list[WarehouseMetric]]:
    """The spec's metrics grouped by fact source, in the order the spec lists the sources."""
    grouped: dict[str, list[WarehouseMetric]] = {f.name: [] for f in spec.facts}
    for m in spec.metrics:
        grouped.setdefault(m.fact_source, []).append(m)
    return {k: v for k, v in grouped.items() if v}


def definition_problems(spec: ExperimentSpec) -> list[str]:
    """What is wrong with the definitions themselves (before any query)."""
    problems = []
    facts = {f.name: f for f in spec.facts}
    if not spec.variants:
        problems.append("experiment: it has no variants")
    if spec.end < spec.start:
        problems.append(f"experiment: its analysis day {spec.end} is before its start "
                        f"{spec.start}")
    for m in spec.metrics:
        fact = facts.get(m.fact_source)
        where = f"metric {m.name}"
        if fact is None:
            problems.append(f"{where}: fact source '{m.fact_source}' is not defined")
            continue
        needs = {"sum": ("column",), "mean": ("column",), "ratio": ("column", "denominator"),
                 "count": (), "any": ()}[m.aggregation]
        for attr in needs:
            if not getattr(m, attr):
                problems.append(f"{where}: a {m.aggregation} metric needs a {attr}")
        for attr in ("column", "denominator"):
            col = getattr(m, attr)
            if col and col not in fact.columns:
                problems.append(f"{where}: {attr} '{col}' is not a column of fact source "
                                f"'{fact.name}' ({', '.join(fact.columns) or 'none declared'})")
        for attr in ("window_days", "cuped_days"):
            value = getattr(m, attr)
            if value is not None and value <= 0:
                problems.append(f"{where}: {attr} must be a positive number of days")
        if m.quantile_p is not None:
            problems += _quantile_problems(m, where)
        names = covariate_names(m, spec.assignment)
        if len(names) > MAX_COVARIATES:
            problems.append(f"{where}: {len(names)} covariates ({', '.join(names)}); at most "
                            f"{MAX_COVARIATES} per metric: declare fewer covariates on "
                            f"assignment source '{spec.assignment.name}'")
    both = sorted(set(spec.assignment.dimensions) & set(spec.assignment.covariates))
    if both:
        problems.append(f"assignment source '{spec.assignment.name}': {', '.join(both)} "
                        "declared both a dimension and a covariate; a column is one or the other")
    return problems


def _quantile_problems(m: WarehouseMetric, where: str) -> list[str]:
    """A quantile metric takes the quantile of a per-unit sum or count, uncapped, no CUPED."""
    assert m.quantile_p is not None
    problems = []
    if m.aggregation not in QUANTILE_AGGREGATIONS:
        problems.append(f"{where}: a quantile metric takes the quantile of a per-unit "
                        f"{' or '.join(QUANTILE_AGGREGATIONS)}, not of {m.aggregation}")
    if not 0.0 < m.quantile_p < 1.0:
        problems.append(f"{where}: quantile_p must be strictly between 0 and 1 (got "
                        f"{m.quantile_p!r})")
    if m.cuped_days:
        problems.append(f"{where}: a quantile metric is never CUPED-adjusted: leave cuped_days "
                        "out")
    if m.cap is not None:
        problems.append(f"{where}: a quantile metric is never capped (a quantile is not moved "
                        "by the values beyond it)")
    return problems


def definition_key(spec: ExperimentSpec, fact: FactSource, metrics: Sequence[WarehouseMetric],
                   today: date) -> str:
    """A hash of everything the fact source's numbers depend on (WarehouseResult)."""
    payload = {
        "key": spec.experiment_key, "variants": list(spec.variants),
        "start": spec.start.isoformat(),
        "end": spec.end.isoformat() if spec.end < today else "open",
        "assignment": [spec.assignment.connection.url, spec.assignment.sql,
                       list(spec.assignment.dimensions)]
        + ([list(spec.assignment.covariates)] if spec.assignment.covariates else []),
        "fact": [fact.connection.url, fact.sql, list(fact.columns)],
        "metrics": [asdict(m) for m in metrics],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def assignment_key(spec: ExperimentSpec) -> str:
    """A hash of everything the units per exposure day depend on (Exposure.by_day)."""
    payload = {
        "key": spec.experiment_key, "variants": list(spec.variants),
        "start": spec.start.isoformat(),
        "assignment": [spec.assignment.connection.url, spec.assignment.sql],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def stored_days(exposure: Exposure, through: date) -> dict[str, Any]:
    """``Exposure.by_day`` as JSON (``warehouse_runs.exposure_days``)."""
    return {"through": through.isoformat(),
            "days": [[d.isoformat(), v, n] for d, counts in exposure.by_day.items()
                     for v, n in sorted(counts.items(), key=lambda kv: kv[0] or "")]}


def read_stored_days(value: Mapping[str, Any] | None) -> StoredDays | None:
    """The inverse of :func:`stored_days` (None when nothing usable is stored)."""
    if not value or not value.get("through"):
        return None
    days: dict[date, dict[str | None, int]] = {}
    for day, variant, units in value.get("days", []):
        days.setdefault(date.fromisoformat(day), {})[variant] = int(units)
    return days, date.fromisoformat(value["through"])


def final_through(spec: ExperimentSpec, metrics: Sequence[WarehouseMetric], *, today: date,
                  late_data_days: int) -> date | None:
    """The last exposure day whose numbers can no longer change (None: no such day yet).

    A unit first exposed on day d has facts up to min(d + 1 + window, end + 1) (midnights);
    with ``late_data_days`` for late arrivals, day d is final once that bound plus the
    allowance is no later than ``today``. Without a window, only the end bounds it; a metric
    capped at a percentile of every unit (core.stats.capping) is recomputed from the first day
    until the end: its cap moves with every new unit; so is a quantile metric (quantiles do not
    add up over days: every unit's value is read again)."""
    if spec.end + timedelta(days=1 + late_data_days) <= today:
        return spec.end
    if any(m.cap is not None and m.cap.kind == "percentile" or m.quantile_p is not None
           for m in metrics):
        return None
    windows = [m.window_days for m in metrics if m.window_days is not None]
    if len(windows) < len(metrics) or not windows:
        return None
    last = min(today - timedelta(days=1 + late_data_days + max(windows)), spec.end)
    return last if last >= spec.start else None


# --------------------------------------------------------------------------- sources


def _source(backend: Any, sql: str, what: str, where: str) -> ibis.Table:
    try:
        return backend.sql(sql)
    except Exception as exc:  # noqa: BLE001 - each engine raises its own error types
        raise InvalidInput(f"{what}: its SQL failed in {where}: {engines.first_line(exc)}") \
            from None


def _is_numeric(kind: dt.DataType) -> bool:
    return kind.is_numeric() or kind.is_boolean()


def schema_problems(table: ibis.Table, *, what: str, required: Sequence[str],
                    numeric: Sequence[str] = ()) -> list[str]:
    """Missing or mistyped columns of a source's result."""
    schema = table.schema()
    have = list(schema.names)
    problems = []
    for col in required:
        if col not in schema:
            problems.append(f"{what}: column {col} is missing (its SQL returns "
                            f"{', '.join(have)})")
    if "timestamp" in schema and not (schema["timestamp"].is_timestamp()
                                      or schema["timestamp"].is_date()):
        problems.append(f"{what}: column timestamp is {schema['timestamp']}, not a timestamp "
                        "(cast it in the SQL)")
    if "unit_id" in schema and not (schema["unit_id"].is_string()
                                    or schema["unit_id"].is_integer()):
        problems.append(f"{what}: column unit_id is {schema['unit_id']}; use text or an integer")
    for col in numeric:
        if col in schema and not _is_numeric(schema[col]):
            problems.append(f"{what}: column {col} is {schema[col]}, not a number (cast it in "
                            "the SQL)")
    return problems


def query_label(spec: ExperimentSpec) -> str:
    """What every query's leading comment names: the experiment."""
    return f"ExperimentOS {spec.label or spec.experiment_key}".replace("*/", "")


def labelled(spec: ExperimentSpec, purpose: str, expr: ibis.Table, dialect: str) -> str:
    """The SQL text that runs: a comment naming the experiment and the purpose, then the
    expression compiled for ``dialect``."""
    return f"/* {query_label(spec)}: {purpose.replace('*/', '')} */\n" + ibis.to_sql(
        expr, dialect=dialect)


def fact_purpose(name: str, first: date, spec: ExperimentSpec) -> str:
    return f"fact source '{name}', exposure days {first}..{spec.end}"


class _Runner:
    """Compiles expressions to the backend's SQL, labels and runs them, keeps the record."""

    def __init__(self, backend: Any, spec: ExperimentSpec, limits: Limits) -> None:
        self.backend = backend
        self.spec = spec
        self.label = query_label(spec)
        self.limits = limits
        self.runs: list[QueryRun] = []

    def __call__(self, expr: ibis.Table | str, source: str, purpose: str, *, name: str
                 ) -> pd.DataFrame:
        """Run ``expr`` (or its SQL, compiled by :func:`labelled`); ``source`` words it in
        errors, ``name`` (the source's own) keys its :class:`QueryRun`."""
        sql = expr if isinstance(expr, str) else labelled(self.spec, purpose, expr,
                                                          self.backend.name)
        try:
            ran = engines.run(self.backend, sql, timeout=self.limits.statement_timeout_seconds,
                              label=self.label)
        except WarehouseUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the engine's own error types
            raise InvalidInput(f"{source}: the query failed in the warehouse: "
                               f"{engines.first_line(exc)}") from None
        self.runs.append(QueryRun(name, sql, len(ran.frame), ran.seconds, ran.rows_scanned))
        return ran.frame


# --------------------------------------------------------------------------- the refresh


def compute(
    spec: ExperimentSpec,
    *,
    limits: Limits | None = None,
    open_from: Mapping[str, date] | None = None,
    today: date | None = None,
    now: datetime | None = None,
    backend: Any = None,
    exposure_days: StoredDays | None = None,
) -> WarehouseResult:
    """Run the experiment's refresh in its warehouse and return what to store.

    ``open_from[fact source]``: the first exposure day to recompute (default and earliest:
    ``spec.start``); ``today``/``now`` (UTC) date the run (finality, the future check);
    ``backend``: an open Ibis backend to use instead of connecting (tests, the bench);
    ``exposure_days``: the units per exposure day a previous refresh counted
    (``Exposure.by_day``) and the last day it counted; when they cover the days before the
    earliest open one, only the units first exposed from that day on are grouped (an
    incremental refresh), else all of them."""
    limits = limits or Limits()
    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    today = today or now.date()
    problems = definition_problems(spec)
    if problems:
        raise InvalidInput(problems)
    grouped = metrics_by_fact(spec)
    connection = spec.assignment.connection
    if any(f.connection.url != connection.url for f in spec.facts if f.name in grouped):
        raise InvalidInput("fact sources: every source of one experiment must live in the "
                           "assignment source's warehouse (one query engine)")
    own = backend is None
    backend = backend if backend is not None else engines.connect(
        connection, limits=limits, label=spec.label)
    try:
        return _compute(backend, spec, grouped, limits, open_from or {}, today, now,
                        exposure_days)
    finally:
        if own:
            engines.disconnect(backend)


def _compute(backend: Any, spec: ExperimentSpec, grouped: dict[str, list[WarehouseMetric]],
             limits: Limits, open_from: Mapping[str, date], today: date,
             now: datetime, stored: StoredDays | None) -> WarehouseResult:
    where = f"connection '{spec.assignment.connection.name}'"
    what = f"assignment source '{spec.assignment.name}'"
    run = _Runner(backend, spec, limits)
    assignment = _source(backend, spec.assignment.sql, what, where)
    problems = schema_problems(assignment, what=what,
                               required=[*ASSIGNMENT_COLUMNS, *spec.assignment.dimensions,
                                         *spec.assignment.covariates],
                               numeric=spec.assignment.covariates)
    facts_by_name = {f.name: f for f in spec.facts}
    fact_tables = {}
    for name, metrics in grouped.items():
        fact = facts_by_name[name]
        f_what = f"fact source '{name}'"
        table = _source(backend, fact.sql, f_what, where)
        used = sorted({c for m in metrics for c in (m.column, m.denominator) if c})
        problems += schema_problems(table, what=f_what, required=["unit_id", "timestamp", *used],
                                    numeric=used)
        fact_tables[name] = table
    if problems:
        raise InvalidInput(problems)

    opened = {name: max(open_from.get(name, spec.start), spec.start) for name in grouped}
    for name, metrics in grouped.items():
        if opened[name] <= spec.end and any(m.quantile_p is not None for m in metrics):
            opened[name] = spec.start  # a quantile reads every unit (final_through)
    # The earliest open exposure day; the days before it are final for every fact source.
    since = min(opened.values(), default=spec.start)
    earlier = _stored_before(stored, spec.start, since)
    rows = queries.keyed(assignment, spec)
    # An incremental refresh checks and groups the rows of the open days' units only.
    checked = rows if earlier is None else queries.since(rows, since)
    units_expr = queries.exposures(rows, spec.assignment) if earlier is None else \
        queries.exposures(rows, spec.assignment, since=since, first_from=since)
    keep = backend.name in engines.KEEPS_TEMPORARY
    kept_name = f"experimentos_units_{secrets.token_hex(6)}"
    # The queries are compiled to text and run as such: the kept table needs no lookup.
    units = ibis.table(units_expr.schema(), name=kept_name) if keep else units_expr

    def fact_sql() -> dict[str, str]:
        out = {}
        for name, metrics in grouped.items():
            if opened[name] > spec.end:
                continue
            expr = queries.fact_statistics(units, fact_tables[name], spec=spec,
                                           fact=facts_by_name[name], metrics=metrics,
                                           open_from=opened[name], now=now)
            out[name] = labelled(spec, fact_purpose(name, opened[name], spec),
                                 expr.limit(limits.max_result_rows + 1), backend.name)
        return out

    # Compiling the fact queries (Python) overlaps the engine's work on the units (the engines'
    # clients release the GIL while a query runs).
    with ThreadPoolExecutor(max_workers=1) as pool:
        compiled = pool.submit(fact_sql)
        profile = run(queries.assignment_profile(checked, spec), what, "assignment checks",
                      name=spec.assignment.name).iloc[0]
        _check_assignment(run, checked, profile, spec, what, now, full=earlier is None)
        with _kept(run, backend, units_expr, what, kept_name if keep else None):
            days = run(queries.exposure_days(units, spec), what, "units per exposure day",
                       name=spec.assignment.name)
            exposure = _exposure(days, earlier or {}, spec, what, limits)
            sql = compiled.result()

            records: list[dict[str, object]] = []
            caps: dict[str, AppliedCap] = {}
            finals: dict[str, date | None] = {}
            keys: dict[str, str] = {}
            quantiles: dict[tuple[str, str], QuantileStats] = {}
            quantile_notes: list[str] = []
            computed: list[str] = []
            for name, metrics in grouped.items():
                first = opened[name]
                finals[name] = final_through(spec, metrics, today=today,
                                             late_data_days=limits.late_data_days)
                keys[name] = definition_key(spec, facts_by_name[name], metrics, today)
                if first > spec.end:
                    continue
                frame = run(sql[name], f"fact source '{name}'", fact_purpose(name, first, spec),
                            name=name)
                if len(frame) > limits.max_result_rows:
                    raise InvalidInput(
                        f"fact source '{name}': the result has more than {limits.max_result_rows} "
                        "rows (variants × exposure days × dimension values); declare fewer "
                        "dimensions or raise WAREHOUSE_MAX_RESULT_ROWS")
                future = int(pd.to_numeric(frame["future_facts"]).sum()) if len(frame) else 0
                if future:
                    raise InvalidInput(
                        f"fact source '{name}': column timestamp: {future} fact rows of exposed "
                        f"units are later than now ({now:%Y-%m-%d %H:%M} UTC); timestamps must be "
                        "in UTC and not in the future")
                records += to_records(frame, metrics, spec.assignment.dimensions,
                                      assignment=spec.assignment)
                caps.update(applied_caps(frame, metrics))
                found, said = _quantiles(run, units, fact_tables[name], facts_by_name[name],
                                         metrics, frame, now)
                quantiles.update(found)
                quantile_notes += said
                computed += [m.name for m in metrics if m.quantile_p is not None]
    notes = []
    if exposure.multi_variant_units:
        notes.append(
            f"{exposure.multi_variant_units} unit(s) were seen in more than one variant and are "
            f"excluded ({exposure.multi_variant_units / _all_units(exposure):.2%} of units; the "
            f"refresh refuses above {limits.multi_variant_threshold:.2%})")
    notes += quantile_notes
    return WarehouseResult(records=records, queries=tuple(run.runs), exposure=exposure,
                           open_from=opened, final_through=finals, definition_keys=keys,
                           notes=tuple(notes), caps=caps, quantiles=quantiles,
                           quantile_metrics=tuple(computed))


def _quantiles(run: _Runner, units: ibis.Table, facts: ibis.Table, fact: FactSource,
               metrics: Sequence[WarehouseMetric], frame: pd.DataFrame, now: datetime
               ) -> tuple[dict[tuple[str, str], QuantileStats], list[str]]:
    """The fact source's quantile metrics' :class:`QuantileStats` per variant, over every unit
    kept since the start, by one more query (:func:`queries.order_statistics`).

    The levels need each variant's units first: the fact source's statistics query has
    just counted them (``frame``'s ``n``, summed per variant). From those counts,
    :func:`core.stats.quantile_levels` gives p's order-statistic levels and
    :func:`core.stats.order_statistic_index` the rank each of the three values sits at; the
    query returns the per-unit values at those ranks. On DuckDB and PostgreSQL both queries
    read the refresh's kept units table, so they count the same units. An arm too small for
    its interval gets no record and a note, as in a user-level file."""
    wanted = [m for m in metrics if m.quantile_p is not None]
    if not wanted:
        return {}, []
    counts: dict[str, int] = {}
    if len(frame):
        n = pd.to_numeric(frame["n"])
        for variant, units_n in n.groupby(frame["variant"].astype(str)).sum().items():
            counts[str(variant)] = int(units_n)
    notes: list[str] = []
    ranks: dict[int, dict[str, list[int]]] = {}
    levels: dict[tuple[int, str], tuple[int, float]] = {}
    for i, m in enumerate(wanted):
        assert m.quantile_p is not None
        for variant, n_units in sorted(counts.items()):
            try:
                low, high = quantile_levels(m.quantile_p, n_units)
            except InsufficientDataError as exc:
                notes.append(f"{m.name}: no quantile for {variant}: {exc}")
                continue
            ranks.setdefault(i, {})[variant] = [
                order_statistic_index(level, n_units) for level in (low, m.quantile_p, high)]
            levels[(i, variant)] = (n_units, m.quantile_p)
    if not ranks:
        return {}, notes
    table = queries.unit_table(units, facts, spec=run.spec, fact=fact, metrics=wanted,
                               open_from=run.spec.start, now=now)
    got = run(queries.order_statistics(table, ranks), f"fact source '{fact.name}'",
              f"fact source '{fact.name}', quantiles at their order statistics",
              name=fact.name)
    variants = got["variant"].astype(str)
    out: dict[tuple[str, str], QuantileStats] = {}
    for (i, variant), (n_units, p) in levels.items():
        here = got[variants == variant]
        at = pd.to_numeric(here[f"r{i}"])
        values = []
        for rank in ranks[i][variant]:
            hit = here[f"v{i}"][at == rank]
            if hit.empty:
                break
            values.append(float(hit.iloc[0]))
        if len(values) < 3:
            notes.append(f"{wanted[i].name}: no quantile for {variant}: its units changed "
                         "between the refresh's queries (facts still arriving); refresh again")
            continue
        low_value, q, high_value = values
        out[(variant, wanted[i].name)] = QuantileStats(n_units, p, q, low_value, high_value)
    return out, notes


def _stored_before(stored: StoredDays | None, start: date, since: date
                   ) -> dict[date, dict[str | None, int]] | None:
    """The stored units of the exposure days before ``since``, when a previous refresh counted
    all of them (None: group every unit again)."""
    if since <= start or stored is None:
        return None
    days, through = stored
    if through is None or through < since - timedelta(days=1):
        return None
    return {d: dict(v) for d, v in days.items() if d < since}


@contextmanager
def _kept(run: _Runner, backend: Any, units: ibis.Table, what: str, name: str | None
          ) -> Iterator[None]:
    """The per-unit exposures, grouped once for the whole refresh: kept as the temporary
    table ``name`` where the engine allows it (engines.KEEPS_TEMPORARY; ``name`` None: not
    kept, each query recomputes them) for as long as the block runs."""
    if name is None:
        yield
        return
    sql = labelled(run.spec, "units, kept for this refresh's queries", units, backend.name)
    try:
        ran, seconds = engines.keep_temporary(backend, name, sql, timeout=run.limits
                                              .statement_timeout_seconds, label=run.label)
    except WarehouseUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - the engine's own error types
        raise InvalidInput(f"{what}: the query failed in the warehouse: "
                           f"{engines.first_line(exc)}") from None
    run.runs.append(QueryRun(run.spec.assignment.name, ran, 0, seconds, None))
    try:
        yield
    finally:
        engines.drop_temporary(backend, name)


def _all_units(exposure: Exposure) -> int:
    return exposure.units + exposure.multi_variant_units


def _count(value: Any) -> int:
    """A count from the engine: a sum over no rows comes back null."""
    return 0 if value is None or value != value else int(value)


def _check_assignment(run: _Runner, rows: ibis.Table, profile: pd.Series, spec: ExperimentSpec,
                      what: str, now: datetime, *, full: bool = True) -> None:
    n = _count(profile["rows"])
    if n == 0 and full:
        raise InvalidInput(f"{what}: column experiment_key: no rows for the key "
                           f"'{spec.experiment_key}' (check the key, or the SQL's filters)")
    problems = []
    if _count(profile["null_units"]):
        problems.append(f"{what}: column unit_id: {_count(profile['null_units'])} of {n} rows "
                        "have no unit id")
    if _count(profile["null_timestamps"]):
        problems.append(f"{what}: column timestamp: {_count(profile['null_timestamps'])} of {n} "
                        "rows have no timestamp")
    first, last = _as_datetime(profile["first_seen"]), _as_datetime(profile["last_seen"])
    if last is not None and last > now:
        problems.append(f"{what}: column timestamp: exposures up to {last:%Y-%m-%d %H:%M} are "
                        f"in the future (now is {now:%Y-%m-%d %H:%M} UTC); timestamps must be "
                        "in UTC")
    if first is not None and first < queries.midnight(spec.start):
        problems.append(f"{what}: column timestamp: exposures from {first:%Y-%m-%d %H:%M} are "
                        f"before the experiment started ({spec.start}); filter them out in the "
                        "SQL or correct the start date")
    if _count(profile["unknown_variants"]):
        odd = run(queries.unknown_variants(rows, spec, MAX_NAMED), what, "unknown variants",
                  name=spec.assignment.name)
        names = ", ".join(repr(v) if v is not None and v == v else "NULL"
                          for v in odd["variant"])
        problems.append(f"{what}: column variant: {_count(profile['unknown_variants'])} rows "
                        f"name variants not in the experiment ({names}; expected "
                        f"{', '.join(spec.variants)})")
    if problems:
        raise InvalidInput(problems)


def _exposure(days: pd.DataFrame, earlier: Mapping[date, Mapping[str | None, int]],
              spec: ExperimentSpec, what: str, limits: Limits) -> Exposure:
    """Units per variant and per day, from the days counted now and the ``earlier`` ones;
    refuses when too many units were seen in more than one variant."""
    by_day: dict[date, dict[str | None, int]] = {d: dict(v) for d, v in earlier.items()}
    for day, variant, units in zip(days["day"], days["variant"], days["units"], strict=True):
        key = None if variant is None or variant != variant else str(variant)
        by_day.setdefault(_day(day), {})[key] = int(units)
    by_variant = {v: 0 for v in spec.variants}
    multi = 0
    for counts in by_day.values():
        for variant, units in counts.items():
            if variant is None:
                multi += units
            else:
                by_variant[variant] = by_variant.get(variant, 0) + units
    kept = sum(by_variant.values())
    total = kept + multi
    if total and multi / total > limits.multi_variant_threshold:
        raise InvalidInput(
            f"{what}: column variant: {multi} of {total} units ({multi / total:.2%}) were seen "
            f"in more than one variant, above the {limits.multi_variant_threshold:.2%} the "
            "refresh accepts (WAREHOUSE_MULTI_VARIANT_THRESHOLD); fix the assignment before "
            "trusting any result")
    return Exposure(units=kept, multi_variant_units=multi, units_by_variant=by_variant,
                    by_day=dict(sorted(by_day.items())))


def _as_datetime(value: Any) -> datetime | None:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def _day(value: Any) -> date:
    return pd.Timestamp(value).date()


def applied_caps(frame: pd.DataFrame,
                 metrics: Sequence[WarehouseMetric]) -> dict[str, AppliedCap]:
    """The cap each capped metric's query applied (the same on every row), over the units the
    rows count."""
    if frame.empty:
        return {}
    units = int(pd.to_numeric(frame["n"]).sum())
    out = {}
    for i, m in enumerate(metrics):
        if m.cap is None:
            continue
        den = frame.get(f"m{i}_den_cap")
        out[m.name] = AppliedCap(float(pd.to_numeric(frame[f"m{i}_cap"]).max()),
                                 None if den is None else float(pd.to_numeric(den).max()),
                                 units)
    return out


def to_records(frame: pd.DataFrame, metrics: Sequence[WarehouseMetric],
               dimensions: Sequence[str], *, assignment: AssignmentSource | None = None
               ) -> list[dict[str, object]]:
    """The store's rows from one fact query's result: totals per variant and day, and per
    dimension value (the query groups by every dimension at once; sums add up). With the
    ``assignment`` source's covariates, a whole arm's row also holds each metric's covariate
    cross-products as flat columns (:meth:`CovariateSums.columns`)."""
    if frame.empty:
        return []
    frame = frame.copy()
    frame["day"] = [_day(v) for v in frame["day"]]
    vectors = queries.vector_columns(assignment, metrics) if assignment is not None else {}
    value_columns = [c for c in frame.columns if c not in dimensions and (
        c == "n" or c.startswith("_") or c.startswith("m") and not c.endswith("_cap"))]
    for c in value_columns:
        frame[c] = pd.to_numeric(frame[c]).astype("float64")
    for i, columns in vectors.items():  # before pandas' sums, which skip a NaN
        assert assignment is not None
        if not np.isfinite(frame[[c for part in columns if part for c in part]]
                           .to_numpy()).all():
            raise _non_finite(metrics[i], assignment)
    out: list[dict[str, object]] = []
    groupings: list[tuple[str | None, list[str]]] = [(None, ["variant", "day"])]
    groupings += [(d, ["variant", "day", d]) for d in dimensions]
    for dimension, keys in groupings:
        sums = frame.groupby(keys, sort=True, dropna=False)[value_columns].sum().reset_index()
        for cells in sums.to_dict("records"):
            for i, m in enumerate(metrics):
                record: dict[str, object] = {
                    "variant": str(cells["variant"]), "day": cells["day"], "metric": m.name,
                    "n": int(cells["n"]),
                }
                for stat in queries.statistics_of(m):
                    if dimension is not None and stat in COVARIATE_SUMS:
                        continue  # a dimension value's row takes no CUPED sums (ingestion)
                    value = float(cells[f"m{i}_{stat}"])
                    record[stat] = int(value) if m.aggregation == "any" else value
                if dimension is not None:
                    record["dimension"] = dimension
                    record["dimension_value"] = str(cells[dimension])
                elif i in vectors:  # a dimension value's row takes none (ingestion)
                    assert assignment is not None
                    record |= _vector(cells, vectors[i], m, assignment).columns()
                out.append(record)
    return out


def _vector(cells: Mapping[str, Any], columns: tuple[list[str], list[str], list[str],
                                                     list[str] | None],
            metric: WarehouseMetric, assignment: AssignmentSource) -> CovariateSums:
    """A metric's :class:`CovariateSums` from a result row (:func:`queries.vector_columns`);
    InvalidInput when a covariate's NaN or infinite values made them non-finite."""
    x, xx, xy, xd = columns
    try:
        return CovariateSums(
            covariate_names(metric, assignment), tuple(cells[c] for c in x),
            tuple(cells[c] for c in xx), tuple(cells[c] for c in xy),
            None if xd is None else tuple(cells[c] for c in xd))
    except ValueError:
        raise _non_finite(metric, assignment) from None


def _non_finite(metric: WarehouseMetric, assignment: AssignmentSource) -> InvalidInput:
    return InvalidInput(
        f"metric {metric.name}: its covariates "
        f"({', '.join(covariate_names(metric, assignment))}) have infinite or NaN sums: a "
        f"covariate column of assignment source '{assignment.name}' or the metric's "
        "pre-period returns NaN or infinity; return NULL for an unknown value (it counts as "
        "missing)")


# --------------------------------------------------------------------------- compile only


def compiled_sql(spec: ExperimentSpec, dialect: str, *, open_from: Mapping[str, date]
                 | None = None, now: datetime | None = None,
                 limits: Limits | None = None) -> dict[str, str]:
    """Each fact source's query compiled for ``dialect`` (bigquery, snowflake, databricks,
    trino, …) without connecting, labelled and capped as :func:`compute` runs it: the
    sources' columns are taken as declared (unit_id text, timestamp, experiment_key and
    variant and dimensions text, fact columns float64) and their SQL is read in that dialect.
    For golden files and for reading before connecting. A quantile metric's second query
    (:func:`queries.order_statistics`) is not among them: its ranks need the counts the first
    one returns."""
    limits = limits or Limits()
    import ibis

    problems = definition_problems(spec)
    if problems:
        raise InvalidInput(problems)
    # Facts past the analysis day are filtered out anyway: "now" at its end flags none.
    now = now or queries.midnight(spec.end + timedelta(days=1))
    compiler = ibis.duckdb.connect()
    assignment_schema = ibis.schema({
        "unit_id": "string", "timestamp": "timestamp", "experiment_key": "string",
        "variant": "string", **{d: "string" for d in spec.assignment.dimensions},
        **{c: "float64" for c in spec.assignment.covariates}})
    assignment = compiler.sql(spec.assignment.sql, schema=assignment_schema, dialect=dialect)
    facts = {f.name: f for f in spec.facts}
    out = {}
    for name, metrics in metrics_by_fact(spec).items():
        fact = facts[name]
        schema = ibis.schema({"unit_id": "string", "timestamp": "timestamp",
                              **{c: "float64" for c in fact.columns}})
        table = compiler.sql(fact.sql, schema=schema, dialect=dialect)
        first = max((open_from or {}).get(name, spec.start), spec.start)
        # Each query groups the units itself: nothing is kept between statements here.
        rows = queries.keyed(assignment, spec)
        units = queries.exposures(rows, spec.assignment) if first <= spec.start else \
            queries.exposures(rows, spec.assignment, since=first, first_from=first)
        expr = queries.fact_statistics(units, table, spec=spec, fact=fact, metrics=metrics,
                                       open_from=first, now=now)
        out[name] = labelled(spec, fact_purpose(name, first, spec),
                             expr.limit(limits.max_result_rows + 1), dialect)
    compiler.disconnect()
    return out
