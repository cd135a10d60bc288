"""Institutional memory: what completed experiments taught, and how well their RICE held up.

* The knowledge base lists completed experiments with their decision, learnings, tags and the
  result of their primary metric; a full-text search finds those matching any significant word
  of the query in name, hypothesis, learnings or metric names, most relevant first.
* Win rate = share of completed experiments whose decision is ``ship``, by owner, tag or
  quarter of completion.
* RICE calibration compares the Impact and Confidence predicted at prioritisation (as recorded
  when the idea was promoted, else the experiment's current inputs) with the realised lift of
  the primary metric and its significance; the realised lift it averages is the shrunk one
  (below), with the raw one beside it.
* Programme impact without the winner's curse: every completed experiment's primary-metric lift
  is shrunk by normal-normal empirical Bayes across the whole portfolio
  (:func:`core.stats.shrinkage.shrink_estimates`, tau^2 by DerSimonian–Laird), and the shipped
  experiments' lifts are summed raw and shrunk. The prior is estimated from ALL completed
  experiments with a result (shipped or not), never from the winners alone: shrinking corrects
  the selection only when the population was not selected. Lifts are pooled in each metric's
  good direction (a fall of a lower-is-better metric counts as an improvement) and turned back
  to the metric's own sign for display.

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
from statistics import NormalDist
from typing import Any

from sqlalchemy.orm import Session

from core import format as fmt
from core.analysis import results
from core.analysis.snapshot import MetricComparison
from core.backlog.rice import HIGH_CONFIDENCE, RICE_FIELDS
from core.errors import InvalidInput
from core.registry.fields import ExperimentView
from core.registry.listing import all_experiments
from core.stats.shrinkage import (
    EmpiricalBayesShrinkage,
    ShrunkTotal,
    shrink_estimates,
    shrunk_total,
)
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
    lift_se: float | None = None
    """Standard error of the lift (delta method; :func:`lift_standard_error`); None when the
    stored result does not give it."""

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


def lift_standard_error(comparison: MetricComparison, *, alpha: float) -> float | None:
    """The delta-method standard error of a stored comparison's relative lift, or None.

    Read from its Bayesian readout, which the results compute from exactly that SE: with the
    flat prior the posterior SD is the SE; with a Gaussian prior of SD p the posterior
    precision is 1/SE^2 + 1/p^2, solved for SE. Without a readout (snapshots older than it),
    a two-sided fixed-horizon lift interval at ``alpha`` (the snapshot's) gives
    SE = width / (2 z_{1-alpha/2}) (Fieller's
    interval is nearly symmetric when the control mean is well measured); a one-sided or
    sequential interval gives none.
    """
    b = comparison.bayesian
    if b is not None and b.posterior_sd > 0 and math.isfinite(b.posterior_sd):
        if b.prior == "flat" or b.prior_sd is None:
            return float(b.posterior_sd)
        precision = 1.0 / b.posterior_sd ** 2 - 1.0 / b.prior_sd ** 2
        return 1.0 / math.sqrt(precision) if precision > 0 else None
    lo, hi = comparison.lift_ci_low, comparison.lift_ci_high
    if (comparison.sequential or comparison.alternative != "two-sided" or lo is None
            or hi is None or not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo):
        return None
    return (hi - lo) / (2.0 * NormalDist().inv_cdf(1 - alpha / 2))


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
        lift_se=lift_standard_error(best, alpha=snapshot.alpha),
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


# --------------------------------------------------------------------------- programme impact

SHRUNK_LABEL = "shrunk (empirical Bayes)"


@dataclass(frozen=True)
class ShrunkLift:
    """One completed experiment's primary-metric lift, raw and shrunk across the portfolio."""

    experiment_id: int
    lift: float
    lift_se: float
    shrunk_lift: float
    """Posterior mean of the lift, in the metric's own sign (as ``lift``)."""
    shrunk_sd: float
    weight: float
    """Weight on the experiment's own estimate (1: not shrunk, 0: all the portfolio's mean)."""


@dataclass(frozen=True)
class ProgrammeImpact:
    """The shipped experiments' summed primary-metric improvement, raw and shrunk.

    Improvements are lifts in the metric's good direction (module docstring); the shrinkage is
    estimated over every completed experiment with a lift and its standard error.
    """

    shrinkage: EmpiricalBayesShrinkage
    """Over the population, on the improvement scale."""
    lifts: tuple[ShrunkLift, ...]
    shipped: ShrunkTotal
    """Sum and mean over the shipped experiments (decision ``ship``) with a result."""
    without_result: int
    """Completed experiments left out: no primary-metric lift or no standard error."""

    @property
    def method(self) -> str:
        return f"{SHRUNK_LABEL}: {self.shrinkage.method_name}"

    @property
    def population(self) -> int:
        return self.shrinkage.k

    def lift_of(self, experiment_id: int) -> ShrunkLift | None:
        return next((x for x in self.lifts if x.experiment_id == experiment_id), None)

    @property
    def summary(self) -> str:
        """The method and its estimates in one sentence, for a caption or a report."""
        s = self.shrinkage
        if not s.applied:
            return f"{s.reason}."
        return (
            f"Shrunk lift ({s.method_name}): each completed experiment's "
            f"primary-metric lift is pulled toward the portfolio mean "
            f"{fmt.signed_percent(s.prior_mean)} with weight τ²/(τ²+SE²), τ = "
            f"{fmt.percent(s.tau, 2)} being the spread of true lifts between experiments, "
            f"estimated over all {s.k} completed experiments with a result, shipped or not; "
            f"for the shipped winners this corrects the winner's curse of their raw figures."
        )


def programme_impact(session: Session, *, items: list[Learning] | None = None
                     ) -> ProgrammeImpact:
    """Shrink every completed experiment's primary-metric lift across the portfolio and sum the
    shipped ones, raw and shrunk (module docstring).

    ``items`` must be the whole population (by default every completed experiment), not a
    search's or a filter's selection: the prior is estimated from what is given.
    """
    items = completed_experiments(session) if items is None else items
    used = [(i, i.result) for i in items
            if i.result is not None and i.result.lift_se is not None and i.result.lift_se > 0]
    signs = [1.0 if r.higher_is_better else -1.0 for _, r in used]
    shrinkage = shrink_estimates([sign * r.lift for sign, (_, r) in zip(signs, used, strict=True)],
                                 [r.lift_se for _, r in used if r.lift_se is not None])
    lifts = tuple(
        ShrunkLift(experiment_id=item.id, lift=r.lift, lift_se=float(r.lift_se or 0.0),
                   shrunk_lift=sign * shrinkage.shrunk[n], shrunk_sd=shrinkage.posterior_sd[n],
                   weight=shrinkage.weights[n])
        for n, (sign, (item, r)) in enumerate(zip(signs, used, strict=True))
    )
    return ProgrammeImpact(
        shrinkage=shrinkage, lifts=lifts,
        shipped=shrunk_total(shrinkage, [item.won for item, _ in used]),
        without_result=len(items) - len(used),
    )


@dataclass(frozen=True)
class KnowledgeBase:
    """The completed experiments a search found, with the portfolio's programme impact."""

    experiments: list[Learning]
    """Those matching the search and filters (:func:`completed_experiments`)."""
    everything: list[Learning]
    """Every completed experiment: the population the shrinkage is estimated from."""
    impact: ProgrammeImpact


def knowledge_base(
    session: Session,
    *,
    search: str | None = None,
    owner: str | None = None,
    tag: str | None = None,
) -> KnowledgeBase:
    """The knowledge base as the page, the API and the CSV show it: the matching completed
    experiments, and the programme impact shrunk over every completed one (whatever matched)."""
    everything = completed_experiments(session)
    filtered = bool((search and search.strip()) or owner or tag)
    found = (completed_experiments(session, search=search, owner=owner, tag=tag) if filtered
             else everything)
    return KnowledgeBase(found, everything, programme_impact(session, items=everything))


KNOWLEDGE_CSV_COLUMNS = (
    "id", "name", "owner", "completed", "decision", "primary_metric", "treatment", "lift",
    "lift_se", "lift_shrunk", "lift_shrunk_sd", "shrinkage_weight", "p_value", "significant",
    "result_state", "tags", "learnings",
)


def knowledge_csv(items: list[Learning], impact: ProgrammeImpact) -> str:
    """The knowledge base as CSV: each experiment's raw lift beside its shrunk one
    (``lift_shrunk``, :func:`programme_impact`; empty when it has no result)."""
    lines: list[list[object]] = []
    for e in items:
        r, x = e.result, impact.lift_of(e.id)
        lines.append([
            e.id, e.name, e.owner, e.ended.isoformat() if e.ended else "", e.decision or "",
            r.metric if r else "", r.treatment if r else "",
            fmt.csv_number(r.lift if r else None), fmt.csv_number(r.lift_se if r else None),
            fmt.csv_number(x.shrunk_lift if x else None),
            fmt.csv_number(x.shrunk_sd if x else None), fmt.csv_number(x.weight if x else None),
            fmt.csv_number(r.p_value if r else None),
            "" if r is None else str(r.significant).lower(),
            r.decision_state if r else "", ";".join(e.tags), e.learnings,
        ])
    return fmt.csv_text(KNOWLEDGE_CSV_COLUMNS, lines)


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
    shrunk_lift: float | None = None
    """The lift shrunk across the portfolio (:func:`programme_impact`); what calibration uses."""


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
    """Mean raw realised relative lift over the experiments with a result."""
    mean_shrunk_lift: float | None = None
    """Mean realised lift shrunk across the portfolio (empirical Bayes), over those with one."""

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
    impact: ProgrammeImpact | None = None
    """The shrinkage the points' ``shrunk_lift`` comes from."""


def _group(name: str, points: list[CalibrationPoint]) -> CalibrationGroup:
    high = [p for p in points if p.confidence >= HIGH_CONFIDENCE]
    with_result = [p for p in points if p.lift is not None]
    shrunk = [p.shrunk_lift for p in points if p.shrunk_lift is not None]
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
        mean_shrunk_lift=(sum(shrunk) / len(shrunk) if shrunk else None),
    )


def calibration(session: Session, *, by: str = "owner",
                items: list[Learning] | None = None,
                impact: ProgrammeImpact | None = None) -> Calibration:
    """RICE calibration of completed experiments, overall and per owner or tag.

    The realised lift is shrunk across the portfolio (``impact``, by default
    :func:`programme_impact` over ``items``, which must then be every completed experiment);
    the raw lift stays beside it.
    """
    _check_grouping(by, CALIBRATION_GROUPINGS)
    items = completed_experiments(session) if items is None else items
    impact = programme_impact(session, items=items) if impact is None else impact
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
            shrunk_lift=shrunk.shrunk_lift if (shrunk := impact.lift_of(item.id)) else None,
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
        impact=impact,
    )
