"""What the Data sources page (and anyone else) asks of the warehouse definitions beyond
keeping them (:mod:`core.warehouse.catalog`, which also previews a source): which metrics and
experiments use each source, and using warehouse metrics in an experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from core import catalogue
from core.auth import Actor
from core.errors import InvalidInput
from core.registry import ExperimentView, update_experiment
from core.registry.listing import all_experiments, get_experiment
from core.transactions import transaction
from core.warehouse import catalog

SourceRole = Literal["assignment", "fact"]


@dataclass(frozen=True)
class SourceUsage:
    """Who depends on a source."""

    source: str
    role: SourceRole
    metrics: tuple[str, ...]
    """Catalogue metrics computed from it (fact sources)."""
    experiments: tuple[str, ...]
    """Experiments reading their exposures from it (assignment sources) or using one of its
    metrics as primary, guardrail or secondary metric (fact sources)."""


def usage(session: Session) -> dict[str, SourceUsage]:
    """Per source name, the metrics computed from it and the experiments that use it."""
    with transaction(session):
        fact_of = {m.name: m.fact_source for m in catalogue.list_metrics(session)
                   if m.fact_source is not None}
        experiments = all_experiments(session)
    experiments_of: dict[str, set[str]] = {}
    for exp in experiments:
        for metric in {exp.primary_metric, *exp.guardrail_metrics, *exp.secondary_metrics}:
            if metric in fact_of:
                experiments_of.setdefault(fact_of[metric], set()).add(exp.name)
    out = {
        a.name: SourceUsage(a.name, "assignment", (), tuple(a.experiments))
        for a in catalog.list_assignment_sources(session)
    }
    for f in catalog.list_fact_sources(session):
        out[f.name] = SourceUsage(f.name, "fact", tuple(f.metrics),
                                  tuple(sorted(experiments_of.get(f.name, ()))))
    return out


def use_in_experiment(
    session: Session,
    *,
    experiment_id: int,
    metrics: list[str],
    expected_version: int,
    actor: Actor,
    assignment_source: str | None = None,
    experiment_key: str | None = None,
    reason: str | None = None,
) -> ExperimentView:
    """Add warehouse ``metrics`` to the experiment's secondary metrics and, when given, read
    its exposures from ``assignment_source`` under ``experiment_key`` — one registry change
    (versioned, audited). An experiment fed from no assignment source needs one. After
    launch the assignment is part of the frozen plan: changing it needs a ``reason``; adding
    a secondary metric does not. Metrics it already uses are left where they are."""
    actor.require("editor", "use warehouse metrics in experiments")
    with transaction(session):
        exp = get_experiment(session, experiment_id=experiment_id)
        by_name = {m.name: m for m in catalogue.list_metrics(session)}
    problems: list[str] = []
    for name in metrics:
        metric = by_name.get(name)
        if metric is None:
            problems.append(f"metrics: there is no metric named '{name}' in the catalogue")
        elif metric.fact_source is None:
            problems.append(f"metrics: {name} is not computed from a fact source (it is "
                            "loaded from files or SQL): choose a warehouse metric")
    if not metrics and assignment_source is None:
        problems.append("metrics: choose at least one warehouse metric")
    if (assignment_source is None) != (experiment_key is None):
        problems.append("experiment_key: give the assignment source and the experiment's key "
                        "in it together")
    if assignment_source is None and exp.assignment_source is None:
        problems.append(f"assignment_source: '{exp.name}' reads no exposures from a warehouse "
                        "yet: choose its assignment source and its key there")
    if problems:
        raise InvalidInput(problems)
    used = {exp.primary_metric, *exp.guardrail_metrics, *exp.secondary_metrics}
    changes: dict[str, Any] = {}
    added = [m for m in dict.fromkeys(metrics) if m not in used]
    if added:
        changes["secondary_metrics"] = [*exp.secondary_metrics, *added]
    if assignment_source is not None:
        changes |= {"assignment_source": assignment_source, "experiment_key": experiment_key}
    return update_experiment(session, experiment_id=experiment_id, changes=changes,
                             expected_version=expected_version, actor=actor, reason=reason)
