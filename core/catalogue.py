"""The metrics catalogue: one definition per metric name, shared by every team.

A metric is ``binomial`` (0/1 per unit: conversion), ``mean`` (a number per unit: revenue) or
``ratio``: the sum over units of a ``numerator`` column divided by the sum of a ``denominator``
column (revenue per session = revenue / sessions), analysed per unit with the delta method. A
ratio metric names those two per-unit columns (lower_snake_case, different); a user-level file
carries them under those names, and aggregated inputs give the denominator's sums. A
``quantile`` metric compares the ``quantile_p``-quantile of a per-unit value between arms
(p90 page load time: ``quantile_p`` = 0.9; :mod:`core.stats.quantile`); a user-level file
carries the value under the metric's name.

A metric may instead be computed in the warehouse from a ``fact_source``
(:mod:`core.warehouse.catalog`): per unit, an ``aggregation`` of the fact source's ``value_column``
(``sum``, ``count`` of rows, ``any`` row, the ``mean`` over rows, or the ``ratio`` of two columns,
the second ``denominator_column``), over ``window_days`` after the unit's first exposure (none: up
to the analysis day), with a CUPED covariate over the ``cuped_days`` before it (a mean's or ratio's:
its numerator's sum over them). Its kind follows from the aggregation (:data:`KIND_OF_AGGREGATION`),
so it may be left out; a warehouse ``quantile`` metric gives its ``quantile_p`` with a ``sum`` or
``count`` aggregation (the p90 of each unit's summed load time), and each refresh reads that
per-unit value's quantile over every unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session

from core.auth import Actor
from core.errors import Conflict, InvalidInput, NotFound
from core.registry.fields import (
    MAX_METRIC_NAME_LENGTH,
    SafeStr,
    WholeNumber,
    validation_problems,
)
from core.transactions import transaction
from core.types import AGGREGATIONS, QUANTILE_AGGREGATIONS, Aggregation, MetricKind
from db import metric_repository as mrepo
from db import repositories as repo
from db import warehouse_repository as warehouse
from db.models import FactSource, Metric

MAX_DESCRIPTION_LENGTH = 2_000
"""Characters in a metric's description."""
MAX_WINDOW_DAYS = 365
"""Longest conversion window and CUPED pre-period of a warehouse metric, in days."""
KIND_OF_AGGREGATION: dict[str, MetricKind] = {
    "sum": "mean", "count": "mean", "any": "binomial", "mean": "ratio", "ratio": "ratio",
}
"""The kind of a warehouse metric, by its aggregation: a sum or a count per unit is a mean
metric, "any" a conversion, and the mean over rows and the ratio of two columns are ratios of
per-unit sums (delta method)."""
COLUMN_AGGREGATIONS: tuple[str, ...] = ("sum", "mean", "ratio")
"""Aggregations that need a value column (count and any may name one: non-null rows, rows
with a value above 0)."""
_SNAKE = r"^[a-z][a-z0-9_]*$"
WAREHOUSE_FIELDS: tuple[str, ...] = (
    "fact_source", "aggregation", "value_column", "denominator_column", "window_days",
    "cuped_days",
)


class MetricFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(
        min_length=1, max_length=MAX_METRIC_NAME_LENGTH, pattern=r"^[a-z][a-z0-9_]*$"
    )
    kind: MetricKind | None = Field(
        default=None, description="binomial, mean, ratio or quantile; a warehouse metric's "
        "follows from its aggregation (sum, count: mean; any: binomial; mean, ratio: ratio) "
        "or is quantile when it gives quantile_p (sum and count only)")
    quantile_p: float | None = Field(
        default=None, gt=0, lt=1, allow_inf_nan=False,
        description="Quantile metrics: the level p of the per-unit value's quantile, strictly "
        "between 0 and 1 (0.9 for p90).")
    unit: SafeStr = Field(default="", max_length=32)
    higher_is_better: bool = Field(default=True, strict=True)
    description: SafeStr = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)
    numerator: str | None = Field(default=None, max_length=80, pattern=_SNAKE)
    denominator: str | None = Field(default=None, max_length=80, pattern=_SNAKE)
    fact_source: str | None = Field(
        default=None, max_length=80, pattern=_SNAKE,
        description="Warehouse metrics: the fact source it is computed from.")
    aggregation: Aggregation | None = Field(
        default=None, description="Warehouse metrics: per unit, the sum of value_column, the "
        "count of rows, any row (0/1), the mean over rows, or the ratio of value_column to "
        "denominator_column.")
    value_column: str | None = Field(
        default=None, max_length=80, pattern=_SNAKE,
        description="Warehouse metrics: the fact source's column aggregated.")
    denominator_column: str | None = Field(
        default=None, max_length=80, pattern=_SNAKE,
        description="Warehouse ratio metrics: the fact source's column below the line.")
    window_days: Annotated[int | None, WholeNumber] = Field(
        default=None, strict=True, ge=1, le=MAX_WINDOW_DAYS,
        description="Warehouse metrics: facts up to this many days after the unit's first "
        "exposure count; null = up to the analysis day.")
    cuped_days: Annotated[int | None, WholeNumber] = Field(
        default=None, strict=True, ge=1, le=MAX_WINDOW_DAYS,
        description="Warehouse metrics: the CUPED covariate is the same aggregate over this "
        "many days before first exposure (mean and ratio: the value column's sum, the "
        "numerator); null = no CUPED.")

    @model_validator(mode="after")
    def _ratio_columns(self) -> MetricFields:
        if self.fact_source is not None or self.aggregation is not None:
            # A warehouse metric: its rules need the fact source (warehouse_problems).
            if self.kind is None and self.quantile_p is not None:
                self.kind = "quantile"
            elif self.kind is None and self.aggregation is not None:
                self.kind = KIND_OF_AGGREGATION[self.aggregation]
            return self
        if self.kind is None:
            raise ValueError("kind: give binomial, mean, ratio or quantile (or, for a metric "
                             "computed in the warehouse, a fact_source and an aggregation)")
        if (self.kind == "quantile") != (self.quantile_p is not None):
            raise ValueError(
                "a quantile metric needs quantile_p, the level of its quantile strictly between "
                "0 and 1 (e.g. 0.9 for p90)" if self.kind == "quantile" else
                f"only quantile metrics take quantile_p (this one is {self.kind})")
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


def warehouse_problems(fields: MetricFields) -> list[str]:
    """Every rule a warehouse metric's fields break on their own (the fact source's columns
    are checked against the stored source by :func:`create_metric`); [] for a file metric
    that names no warehouse field."""
    problems: list[str] = []
    agg = fields.aggregation
    if fields.fact_source is None:
        if agg is not None:
            problems.append("fact_source: an aggregation belongs to a metric computed from a "
                            "fact source: name the fact source (e.g. orders)")
        problems += [f"{name}: only a metric computed from a fact source takes {name}"
                     for name in WAREHOUSE_FIELDS[2:] if getattr(fields, name) is not None]
        return problems
    if agg is None:
        return [f"aggregation: a metric on a fact source says how it aggregates per unit: "
                f"{', '.join(AGGREGATIONS)}"]
    expected = KIND_OF_AGGREGATION[agg]
    if fields.quantile_p is not None or fields.kind == "quantile":
        problems += _warehouse_quantile_problems(fields, agg)
    elif fields.kind != expected:
        problems.append(
            f"kind: a {agg} metric is {expected} (sum and count: mean; any: binomial; mean "
            f"and ratio: ratio); leave kind out or give {expected}")
    if fields.numerator is not None or fields.denominator is not None:
        problems.append(
            "numerator: a metric on a fact source names its fact columns in value_column (and "
            "denominator_column for a ratio); numerator and denominator are a file's columns")
    if agg in COLUMN_AGGREGATIONS and fields.value_column is None:
        problems.append(f"value_column: a {agg} metric aggregates a column of the fact "
                        "source: name it (e.g. revenue)")
    if agg == "ratio" and fields.denominator_column is None:
        problems.append("denominator_column: a ratio metric divides value_column by another "
                        "column of the fact source: name it (e.g. sessions)")
    if agg != "ratio" and fields.denominator_column is not None:
        problems.append(f"denominator_column: only ratio metrics have one (this one is {agg})")
    if (fields.denominator_column is not None
            and fields.denominator_column == fields.value_column):
        problems.append("denominator_column: value_column and denominator_column must be "
                        "different columns")
    return problems


def _warehouse_quantile_problems(fields: MetricFields, agg: str) -> list[str]:
    """A warehouse quantile metric: kind quantile, its level, a per-unit sum or count."""
    problems = []
    if fields.kind != "quantile":
        problems.append(f"kind: only quantile metrics take quantile_p (this one is "
                        f"{fields.kind}); give kind quantile, or leave quantile_p out")
    elif fields.quantile_p is None:
        problems.append("quantile_p: a quantile metric needs the level of its quantile, "
                        "strictly between 0 and 1 (e.g. 0.9 for p90)")
    if agg not in QUANTILE_AGGREGATIONS:
        problems.append(
            f"aggregation: a quantile metric takes the quantile of each unit's "
            f"{' or '.join(QUANTILE_AGGREGATIONS)} of the fact source (e.g. sum of load_ms), "
            f"not of {agg}")
    if fields.cuped_days is not None:
        problems.append("cuped_days: a quantile metric is never CUPED-adjusted (its test is "
                        "on order statistics): leave cuped_days out")
    return problems


def _source_problems(fields: MetricFields, source: FactSource | None) -> list[str]:
    """The fact source exists and has the columns the metric names."""
    if fields.fact_source is None:
        return []
    if source is None:
        return [f"fact_source: there is no fact source named '{fields.fact_source}' (define "
                "it first: python -m core.cli add-fact-source, or the Data sources page)"]
    return [
        f"{name}: '{column}' is not a column of fact source '{source.name}' (it declares "
        f"{', '.join(source.columns) or 'none'})"
        for name in ("value_column", "denominator_column")
        if (column := getattr(fields, name)) is not None and column not in source.columns
    ]


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
    fact_source: str | None = None
    """Warehouse metrics: the fact source's name (None: loaded from files or SQL)."""
    aggregation: Aggregation | None = None
    value_column: str | None = None
    denominator_column: str | None = None
    window_days: int | None = None
    cuped_days: int | None = None
    quantile_p: float | None = None
    """Quantile metrics: the level p (0.9 = p90)."""


def _view(m: Metric, fact_source: str | None = None) -> MetricView:
    return MetricView(
        id=m.id,
        name=m.name,
        kind=m.kind,  # type: ignore[arg-type]
        unit=m.unit,
        higher_is_better=m.higher_is_better,
        description=m.description,
        numerator=m.numerator,
        denominator=m.denominator,
        fact_source=fact_source,
        aggregation=m.aggregation,  # type: ignore[arg-type]
        value_column=m.value_column,
        denominator_column=m.denominator_column,
        window_days=m.window_days,
        cuped_days=m.cuped_days,
        quantile_p=m.quantile_p,
    )


def _views(session: Session, metrics: list[Metric]) -> list[MetricView]:
    names = warehouse.fact_source_names(
        session, source_ids=sorted({m.fact_source_id for m in metrics if m.fact_source_id}))
    return [_view(m, names.get(m.fact_source_id or 0)) for m in metrics]


def list_metrics(session: Session) -> list[MetricView]:
    return _views(session, repo.list_metrics(session))


def get_metric(session: Session, *, name: str) -> MetricView:
    metric = repo.get_metric_by_name(session, name=name)
    if metric is None:
        raise NotFound(f"No metric named '{name}' in the catalogue.")
    return _views(session, [metric])[0]


_COLUMN_EXAMPLES = {"numerator": "revenue", "denominator": "sessions",
                    "value_column": "revenue", "denominator_column": "sessions",
                    "fact_source": "orders"}


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
    """Add a metric to the catalogue; names are lower_snake_case and unique. A warehouse
    metric names a fact source and the columns it declares. Audited; bad input raises
    InvalidInput listing every problem, and nothing is written."""
    actor.require("editor", "add metrics to the catalogue")
    try:
        fields = data if isinstance(data, MetricFields) else MetricFields.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc)) from None
    with transaction(session):
        source = (None if fields.fact_source is None
                  else warehouse.get_fact_source(session, name=fields.fact_source))
        problems = warehouse_problems(fields) + _source_problems(fields, source)
        if problems:
            raise InvalidInput(problems)
        if repo.get_metric_by_name(session, name=fields.name) is not None:
            raise Conflict(
                f"name: the catalogue already has a metric named '{fields.name}': use it, or "
                "choose another name"
            )
        values = fields.model_dump()
        metric = Metric(**{k: v for k, v in values.items() if k != "fact_source"},
                        fact_source_id=None if source is None else source.id)
        session.add(metric)
        session.flush()
        repo.add_audit(
            session,
            actor=actor.name,
            entity_type="metric",
            entity_id=metric.id,
            action="create",
            changes={k: [None, v] for k, v in values.items()
                     if k not in WAREHOUSE_FIELDS or v is not None},
        )
    return _view(metric, fields.fact_source)


class MetricEdit(BaseModel):
    """What may change in a metric's definition: its name and kind stay (experiments and
    stored results refer to them); a ratio metric's columns may change until data is stored
    for it (the stored sums were computed from them). A warehouse metric's columns, window
    and CUPED pre-period may change (its fact source and aggregation stay): the next refresh
    recomputes every day from the warehouse. ``window_days`` and ``cuped_days`` sent as null
    clear them; any other field left out or null is unchanged."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    unit: SafeStr | None = Field(default=None, max_length=32)
    higher_is_better: bool | None = Field(default=None, strict=True)
    description: SafeStr | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    numerator: str | None = Field(default=None, max_length=80, pattern=_SNAKE)
    denominator: str | None = Field(default=None, max_length=80, pattern=_SNAKE)
    value_column: str | None = Field(default=None, max_length=80, pattern=_SNAKE)
    denominator_column: str | None = Field(default=None, max_length=80, pattern=_SNAKE)
    window_days: Annotated[int | None, WholeNumber] = Field(
        default=None, strict=True, ge=1, le=MAX_WINDOW_DAYS)
    cuped_days: Annotated[int | None, WholeNumber] = Field(
        default=None, strict=True, ge=1, le=MAX_WINDOW_DAYS)


_CLEARABLE = ("window_days", "cuped_days")
_WAREHOUSE_EDITS = ("value_column", "denominator_column", "window_days", "cuped_days")


def update_metric(session: Session, *, name: str, changes: dict, actor: Actor) -> MetricView:
    """Change a metric's unit, direction or description, a ratio metric's numerator and
    denominator columns while no data is stored for it, or a warehouse metric's columns,
    window and CUPED pre-period (name, kind, fact source and aggregation are fixed).
    Audited; a change that changes nothing writes nothing."""
    actor.require("editor", "edit metrics in the catalogue")
    try:
        edit = MetricEdit.model_validate(changes)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc)) from None
    given = edit.model_dump(exclude_none=True)
    given.update({k: getattr(edit, k) for k in _CLEARABLE if k in edit.model_fields_set})
    with transaction(session):
        metric = repo.get_metric_by_name(session, name=name)
        if metric is None:
            raise NotFound(f"No metric named '{name}' in the catalogue.")
        diff = {
            field: [getattr(metric, field), value]
            for field, value in given.items()
            if getattr(metric, field) != value
        }
        if "numerator" in diff or "denominator" in diff:
            _check_columns(session, metric, edit)
        if set(diff) & set(_WAREHOUSE_EDITS):
            _check_warehouse_edit(session, metric, {k: v for k, (_, v) in diff.items()})
        for field, (_, value) in diff.items():
            setattr(metric, field, value)
        if diff:
            repo.add_audit(session, actor=actor.name, entity_type="metric", entity_id=metric.id,
                           action="update", changes=diff)
        view = _views(session, [metric])[0]
    return view


def _check_warehouse_edit(session: Session, metric: Metric, changed: dict) -> None:
    """A warehouse metric's new fields: the rules at creation, against its fact source."""
    if metric.fact_source_id is None:
        names = ", ".join(k for k in _WAREHOUSE_EDITS if k in changed)
        raise InvalidInput(f"{names}: only a metric computed from a fact source takes "
                           f"{names} ('{metric.name}' is loaded from files or SQL)")
    source = warehouse.fact_sources_by_id(session, source_ids=[metric.fact_source_id])[
        metric.fact_source_id]
    current = {k: getattr(metric, k) for k in _WAREHOUSE_EDITS}
    fields = MetricFields.model_construct(
        name=metric.name, kind=metric.kind, numerator=None, denominator=None,
        quantile_p=metric.quantile_p, fact_source=source.name, aggregation=metric.aggregation,
        **{**current, **changed})
    problems = warehouse_problems(fields) + _source_problems(fields, source)
    if problems:
        raise InvalidInput(problems)


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
