"""The experiment's lifecycle: create, update (versioned, plan deviations with a reason) and
move between statuses, each change audited in its transaction; the cross-field rules, the
launch checks and the version check."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from core.auth import Actor
from core.errors import Conflict, InvalidInput, RuleViolation
from core.registry.fields import (
    RICE_IMPACTS,
    ExperimentFields,
    ExperimentPatch,
    ExperimentView,
    has_visible_text,
    rice_score,
    validation_problems,
)
from core.registry.listing import get_experiment, load_experiment
from core.transactions import transaction
from core.types import Decision, Status
from db import repositories as repo
from db import warehouse_repository as warehouse
from db.models import Experiment, ExperimentMetric, ExperimentTag, Variant

FROZEN_FIELDS: tuple[str, ...] = (
    "hypothesis",
    "primary_metric",
    "guardrail_metrics",
    "variants",
    "planned_sample_size",
    "mde",
    "alpha",
    "power",
    "analysis_mode",
    "correction",
    "alternative",
    "guardrail_margins",
    "prior_lift_mean",
    "prior_lift_sd",
    "post_stratify_on",
    "assignment_source",
    "experiment_key",
    "capping",
)
"""The analysis plan: frozen when an experiment is launched (who was exposed, in the
warehouse, is part of it: the assignment source and the experiment's key there)."""
LOCKED_AT_LAUNCH: tuple[str, ...] = ("capping",)
"""Plan fields no reason can change after launch: the sums stored from the first load on were
computed under them."""

ALLOWED_MOVES: dict[str, tuple[str, ...]] = {
    "proposed": ("running", "abandoned"),
    "running": ("completed", "abandoned"),
    "completed": (),
    "abandoned": (),
}
EDITABLE_WHEN_CLOSED: tuple[str, ...] = ("owner", "learnings", "tags", "refresh_every_days")


def _check_rules(fields: ExperimentFields, session: Session) -> list[str]:
    """Cross-field rules that pydantic's per-field checks cannot express."""
    problems: list[str] = []
    if fields.variants:
        if len(fields.variants) < 2:
            problems.append("variants: an experiment needs at least two variants (control first)")
        names = [v.name.lower() for v in fields.variants]
        if len(set(names)) != len(names):
            problems.append("variants: variant names must be unique")
        total = sum(v.weight for v in fields.variants)
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            problems.append(f"variants: allocation weights must sum to 1 (they sum to {total:g})")
    if fields.planned_start and fields.planned_end and fields.planned_end < fields.planned_start:
        problems.append("planned_end: the end date is before the start date")
    if fields.impact is not None and fields.impact not in RICE_IMPACTS:
        problems.append("impact: use the RICE scale 3 (massive), 2, 1, 0.5 or 0.25 (minimal)")
    named = [fields.primary_metric] if fields.primary_metric else []
    named += fields.guardrail_metrics + fields.secondary_metrics
    known = repo.metric_ids_by_name(session, names=named)
    unknown = sorted({n for n in named if n not in known})
    if unknown:
        problems.append(
            "metrics: not in the catalogue: "
            + ", ".join(unknown)
            + " (add them to the metrics catalogue first)"
        )
    if fields.primary_metric and fields.primary_metric in fields.guardrail_metrics:
        problems.append("guardrail_metrics: the primary metric cannot also be a guardrail")
    strays = sorted(set(fields.guardrail_margins) - set(fields.guardrail_metrics))
    if strays:
        problems.append(
            f"guardrail_margins: {', '.join(strays)} "
            f"{'is not a guardrail' if len(strays) == 1 else 'are not guardrails'} of this "
            "experiment: add it to guardrail_metrics or remove its margin")
    if (fields.prior_lift_mean is None) != (fields.prior_lift_sd is None):
        problems.append(
            "prior_lift_sd: a Gaussian prior on the lift needs both prior_lift_mean and "
            "prior_lift_sd (e.g. 0 and 0.05); give neither for the flat prior")
    if (fields.assignment_source is None) != (fields.experiment_key is None):
        problems.append(
            "experiment_key: an experiment fed from the warehouse names its assignment_source "
            "and its experiment_key there (the value of the source's experiment_key column); "
            "give both, or neither")
    if fields.assignment_source is not None and warehouse.get_assignment_source(
            session, name=fields.assignment_source) is None:
        problems.append(
            f"assignment_source: there is no assignment source named "
            f"'{fields.assignment_source}' (define it first: python -m core.cli "
            "add-assignment-source, or the Data sources page)")
    problems += _capping_problems(fields, named, session)
    if fields.alternative != "two-sided" and fields.primary_metric in known:
        primary = repo.get_metric_by_name(session, name=fields.primary_metric or "")
        higher = primary is None or primary.higher_is_better
        wanted = "greater" if higher else "less"
        if fields.alternative != wanted:
            problems.append(
                f"alternative: '{fields.alternative}' tests for treatment "
                f"{'>' if fields.alternative == 'greater' else '<'} control, but "
                f"{fields.primary_metric} is {'higher' if higher else 'lower'}-is-better: a "
                f"one-sided test of the primary looks for an improvement; use '{wanted}' or "
                "'two-sided'")
    return problems


def _capping_problems(fields: ExperimentFields, named: list[str], session: Session) -> list[str]:
    """A cap belongs to a mean or ratio metric of this experiment."""
    problems = []
    for name in fields.capping:
        if name not in named:
            problems.append(
                f"capping: {name} is not a metric of this experiment: add it to the primary, "
                "guardrail or secondary metrics, or remove its cap")
            continue
        metric = repo.get_metric_by_name(session, name=name)
        if metric is not None and metric.kind == "binomial":
            problems.append(
                f"capping: {name} is a proportion (binomial) metric: each unit counts 0 or 1, "
                "so there is nothing to cap; remove its cap (only mean and ratio metrics are "
                "capped)")
        elif metric is not None and metric.kind not in ("mean", "ratio"):
            problems.append(
                f"capping: {name} is a {metric.kind} metric: only mean and ratio metrics are "
                "capped (a quantile is not moved by the values beyond it); remove its cap")
    return problems


def _fields_of(view: ExperimentView) -> dict[str, Any]:
    return view.model_dump(include=set(ExperimentFields.model_fields))


def _plain(value: Any) -> Any:
    """A JSON-safe form of a field value, for the audit log and the frozen plan."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return value.model_dump()
    return value


def _apply(session: Session, exp: Experiment, fields: ExperimentFields) -> None:
    """Write validated fields onto the ORM object (metrics, variants and tag rows included)."""
    with session.no_autoflush:  # the experiment is not whole yet
        source = (None if fields.assignment_source is None else
                  warehouse.get_assignment_source(session, name=fields.assignment_source))
    exp.assignment_source_id = None if source is None else source.id
    scalar = set(ExperimentFields.model_fields) - {
        "assignment_source",
        "primary_metric",
        "guardrail_metrics",
        "secondary_metrics",
        "guardrail_margins",
        "variants",
        "capping",
    }
    for name in scalar:
        setattr(exp, name, getattr(fields, name))
    exp.capping = ({name: spec.model_dump() for name, spec in fields.capping.items()}
                   or None)
    ids = repo.metric_ids_by_name(
        session,
        names=[fields.primary_metric or ""] + fields.guardrail_metrics + fields.secondary_metrics,
    )
    exp.primary_metric_id = ids.get(fields.primary_metric or "")
    margins = fields.guardrail_margins
    wanted: list[tuple[int, str, float | None]] = [
        (ids[n], "guardrail", margins.get(n)) for n in dict.fromkeys(fields.guardrail_metrics)
    ]
    wanted += [
        (ids[n], "secondary", None)
        for n in dict.fromkeys(fields.secondary_metrics)
        if n not in fields.guardrail_metrics
    ]
    current = {(link.metric_id, link.role, link.margin) for link in exp.metric_links}
    if current != set(wanted):
        exp.metric_links.clear()
        session.flush()
        for metric_id, role, margin in wanted:
            exp.metric_links.append(
                ExperimentMetric(metric_id=metric_id, role=role, margin=margin))
    current_variants = [(v.name, v.weight) for v in exp.variants]
    new_variants = [(v.name, v.weight) for v in fields.variants]
    if current_variants != new_variants:
        by_name = {v.name: v for v in exp.variants}
        keep = []
        for position, spec in enumerate(fields.variants):
            variant = by_name.pop(spec.name, None) or Variant(name=spec.name)
            variant.weight = spec.weight
            variant.position = position
            keep.append(variant)
        exp.variants[:] = keep
    wanted_tags = set(fields.tags)
    if {row.tag for row in exp.tag_rows} != wanted_tags:
        exp.tag_rows[:] = [row for row in exp.tag_rows if row.tag in wanted_tags]
        kept = {row.tag for row in exp.tag_rows}
        exp.tag_rows += [ExperimentTag(tag=tag) for tag in dict.fromkeys(fields.tags)
                         if tag not in kept]
    exp.rice_score = rice_score(fields.reach, fields.impact, fields.confidence, fields.effort)


def _frozen_plan(fields: ExperimentFields) -> dict[str, Any]:
    return {name: _plain(getattr(fields, name)) for name in FROZEN_FIELDS}


def check_version(exp: Experiment, expected_version: int) -> None:
    """Conflict unless `exp` is still at the version the change was based on."""
    if exp.version != expected_version:
        raise Conflict(
            f"'{exp.name}' was changed by someone else (you edited version {expected_version}, "
            f"it is now at version {exp.version}): reload it and apply your change again."
        )


def _ensure_unique_name(session: Session, name: str, exclude_id: int | None = None) -> None:
    clash = repo.experiment_id_by_name(session, name=name)
    if clash is not None and clash != exclude_id:
        raise Conflict(
            f"name: an experiment named '{name}' already exists (names ignore case): "
            "choose another name",
        )


def _validate(data: dict[str, Any], session: Session) -> ExperimentFields:
    try:
        fields = ExperimentFields.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_problems(exc)) from None
    problems = _check_rules(fields, session)
    if problems:
        raise InvalidInput(problems)
    return fields


def create_experiment(
    session: Session, *, data: dict[str, Any] | ExperimentFields, actor: Actor
) -> ExperimentView:
    """Register a new experiment in `proposed`; audited as `create`."""
    actor.require("editor", "create experiments")
    raw = data.model_dump() if isinstance(data, BaseModel) else dict(data)
    with transaction(session):
        fields = _validate(raw, session)
        _ensure_unique_name(session, fields.name)
        exp = Experiment(status="proposed", tags=[], version=1)
        session.add(exp)
        _apply(session, exp, fields)
        session.flush()
        repo.add_audit(
            session,
            actor=actor.name,
            entity_type="experiment",
            entity_id=exp.id,
            action="create",
            changes={k: [None, _plain(v)] for k, v in fields.model_dump().items() if v},
        )
        return get_experiment(session, experiment_id=exp.id)


def update_experiment(
    session: Session,
    *,
    experiment_id: int,
    changes: dict[str, Any] | ExperimentPatch,
    expected_version: int,
    actor: Actor,
    reason: str | None = None,
) -> ExperimentView:
    """Apply a partial update based on `expected_version`.

    Changing a frozen plan field of a launched experiment needs `reason` and is audited as a
    plan deviation. Closed experiments accept only owner, learnings and tags.
    """
    actor.require("editor", "edit experiments")
    if isinstance(changes, BaseModel):
        patch = changes.model_dump(exclude_unset=True)
    else:
        try:
            patch = ExperimentPatch.model_validate(changes).model_dump(exclude_unset=True)
        except ValidationError as exc:
            raise InvalidInput(validation_problems(exc)) from None
    with transaction(session):
        exp = load_experiment(session, experiment_id=experiment_id)
        check_version(exp, expected_version)
        view = get_experiment(session, experiment_id=experiment_id)
        before = _fields_of(view)
        merged = {**before, **patch}
        fields = _validate(merged, session)
        after = fields.model_dump()
        changed = {
            k: [_plain(before[k]), _plain(after[k])]
            for k in after
            if _plain(before[k]) != _plain(after[k])
        }
        if not changed:
            return view
        if exp.status in ("completed", "abandoned"):
            locked = sorted(set(changed) - set(EDITABLE_WHEN_CLOSED))
            if locked:
                raise RuleViolation(
                    f"'{exp.name}' is {exp.status}: only {', '.join(EDITABLE_WHEN_CLOSED)} "
                    f"can still change (you changed {', '.join(locked)})."
                )
        locked = sorted(set(changed) & set(LOCKED_AT_LAUNCH)) if exp.status != "proposed" else []
        if locked:
            raise RuleViolation(
                f"'{exp.name}' is {exp.status}: its capping was frozen at launch and cannot "
                "change, even with a reason: the daily sums stored since launch were capped "
                "by that rule, and a new rule would mix two definitions of the metric. To "
                "analyse another cap, register a new experiment.")
        deviation = sorted(set(changed) & set(FROZEN_FIELDS)) if exp.frozen_plan else []
        if deviation and not (reason and reason.strip()):
            raise RuleViolation(
                f"The analysis plan of '{exp.name}' was frozen at launch: changing "
                f"{', '.join(deviation)} is a plan deviation and needs a reason."
            )
        if "name" in changed:
            _ensure_unique_name(session, fields.name, exclude_id=exp.id)
        _apply(session, exp, fields)
        exp.version = expected_version + 1
        session.flush()
        repo.add_audit(
            session,
            actor=actor.name,
            entity_type="experiment",
            entity_id=exp.id,
            action="plan_deviation" if deviation else "update",
            changes=changed,
            reason=reason.strip() if reason else None,
            is_deviation=bool(deviation),
        )
        return get_experiment(session, experiment_id=experiment_id)


def _launch_problems(fields: ExperimentFields) -> list[str]:
    missing = []
    if not fields.hypothesis.strip():
        missing.append("a hypothesis")
    if not fields.primary_metric:
        missing.append("a primary metric")
    if len(fields.variants) < 2:
        missing.append("variants with their allocation (control first)")
    if not fields.planned_sample_size:
        missing.append("a planned sample size per variant (use the Planner)")
    return missing


def transition_experiment(
    session: Session,
    *,
    experiment_id: int,
    to_status: Status,
    expected_version: int,
    actor: Actor,
    reason: str | None = None,
    decision: Decision | None = None,
    learnings: str | None = None,
    on: date | None = None,
) -> ExperimentView:
    """Move an experiment along its lifecycle (see :mod:`core.registry` for the rules)."""
    actor.require("editor", "change an experiment's status")
    with transaction(session):
        exp = load_experiment(session, experiment_id=experiment_id)
        check_version(exp, expected_version)
        current = exp.status
        if to_status not in ALLOWED_MOVES.get(current, ()):
            allowed = ALLOWED_MOVES.get(current, ())
            hint = f"from {current} it can go to {' or '.join(allowed)}" if allowed else (
                f"a {current} experiment is closed for good"
            )
            raise RuleViolation(f"'{exp.name}' cannot move from {current} to {to_status}: {hint}.")
        view = get_experiment(session, experiment_id=experiment_id)
        today = on or datetime.now(UTC).date()
        changes: dict[str, list[Any]] = {"status": [current, to_status]}
        if to_status == "running":
            missing = _launch_problems(ExperimentFields.model_validate(_fields_of(view)))
            if missing:
                raise RuleViolation(
                    f"'{exp.name}' cannot launch yet: it needs {', '.join(missing)}."
                )
            exp.frozen_plan = _frozen_plan(ExperimentFields.model_validate(_fields_of(view)))
            exp.plan_frozen_at = datetime.now(UTC)
            exp.actual_start = today
            changes["actual_start"] = [None, today.isoformat()]
        elif to_status == "completed":
            final = decision or exp.decision
            if not final:
                raise RuleViolation(
                    f"'{exp.name}' needs a decision (Ship, Don't ship or Iterate) to complete."
                )
            if final != exp.decision:
                changes["decision"] = [exp.decision, final]
            exp.decision = final
            exp.actual_end = today
            changes["actual_end"] = [None, today.isoformat()]
        elif to_status == "abandoned":
            if not (reason and has_visible_text(reason)):
                raise RuleViolation(f"Abandoning '{exp.name}' needs a reason.")
            exp.abandon_reason = reason.strip()
            if current == "running":
                exp.actual_end = today
                changes["actual_end"] = [None, today.isoformat()]
        if learnings is not None and learnings != exp.learnings:
            changes["learnings"] = [exp.learnings, learnings]
            exp.learnings = learnings
        exp.status = to_status
        exp.version = expected_version + 1
        session.flush()
        repo.add_audit(
            session,
            actor=actor.name,
            entity_type="experiment",
            entity_id=exp.id,
            action=f"transition:{to_status}",
            changes=changes,
            reason=reason.strip() if reason else None,
        )
        return get_experiment(session, experiment_id=experiment_id)
