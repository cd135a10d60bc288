"""What the Results page shows beyond :mod:`core.analysis.results`: the experiments to pick
from, daily units per variant, the results table (also as CSV), and the two data loads an editor
can start (an uploaded file, or the experiment's SQL source), each followed by a stored results
snapshot. The API's data routes call the same two loads.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from core.analysis import results
from core.analysis.snapshot import ResultsSnapshot
from core.auth import Actor
from core.data import metric_sources
from core.data.ingestion import IngestionReport, ProgressCallback, ingest_file
from core.errors import InvalidInput
from core.registry.listing import all_experiments, load_experiment
from core.types import FileKind
from db import metric_repository as mrepo

UPLOAD_SUFFIXES = (".csv", ".parquet", ".csv.gz")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ExperimentChoice:
    id: int
    name: str
    status: str
    has_sql_source: bool


@dataclass(frozen=True)
class DailyUnits:
    day: date
    variant: str
    units: int


def experiments_with_results(session: Session) -> list[ExperimentChoice]:
    """Running experiments first, then completed ones, each by name."""
    out = []
    for status in ("running", "completed"):
        for exp in sorted(all_experiments(session, status=status),  # type: ignore[arg-type]
                          key=lambda e: e.name.lower()):
            source = metric_sources.get_metric_source(session, experiment_id=exp.id)
            out.append(ExperimentChoice(exp.id, exp.name, exp.status, source is not None))
    return out


def daily_units(session: Session, *, experiment_id: int) -> list[DailyUnits]:
    """Units enrolled per day and variant: the assignment counts, or (when none were stored) the
    largest metric ``n`` of that variant and day."""
    exp = load_experiment(session, experiment_id=experiment_id)
    names = {v.id: v.name for v in exp.variants}
    counts: dict[tuple[date, int], int] = {}
    assigned = mrepo.assignments(session, experiment_id=experiment_id)
    if assigned:
        for a in assigned:
            counts[(a.day, a.variant_id)] = counts.get((a.day, a.variant_id), 0) + a.units
    else:
        for r in mrepo.daily_stats(session, experiment_id=experiment_id):
            counts[(r.day, r.variant_id)] = max(counts.get((r.day, r.variant_id), 0), r.stats.n)
    return [DailyUnits(day, names.get(vid, str(vid)), n)
            for (day, vid), n in sorted(counts.items())]


TABLE_COLUMNS = (
    "metric", "role", "kind", "treatment", "control_n", "treatment_n", "control_value",
    "treatment_value", "diff", "diff_ci_low", "diff_ci_high", "lift", "lift_ci_low",
    "lift_ci_high", "p_value", "adjusted_p_value", "test", "decision_state", "reason", "blocked",
)


def results_table(snapshot: ResultsSnapshot) -> list[dict[str, Any]]:
    """One row per metric x treatment, in the snapshot's order, with the decision state exactly
    as :mod:`core.analysis.results` computed it."""
    return [
        {
            "metric": c.metric, "role": c.role, "kind": c.kind, "treatment": c.treatment,
            "control_n": c.control_n, "treatment_n": c.treatment_n,
            "control_value": c.control_mean, "treatment_value": c.treatment_mean,
            "diff": c.diff, "diff_ci_low": c.diff_ci_low, "diff_ci_high": c.diff_ci_high,
            "lift": c.lift, "lift_ci_low": c.lift_ci_low, "lift_ci_high": c.lift_ci_high,
            "p_value": c.p_value, "adjusted_p_value": c.adjusted_p_value, "test": c.test,
            "decision_state": c.decision_state, "reason": c.reason, "blocked": c.blocked,
        }
        for c in snapshot.comparisons
    ]


def results_csv(snapshot: ResultsSnapshot) -> str:
    """The results table as CSV (full precision; empty cells where a value is missing)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in results_table(snapshot):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def upload_name(filename: str | None) -> str:
    """The client's file name without folders or odd characters (it names the file in errors
    and the audit entry)."""
    name = _UNSAFE.sub("_", Path(filename or "").name).strip("._")
    return name[:120] or "upload.csv"


def load_upload(
    session: Session,
    *,
    experiment_id: int,
    filename: str | None,
    data: bytes | IO[bytes],
    actor: Actor,
    kind: FileKind = "auto",
    day: date | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[IngestionReport, ResultsSnapshot]:
    """Load an uploaded CSV/Parquet file (its bytes, or a stream of them) into the experiment
    (all or nothing, see :func:`core.data.ingestion.ingest_file`; ``kind`` and ``day`` as
    there), then store a fresh results snapshot. The Results page and ``POST
    /experiments/{id}/data`` both load through here."""
    actor.require("editor", "load metric data")
    name = upload_name(filename)
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        raise InvalidInput(f"file: {name} must be a .csv, .csv.gz or .parquet file")
    with tempfile.TemporaryDirectory(prefix="experimentos_upload_") as folder:
        path = Path(folder) / name
        with path.open("wb") as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                shutil.copyfileobj(data, out, length=1024 * 1024)
        report = ingest_file(session, path=path, experiment_id=experiment_id, actor=actor,
                             kind=kind, day=day, progress=progress)
    snapshot = results.refresh_results(session, experiment_id=experiment_id, actor=actor)
    return report, snapshot


def refresh_from_source(
    session: Session,
    *,
    experiment_id: int,
    actor: Actor,
    progress: ProgressCallback | None = None,
) -> tuple[IngestionReport, ResultsSnapshot]:
    """Re-run the experiment's SQL metric source, then store a fresh results snapshot."""
    report = metric_sources.ingest_sql(session, experiment_id=experiment_id, actor=actor,
                                       progress=progress)
    snapshot = results.refresh_results(session, experiment_id=experiment_id, actor=actor)
    return report, snapshot
