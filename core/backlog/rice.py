"""The backlog: RICE-scored ideas, ranked, edited, checked for testability, promoted or archived.

An *idea* is an experiment in ``proposed`` that is neither archived nor promoted. It carries
the four RICE inputs (Intercom's RICE, all four stored with the full score on the experiment):

* Reach - units affected per quarter (>= 0),
* Impact - 3 (massive), 2 (high), 1 (medium), 0.5 (low) or 0.25 (minimal),
* Confidence - percent, 0 to 100,
* Effort - person-weeks, > 0,

and score = Reach x Impact x (Confidence / 100) / Effort (:func:`core.registry.rice_score`).

*Promoting* an idea takes it out of the backlog into the registry as a proposed experiment
ready for planning: it stays ``proposed`` (the lifecycle has no other pre-launch status), and
the promotion sets ``promoted_at`` and keeps the RICE inputs as they stood at prioritisation in
``promoted_rice`` (the knowledge base calibrates against them), and is audited as ``promote``.
An idea is promoted when ``promoted_at`` is set; promotion needs a hypothesis and a primary
metric, because the Planner needs them.

*Archiving* sets ``archived_at`` and is audited as ``archive``; ``restore_idea`` undoes it.

Reach is prefilled from observed traffic: the assignment counts of experiments that targeted
the same segment (case-insensitive). The testability check sizes the idea's MDE (relative, on
its primary metric's observed control baseline, at the idea's alpha, power, test direction and
traffic split) with the Planner's own service (:func:`core.planning.plan_sample_size`, at the
segment's observed daily traffic), and flags the idea when that plan needs more than
``backlog_testable_weeks`` weeks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from core import format as fmt
from core import planning
from core.auth import Actor
from core.config import get_settings
from core.errors import InvalidInput, RuleViolation
from core.registry.fields import RICE_IMPACTS, ExperimentView, rice_score
from core.registry.lifecycle import check_version, create_experiment, update_experiment
from core.registry.listing import all_experiments, get_experiment, load_experiment
from core.stats import EMPTY_STATS, MetricStats
from core.transactions import transaction
from db import metric_repository as mrepo
from db import repositories as repo
from db import state_repository as state
from db.models import Experiment

RICE_FIELDS: tuple[str, ...] = ("reach", "impact", "confidence", "effort")
IMPACT_LABELS: dict[float, str] = {
    3.0: "massive",
    2.0: "high",
    1.0: "medium",
    0.5: "low",
    0.25: "minimal",
}
QUARTER_DAYS = 91
"""Days in a quarter (13 weeks): observed daily traffic x 91 = reach per quarter."""
HIGH_CONFIDENCE = 80.0
"""Confidence (percent) at and above which an idea counts as high-confidence."""


# --------------------------------------------------------------------------- scoring


def rice_problems(
    *,
    reach: Any = None,
    impact: Any = None,
    confidence: Any = None,
    effort: Any = None,
    required: bool = False,
) -> list[str]:
    """What is wrong with these RICE inputs (empty when they are valid).

    ``None`` means "not given"; it is a problem only when ``required``.
    """
    problems: list[str] = []
    values = {"reach": reach, "impact": impact, "confidence": confidence, "effort": effort}
    hints = {
        "reach": "units affected per quarter, a number ≥ 0",
        "impact": "3 (massive), 2 (high), 1 (medium), 0.5 (low) or 0.25 (minimal)",
        "confidence": "a percentage between 0 and 100",
        "effort": "person-weeks, a number > 0",
    }
    for name, value in values.items():
        if value is None:
            if required:
                problems.append(f"{name}: missing; give {hints[name]}")
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            problems.append(f"{name}: {value!r} is not a number; give {hints[name]}")
            continue
        number = float(value)
        if not math.isfinite(number):
            problems.append(f"{name}: give {hints[name]} (got {value!r})")
        elif name == "reach" and number < 0:
            problems.append(f"reach: cannot be negative (got {value:g}); give {hints['reach']}")
        elif name == "impact" and number not in RICE_IMPACTS:
            problems.append(f"impact: {value:g} is not on the RICE scale; use {hints['impact']}")
        elif name == "confidence" and not 0 <= number <= 100:
            problems.append(f"confidence: {value:g} is outside 0–100; give {hints['confidence']}")
        elif name == "effort" and number <= 0:
            problems.append(f"effort: must be more than 0 person-weeks (got {value:g})")
    return problems


def score(reach: float, impact: float, confidence: float, effort: float) -> float:
    """RICE score = Reach × Impact × (Confidence / 100) / Effort, after validating the inputs.

    Args:
        reach: units affected per quarter, >= 0.
        impact: 3, 2, 1, 0.5 or 0.25.
        confidence: percent in [0, 100].
        effort: person-weeks, > 0.

    Raises:
        InvalidInput: listing every input that is out of range.
    """
    problems = rice_problems(
        reach=reach, impact=impact, confidence=confidence, effort=effort, required=True
    )
    if problems:
        raise InvalidInput(problems)
    value = rice_score(float(reach), float(impact), float(confidence), float(effort))
    assert value is not None
    return value


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class Traffic:
    """Observed traffic of a target segment, from the assignment counts of its experiments."""

    segment: str
    daily_units: float
    days: int
    experiments: tuple[str, ...]

    @property
    def reach_per_quarter(self) -> float:
        return self.daily_units * QUARTER_DAYS


@dataclass(frozen=True)
class Baseline:
    """A metric's observed control-arm baseline (pooled over the experiments that measured it)."""

    metric: str
    kind: str
    n: int
    mean: float
    sd: float
    segment: str | None
    """The segment it was observed in; None when pooled over every segment."""


def _segment_key(segment: str | None) -> str:
    return " ".join((segment or "").split()).lower()


def observed_traffic(session: Session) -> dict[str, Traffic]:
    """Observed daily traffic per target segment (keyed by the normalised segment name).

    Each experiment's daily traffic is its assigned units (every variant) over its days with
    data; a segment's is the largest of its experiments', since an experiment enrols at most
    its whole segment (a smaller one may have enrolled only part of it).
    """
    rows = mrepo.assigned_units_per_experiment(session)
    best: dict[str, tuple[float, int, str]] = {}
    names: dict[str, list[str]] = {}
    for name, segment, units, days in rows:
        key = _segment_key(segment)
        if not key or not days or not units:
            continue
        daily = float(units) / int(days)
        names.setdefault(key, []).append(name)
        if key not in best or daily > best[key][0]:
            best[key] = (daily, int(days), segment.strip())
    return {
        key: Traffic(segment=seg, daily_units=daily, days=days,
                     experiments=tuple(sorted(names[key])))
        for key, (daily, days, seg) in best.items()
    }


def observed_baselines(session: Session) -> dict[tuple[str, str | None], Baseline]:
    """Control-arm baselines keyed by (metric, segment key) and by (metric, None) for all."""
    rows = mrepo.control_stats_per_metric_and_segment(session)
    pooled: dict[tuple[str, str | None], MetricStats] = {}
    kinds: dict[str, str] = {}
    labels: dict[tuple[str, str | None], str | None] = {}
    for metric, kind, segment, stats in rows:
        kinds[metric] = kind
        keys: tuple[tuple[str, str | None], ...] = ((metric, _segment_key(segment)), (metric, None))
        for key in keys:
            pooled[key] = pooled.get(key, EMPTY_STATS) + stats
            labels[key] = segment.strip() if key[1] is not None else None
    out: dict[tuple[str, str | None], Baseline] = {}
    for key, total in pooled.items():
        if total.n < 2:
            continue
        arm = total.sufficient
        out[key] = Baseline(metric=key[0], kind=kinds[key[0]], n=arm.n, mean=arm.mean,
                            sd=arm.sd, segment=labels[key])
    return out


# --------------------------------------------------------------------------- testability


@dataclass(frozen=True)
class Testability:
    """Whether an idea's MDE can be detected within the configured number of weeks.

    ``testable`` is None when it cannot be judged (the message says what is missing).
    """

    testable: bool | None
    message: str
    n_per_variant: int | None = None
    daily_units: float | None = None
    days_needed: int | None = None
    limit_days: int | None = None
    baseline: float | None = None


def assess_testability(
    idea: ExperimentView,
    *,
    traffic: Mapping[str, Traffic],
    baselines: Mapping[tuple[str, str | None], Baseline],
    testable_weeks: int,
) -> Testability:
    """Size the idea's relative MDE with the Planner's service at its segment's observed
    traffic, and compare the days with ``testable_weeks``."""
    limit_days = testable_weeks * 7
    missing = []
    if not idea.primary_metric:
        missing.append("a primary metric")
    if not idea.mde:
        missing.append("an MDE")
    if not idea.target_segment.strip():
        missing.append("a target segment")
    if missing:
        return Testability(None, f"Cannot check testability: the idea needs {', '.join(missing)}.")
    assert idea.primary_metric is not None and idea.mde is not None
    seg = _segment_key(idea.target_segment)
    seen = traffic.get(seg)
    if seen is None:
        return Testability(
            None, f"Cannot check testability: no observed traffic for the segment "
            f"'{idea.target_segment}' yet (no experiment on it has assignment data).",
        )
    base = baselines.get((idea.primary_metric, seg)) or baselines.get((idea.primary_metric, None))
    if base is None:
        return Testability(
            None, f"Cannot check testability: no observed baseline for {idea.primary_metric} yet.",
            daily_units=seen.daily_units,
        )
    weights = tuple(v.weight for v in idea.variants) if len(idea.variants) >= 2 else (0.5, 0.5)
    where = f"in '{base.segment}'" if base.segment else "across all segments"
    try:
        plan = planning.plan_sample_size(planning.make_inputs(
            kind=base.kind, baseline=base.mean, sd=base.sd if base.kind == "mean" else None,
            mde=idea.mde, relative=True, alpha=idea.alpha, power=idea.power,
            alternative=idea.alternative, weights=weights, daily_traffic=seen.daily_units,
        ), max_days=None)
    except InvalidInput as exc:
        return Testability(None, f"Cannot check testability: {'; '.join(exc.problems)}.",
                           daily_units=seen.daily_units, baseline=base.mean)
    assert plan.days is not None  # sized at the segment's traffic
    days = plan.days
    shown = (fmt.percent(base.mean, 2) if base.kind == "binomial"
             else f"{base.mean:,.4g} (sd {base.sd:,.4g})")
    sided = "" if idea.alternative == "two-sided" else ", one-sided"
    numbers = (
        f"a {fmt.percent(idea.mde)} relative MDE on {idea.primary_metric} "
        f"(baseline {shown} {where}) "
        f"needs {plan.n_per_variant:,} units per variant ({plan.total:,} in all, "
        f"α {idea.alpha:g}{sided}, power {idea.power:g}); '{seen.segment}' brings about "
        f"{fmt.count(seen.daily_units)} units a day, "
        f"so that takes {days:,} days ({days / 7:.1f} weeks) against a limit of "
        f"{testable_weeks} weeks"
    )
    if days > limit_days:
        message = f"Not testable as specified: {numbers}. Raise the MDE or widen the segment."
    else:
        message = f"Testable: {numbers}."
    return Testability(
        testable=days <= limit_days, message=message, n_per_variant=plan.n_per_variant,
        daily_units=seen.daily_units, days_needed=days, limit_days=limit_days,
        baseline=base.mean,
    )


# --------------------------------------------------------------------------- reads


@dataclass(frozen=True)
class Idea:
    """A backlog idea with its rank (1 = highest score; unscored ideas last)."""

    rank: int
    experiment: ExperimentView
    testability: Testability
    observed_reach: float | None
    """Reach per quarter implied by the segment's observed traffic, if any was observed."""

    @property
    def id(self) -> int:
        return self.experiment.id

    @property
    def score(self) -> float | None:
        return self.experiment.rice_score


def _rank_key(view: ExperimentView) -> tuple[int, float, str, int]:
    scored = view.rice_score is not None
    return (0 if scored else 1, -(view.rice_score or 0.0), view.name.lower(), view.id)


def rank_ideas(
    session: Session,
    *,
    owner: str | None = None,
    tag: str | None = None,
    segment: str | None = None,
    testable_weeks: int | None = None,
) -> list[Idea]:
    """Backlog ideas, best RICE score first (ties by name); unscored ideas come last.

    Ranks are over the whole backlog; the filters (owner, tag, segment; case-insensitive)
    only choose which ranked ideas are returned.
    """
    weeks = testable_weeks or get_settings().backlog_testable_weeks
    promoted = state.promoted_experiment_ids(session)
    ideas = [
        v for v in all_experiments(session, status="proposed")
        if v.archived_at is None and v.id not in promoted
    ]
    ideas.sort(key=_rank_key)
    traffic = observed_traffic(session)
    baselines = observed_baselines(session)
    out = []
    for rank, view in enumerate(ideas, start=1):
        if owner and view.owner.lower() != owner.strip().lower():
            continue
        if tag and tag.strip().lower() not in {t.lower() for t in view.tags}:
            continue
        if segment and _segment_key(view.target_segment) != _segment_key(segment):
            continue
        seen = traffic.get(_segment_key(view.target_segment))
        out.append(Idea(
            rank=rank, experiment=view,
            testability=assess_testability(
                view, traffic=traffic, baselines=baselines, testable_weeks=weeks),
            observed_reach=seen.reach_per_quarter if seen else None,
        ))
    return out


def promoted_experiments(session: Session) -> list[ExperimentView]:
    """Promoted ideas still waiting for launch (proposed, not archived), newest first."""
    promoted = state.promoted_experiment_ids(session)
    return sorted(
        (v for v in all_experiments(session, status="proposed")
         if v.id in promoted and v.archived_at is None),
        key=lambda v: v.id, reverse=True,
    )


def archived_ideas(session: Session) -> list[ExperimentView]:
    return [v for v in all_experiments(session, status="proposed") if v.archived_at]


@dataclass(frozen=True)
class NotAnIdea:
    """Why an experiment is not among the backlog's ideas, and the words a page shows."""

    experiment_id: int
    name: str
    why: Literal["launched", "archived", "promoted"]
    message: str


def not_an_idea(session: Session, *, experiment_id: int) -> NotAnIdea | None:
    """Why an experiment is not among the backlog's ideas (launched, archived, promoted), for a
    page to say in its place; None when it is an idea. NotFound without it."""
    view = get_experiment(session, experiment_id=experiment_id)
    if view.status != "proposed":
        return NotAnIdea(view.id, view.name, "launched", (
            f"'{view.name}' is {view.status}: it is an experiment in the registry, no longer a "
            "backlog idea."))
    if view.archived_at is not None:
        return NotAnIdea(view.id, view.name, "archived", (
            f"'{view.name}' is archived: restore it under “Archived ideas” below, or open "
            "another idea."))
    if view.id in state.promoted_experiment_ids(session):
        return NotAnIdea(view.id, view.name, "promoted", (
            f"'{view.name}' was promoted: it is a proposed experiment now, ready for planning. "
            "Size it in the Planner, then launch it from the Registry."))
    return None


def filter_choices(session: Session) -> tuple[list[str], list[str], list[str]]:
    """Owners, tags and target segments present in the backlog, for filter widgets."""
    ideas = [i.experiment for i in rank_ideas(session)]
    owners = sorted({v.owner for v in ideas}, key=str.lower)
    tags = sorted({t for v in ideas for t in v.tags}, key=str.lower)
    segments = sorted({v.target_segment for v in ideas if v.target_segment}, key=str.lower)
    return owners, tags, segments


# --------------------------------------------------------------------------- writes


def _require_idea(session: Session, exp: Experiment, doing: str) -> None:
    if exp.status != "proposed":
        raise RuleViolation(
            f"'{exp.name}' is {exp.status}, not a backlog idea: only proposed experiments "
            f"can be {doing}."
        )
    if exp.archived_at is not None:
        raise RuleViolation(f"'{exp.name}' is archived: restore it before it can be {doing}.")
    if exp.promoted_at is not None:
        raise RuleViolation(
            f"'{exp.name}' was already promoted to the registry: it is no longer a backlog idea."
        )


def _clean_changes(changes: Mapping[str, Any]) -> dict[str, float]:
    unknown = sorted(set(changes) - set(RICE_FIELDS))
    if unknown:
        raise InvalidInput(
            "only reach, impact, confidence and effort can be edited here "
            f"(got {', '.join(unknown)})"
        )
    if not changes:
        raise InvalidInput("nothing to change: give reach, impact, confidence or effort")
    problems = rice_problems(
        **{name: changes[name] for name in RICE_FIELDS if name in changes}
    )
    missing = [n for n in RICE_FIELDS if n in changes and changes[n] is None]
    problems += [f"{n}: a value is needed (it cannot be cleared)" for n in missing]
    if problems:
        raise InvalidInput(problems)
    return {k: float(v) for k, v in changes.items()}


def edit_rice(
    session: Session,
    *,
    experiment_id: int,
    changes: Mapping[str, Any],
    expected_version: int,
    actor: Actor,
) -> ExperimentView:
    """Change some of an idea's R/I/C/E; the score is recomputed and the change audited
    (through :func:`core.registry.update_experiment`, so it is versioned like any edit)."""
    actor.require("editor", "edit backlog scores")
    clean = _clean_changes(changes)
    exp = load_experiment(session, experiment_id=experiment_id)
    _require_idea(session, exp, "re-scored")
    return update_experiment(
        session, experiment_id=experiment_id, changes=clean,
        expected_version=expected_version, actor=actor,
    )


@dataclass(frozen=True)
class RiceEdit:
    experiment_id: int
    expected_version: int
    changes: Mapping[str, Any]


def edit_many(session: Session, *, edits: list[RiceEdit], actor: Actor) -> list[ExperimentView]:
    """Apply several idea edits (e.g. a table's), validating every one before writing any.

    Input errors and stale versions are found before the first write, so bad input writes
    nothing; each idea's edit is then its own audited update.
    """
    actor.require("editor", "edit backlog scores")
    problems: list[str] = []
    cleaned: list[tuple[RiceEdit, dict[str, float]]] = []
    for edit in edits:
        exp = load_experiment(session, experiment_id=edit.experiment_id)
        try:
            cleaned.append((edit, _clean_changes(edit.changes)))
            _require_idea(session, exp, "re-scored")
        except (InvalidInput, RuleViolation) as exc:
            problems += [f"{exp.name}: {p}" for p in exc.problems]
            continue
        if exp.version != edit.expected_version:
            problems.append(
                f"{exp.name}: changed by someone else (you edited version "
                f"{edit.expected_version}, it is now {exp.version}); reload and edit again"
            )
    if problems:
        raise InvalidInput(problems)
    return [
        update_experiment(
            session, experiment_id=edit.experiment_id, changes=clean,
            expected_version=edit.expected_version, actor=actor,
        )
        for edit, clean in cleaned
    ]


def apply_observed_reach(
    session: Session, *, experiment_id: int, expected_version: int, actor: Actor
) -> ExperimentView:
    """Set an idea's Reach to its segment's observed traffic per quarter (audited edit)."""
    actor.require("editor", "edit backlog scores")
    exp = load_experiment(session, experiment_id=experiment_id)
    seen = observed_traffic(session).get(_segment_key(exp.target_segment))
    if seen is None:
        raise RuleViolation(
            f"No observed traffic for '{exp.target_segment or '(no segment)'}' yet: no "
            f"experiment on that segment has assignment data, so enter Reach by hand."
        )
    return edit_rice(
        session, experiment_id=experiment_id, changes={"reach": round(seen.reach_per_quarter)},
        expected_version=expected_version, actor=actor,
    )


def _touch(exp: Experiment, expected_version: int) -> None:
    """Bump the version and timestamp so a concurrent write on the same version fails."""
    exp.updated_at = datetime.now(UTC)
    exp.version = expected_version + 1


def add_idea(session: Session, *, data: Mapping[str, Any], actor: Actor) -> ExperimentView:
    """A new backlog idea: a proposed experiment with its four RICE inputs (all required, on
    the RICE scale), scored and ranked at once; created through
    :func:`core.registry.create_experiment` (audited `create`). The rest (name, owner,
    hypothesis, segment, primary metric, tags) is validated as any experiment's."""
    actor.require("editor", "add backlog ideas")
    problems = rice_problems(**{name: data.get(name) for name in RICE_FIELDS}, required=True)
    if problems:
        raise InvalidInput(problems)
    return create_experiment(session, data=dict(data), actor=actor)


def promote_idea(
    session: Session, *, experiment_id: int, expected_version: int, actor: Actor
) -> ExperimentView:
    """Promote a backlog idea to a proposed experiment ready for planning: sets promoted_at
    and promoted_rice (audited `promote`)."""
    actor.require("editor", "promote backlog ideas")
    with transaction(session):
        exp = load_experiment(session, experiment_id=experiment_id)
        check_version(exp, expected_version)
        _require_idea(session, exp, "promoted")
        missing = []
        if not exp.hypothesis.strip():
            missing.append("a hypothesis")
        if exp.primary_metric_id is None:
            missing.append("a primary metric")
        if missing:
            raise RuleViolation(
                f"'{exp.name}' needs {' and '.join(missing)} before it can be promoted "
                f"(the Planner sizes the experiment on its primary metric)."
            )
        predicted = {name: getattr(exp, name) for name in (*RICE_FIELDS, "rice_score")}
        exp.promoted_at = datetime.now(UTC)
        exp.promoted_rice = predicted
        _touch(exp, expected_version)
        session.flush()
        repo.add_audit(
            session, actor=actor.name, entity_type="experiment", entity_id=exp.id,
            action="promote",
            changes={"stage": ["backlog idea", "proposed experiment"],
                     "rice_at_promotion": [None, predicted]},
        )
    return get_experiment(session, experiment_id=experiment_id)


def archive_idea(
    session: Session,
    *,
    experiment_id: int,
    expected_version: int,
    actor: Actor,
    reason: str | None = None,
) -> ExperimentView:
    """Archive a backlog idea (sets archived_at; audited `archive`)."""
    actor.require("editor", "archive backlog ideas")
    with transaction(session):
        exp = load_experiment(session, experiment_id=experiment_id)
        check_version(exp, expected_version)
        _require_idea(session, exp, "archived")
        now = datetime.now(UTC)
        exp.archived_at = now
        _touch(exp, expected_version)
        session.flush()
        repo.add_audit(
            session, actor=actor.name, entity_type="experiment", entity_id=exp.id,
            action="archive", changes={"archived_at": [None, now.isoformat()]},
            reason=reason.strip() if reason and reason.strip() else None,
        )
    return get_experiment(session, experiment_id=experiment_id)


def restore_idea(
    session: Session, *, experiment_id: int, expected_version: int, actor: Actor
) -> ExperimentView:
    """Bring an archived idea back into the backlog (audited `restore`)."""
    actor.require("editor", "restore backlog ideas")
    with transaction(session):
        exp = load_experiment(session, experiment_id=experiment_id)
        check_version(exp, expected_version)
        if exp.archived_at is None:
            raise RuleViolation(f"'{exp.name}' is not archived.")
        before = exp.archived_at.isoformat()
        exp.archived_at = None
        _touch(exp, expected_version)
        session.flush()
        repo.add_audit(
            session, actor=actor.name, entity_type="experiment", entity_id=exp.id,
            action="restore", changes={"archived_at": [before, None]},
        )
    return get_experiment(session, experiment_id=experiment_id)
