"""What the Results page shows beyond :mod:`core.analysis.results`: the experiments to pick
from, daily units per variant and the results table (also as CSV). The two data loads an editor
can start from it are :mod:`core.workflows.loads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from core.analysis.snapshot import ResultsSnapshot
from core.format import csv_text
from core.registry.listing import all_experiments, load_experiment
from db import metric_repository as mrepo


@dataclass(frozen=True)
class ExperimentChoice:
    id: int
    name: str
    status: str
    has_sql_source: bool
    assignment_source: str | None = None
    """Fed from the warehouse: the assignment source it reads its exposures from."""
    experiment_key: str | None = None


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
            source = mrepo.get_metric_source(session, experiment_id=exp.id)
            out.append(ExperimentChoice(exp.id, exp.name, exp.status, source is not None,
                                        exp.assignment_source, exp.experiment_key))
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
    "capping",
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
            "capping": c.capping,
        }
        for c in snapshot.comparisons
    ]


def results_csv(snapshot: ResultsSnapshot) -> str:
    """The results table as CSV (full precision; empty cells where a value is missing)."""
    return csv_text(
        TABLE_COLUMNS,
        ([("" if row[k] is None else row[k]) for k in TABLE_COLUMNS]
         for row in results_table(snapshot)),
        lineterminator="\n",
    )
