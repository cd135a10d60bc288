"""The metrics catalogue: one definition per metric name, shared by every team.

A metric is ``binomial`` (0/1 per unit: conversion), ``mean`` (a number per unit: revenue) or
``ratio``: the sum over units of a ``numerator`` column divided by the sum of a ``denominator``
column (revenue per session = revenue / sessions), analysed per unit with the delta method. A
ratio metric names those two per-unit columns (lower_snake_case, different); a user-level file
carries them under those names, and aggregated inputs give the denominator's sums."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session

from core.auth import Actor
from core.errors import Conflict, InvalidInput, NotFound
from core.registry.fields import MAX_METRIC_NAME_LENGTH, SafeStr, validation_problems
from core.transactions import transaction
from core.types import MetricKind
from db import metric_repository as mrepo
from db import repositories as repo
from db.models import Metric

MAX_DESCRIPTION_LENGTH = 2_000
"""Characters in a metric's description."""


class MetricFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(
        min_length=1, max_length=MAX_METRIC_NAME_LENGTH, pattern=r"^[a-z][a-z0-9_]*$"
    )
    kind: MetricKind
    unit: SafeStr = Field(default="", max_length=32)
    higher_is_better: bool = Field(default=True, strict=True)
    description: SafeStr = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)
    numerator: str | None = Field(default=None, max_length=80, pattern=r"^[a-z][a-z0-9_]*$")
    denominator: str | None = Field(default=None, max_length=80, pattern=r"^[a-z][a-z0-9_]*$")

    @model_validator(mode="after")
    def _ratio_columns(self) -> MetricFields:
        if self.kind == "ratio":
            if not self.numerator or not self.denominator:
                raise ValueError("a ratio metric needs a numerator and a denominator column "
                                 "(e.g. revenue and sessions for revenue per session)")
            if self.numerator == self.denominator:
                raise ValueError("numerator and denominator must be different columns")
            if self.name in (self.numerator, self.denominator):
                raise ValueError("a ratio metric cannot be its own numerator or denominator")
        elif self.numerator is not None or self.denominator is not None:
            raise ValueError(f"only ratio metrics take a numerator and a denominator "
                             f"(this one is {self.kind})")
        return self


@dataclass(frozen=True)
class MetricView:
    id: int
    name: str
    kind: MetricKind
    unit: str
    higher_is_better: bool
    description: str
    numerator: str | None = None
    denominator: str | None = None


def _view(m: Metric) -> MetricView:
    return MetricView(
        id=m.id,
        name=m.name,
        kind=m.kind,  # type: ignore[arg-type]
        unit=m.unit,
        higher_is_better=m.higher_is_better,
        description=m.description,
        numerator=m.numerator,
        denominator=m.denominator,
    )


def list_metrics(session: Session) -> list[MetricView]:
    return [_view(m) for m in repo.list_metrics(session)]


def get_metric(session: Session, *, name: str) -> MetricView:
    metric = repo.get_metric_by_name(session, name=name)
    if metric is None:
        raise NotFound(f"No metric named '{name}' in the catalogue.")
    return _view(metric)


_COLUMN_EXAMPLES = {"numerator": "revenue", "denominator": "sessions"}


def _problems(exc: ValidationError) -> list[str]:
    """pydantic's problems, worded for people: snake_case hints, the ratio rules unprefixed."""
    problems = []
    for p in validation_problems(exc):
        field = p.partition(":")[0]
        if field == "name":
            p += " (use lower_snake_case, e.g. checkout_conversion)"
        elif field in _COLUMN_EXAMPLES and "pattern" in p:
            p = (f"{field}: write the column's name in lower_snake_case, e.g. "
                 f"{_COLUMN_EXAMPLES[field]}")
        elif field == "input":
            p = p.removeprefix("input: ")
        problems.append(p)
    return problems


def create_metric(session: Session, *, data: dict | MetricFields, actor: Actor) -> MetricView:
    """Add a metric to the catalogue; names are lower_snake_case and unique. Audited."""
    actor.require("editor", "add metrics to the catalogue")
    try:
        fields = data if isinstance(data, MetricFields) else MetricFields.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc)) from None
    with transaction(session):
        if repo.get_metric_by_name(session, name=fields.name) is not None:
            raise Conflict(
                f"name: the catalogue already has a metric named '{fields.name}': use it, or "
                "choose another name"
            )
        metric = Metric(**fields.model_dump())
        session.add(metric)
        session.flush()
        repo.add_audit(
            session,
            actor=actor.name,
            entity_type="metric",
            entity_id=metric.id,
            action="create",
            changes={k: [None, v] for k, v in fields.model_dump().items()},
        )
    return _view(metric)


class MetricEdit(BaseModel):
    """What may change in a metric's definition: its name and kind stay (experiments and
    stored results refer to them); a ratio metric's columns may change until data is stored
    for it (the stored sums were computed from them)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    unit: SafeStr | None = Field(default=None, max_length=32)
    higher_is_better: bool | None = Field(default=None, strict=True)
    description: SafeStr | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    numerator: str | None = Field(default=None, max_length=80, pattern=r"^[a-z][a-z0-9_]*$")
    denominator: str | None = Field(default=None, max_length=80, pattern=r"^[a-z][a-z0-9_]*$")


def update_metric(session: Session, *, name: str, changes: dict, actor: Actor) -> MetricView:
    """Change a metric's unit, direction or description, or a ratio metric's numerator and
    denominator columns while no data is stored for it (name and kind are fixed). Audited; a
    change that changes nothing writes nothing."""
    actor.require("editor", "edit metrics in the catalogue")
    try:
        edit = MetricEdit.model_validate(changes)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc)) from None
    with transaction(session):
        metric = repo.get_metric_by_name(session, name=name)
        if metric is None:
            raise NotFound(f"No metric named '{name}' in the catalogue.")
        diff = {
            field: [getattr(metric, field), value]
            for field, value in edit.model_dump(exclude_none=True).items()
            if getattr(metric, field) != value
        }
        if "numerator" in diff or "denominator" in diff:
            _check_columns(session, metric, edit)
        for field, (_, value) in diff.items():
            setattr(metric, field, value)
        if diff:
            repo.add_audit(session, actor=actor.name, entity_type="metric", entity_id=metric.id,
                           action="update", changes=diff)
    return _view(metric)


def _check_columns(session: Session, metric: Metric, edit: MetricEdit) -> None:
    """New ratio columns: the same rules as at creation, and no stored data computed from the
    old ones."""
    try:
        MetricFields.model_validate({
            "name": metric.name, "kind": metric.kind,
            "numerator": edit.numerator or metric.numerator,
            "denominator": edit.denominator or metric.denominator,
        })
    except ValidationError as exc:
        raise InvalidInput(_problems(exc)) from None
    if mrepo.metric_has_data(session, metric_id=metric.id):
        raise Conflict(
            f"{metric.name} already has data computed from {metric.numerator} / "
            f"{metric.denominator}, so its columns stay: add a new metric for other columns"
        )
