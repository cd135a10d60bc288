"""Data access for experiment state kept in columns and tables (never read back from the audit
log): promotion out of the backlog, the ingest-load ledger, and the scheduled refresh's
ready-for-decision mark. Keyword-only arguments, an explicit session; services own the
transaction, so nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.metric_repository import dialect_insert
from db.models import Experiment, IngestLoad, ReportArtifact

# --------------------------------------------------------------------------- promotion


def promoted_experiment_ids(session: Session) -> set[int]:
    """Ids of the experiments promoted out of the backlog."""
    return set(session.scalars(select(Experiment.id).where(Experiment.promoted_at.is_not(None))))


def rice_at_promotion(session: Session) -> dict[int, dict[str, Any]]:
    """The RICE inputs recorded at promotion, per promoted experiment."""
    rows = session.execute(
        select(Experiment.id, Experiment.promoted_rice).where(
            Experiment.promoted_rice.is_not(None))
    )
    return {exp_id: dict(rice) for exp_id, rice in rows}


# --------------------------------------------------------------------------- ingest loads


def record_ingest_load(
    session: Session,
    *,
    experiment_id: int,
    key: str,
    kind: str,
    sha256: str | None,
    first_day: date | None,
    last_day: date | None,
    metrics: Sequence[str],
    rows_read: int,
    rows_written: int,
    loaded_by: str,
) -> None:
    """Insert or replace the ledger row of (experiment, key): the latest load of that source."""
    row = {
        "experiment_id": experiment_id, "key": key[:500], "kind": kind, "sha256": sha256,
        "first_day": first_day, "last_day": last_day, "metrics": list(metrics),
        "rows_read": rows_read, "rows_written": rows_written, "loaded_by": loaded_by,
    }
    stmt = dialect_insert(session, IngestLoad.__table__).values(row)
    updates = {c: stmt.excluded[c] for c in row if c not in ("experiment_id", "key")}
    updates["loaded_at"] = func.now()
    session.execute(stmt.on_conflict_do_update(index_elements=["experiment_id", "key"],
                                               set_=updates))


def ingest_loads(session: Session, *, experiment_id: int) -> list[IngestLoad]:
    """The experiment's ledger, oldest load first (as stored: rows the upsert replaced are
    not served from the session's identity map)."""
    return list(session.scalars(
        select(IngestLoad).where(IngestLoad.experiment_id == experiment_id)
        .order_by(IngestLoad.loaded_at, IngestLoad.id)
        .execution_options(populate_existing=True)
    ))


def loaded_sha256(session: Session, *, experiment_id: int, key_prefix: str) -> dict[str, str]:
    """Key -> SHA-256 of the latest load of each source whose key starts with ``key_prefix``
    and that recorded a checksum (the file drops)."""
    rows = session.execute(
        select(IngestLoad.key, IngestLoad.sha256).where(IngestLoad.experiment_id == experiment_id)
    )
    return {key: sha for key, sha in rows if sha is not None and key.startswith(key_prefix)}


# --------------------------------------------------------------------------- ready for decision


def ready_report(session: Session, *, experiment_id: int) -> tuple[bool, str | None]:
    """Whether the experiment is marked ready for a decision, and the key of the report then
    written (None when unmarked, or when that report was deleted)."""
    row = session.execute(
        select(Experiment.ready_for_decision_at, ReportArtifact.key)
        .outerjoin(ReportArtifact, ReportArtifact.id == Experiment.ready_report_id)
        .where(Experiment.id == experiment_id)
    ).first()
    if row is None or row.ready_for_decision_at is None:
        return False, None
    return True, row.key


def first_report_by(session: Session, *, experiment_id: int, created_by: str
                    ) -> tuple[int, str] | None:
    """(id, key) of the experiment's first report written by ``created_by``, if any."""
    row = session.execute(
        select(ReportArtifact.id, ReportArtifact.key)
        .where(ReportArtifact.experiment_id == experiment_id,
               ReportArtifact.created_by == created_by)
        .order_by(ReportArtifact.id)
        .limit(1)
    ).first()
    return None if row is None else (row.id, row.key)


def mark_ready_for_decision(session: Session, *, experiment_id: int, report_id: int | None
                            ) -> bool:
    """Mark the experiment ready for a decision with its report, unless it is marked already;
    True when this call marked it. Leaves ``version`` alone: it is no edit of the plan."""
    result = session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id, Experiment.ready_for_decision_at.is_(None))
        .values(ready_for_decision_at=func.now(), ready_report_id=report_id)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
