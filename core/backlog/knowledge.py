"""Institutional memory: what completed experiments taught, and how well their RICE held up.

* The knowledge base lists completed experiments with their decision, learnings, tags and the
  result of their primary metric; a full-text search finds those matching any significant word
  of the query in name, hypothesis, learnings or metric names, most relevant first.
* Win rate = share of completed experiments whose decision is ``ship``, by owner, tag or
  quarter of completion.
* RICE calibration compares the Impact and Confidence predicted at prioritisation (as recorded
  when the idea was promoted, else the experiment's current inputs) with the realised lift of
  the primary metric and its significance.

The primary-metric result comes from :mod:`core.analysis.results` (the latest stored snapshot, else
computed on the spot without storing): the realised lift, its (adjusted) p-value, and whether
the results call it ``significant``. With several treatments the best one in the metric's good
direction is reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from core.analysis import results
from core.backlog.rice import HIGH_CONFIDENCE, RICE_FIELDS
from core.errors import InvalidInput
from core.registry.fields import ExperimentView
from core.registry.listing import all_experiments
from core.types import CALIBRATION_GROUPINGS, GROUPINGS
from db import search_repository as search_repo
from db import state_repository as state


@dataclass(frozen=True)
class PrimaryResult:
    """The realised effect of an experiment on its primary metric."""

    metric: str
    kind: str
    higher_is_better: bool
    control: str
    treatment: str
    control_mean: float | None
    treatment_mean: float | None
    n_control: int
    n_treatment: int
    lift: float
    """Relative change of the treatment against the control (0.05 = +5 %)."""
    p_value: float
    """Adjusted for multiple comparisons when the results adjusted it."""
    significant: bool
    """The results' decision state is ``significant`` (plan met, no SRM, p below alpha)."""
    decision_state: str
    alpha: float
    source: str

    @property
    def improved(self) -> bool:
        """The lift went in the metric's good direction."""
        return self.lift > 0 if self.higher_is_better else self.lift < 0

    @property
    def significant_win(self) -> bool:
        return self.significant and self.improved


@dataclass(frozen=True)
class Learning:
    """A completed experiment as the knowledge base shows it."""

    id: int
    name: str
    owner: str
    hypothesis: str
    learnings: str
    decision: str | None
    tags: tuple[str, ...]
    ended: date | None
    impact: float | None
    """Predicted at prioritisation (see the module docstring)."""
    confidence: float | None
    result: PrimaryResult | None

    @property
    def quarter(self) -> str:
        if self.ended is None:
            return "undated"
        return f"{self.ended.year}-Q{(self.ended.month - 1) // 3 + 1}"

    @property
    def won(self) -> bool:
        return self.decision == "ship"


# --------------------------------------------------------------------------- results


def primary_result(session: Session, *, experiment_id: int) -> PrimaryResult | None:
    """The primary metric's realised lift and significance; None when it has no data.

    Read from the latest stored results snapshot, else computed (not stored) by
    :func:`core.analysis.results.compute_results`; with several treatments, the best one in the
    metric's good direction.
    """
    snapshot = results.latest_snapshot(session, experiment_id=experiment_id)
    stored = snapshot is not None
    if snapshot is None:
        snapshot = results.compute_results(session, experiment_id=experiment_id)
    rows = [
        c for c in snapshot.rows(role="primary")
        if c.lift is not None and c.p_value is not None and math.isfinite(c.lift)
    ]
    if not rows:
        return None
    best = max(rows, key=lambda c: float(c.lift or 0.0) * (1 if c.higher_is_better else -1))
    assert best.lift is not None and best.p_value is not None
    return PrimaryResult(
        metric=best.metric, kind=best.kind, higher_is_better=best.higher_is_better,
        control=best.control, treatment=best.treatment,
        control_mean=best.control_mean, treatment_mean=best.treatment_mean,
        n_control=best.control_n, n_treatment=best.treatment_n, lift=best.lift,
        p_value=best.adjusted_p_value if best.adjusted_p_value is not None else best.p_value,
        significant=best.decision_state == "significant", decision_state=best.decision_state,
        alpha=snapshot.alpha,
        source=(f"snapshot of {snapshot.computed_at:%Y-%m-%d %H:%M}" if stored
                else "computed from the stored data (no snapshot yet)"),
    )


# --------------------------------------------------------------------------- knowledge base


def _learning(view: ExperimentView, predicted: dict[str, Any] | None,
              result: PrimaryResult | None) -> Learning:
    source = predicted if predicted is not None else {f: getattr(view, f) for f in RICE_FIELDS}
    return Learning(
        id=view.id, name=view.name, owner=view.owner, hypothesis=view.hypothesis,
        learnings=view.learnings, decision=view.decision, tags=tuple(view.tags),
        ended=view.actual_end, impact=source.get("impact"), confidence=source.get("confidence"),
        result=result,
    )


def completed_experiments(
    session: Session,
    *,
    search: str | None = None,
    owner: str | None = None,
    tag: str | None = None,
) -> list[Learning]:
    """Completed experiments, most recently completed first.

    ``search`` keeps those matching any significant word of it in their name, hypothesis,
    learnings or metric names, most relevant first (:func:`db.search_repository.
    search_experiments`: PostgreSQL full-text search, SQLite FTS5), so a question such as "what
    did we learn about checkout" finds the checkout experiments.
    """
    ranked: dict[int, float] | None = None
    if search is not None and search.strip():
        hits = search_repo.search_experiments(session, query=search, status="completed")
        ranked = {hit.experiment_id: hit.rank for hit in hits}
    predicted = state.rice_at_promotion(session)
    out = []
    for view in all_experiments(session, status="completed"):
        if owner and view.owner.lower() != owner.strip().lower():
            continue
        if tag and tag.strip().lower() not in {t.lower() for t in view.tags}:
            continue
        if ranked is not None and view.id not in ranked:
            continue
        out.append(_learning(view, predicted.get(view.id),
                             primary_result(session, experiment_id=view.id)))
    out.sort(key=lambda e: (e.ended or date.min, e.id), reverse=True)
    if ranked is not None:
        out.sort(key=lambda e: -ranked[e.id])  # stable: equal ranks stay newest first
    return out


# --------------------------------------------------------------------------- win rates


@dataclass(frozen=True)
class WinRate:
    group: str
    completed: int
    shipped: int

    @property
    def rate(self) -> float:
        return self.shipped / self.completed if self.completed else math.nan


def _groups(item: Learning, by: str) -> Iterable[str]:
    if by == "owner":
        return [item.owner]
    if by == "tag":
        return item.tags or ("(untagged)",)
    return [item.quarter]


def _check_grouping(by: str, allowed: tuple[str, ...]) -> None:
    if by not in allowed:
        raise InvalidInput(f"by: group by {' or '.join(allowed)} (got '{by}')")


def win_rates(session: Session, *, by: str = "owner",
              items: list[Learning] | None = None) -> list[WinRate]:
    """Share of completed experiments shipped, per owner, tag or quarter (sorted by group).

    An experiment with several tags counts once in each of its tags.
    """
    _check_grouping(by, GROUPINGS)
    items = completed_experiments(session) if items is None else items
    counts: dict[str, list[int]] = {}
    for item in items:
        for group in _groups(item, by):
            acc = counts.setdefault(group, [0, 0])
            acc[0] += 1
            acc[1] += int(item.won)
    return [WinRate(g, c, s) for g, (c, s) in sorted(counts.items(), key=lambda kv: kv[0])]


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class CalibrationPoint:
    """One completed experiment: predicted Impact/Confidence against what happened."""

    id: int
    name: str
    owner: str
    tags: tuple[str, ...]
    impact: float
    confidence: float
    decision: str | None
    won: bool
    lift: float | None
    p_value: float | None
    significant: bool | None
    significant_win: bool | None


@dataclass(frozen=True)
class CalibrationGroup:
    """How one owner's (or tag's) predictions held up."""

    group: str
    experiments: int
    mean_confidence: float
    """Mean predicted confidence, as a fraction (0.8 = 80 %)."""
    win_rate: float
    """Share shipped; compare with mean_confidence (above it = under-confident)."""
    high_confidence: int
    high_confidence_won: int
    with_result: int
    significant_wins: int
    mean_lift: float | None
    """Mean realised relative lift over the experiments with a result."""

    @property
    def high_confidence_win_share(self) -> float:
        return self.high_confidence_won / self.high_confidence if self.high_confidence else math.nan

    @property
    def overconfidence(self) -> float:
        """Mean predicted confidence minus win rate: > 0 means predictions were too rosy."""
        return self.mean_confidence - self.win_rate


@dataclass(frozen=True)
class Calibration:
    points: list[CalibrationPoint]
    groups: list[CalibrationGroup]
    overall: CalibrationGroup | None
    unscored: int
    """Completed experiments left out because Impact or Confidence was never given."""


def _group(name: str, points: list[CalibrationPoint]) -> CalibrationGroup:
    high = [p for p in points if p.confidence >= HIGH_CONFIDENCE]
    with_result = [p for p in points if p.lift is not None]
    return CalibrationGroup(
        group=name,
        experiments=len(points),
        mean_confidence=sum(p.confidence for p in points) / len(points) / 100.0,
        win_rate=sum(p.won for p in points) / len(points),
        high_confidence=len(high),
        high_confidence_won=sum(p.won for p in high),
        with_result=len(with_result),
        significant_wins=sum(bool(p.significant_win) for p in with_result),
        mean_lift=(sum(p.lift for p in with_result if p.lift is not None) / len(with_result)
                   if with_result else None),
    )


def calibration(session: Session, *, by: str = "owner",
                items: list[Learning] | None = None) -> Calibration:
    """RICE calibration of completed experiments, overall and per owner or tag."""
    _check_grouping(by, CALIBRATION_GROUPINGS)
    items = completed_experiments(session) if items is None else items
    points: list[CalibrationPoint] = []
    unscored = 0
    for item in items:
        if item.impact is None or item.confidence is None:
            unscored += 1
            continue
        r = item.result
        points.append(CalibrationPoint(
            id=item.id, name=item.name, owner=item.owner, tags=item.tags,
            impact=float(item.impact), confidence=float(item.confidence),
            decision=item.decision, won=item.won,
            lift=r.lift if r else None, p_value=r.p_value if r else None,
            significant=r.significant if r else None,
            significant_win=r.significant_win if r else None,
        ))
    by_group: dict[str, list[CalibrationPoint]] = {}
    for p in points:
        keys = [p.owner] if by == "owner" else list(p.tags or ("(untagged)",))
        for key in keys:
            by_group.setdefault(key, []).append(p)
    return Calibration(
        points=points,
        groups=[_group(g, ps) for g, ps in sorted(by_group.items())],
        overall=_group("all", points) if points else None,
        unscored=unscored,
    )
