"""Stored reports: generate a PDF into the artifact store, list them, download them checked.

:func:`generate_report` writes the PDF to the artifact store (:mod:`core.artifacts`: a local
folder or S3) and records it (key, size, SHA-256, who) in ``report_artifacts``, audited on the
experiment in the same transaction; :func:`download_report` refuses bytes that no longer match
the recorded checksum.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from core.artifacts import ArtifactStore, get_store, sha256_hex
from core.auth import Actor
from core.config import get_settings
from core.errors import DomainError, NotFound
from core.registry.listing import load_experiment
from core.reports.content import assemble_report
from core.reports.pdf import render_pdf
from core.transactions import transaction
from db import repositories as repo
from db.models import ReportArtifact


def slug(name: str) -> str:
    """An experiment name as a file-name slug: ``"Checkout: button colour!"`` →
    ``"checkout-button-colour"`` (accents folded, at most 60 characters, never empty)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].rstrip("-")
    return text or "experiment"


def report_filename(experiment_name: str, generated_at: datetime | None) -> str:
    """``<experiment-slug>-<YYYY-MM-DD>.pdf``, the date of generation in UTC."""
    when = (generated_at or datetime.now(UTC)).astimezone(UTC)
    return f"{slug(experiment_name)}-{when:%Y-%m-%d}.pdf"


@dataclass(frozen=True)
class ReportArtifactView:
    id: int
    experiment_id: int
    experiment_name: str
    key: str
    size_bytes: int
    sha256: str
    created_at: datetime | None
    created_by: str

    @property
    def filename(self) -> str:
        """The download name people see: ``<experiment-slug>-<date>.pdf``."""
        return report_filename(self.experiment_name, self.created_at)


@dataclass(frozen=True)
class ReportDownload:
    report: ReportArtifactView
    content: bytes


class ArtifactCorrupt(DomainError):
    """A stored artifact no longer matches the checksum recorded when it was written."""

    http_status = 500



def _view(row: ReportArtifact, name: str) -> ReportArtifactView:
    created = row.created_at
    if created is not None and created.tzinfo is None:  # stored as naive UTC
        created = created.replace(tzinfo=UTC)
    return ReportArtifactView(
        id=row.id, experiment_id=row.experiment_id, experiment_name=name, key=row.key,
        size_bytes=row.size_bytes, sha256=row.sha256, created_at=created,
        created_by=row.created_by,
    )


def report_key(experiment_id: int, generated_at: datetime, sha256: str) -> str:
    return (f"reports/experiment-{experiment_id}/"
            f"{generated_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{sha256[:12]}.pdf")


def generate_report(
    session: Session, *, experiment_id: int, actor: Actor, store: ArtifactStore | None = None,
    now: datetime | None = None,
) -> ReportArtifactView:
    """Build the PDF, write it to the artifact store and record it (audited as ``report``).

    The record is written in the same transaction as the audit entry; if the store refuses the
    write nothing is recorded.
    """
    actor.require("editor", "generate reports")
    store = store or get_store(get_settings())
    now = now or datetime.now(UTC)
    with transaction(session):
        content = assemble_report(session, experiment_id=experiment_id, generated_by=actor.name,
                                  now=now)
        pdf = render_pdf(content)
        digest = sha256_hex(pdf)
        key = report_key(experiment_id, now, digest)
        row = ReportArtifact(experiment_id=experiment_id, key=key, size_bytes=len(pdf),
                             sha256=digest, created_by=actor.name,
                             created_at=now.astimezone(UTC).replace(tzinfo=None))
        session.add(row)
        session.flush()
        stored = store.put(key, pdf, content_type="application/pdf")
        repo.add_audit(
            session, actor=actor.name, entity_type="experiment", entity_id=experiment_id,
            action="report",
            changes={"report": [None, key], "sha256": [None, stored.sha256],
                     "flags": [None, [c.code for c in content.flags]],
                     "recommendation": [None, content.recommendation]},
        )
        view = _view(row, content.experiment.name)
    return view


def list_reports(session: Session, *, experiment_id: int | None = None
                 ) -> list[ReportArtifactView]:
    """Recorded reports, newest first (of one experiment, or all)."""
    return [_view(row, name)
            for row, name in repo.report_artifacts(session, experiment_id=experiment_id)]


def download_report(
    session: Session, *, report_id: int, store: ArtifactStore | None = None
) -> ReportDownload:
    """A recorded report's bytes, checked against the SHA-256 recorded when it was written."""
    row = repo.get_report_artifact(session, report_id=report_id)
    if row is None:
        raise NotFound(f"No report with id {report_id}.")
    store = store or get_store(get_settings())
    content = store.get(row.key)
    if sha256_hex(content) != row.sha256:
        raise ArtifactCorrupt(
            f"Report '{row.key}' in {store.description} does not match the checksum recorded "
            "when it was written: it was altered or damaged; generate a new report.")
    exp = load_experiment(session, experiment_id=row.experiment_id)
    return ReportDownload(report=_view(row, exp.name), content=content)

