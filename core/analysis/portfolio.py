"""Portfolio overview: the experiments that need someone's attention, each with the reason why.

A running experiment's result reasons are its verdict (:func:`core.analysis.verdict.
experiment_verdict`, read from the latest stored snapshot): a ship / don't-ship decision is due,
or something must be investigated. The plan reasons (past the planned end, plan changed after
launch, no planned sample size) come from the registry. The portfolio CSV lists every
experiment with its verdict and primary-metric result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from core import format as fmt
from core.analysis import results
from core.analysis.snapshot import ExperimentVerdict
from core.analysis.verdict import experiment_verdict
from core.registry.audit import plan_deviations
from core.registry.listing import all_experiments
from core.types import Recommendation

PORTFOLIO_CSV_COLUMNS = (
    "id", "name", "owner", "status", "decision", "recommendation", "recommendation_reason",
    "primary_metric", "treatment", "primary_lift",
    "lift_ci_low", "lift_ci_high", "adjusted_p_value", "decision_state", "data_through",
    "results_source",
)


@dataclass(frozen=True)
class Attention:
    experiment_id: int
    name: str
    owner: str
    status: str
    reason: str
    recommendation: Recommendation | None = None
    """The verdict behind a result reason; None for a plan reason."""


@dataclass(frozen=True)
class Standing:
    """Where one running or completed experiment stands: its verdict, first."""

    experiment_id: int
    name: str
    owner: str
    status: str
    verdict: ExperimentVerdict


def standings(session: Session) -> list[Standing]:
    """The verdict of every running experiment, then every completed one (each by name), from
    the latest stored snapshot, else computed now without storing."""
    out = []
    for status in ("running", "completed"):
        experiments = sorted(all_experiments(session, status=status),
                             key=lambda e: e.name.lower())
        for exp in experiments:
            snapshot = results.latest_snapshot(session, experiment_id=exp.id)
            if snapshot is None:
                snapshot = results.compute_results(session, experiment_id=exp.id)
            verdict = snapshot.verdict or experiment_verdict(snapshot)
            out.append(Standing(exp.id, exp.name, exp.owner, exp.status, verdict))
    return out


def needs_attention(session: Session, *, today: date | None = None) -> list[Attention]:
    """Experiments a PM should look at now, each with the reason why."""
    today = today or datetime.now(UTC).date()
    items: list[Attention] = []
    deviations: dict[int, int] = {}
    for record in plan_deviations(session):
        deviations[record.entity_id] = deviations.get(record.entity_id, 0) + 1
    for exp in all_experiments(session):
        if exp.status == "running":
            result = _result_reason(session, exp.id)
            if result is not None:
                items.append(Attention(exp.id, exp.name, exp.owner, exp.status, *result))
        reasons = []
        if exp.status == "running" and exp.planned_end and exp.planned_end < today:
            reasons.append(
                f"past its planned end ({exp.planned_end.isoformat()}): decide or extend"
            )
        if exp.status == "running" and deviations.get(exp.id):
            reasons.append(f"analysis plan changed after launch ({deviations[exp.id]}×)")
        if exp.status == "proposed" and exp.primary_metric and not exp.planned_sample_size:
            reasons.append("has no planned sample size yet: size it in the Planner")
        for reason in reasons:
            items.append(Attention(exp.id, exp.name, exp.owner, exp.status, reason))
    return items


def _result_reason(session: Session, experiment_id: int) -> tuple[str, Recommendation] | None:
    """The verdict of the latest results (stored snapshot, else computed now without storing),
    when it calls for someone to act."""
    snapshot = results.latest_snapshot(session, experiment_id=experiment_id)
    if snapshot is None:
        snapshot = results.compute_results(session, experiment_id=experiment_id)
    verdict = snapshot.verdict or experiment_verdict(snapshot)
    if verdict.recommendation == "none" and snapshot.data_through is None:
        return ("running but no metric data yet: upload a file or set its SQL source", "none")
    if not verdict.needs_attention:
        return None
    return verdict.reason, verdict.recommendation


def portfolio_csv(session: Session) -> str:
    """Every experiment with status, recorded decision, verdict and primary-metric lift, as CSV.

    ``recommendation`` / ``recommendation_reason`` are the experiment's verdict
    (:func:`core.analysis.verdict.experiment_verdict`, the same on every row of an experiment;
    ``none`` without data); ``decision_state`` is the primary metric's state per treatment. The
    lift comes from the latest stored snapshot, or is computed on the spot when none is
    stored (``results_source`` says which). One row per experiment and treatment; an experiment
    without data has one row with the result columns empty."""
    lines: list[list[object]] = []
    for exp in all_experiments(session):
        snapshot = results.latest_snapshot(session, experiment_id=exp.id)
        source = f"snapshot #{snapshot.snapshot_id}" if snapshot else "computed"
        if snapshot is None and exp.actual_start is not None:
            snapshot = results.compute_results(session, experiment_id=exp.id)
        verdict = (snapshot.verdict if snapshot is not None and snapshot.verdict is not None
                   else experiment_verdict(snapshot))
        base = [exp.id, exp.name, exp.owner, exp.status, exp.decision or "",
                verdict.recommendation, verdict.reason, exp.primary_metric or ""]
        rows = []
        if snapshot is not None and snapshot.data_through is not None:
            rows = snapshot.rows(role="primary")
        if not rows:
            lines.append([*base, *[""] * (len(PORTFOLIO_CSV_COLUMNS) - len(base))])
        for r in rows:
            assert snapshot is not None and snapshot.data_through is not None
            lines.append([
                *base, r.treatment, fmt.csv_number(r.lift), fmt.csv_number(r.lift_ci_low),
                fmt.csv_number(r.lift_ci_high), fmt.csv_number(r.adjusted_p_value),
                r.decision_state, snapshot.data_through.isoformat(),
                source,
            ])
    return fmt.csv_text(PORTFOLIO_CSV_COLUMNS, lines)
