"""What an experiment holds and what each field may be: the limits, the text and day types,
the validated models (`ExperimentFields`, `ExperimentPatch`, `ExperimentView`), validation
problems in plain words and the RICE score of the fields."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.stats.capping import CapRule
from core.types import Alternative, AnalysisMode, CapKind, Correction, Decision, Status
from db.repositories import ViewRow

RICE_IMPACTS: tuple[float, ...] = (3.0, 2.0, 1.0, 0.5, 0.25)

MAX_SAMPLE_SIZE = 2_147_483_647
"""Largest planned sample size: the column is an INTEGER (PostgreSQL: 2**31 - 1)."""
MAX_REACH = 1e12
EFFORT_RANGE: tuple[float, float] = (0.01, 10_000.0)
"""Person-weeks; the lower bound keeps the RICE score finite."""
MAX_REFRESH_EVERY_DAYS = 90
"""Longest refresh schedule, in days (core.workflows.refresh uses the same bound)."""
MAX_TAG_LENGTH = 60
MAX_NAME_LENGTH = 200
MAX_OWNER_LENGTH = 120
MAX_SEGMENT_LENGTH = 200
MAX_HYPOTHESIS_LENGTH = 5_000
"""Characters in a hypothesis (a few paragraphs)."""
MAX_LEARNINGS_LENGTH = 20_000
"""Characters in an experiment's learnings (a page or two of notes)."""
MAX_REASON_LENGTH = 2_000
"""Characters in the reason given for a plan deviation, an abandonment or a status change."""
MAX_METRIC_NAME_LENGTH = 80
"""The catalogue's metric names (db: String(80))."""
MAX_SOURCE_NAME_LENGTH = 80
"""Names of warehouse connections and sources (db: String(80))."""
MAX_EXPERIMENT_KEY_LENGTH = 200
"""An experiment's key in its assignment source (db: String(200))."""
MAX_METRICS = 20
"""Guardrail or secondary metrics per experiment (each list)."""
MAX_VARIANTS = 20
"""Variants per experiment, control included (the planner's limit too)."""
MAX_TAGS = 30
NO_NUL_PATTERN = r"^[^\u0000]*$"
"""JSON Schema pattern of text without NUL characters (documents :func:`text_problem`)."""
INVISIBLE_CHARACTERS = (
    r"\s\u0000-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5"
    r"\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u2800\u3164\ufe00-\ufe0f"
    r"\ufeff\uffa0\ufff0-\ufffb"
)
"""The characters that show nothing, as the body of a regular-expression class that Python and
JSON Schema (ECMA-262) read alike: white space, control characters, the soft hyphen, zero-width
spaces and joiners, direction marks, the byte order mark, Hangul and Braille blanks and
variation selectors."""
NOT_BLANK_PATTERN = rf"^[^\u0000]*[^{INVISIBLE_CHARACTERS}][^\u0000]*$"
"""Text without NUL holding at least one visible character (:func:`has_visible_text`)."""
_VISIBLE = re.compile(f"[^{INVISIBLE_CHARACTERS}]")


def text_problem(value: str) -> str | None:
    """Why the database cannot store `value` (None when it can)."""
    if "\x00" in value:
        return "text cannot contain NUL (\\u0000) characters: remove them"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text must be valid Unicode (it holds an unpaired surrogate): retype it"
    return None


def _safe_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def has_visible_text(value: str) -> bool:
    """Whether `value` shows something: zero-width, blank and other invisible characters alone
    (:data:`INVISIBLE_CHARACTERS`) do not."""
    return _VISIBLE.search(value) is not None


def _visible_text(value: str) -> str:
    if not has_visible_text(value):
        raise ValueError(
            "give at least one visible character (a letter, digit or sign): spaces and "
            "invisible characters such as zero-width spaces alone do not count"
        )
    return value


def _whole_number(value: Any) -> Any:
    """A whole number sent as a JSON float (``2.0``) is that integer, as JSON Schema's
    ``integer`` says; anything else (``2.5``, ``true``, ``"2"``) is left for the strict integer
    check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = BeforeValidator(_whole_number)
"""For a strict integer field: also accept ``2.0`` (an integer to JSON Schema). Place it after
the field's constraints (``Annotated[int, Field(...), WholeNumber]``), which then still reach
the JSON Schema."""


def _iso_day(value: Any) -> Any:
    """A day is a date or an ISO ``YYYY-MM-DD`` string (not a number, not a timestamp)."""
    if isinstance(value, datetime):
        raise ValueError("give a day as YYYY-MM-DD, without a time")
    if isinstance(value, date) or value is None:
        return value
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value
    raise ValueError(f"give a day as YYYY-MM-DD, e.g. 2026-03-09 (got {str(value)[:20]!r})")


Day = Annotated[date, BeforeValidator(_iso_day)]
"""A calendar day, given as a date or an ISO ``YYYY-MM-DD`` string."""

_SAFE = AfterValidator(_safe_text)
# The patterns document in JSON Schema what the validators check (with clearer messages).
_NO_NUL = Field(json_schema_extra={"pattern": NO_NUL_PATTERN})
_NOT_BLANK = Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN})
_VISIBLE_TEXT = AfterValidator(_visible_text)
SafeStr = Annotated[str, _NO_NUL, _SAFE]
"""Text the database can store (no NUL, no unpaired surrogate)."""
# Length limits come before the text check, so pydantic reports them as string lengths.
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), _NOT_BLANK, _SAFE,
                 _VISIBLE_TEXT]
Owner = Annotated[str, Field(min_length=1, max_length=MAX_OWNER_LENGTH), _NOT_BLANK, _SAFE,
                  _VISIBLE_TEXT]
Segment = Annotated[str, Field(max_length=MAX_SEGMENT_LENGTH), _NO_NUL, _SAFE]
Tag = Annotated[str, Field(max_length=MAX_TAG_LENGTH), _NO_NUL, _SAFE]
VariantName = Annotated[str, Field(min_length=1, max_length=80), _NOT_BLANK, _SAFE,
                        _VISIBLE_TEXT]
MetricRef = Annotated[str, Field(min_length=1, max_length=MAX_METRIC_NAME_LENGTH), _NO_NUL, _SAFE]
"""The name of a catalogue metric."""
SourceRef = Annotated[str, Field(min_length=1, max_length=MAX_SOURCE_NAME_LENGTH), _NO_NUL,
                      _SAFE]
"""The name of a warehouse assignment source (core.warehouse.catalog)."""
ExperimentKey = Annotated[
    str, Field(min_length=1, max_length=MAX_EXPERIMENT_KEY_LENGTH), _NOT_BLANK, _SAFE,
    _VISIBLE_TEXT,
    Field(description="The experiment_key its exposures carry in the assignment source."),
]
Hypothesis = Annotated[str, Field(max_length=MAX_HYPOTHESIS_LENGTH), _NO_NUL, _SAFE]
Learnings = Annotated[str, Field(max_length=MAX_LEARNINGS_LENGTH), _NO_NUL, _SAFE]
Number = Annotated[float, Field(strict=True)]
"""A JSON number (an integer is fine; ``true`` or ``"3"`` is not)."""
SampleSize = Annotated[
    int | None,
    Field(strict=True, gt=0, le=MAX_SAMPLE_SIZE, description="Planned units per variant."),
    WholeNumber,
]
Reach = Annotated[
    float | None,
    Field(strict=True, ge=0, le=MAX_REACH, description="RICE: units per quarter."),
]
Effort = Annotated[
    float | None,
    Field(strict=True, ge=EFFORT_RANGE[0], le=EFFORT_RANGE[1],
          description="RICE: person-weeks."),
]
MARGIN_RANGE: tuple[float, float] = (0.0, 1.0)
"""A guardrail's relative non-inferiority margin lies strictly between these (0.01 = 1%)."""
PRIOR_MEAN_RANGE: tuple[float, float] = (-1.0, 10.0)
"""The prior's mean relative lift (-100% to +1000%)."""
MAX_PRIOR_SD = 10.0
"""The prior's sd of the relative lift (1000%): wider is as good as the flat prior."""
Margin = Annotated[
    float,
    Field(strict=True, gt=MARGIN_RANGE[0], lt=MARGIN_RANGE[1],
          description="Relative non-inferiority margin: 0.01 = may be at most 1% worse."),
]
GuardrailMargins = Annotated[
    dict[MetricRef, Margin],
    Field(max_length=MAX_METRICS,
          description="Guardrail metric name -> relative non-inferiority margin (each a "
          "guardrail of this experiment); a guardrail without one gets the plain harm test."),
]
PriorMean = Annotated[
    float | None,
    Field(strict=True, ge=PRIOR_MEAN_RANGE[0], le=PRIOR_MEAN_RANGE[1],
          description="Bayesian readout: mean of a Gaussian prior on the relative lift (0.02 "
          "= +2%); with prior_lift_sd, or neither for the flat prior."),
]
PriorSd = Annotated[
    float | None,
    Field(strict=True, gt=0, le=MAX_PRIOR_SD,
          description="Bayesian readout: sd of the Gaussian prior on the relative lift (0.05 "
          "= 5%); with prior_lift_mean, or neither for the flat prior."),
]
AlternativeField = Annotated[
    Alternative,
    Field(description="The primary metric's test: two-sided, or one-sided 'greater' "
          "(treatment > control) / 'less' (treatment < control), pointing the way the metric "
          "calls better."),
]
RefreshEveryDays = Annotated[
    int | None,
    Field(
        strict=True,
        ge=1,
        le=MAX_REFRESH_EVERY_DAYS,
        description="Scheduled refresh every N days from the start; null = every day.",
    ),
    WholeNumber,
]

_HINTS: dict[str, str] = {
    "name": f"a name of 1 to {MAX_NAME_LENGTH} characters",
    "owner": f"an owner of 1 to {MAX_OWNER_LENGTH} characters",
    "target_segment": f"a segment of at most {MAX_SEGMENT_LENGTH} characters",
    "hypothesis": f"a hypothesis of at most {MAX_HYPOTHESIS_LENGTH:,} characters",
    "learnings": f"learnings of at most {MAX_LEARNINGS_LENGTH:,} characters",
    "tags": f"at most {MAX_TAGS} tags of at most {MAX_TAG_LENGTH} characters each",
    "variants": f"2 to {MAX_VARIANTS} variants, control first",
    "guardrail_metrics": f"at most {MAX_METRICS} catalogue metric names",
    "secondary_metrics": f"at most {MAX_METRICS} catalogue metric names",
    "planned_sample_size": f"a whole number of units per variant, 1 to {MAX_SAMPLE_SIZE:,}",
    "mde": "a finite number > 0",
    "alpha": "a number strictly between 0 and 0.5",
    "power": "a number strictly between 0.5 and 1",
    "reach": f"units per quarter, a finite number from 0 to {MAX_REACH:,.0f}",
    "impact": "3, 2, 1, 0.5 or 0.25",
    "confidence": "a percentage from 0 to 100",
    "effort": f"person-weeks, from {EFFORT_RANGE[0]:g} to {EFFORT_RANGE[1]:,.0f}",
    "refresh_every_days": f"a whole number of days, 1 to {MAX_REFRESH_EVERY_DAYS} "
    "(empty = every day)",
    "alternative": "two-sided, greater (treatment > control) or less (treatment < control)",
    "guardrail_margins": "a margin above 0% and below 100% per guardrail (as a fraction, 0.01 "
    f"= at most 1% worse), for at most {MAX_METRICS} guardrails",
    "prior_lift_mean": f"a relative lift from {PRIOR_MEAN_RANGE[0]:g} to "
    f"{PRIOR_MEAN_RANGE[1]:g} (0.02 = +2%), or nothing for the flat prior",
    "prior_lift_sd": f"a number > 0 and at most {MAX_PRIOR_SD:g} (0.05 = 5%), or nothing for "
    "the flat prior",
    "post_stratify_on": "the name of a dimension column of the metric data (1 to 200 "
    "characters), or nothing",
    "capping": "per mean or ratio metric of the experiment, {\"kind\": \"fixed\", \"value\": "
    "a cap > 0} or {\"kind\": \"percentile\", \"value\": p between 0.5 and 1, e.g. 0.99}",
    "assignment_source": f"the name of an assignment source (at most {MAX_SOURCE_NAME_LENGTH} "
    "characters), or nothing",
    "experiment_key": f"the experiment's key in its assignment source, 1 to "
    f"{MAX_EXPERIMENT_KEY_LENGTH} characters",
}
"""What a valid value looks like, appended to pydantic's message for a field."""


PostStratifyOn = Annotated[
    str | None,
    Field(min_length=1, max_length=200,
          description="Post-stratify the results on this pre-exposure dimension (a dimension "
          "column of the metric data, e.g. platform or country, fixed before exposure); "
          "null = none. Metrics with covariates are regression-adjusted instead."),
]


PlanInputsRecord = Annotated[
    dict[str, Any] | None,
    Field(description="The Planner's inputs the planned sample size was sized from "
          "(core.planning.PlanInputs as JSON: kind, baseline, sd, mde, relative, alpha, power, "
          "alternative, weights, daily_traffic, exposure); null = not recorded."),
]


class CapSpec(BaseModel):
    """A metric's capping rule in the plan (core.stats.capping.CapRule): ``fixed`` with the cap
    (finite, > 0), or ``percentile`` with p (0.5 < p < 1) of every unit's value pooled across
    the variants."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kind: CapKind = Field(description="fixed: cap at value; percentile: cap at the pooled "
                          "percentile value (0.99 = p99) of every unit's value.")
    value: float = Field(strict=True, description="The fixed cap (> 0), or p (0.5 < p < 1).")

    @model_validator(mode="after")
    def _rule(self) -> CapSpec:
        self.rule  # noqa: B018 - CapRule's checks, worded for people
        return self

    @property
    def rule(self) -> CapRule:
        return CapRule(self.kind, self.value)


Capping = Annotated[
    dict[MetricRef, CapSpec],
    Field(max_length=2 * MAX_METRICS + 1,
          description="Mean or ratio metric name -> its capping rule (each a metric of this "
          "experiment): per-unit values above the cap count as the cap before the sums are "
          "taken; a ratio metric's numerator and denominator are capped each on its own. "
          "Frozen at launch."),
]


def _no_capping(value: Any) -> Any:
    return {} if value is None else value


class VariantSpec(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    name: VariantName
    weight: float = Field(strict=True, gt=0, lt=1)

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a variant needs a name")
        return value


class ExperimentFields(BaseModel):
    """Every editable field of an experiment; `ExperimentPatch` makes them all optional."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    name: Name
    owner: Owner
    hypothesis: Hypothesis = ""
    target_segment: Segment = ""
    primary_metric: MetricRef | None = None
    guardrail_metrics: list[MetricRef] = Field(default_factory=list, max_length=MAX_METRICS)
    secondary_metrics: list[MetricRef] = Field(default_factory=list, max_length=MAX_METRICS)
    variants: list[VariantSpec] = Field(default_factory=list, max_length=MAX_VARIANTS)
    planned_sample_size: SampleSize = None
    mde: Number | None = Field(default=None, gt=0, le=MAX_REACH)
    alpha: Number = Field(default=0.05, gt=0, lt=0.5)
    power: Number = Field(default=0.8, gt=0.5, lt=1)
    analysis_mode: AnalysisMode = "fixed"
    correction: Correction = "holm"
    alternative: AlternativeField = "two-sided"
    guardrail_margins: GuardrailMargins = Field(default_factory=dict)
    prior_lift_mean: PriorMean = None
    prior_lift_sd: PriorSd = None
    post_stratify_on: PostStratifyOn = None
    plan_inputs: PlanInputsRecord = None
    capping: Annotated[Capping, BeforeValidator(_no_capping)] = Field(default_factory=dict)
    planned_start: Day | None = None
    planned_end: Day | None = None
    reach: Reach = None
    impact: Number | None = None
    confidence: Number | None = Field(default=None, ge=0, le=100)
    effort: Effort = None
    decision: Decision | None = None
    learnings: Learnings = ""
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    refresh_every_days: RefreshEveryDays = None
    assignment_source: SourceRef | None = Field(
        default=None, description="Warehouse: the assignment source its exposures come from "
        "(with experiment_key); null = data arrives by files or a SQL source.")
    experiment_key: ExperimentKey | None = None


def drop_null_defaults(schema: dict[str, Any], _cls: Any = None) -> None:
    """JSON Schema hook: a property that refuses null shows no ``default: null`` (it may be left
    out, meaning unchanged, but not sent as null)."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None and not _allows_null(prop):
            del prop["default"]


def _allows_null(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(
        branch.get("type") == "null" for branch in prop.get("anyOf", ())
    )


_OPTIONAL: Any = None
"""Default of a patch field that cannot be cleared: absent means unchanged, null is refused."""


class ExperimentPatch(BaseModel):
    """A partial update: only the fields present change (same limits as ExperimentFields).

    Fields an experiment always has (name, owner, texts, lists, alpha, power, modes) may be
    left out but not sent as null; the others accept null to clear them."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra=drop_null_defaults
    )

    name: Name = _OPTIONAL
    owner: Owner = _OPTIONAL
    hypothesis: Hypothesis = _OPTIONAL
    target_segment: Segment = _OPTIONAL
    primary_metric: MetricRef | None = None
    guardrail_metrics: Annotated[list[MetricRef], Field(max_length=MAX_METRICS)] = _OPTIONAL
    secondary_metrics: Annotated[list[MetricRef], Field(max_length=MAX_METRICS)] = _OPTIONAL
    variants: Annotated[list[VariantSpec], Field(max_length=MAX_VARIANTS)] = _OPTIONAL
    planned_sample_size: SampleSize = None
    mde: Number | None = Field(default=None, gt=0, le=MAX_REACH)
    alpha: Annotated[Number, Field(gt=0, lt=0.5)] = _OPTIONAL
    power: Annotated[Number, Field(gt=0.5, lt=1)] = _OPTIONAL
    analysis_mode: AnalysisMode = _OPTIONAL
    correction: Correction = _OPTIONAL
    alternative: AlternativeField = _OPTIONAL
    guardrail_margins: GuardrailMargins = _OPTIONAL
    prior_lift_mean: PriorMean = None
    prior_lift_sd: PriorSd = None
    post_stratify_on: PostStratifyOn = None
    plan_inputs: PlanInputsRecord = None
    capping: Capping = _OPTIONAL
    planned_start: Day | None = None
    planned_end: Day | None = None
    reach: Reach = None
    impact: Number | None = None
    confidence: Number | None = Field(default=None, ge=0, le=100)
    effort: Effort = None
    decision: Decision | None = None
    learnings: Learnings = _OPTIONAL
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = _OPTIONAL
    refresh_every_days: RefreshEveryDays = None
    assignment_source: SourceRef | None = None
    experiment_key: ExperimentKey | None = None


class ExperimentView(ExperimentFields):
    """An experiment as the app, API and reports see it.

    Texts and lists are read back without the input caps, so a record stored before a cap
    existed still reads (an edit then asks to shorten it)."""

    model_config = ConfigDict(extra="forbid")

    hypothesis: str = ""
    learnings: str = ""
    guardrail_metrics: list[str] = Field(default_factory=list)
    secondary_metrics: list[str] = Field(default_factory=list)
    guardrail_margins: dict[str, float] = Field(default_factory=dict)
    variants: list[VariantSpec] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    id: int
    status: Status
    rice_score: float | None
    actual_start: date | None
    actual_end: date | None
    abandon_reason: str | None
    frozen_plan: dict[str, Any] | None
    plan_frozen_at: datetime | None
    archived_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    version: int

    @property
    def is_frozen(self) -> bool:
        return self.frozen_plan is not None

    @property
    def control(self) -> str | None:
        return self.variants[0].name if self.variants else None


def validation_problems(exc: ValidationError) -> list[str]:
    """Pydantic's errors as plain words, one ``field: message; give <hint>`` per problem."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "input"
        msg = err["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(str(err["loc"][0])) if err["loc"] else None
        if hint and err["type"] not in ("value_error", "extra_forbidden"):
            msg = f"{msg}; give {hint}"
        problems.append(f"{where}: {msg}")
    return problems


def rice_score(
    reach: float | None, impact: float | None, confidence: float | None, effort: float | None
) -> float | None:
    """Intercom's RICE: Reach × Impact × Confidence / Effort (confidence as a fraction)."""
    if None in (reach, impact, confidence, effort):
        return None
    assert reach is not None and impact is not None and confidence is not None
    assert effort is not None
    return reach * impact * (confidence / 100.0) / effort


_LIST_FIELDS = ("guardrail_metrics", "secondary_metrics", "guardrail_margins", "variants", "tags")
_ROW_FIELDS = tuple(name for name in ExperimentView.model_fields if name not in _LIST_FIELDS)
"""The view's fields read straight from an experiment row (its columns and ``primary_metric``)."""


def views_from_rows(
    experiments: Sequence[ViewRow], variants: Sequence[ViewRow], links: Sequence[ViewRow]
) -> list[ExperimentView]:
    """Stored experiments as the app, API and reports see them, in the order of `experiments`,
    from the rows ``db.repositories.experiment_view_rows`` (or ``experiments_view_rows``)
    reads: variants come by position, guardrail and secondary metrics as the links come."""
    found: dict[int, dict[str, Any]] = {}
    for row in experiments:
        columns = row._mapping
        data = {name: columns[name] for name in _ROW_FIELDS}
        data.update(tags=list(columns["tags"] or []), variants=[], guardrail_metrics=[],
                    secondary_metrics=[], guardrail_margins={})
        found[row.id] = data
    for variant in variants:
        found[variant.experiment_id]["variants"].append(
            {"name": variant.name, "weight": variant.weight})
    for link in links:
        data = found[link.experiment_id]
        if link.role == "guardrail":
            data["guardrail_metrics"].append(link.name)
            if link.margin is not None:
                data["guardrail_margins"][link.name] = link.margin
        elif link.role == "secondary":
            data["secondary_metrics"].append(link.name)
    return [ExperimentView.model_validate(data) for data in found.values()]
