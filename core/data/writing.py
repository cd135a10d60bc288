"""Writing metric data: the validated output of :mod:`core.data.reading` stored as daily
sufficient statistics and assignment counts (and a quantile metric's
statistics over the input's units), with its row in the ``ingest_loads`` ledger and an
audit entry.

Writes are idempotent upserts keyed on (experiment, variant, metric, day) and (experiment,
variant, day): loading the same data twice changes nothing. A full snapshot (a user-level file
without dates) first removes every day of the metrics it carries. The caller owns the
transaction (:func:`core.data.ingestion.ingest_file` and friends), so a load is all or nothing,
its ledger row included. The ledger keeps the latest load of each source (the label: a file's
name, a drop's key, a SQL window), with the file's SHA-256 when given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from core.auth import Actor
from core.data.reading import Aggregated, ExperimentContext
from core.types import SourceKind
from db import metric_repository as mrepo
from db import repositories as repo
from db import state_repository as state


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
    dimensions: tuple[str, ...] = ()
    """Dimension columns whose per-value statistics were stored (segment drill-down)."""
    slice_rows_written: int = 0
    notes: tuple[str, ...] = ()



def write(
    session: Session,
    ctx: ExperimentContext,
    agg: Aggregated,
    *,
    kind: SourceKind,
    label: str,
    actor: Actor,
    started: float,
    sha256: str | None = None,
) -> IngestionReport:
    """Store a validated load (upserts, slice replacement, ledger row, audit entry) in the
    caller's transaction and say what was written."""
    metric_ids = [ctx.metrics[m].id for m in agg.metrics]
    if agg.full_replace:
        mrepo.delete_daily_stats(session, experiment_id=ctx.id, metric_ids=metric_ids)
        mrepo.delete_assignments(session, experiment_id=ctx.id)
    rows = [
        mrepo.DailyStatRow(ctx.variants[c.variant], ctx.metrics[c.metric].id, c.day, c.stats)
        for c in agg.cells
    ]
    source = f"{kind}:{label}"[:200]
    written = mrepo.upsert_daily_stats(session, experiment_id=ctx.id, rows=rows, source=source)
    if agg.quantile_metrics:
        mrepo.replace_quantile_stats(
            session, experiment_id=ctx.id,
            metric_ids=[ctx.metrics[m].id for m in agg.quantile_metrics],
            rows=[mrepo.QuantileStatRow(ctx.variants[v], ctx.metrics[m].id, q)
                  for (v, m), q in sorted(agg.quantiles.items())],
            source=source)
    mrepo.upsert_assignments(
        session,
        experiment_id=ctx.id,
        rows=[
            mrepo.AssignmentRow(variant_id=ctx.variants[v], day=d, units=u)
            for (v, d), u in sorted(agg.assignments.items())
        ],
    )
    days = sorted({c.day for c in [*agg.cells, *agg.slices]})
    # The latest load of a day defines its slices: the old ones of its metrics go, even when
    # the new data carries no dimension (they would no longer match the day's totals).
    loaded_days = None if agg.full_replace else days
    sliced = mrepo.replace_slice_stats(
        session, experiment_id=ctx.id, metric_ids=metric_ids, days=loaded_days,
        rows=[
            mrepo.SliceStatRow(ctx.variants[c.variant], ctx.metrics[c.metric].id, c.day,
                               c.dimension or "", c.value or "", c.stats)
            for c in agg.slices
        ],
        source=source,
    )
    mrepo.replace_slice_assignments(
        session, experiment_id=ctx.id, days=loaded_days,
        rows=[
            mrepo.SliceAssignmentRow(variant_id=ctx.variants[v], day=d, dimension=dim,
                                     value=val, units=u)
            for (v, d, dim, val), u in sorted(agg.slice_assignments.items())
        ],
    )
    if agg.caps:
        mrepo.save_applied_caps(
            session, experiment_id=ctx.id, source=source,
            caps={ctx.metrics[name].id: cap for name, cap in agg.caps.items()})
    units: dict[str, int] = {v: 0 for v in ctx.variants}
    for (v, _d), u in agg.assignments.items():
        units[v] += u
    cuped = tuple(dict.fromkeys(c.metric for c in agg.cells if c.stats.has_covariate))
    first, last = (days[0], days[-1]) if days else (None, None)
    # A pre-aggregated input may carry a quantile metric's arms without its daily sums.
    loaded = tuple(dict.fromkeys([*agg.metrics, *agg.quantile_metrics]))
    state.record_ingest_load(
        session, experiment_id=ctx.id, key=label, kind=kind, sha256=sha256, first_day=first,
        last_day=last, metrics=loaded, rows_read=agg.rows_read, rows_written=written,
        loaded_by=actor.name,
    )
    repo.add_audit(
        session,
        actor=actor.name,
        entity_type="experiment",
        entity_id=ctx.id,
        action="ingest",
        changes={
            "source": [None, source],
            "days": [None, f"{first}..{last}"],
            "metrics": [None, list(loaded)],
            "rows_written": [None, written],
            **({"dimensions": [None, list(agg.dimensions)]} if agg.dimensions else {}),
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
        metrics=loaded,
        cuped_metrics=cuped,
        units=units,
        stats_rows_written=written,
        ignored_columns=agg.ignored,
        seconds=time.perf_counter() - started,
        dimensions=agg.dimensions,
        slice_rows_written=sliced,
        notes=agg.notes,
    )

