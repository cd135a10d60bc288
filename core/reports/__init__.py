"""Experiment reports: a PDF per experiment, written from the numbers, stored as an artifact.

One module per part, each reached from here:

* :mod:`core.reports.risks` — the automatic risk checks (below);
* :mod:`core.reports.content` — :func:`assemble_report`: what the report says, computed from
  the registry and the latest results snapshot (computed on the spot when none is stored);
* :mod:`core.reports.charts` — the forest plot's and the cumulative lift's geometry (ticks,
  positions, labels in mm; pure, testable without a PDF);
* :mod:`core.reports.pdf` — :func:`render_pdf`: the fpdf2 layout, the charts drawn into it as
  vector lines and text (DejaVu Sans, whose files come with matplotlib — never imported — so
  any Unicode name renders without system fonts);
* :mod:`core.reports.store` — :func:`generate_report` stores the PDF in the artifact store
  (:mod:`core.artifacts`) and records it (key, size, SHA-256, who) in ``report_artifacts``,
  audited on the experiment; listing and checked download.

The portfolio CSV lives with the portfolio (:mod:`core.portfolio`).

Risk checks (:data:`RISK_CHECKS`), each flagged / passed / not checked with a one-line reason:

* ``srm`` — the results' SRM check of assignments against the planned split: the sequential,
  anytime-valid test decides (p < 0.001), the chi-square p-value is quoted beside it.
* ``srm_by_value`` — the same sequential test per dimension value, Holm-adjusted over each
  dimension's values (adjusted p < 0.001).
* ``underpowered`` — the smallest variant is below the planned sample (not raised for a
  sequential test that already reached significance), or, for a primary result that is not
  significant, the MDE achievable with the observed baseline and sample (the planner's
  ``mde_proportion`` / ``mde_mean`` at the achieved n, alpha, power and number of variants)
  exceeds the planned MDE by more than 10%.
* ``read_early`` — a fixed-horizon experiment completed (or given a decision) before every
  variant reached the planned sample.
* ``plan_deviation`` — audited changes to the frozen analysis plan after launch.
* ``multiple_comparisons`` — several treatments share the primary metric, or the correction
  changed a call (raw p < alpha <= adjusted p); the explanation gives the counts and method.
* ``guardrail_breach`` — a guardrail's one-sided harm test, adjusted over guardrails, < alpha.
* ``drift`` — the primary effect in the first half of the data days differs from the second
  half (two-sample z-test on the two independent estimates, alpha / number of treatments);
  a shrinking effect is called a likely novelty effect.
* ``multiple_exposures`` — stored data are per-variant aggregates, so units in several variants
  are only known to be absent when every load was a user-level file (ingestion refuses a unit
  in two variants); with aggregated or SQL loads the check cannot be made from stored data.
"""

from core.reports.content import ReportContent, assemble_report, primary_sentence
from core.reports.pdf import build_report_pdf, render_pdf
from core.reports.risks import RISK_CHECKS, RiskCheck
from core.reports.store import (
    ArtifactCorrupt,
    ReportArtifactView,
    ReportDownload,
    download_report,
    generate_report,
    list_reports,
    report_filename,
)

__all__ = [
    "RISK_CHECKS", "ArtifactCorrupt", "ReportArtifactView", "ReportContent",
    "ReportDownload", "RiskCheck", "assemble_report", "build_report_pdf", "download_report",
    "generate_report", "list_reports", "primary_sentence", "render_pdf", "report_filename",
]
