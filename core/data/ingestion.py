"""Metric data ingestion, the entry points: a user-level or pre-aggregated CSV/Parquet file
(:func:`ingest_file`) or per-variant, per-day, per-metric rows from a SQL push-down source
(:func:`ingest_records`, called by :mod:`core.data.metric_sources`) become daily sufficient
statistics per (experiment, variant, metric, day); unit-level rows are never stored. Each load
checks the editor's role, reads and validates the input (:mod:`core.data.reading`: every problem
found is reported together and nothing is written), then upserts it in one transaction
(:mod:`core.data.writing`), so loading the same data twice changes nothing. A user-level file
without a ``date`` column is a full snapshot that replaces every day of the metrics it carries;
a file declared as one day's data (``for_day``, the scheduled refresh's drops) replaces only that
day. docs/data-and-sources.md "Metric data" documents the columns.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.auth import Actor
from core.data.aggregates import aggregate_records, read_aggregate_rows
from core.data.reading import (
    AGGREGATE_COLUMNS,
    COVARIATE_COLUMNS,
    DUCKDB_MEMORY_LIMIT,
    RATIO_COLUMNS,
    SLICE_COLUMNS,
    ExperimentContext,
    MetricInfo,
    ProgressCallback,
    check_one_day,
    column_types,
    connect,
    detect_format,
    file_kind,
    file_reader,
    lower_map,
)
from core.data.user_files import aggregate_user_file
from core.data.writing import IngestionReport, write
from core.errors import InvalidInput, NotFound, RuleViolation
from core.registry.listing import load_experiment
from core.stats import MetricStats, QuantileStats
from core.stats.capping import AppliedCap, CapRule
from core.transactions import transaction
from core.types import FileKind, SourceKind
from db import metric_repository as mrepo
from db import repositories as repo

__all__ = [
    "AGGREGATE_COLUMNS", "COVARIATE_COLUMNS", "RATIO_COLUMNS", "SLICE_COLUMNS",
    "ExperimentContext", "IngestionReport",
    "ProgressCallback", "aggregate_records", "detect_format", "experiment_context",
    "ingest_file", "ingest_records", "no_progress", "same_as_stored", "write_records",
]


FLOAT_TOLERANCE = 1e-9
"""Relative (and absolute) tolerance under which a reloaded sum equals the stored one."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the duration, then back as it was. A load builds
    hundreds of thousands of small objects that live until it ends (a file's slice rows and
    their sums); each allocation burst sets off a full pass over every object of the process,
    and those passes took about a fifth of a load (issue 25, ``bench/bench_load.py``).
    Reference counting still frees everything acyclic; cyclic garbage waits for the end.
    Process-wide: another thread's load running meanwhile may turn it back on early, which
    only costs the gain."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def no_progress(_fraction: float, _message: str) -> None:
    return None


# --------------------------------------------------------------------------- experiment context


def experiment_context(session: Session, *, experiment_id: int) -> ExperimentContext:
    """Variants, metrics (with roles) and the date window data may fall in."""
    exp = load_experiment(session, experiment_id=experiment_id)
    if exp.actual_start is None:
        raise RuleViolation(
            f"'{exp.name}' has not launched yet ({exp.status}): metric data can only be loaded "
            "for days from its start."
        )
    today = datetime.now(UTC).date()
    end = exp.actual_end or max(today, exp.actual_start)
    metrics: dict[str, MetricInfo] = {}
    links = [(exp.primary_metric, "primary")] if exp.primary_metric is not None else []
    caps = {name: CapRule(rule["kind"], rule["value"])
            for name, rule in (exp.capping or {}).items()}
    for m, role in [*links, *((link.metric, link.role) for link in exp.metric_links)]:
        metrics.setdefault(m.name, MetricInfo(m.id, m.name, m.kind, role, m.higher_is_better,
                                              m.numerator, m.denominator, m.quantile_p,
                                              caps.get(m.name)))
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
    report = progress or no_progress
    started = time.perf_counter()
    path = Path(path)
    with gc_paused(), transaction(session):
        ctx = experiment_context(session, experiment_id=_resolve(session, experiment_id,
                                                                 experiment))
        report(0.02, f"Checking {path.name}")
        fmt = detect_format(path)
        con = connect(memory_limit, threads)
        try:
            src = file_reader(path, fmt)
            columns = column_types(con, src, path, fmt)
            lower = lower_map(columns, path.name)
            chosen = file_kind(kind, lower, path.name)
            if chosen == "aggregate":
                report(0.1, "Reading pre-aggregated rows")
                raw, notes = read_aggregate_rows(con, path, fmt, lower)
                agg = aggregate_records(
                    ctx, raw, label=path.name, first_row=2 if fmt == "csv" else 1
                )
                agg.notes = (*agg.notes, *notes)
                source_kind: SourceKind = "aggregate_file"
            else:
                agg = aggregate_user_file(
                    con, path, fmt, src, columns, lower, ctx, day=day or for_day,
                    report=report,
                )
                source_kind = "user_file"
        finally:
            con.close()
        if for_day is not None:
            check_one_day(agg, for_day, path.name)
            pooled = [m for m in agg.caps if (rule := ctx.metrics[m].cap) is not None
                      and rule.kind == "percentile"]
            if pooled:
                raise InvalidInput(
                    f"file: {path.name} is one day's drop, and {', '.join(pooled)} "
                    f"{'is' if len(pooled) == 1 else 'are'} capped at a percentile of every "
                    f"unit of '{ctx.name}', pooled across the variants: one day's units cannot "
                    "give it. Load a full snapshot (a user-level file with every unit), or "
                    "use a fixed cap in the plan before launch")
        report(0.9, "Writing daily statistics")
        result = write(session, ctx, agg, kind=source_kind, label=label or path.name,
                        actor=actor, started=started, sha256=sha256)
    report(1.0, f"Loaded {result.stats_rows_written} daily rows from {label or path.name}")
    return result



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
    """Validate and store per-variant, per-day, per-metric rows (from a SQL source or the
    warehouse), all or nothing, in a transaction of its own."""
    actor.require("editor", "load metric data")
    report = progress or no_progress
    with gc_paused(), transaction(session):
        result = write_records(session, experiment_id=experiment_id, rows=rows, actor=actor,
                               kind=kind, label=label, progress=report)
    report(1.0, f"Loaded {result.stats_rows_written} daily rows from {label}")
    return result


def write_records(
    session: Session,
    *,
    experiment_id: int,
    rows: list[dict[str, Any]],
    actor: Actor,
    kind: SourceKind,
    label: str,
    progress: ProgressCallback | None = None,
    caps: dict[str, AppliedCap] | None = None,
    quantiles: Mapping[tuple[str, str], QuantileStats] | None = None,
    quantile_metrics: Sequence[str] = (),
) -> IngestionReport:
    """:func:`ingest_records` in the caller's transaction, for a service that writes more in
    the same one (the warehouse refresh records its queries with its data, the caps it
    applied to capped metrics: ``caps``, and the ``quantiles`` by (variant, metric) it read
    for its ``quantile_metrics``: core.data.aggregates.aggregate_records)."""
    actor.require("editor", "load metric data")
    report = progress or no_progress
    started = time.perf_counter()
    ctx = experiment_context(session, experiment_id=experiment_id)
    report(0.6, "Checking the aggregated rows")
    agg = aggregate_records(ctx, rows, label=label, caps=caps, quantiles=quantiles,
                            quantile_metrics=quantile_metrics)
    report(0.9, "Writing daily statistics")
    return write(session, ctx, agg, kind=kind, label=label, actor=actor, started=started)


def _close(a: Any, b: Any) -> bool:
    """Two sums (or nested tuples of them, names included: the covariate vector part of a
    key) equal to :data:`FLOAT_TOLERANCE`."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(_close(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(a, b, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)


def same_as_stored(
    session: Session,
    *,
    experiment_id: int,
    rows: list[dict[str, Any]],
    first: date,
    last: date,
    label: str = "sql source",
    caps: dict[str, AppliedCap] | None = None,
    quantiles: Mapping[tuple[str, str], QuantileStats] | None = None,
    quantile_metrics: Sequence[str] = (),
) -> bool:
    """Whether per-variant, per-day rows (as :func:`ingest_records` takes them) equal the
    stored daily stats and assignments of the days ``first``..``last``, and the quantile
    metrics' statistics the stored ones: loading them would change nothing (sums compared
    to :data:`FLOAT_TOLERANCE`). Bad rows raise InvalidInput naming ``label``."""
    ctx = experiment_context(session, experiment_id=experiment_id)
    agg = aggregate_records(ctx, rows, label=label, caps=caps, quantiles=quantiles,
                            quantile_metrics=quantile_metrics)
    metric_ids = {ctx.metrics[m].id for m in agg.metrics}

    def close(a: MetricStats | QuantileStats, b: MetricStats | QuantileStats) -> bool:
        return all(_close(x, y) for x, y in zip(a.key(), b.key(), strict=True))

    if agg.quantile_metrics:
        defined = {ctx.metrics[m].id for m in agg.quantile_metrics}
        held_quantiles = {(r.variant_id, r.metric_id): r.stats
                          for r in mrepo.quantile_stats(session, experiment_id=experiment_id)
                          if r.metric_id in defined}
        fresh_quantiles = {(ctx.variants[v], ctx.metrics[m].id): q
                           for (v, m), q in agg.quantiles.items()}
        if fresh_quantiles.keys() != held_quantiles.keys() or not all(
                close(q, held_quantiles[k]) for k, q in fresh_quantiles.items()):
            return False

    fresh = {(ctx.variants[c.variant], ctx.metrics[c.metric].id, c.day): c.stats
             for c in agg.cells}
    stored = {
        (r.variant_id, r.metric_id, r.day): r.stats
        for r in mrepo.daily_stats(session, experiment_id=experiment_id, through=last)
        if r.day >= first and r.metric_id in metric_ids
    }
    # Only what the source returns is compared: a load upserts and never deletes...
    if not all(key in stored and close(values, stored[key]) for key, values in fresh.items()):
        return False
    # ... except a day's slices, which a load replaces: they must match exactly.
    days = {c.day for c in [*agg.cells, *agg.slices]}
    fresh_slices = {
        (ctx.variants[c.variant], ctx.metrics[c.metric].id, c.day, c.dimension, c.value):
            c.stats for c in agg.slices
    }
    stored_slices: dict[tuple[Any, ...], MetricStats] = {
        (r.variant_id, r.metric_id, r.day, r.dimension, r.value): r.stats
        for r in mrepo.daily_slice_stats(session, experiment_id=experiment_id, through=last)
        if r.day in days and r.metric_id in metric_ids
    }
    if fresh_slices.keys() != stored_slices.keys() or not all(
        close(v, stored_slices[k]) for k, v in fresh_slices.items()
    ):
        return False
    held_slices = {
        (a.variant_id, a.day, a.dimension, a.value): a.units
        for a in mrepo.slice_assignments(session, experiment_id=experiment_id, through=last)
        if a.day in days
    }
    if held_slices != {(ctx.variants[v], d, dim, val): u
                       for (v, d, dim, val), u in agg.slice_assignments.items()}:
        return False
    held = {
        (a.variant_id, a.day): a.units
        for a in mrepo.assignments(session, experiment_id=experiment_id, through=last)
        if a.day >= first
    }
    return all(
        held.get((ctx.variants[v], d)) == units for (v, d), units in agg.assignments.items()
    )
