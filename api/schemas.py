"""Request and response bodies of the API.

Request bodies reuse the services' own pydantic models (ExperimentFields, ExperimentPatch,
MetricFields), whose limits (integers that fit the database, finite numbers, text without NUL
characters) the registry owns; this module adds only what an HTTP boundary needs: every body
refuses unknown fields, non-finite numbers and unsafe text, and updates name their version.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import Body
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from core import planning
from core.backlog.knowledge import SHRUNK_LABEL, KnowledgeBase, Learning, ProgrammeImpact
from core.backlog.rice import Testability
from core.catalogue import MetricFields
from core.registry import (
    MAX_LEARNINGS_LENGTH,
    MAX_REASON_LENGTH,
    NO_NUL_PATTERN,
    NOT_BLANK_PATTERN,
    RICE_IMPACTS,
    SORT_FIELDS,
    Effort,
    ExperimentFields,
    ExperimentPatch,
    ExperimentView,
    Reach,
    SafeStr,
    WholeNumber,
    drop_null_defaults,
    has_visible_text,
    text_problem,
)
from core.types import Aggregation, Alternative, Decision, MetricKind, Status, Untestable
from core.warehouse.catalog import (
    AssignmentSourceEdit,
    AssignmentSourceFields,
    ConnectionEdit,
    ConnectionFields,
    FactSourceEdit,
    FactSourceFields,
)

MAX_INT = 2**31 - 1
"""Largest integer the database columns hold (PostgreSQL INTEGER): ids and versions."""
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
SortKey = Literal[tuple(f"{p}{f}" for f in SORT_FIELDS for p in ("", "-"))]  # type: ignore[valid-type]


SafeText = SafeStr
"""Text the database can store (no NUL, no unpaired surrogate), for query parameters."""


class ExperimentListQuery(BaseModel):
    """The query parameters of ``GET /experiments``, validated as one model (FastAPI took
    ~10 µs a request per separately declared parameter: nine of them were a quarter of the
    list's own Python)."""

    status: Status | None = None
    owner: SafeText | None = Field(default=None, max_length=120)
    tag: SafeText | None = Field(default=None, max_length=80)
    q: SafeText | None = Field(
        default=None, max_length=200, description="Text in the name, hypothesis or learnings."
    )
    sort: SortKey = Field(
        default="-updated_at", description="Field to sort by; a leading `-` sorts descending."
    )
    include_archived: bool = True
    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=50, ge=1, le=500)


def _walk_text(value: Any, where: str) -> None:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise ValueError(f"{where or 'body'}: {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_text(key, where)
            _walk_text(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk_text(item, f"{where}[{i}]")


class RequestBody(BaseModel):
    """Base of request bodies: unknown fields, non-finite numbers and unsafe text are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _safe_text(cls, data: Any) -> Any:
        _walk_text(data, "")
        return data


# --------------------------------------------------------------------------- experiments


def _not_null(schema: dict[str, Any]) -> None:
    """JSON Schema of an optional number that may not be sent as null."""
    for branch in schema.pop("anyOf", []):
        if branch.get("type") != "null":
            schema.update(branch)


def _rice_schema(schema: dict[str, Any]) -> None:
    """RiceUpdate: no field is nullable, and at least one RICE input comes with the version."""
    for prop in schema.get("properties", {}).values():
        _not_null(prop)
    drop_null_defaults(schema)
    schema["minProperties"] = 2

_Version = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_INT,
        description="The version you read (the record's `version`, also its ETag); a stale one "
        "gets 409 and changes nothing.",
    ),
    WholeNumber,
]
_Reason = Annotated[
    str,
    Field(max_length=MAX_REASON_LENGTH, json_schema_extra={"pattern": NO_NUL_PATTERN}),
]
_Learnings = Annotated[
    str,
    Field(max_length=MAX_LEARNINGS_LENGTH, json_schema_extra={"pattern": NO_NUL_PATTERN}),
]


class ExperimentCreate(RequestBody, ExperimentFields):
    """A new experiment (it starts as `proposed`)."""


class ExperimentUpdate(RequestBody, ExperimentPatch):
    """A partial update: only the fields sent change; `version` is required."""

    version: _Version
    reason: _Reason | None = Field(
        default=None,
        description="Why; required when changing the frozen plan of a launched experiment.",
    )

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude={"version", "reason"})


class _Transition(RequestBody):
    version: _Version
    learnings: _Learnings | None = Field(
        default=None, description="What was learned (replaces the stored learnings)."
    )
    reason: _Reason | None = Field(default=None, description="Why (kept in the audit log).")


class LaunchRequest(_Transition):
    """Launch a proposed experiment: it needs a hypothesis, a primary metric, variants and a
    planned sample size (409 otherwise); its analysis plan is frozen."""

    to_status: Literal["running"]


class CompleteRequest(_Transition):
    """Complete a running experiment with its decision."""

    to_status: Literal["completed"]
    decision: Decision | None = Field(
        default=None, description="Required unless the experiment already has one (409)."
    )


class AbandonRequest(_Transition):
    """Abandon a proposed or running experiment, saying why."""

    to_status: Literal["abandoned"]
    reason: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_REASON_LENGTH,
            json_schema_extra={"pattern": NOT_BLANK_PATTERN},
            description="Why it is abandoned (required, not blank).",
        ),
    ]

    @model_validator(mode="after")
    def _reason_not_blank(self) -> AbandonRequest:
        if not has_visible_text(self.reason):
            raise ValueError("reason: say why the experiment is abandoned (in visible "
                             "characters: invisible ones such as zero-width spaces alone do "
                             "not count)")
        return self


TransitionRequest = Annotated[
    LaunchRequest | CompleteRequest | AbandonRequest, Body(discriminator="to_status")
]
"""Move an experiment along its lifecycle: proposed → running → completed, or → abandoned."""


def _assume_utc(value: datetime) -> datetime:
    """SQLite hands back naive timestamps; every stored timestamp is UTC, so say so."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_assume_utc)]


class ExperimentOut(ExperimentView):
    """An experiment as the services see it, with timestamps always carrying their zone."""

    model_config = ConfigDict(from_attributes=True)

    plan_frozen_at: UtcDatetime | None
    archived_at: UtcDatetime | None
    created_at: UtcDatetime | None
    updated_at: UtcDatetime | None


class ExperimentPage(BaseModel):
    items: list[ExperimentOut]
    total: int
    page: int
    page_size: int
    pages: int


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: UtcDatetime
    actor: str = Field(description="Who acted; `api:<key name>` for changes made with a key.")
    entity_type: str
    entity_id: int
    action: str
    changes: dict[str, Any] = Field(description="{field: [before, after]}")
    reason: str | None
    is_deviation: bool


class RiceUpdate(RequestBody):
    """New values for some of an idea's RICE inputs (at least one); `version` is required."""

    model_config = ConfigDict(
        json_schema_extra=lambda schema, _cls: _rice_schema(schema)  # type: ignore[misc]
    )

    reach: Annotated[Reach, Field(json_schema_extra=_not_null)] = None
    impact: float | None = Field(
        default=None,
        strict=True,
        description="3, 2, 1, 0.5 or 0.25.",
        json_schema_extra={"enum": list(RICE_IMPACTS)},
    )
    confidence: float | None = Field(
        default=None, strict=True, ge=0, le=100, description="Percent."
    )
    effort: Annotated[Effort, Field(json_schema_extra=_not_null)] = None
    version: _Version

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude={"version"})


class PromoteRequest(RequestBody):
    version: _Version


class IdeaOut(BaseModel):
    """A backlog idea: its rank (1 = best RICE score), the experiment, its testability."""

    rank: int
    experiment: ExperimentOut
    testability: Testability
    observed_reach: float | None = Field(
        description="Reach per quarter implied by the segment's observed traffic, if any."
    )


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class LearningOut(BaseModel):
    """A completed experiment in the knowledge base: its primary-metric lift raw and shrunk."""

    id: int
    name: str
    owner: str
    decision: Decision | None
    completed: date | None
    tags: list[str]
    learnings: str
    primary_metric: str | None
    lift: float | None = Field(description="Raw relative lift of the primary metric.")
    lift_se: float | None = Field(description="Its standard error (delta method).")
    lift_shrunk: float | None = Field(
        description=f"The lift {SHRUNK_LABEL} across the portfolio; see programme_impact.")
    lift_shrunk_sd: float | None
    shrinkage_weight: float | None = Field(
        description="Weight on the experiment's own estimate, tau^2 / (tau^2 + se^2).")
    p_value: float | None
    significant: bool | None
    result_state: str | None

    @classmethod
    def of(cls, item: Learning, impact: ProgrammeImpact) -> LearningOut:
        r, x = item.result, impact.lift_of(item.id)
        return cls(
            id=item.id, name=item.name, owner=item.owner, decision=item.decision,  # type: ignore[arg-type]
            completed=item.ended, tags=list(item.tags), learnings=item.learnings,
            primary_metric=r.metric if r else None, lift=_finite(r.lift) if r else None,
            lift_se=_finite(r.lift_se) if r else None,
            lift_shrunk=x.shrunk_lift if x else None, lift_shrunk_sd=x.shrunk_sd if x else None,
            shrinkage_weight=x.weight if x else None,
            p_value=_finite(r.p_value) if r else None,
            significant=r.significant if r else None,
            result_state=r.decision_state if r else None,
        )


class ProgrammeImpactOut(BaseModel):
    """The shipped experiments' summed primary-metric improvement, raw and shrunk."""

    method: str
    applied: bool
    reason: str | None = Field(description="Why nothing was shrunk (too few experiments).")
    summary: str
    population: int = Field(description="Completed experiments the prior is estimated from.")
    without_result: int
    prior_mean: float | None = Field(description="Portfolio mean improvement (mu).")
    tau: float | None = Field(description="Spread of true improvements between experiments.")
    shipped: int
    raw_sum: float
    raw_sum_se: float | None
    shrunk_sum: float
    shrunk_sum_sd: float | None
    raw_mean: float | None
    shrunk_mean: float | None

    @classmethod
    def of(cls, impact: ProgrammeImpact) -> ProgrammeImpactOut:
        s, t = impact.shrinkage, impact.shipped
        return cls(
            method=impact.method, applied=s.applied, reason=s.reason, summary=impact.summary,
            population=impact.population, without_result=impact.without_result,
            prior_mean=_finite(s.prior_mean), tau=_finite(s.tau), shipped=t.count,
            raw_sum=t.raw_sum, raw_sum_se=_finite(t.raw_sum_se), shrunk_sum=t.shrunk_sum,
            shrunk_sum_sd=_finite(t.shrunk_sum_sd), raw_mean=_finite(t.raw_mean),
            shrunk_mean=_finite(t.shrunk_mean),
        )


class KnowledgeOut(BaseModel):
    """The knowledge base: matching completed experiments and the programme impact."""

    experiments: list[LearningOut]
    programme_impact: ProgrammeImpactOut

    @classmethod
    def of(cls, kb: KnowledgeBase) -> KnowledgeOut:
        return cls(experiments=[LearningOut.of(e, kb.impact) for e in kb.experiments],
                   programme_impact=ProgrammeImpactOut.of(kb.impact))


# --------------------------------------------------------------------------- metrics


def _snake_case(name: str) -> str:
    if not _SNAKE.match(name):
        raise ValueError("use lower_snake_case, e.g. checkout_conversion")
    return name


class MetricCreate(RequestBody, MetricFields):
    """A new catalogue metric; names are lower_snake_case and unique."""

    name: Annotated[str, AfterValidator(_snake_case)] = Field(
        min_length=1, max_length=80, json_schema_extra={"pattern": _SNAKE.pattern}
    )


class MetricOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: MetricKind
    unit: str
    higher_is_better: bool
    description: str
    numerator: str | None = None
    denominator: str | None = None
    fact_source: str | None = Field(
        default=None, description="Warehouse metrics: the fact source it is computed from; "
        "null for a metric loaded from files or SQL.")
    aggregation: Aggregation | None = None
    value_column: str | None = None
    denominator_column: str | None = None
    window_days: int | None = None
    cuped_days: int | None = None
    quantile_p: float | None = Field(
        default=None, description="Quantile metrics: the level p of the per-unit value's "
        "quantile (0.9 = p90); null for other kinds.")


# --------------------------------------------------------------------------- warehouse


class ConnectionCreate(RequestBody, ConnectionFields):
    """A new warehouse connection (admin scope); a credential only as ${ENV_VAR}."""


class ConnectionUpdate(RequestBody, ConnectionEdit):
    """Changes to a connection: fields left out (or null) stay."""


class ConnectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    url: str = Field(description="As stored: ${ENV_VAR} placeholders, never a credential.")
    allow_app_database: bool
    sources: list[str] = Field(description="The assignment and fact sources that query it.")
    created_by: str
    updated_by: str
    created_at: UtcDatetime | None
    updated_at: UtcDatetime | None


class AssignmentSourceCreate(RequestBody, AssignmentSourceFields):
    """A new assignment source (write scope)."""


class AssignmentSourceUpdate(RequestBody, AssignmentSourceEdit):
    """Changes to an assignment source: fields left out (or null) stay."""


class AssignmentSourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    connection: str
    sql: str
    dimensions: list[str]
    covariates: list[str] = Field(description="Numeric unit-attribute columns every metric is "
                                  "regression-adjusted on (each unit's value at its first "
                                  "exposure; NULL counts as missing).")
    experiments: list[str] = Field(description="The experiments that read it.")
    created_by: str
    updated_by: str
    created_at: UtcDatetime | None
    updated_at: UtcDatetime | None


class FactSourceCreate(RequestBody, FactSourceFields):
    """A new fact source (write scope)."""


class FactSourceUpdate(RequestBody, FactSourceEdit):
    """Changes to a fact source: fields left out (or null) stay."""


class FactSourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    connection: str
    sql: str
    columns: list[str]
    metrics: list[str] = Field(description="The catalogue metrics computed from it.")
    created_by: str
    updated_by: str
    created_at: UtcDatetime | None
    updated_at: UtcDatetime | None


class WarehouseRunOut(BaseModel):
    """The latest query of one source of an experiment: the exact SQL that ran."""

    model_config = ConfigDict(from_attributes=True)

    source: str
    role: Literal["assignment", "fact"]
    sql: str = Field(description="The exact SQL (several statements when several ran, each "
                     "ended by `;`); empty when none ran: every exposure day was final.")
    rows_returned: int
    rows_scanned: int | None = Field(description="Where the engine reports it.")
    seconds: float
    ran_at: UtcDatetime | None
    ran_by: str
    open_from: date | None = Field(description="Fact sources: the first exposure day "
                                   "recomputed.")
    final_through: date | None = Field(description="Fact sources: the last exposure day "
                                       "whose values are final.")
    units: int | None = Field(description="Assignment source: units kept, each in one "
                              "variant.")
    multi_variant_units: int | None = Field(
        description="Assignment source: units seen in more than one variant, excluded.")


class WarehouseRefreshOut(BaseModel):
    """What a refresh from the warehouse did (a results snapshot follows it)."""

    model_config = ConfigDict(from_attributes=True)

    experiment_id: int
    experiment_name: str
    assignment_source: str
    full: bool
    rows_read: int = Field(description="Records the warehouse returned.")
    stats_rows_written: int = Field(description="Daily rows stored (0: nothing changed).")
    changed: bool
    metrics: list[str]
    units: int
    multi_variant_units: int
    units_by_variant: dict[str, int]
    open_from: dict[str, date]
    final_through: dict[str, date | None]
    runs: list[WarehouseRunOut]
    notes: list[str]
    seconds: float


# --------------------------------------------------------------------------- planner

_Alpha = Annotated[float, Field(
    default=0.05, ge=planning.MIN_ALPHA, lt=0.5,
    description="Significance level, in [1e-6, 0.5) (split over the treatments).")]
_Power = Annotated[float, Field(
    default=0.8, gt=0.5, le=planning.MAX_POWER, description="Target power, in (0.5, 0.9999].")]
_Mde = Annotated[
    float, Field(gt=0, le=1e12, description="Minimum detectable effect, > 0 (see `relative`).")
]
_N = Annotated[float, Field(ge=2, le=1e12, description="Units in the control arm.")]
_Weights = Annotated[
    list[float],
    Field(min_length=2, max_length=20,
          description="Traffic share per arm, control first, each > 0, summing to 1."),
]


class _PlanBase(RequestBody):
    """Planner inputs: JSON numbers and booleans only (``true`` is not 1, ``"0.5"`` no number).

    The split is `weights`, or else `variants` arms with every treatment at `ratio` times the
    control. With `daily_traffic` the answer has days too. Inputs that together have no answer
    (a baseline + mde outside (0, 1), weights that do not sum to 1, an effect too small to
    detect in finite samples) get 422 saying what to change."""

    model_config = ConfigDict(strict=True)

    alpha: _Alpha
    alternative: Alternative = "two-sided"
    ratio: float = Field(
        default=1.0, ge=0.01, le=100, description="n_treatment / n_control (1 = equal arms)."
    )
    variants: Annotated[int, WholeNumber] = Field(
        default=2, ge=2, le=20, description="Arms including control; > 2 splits alpha."
    )
    weights: _Weights | None = None
    daily_traffic: float | None = Field(
        default=None, gt=0, le=1e12, description="Eligible units a day; gives the days."
    )
    exposure: float = Field(
        default=1.0, gt=0, le=1, description="Share of the daily traffic enrolled, (0, 1]."
    )

    @model_validator(mode="after")
    def _one_split(self) -> _PlanBase:
        if self.weights is not None:
            given = self.model_fields_set & {"ratio", "variants"}
            if "ratio" in given or ("variants" in given and self.variants != len(self.weights)):
                raise ValueError("weights: give the split as weights, or as ratio and variants, "
                                 "not both")
        return self

    @property
    def split(self) -> tuple[float, ...]:
        """The traffic split, control first."""
        if self.weights is not None:
            return tuple(self.weights)
        return planning.weights_for_ratio(self.ratio, self.variants)


class _Binomial(_PlanBase):
    kind: Literal["binomial"]
    baseline: float = Field(gt=0, lt=1, description="Control conversion rate, e.g. 0.05.")


class _Mean(_PlanBase):
    kind: Literal["mean"]
    sd: float = Field(gt=0, le=1e12, description="Standard deviation of the metric per unit.")
    r_squared: float = Field(
        default=0.0, ge=0, lt=1,
        description="Expected variance reduction, in [0, 1): the share of the metric's variance "
        "a pre-experiment covariate explains (CUPED); the test runs on sd² (1 − R²).",
    )


class _MeanEffect(_Mean):
    mde: _Mde
    relative: bool = Field(default=False, description="mde as a fraction of baseline_mean.")
    baseline_mean: float | None = Field(default=None, ge=-1e12, le=1e12)

    @model_validator(mode="after")
    def _baseline_for_relative(self) -> _MeanEffect:
        if self.relative and not self.baseline_mean:
            raise ValueError("relative=True needs baseline_mean (non-zero): the mde is a "
                             "fraction of it")
        return self


class BinomialSampleSize(_Binomial):
    mde: _Mde
    relative: bool = Field(default=True, description="mde relative to baseline (0.1 = +10%).")
    power: _Power


class MeanSampleSize(_MeanEffect):
    power: _Power


class BinomialPower(_Binomial):
    mde: _Mde
    relative: bool = True
    n: _N


class MeanPower(_MeanEffect):
    n: _N


class BinomialMde(_Binomial):
    n: _N
    power: _Power


class MeanMde(_Mean):
    n: _N
    power: _Power


SampleSizeRequest = Annotated[BinomialSampleSize | MeanSampleSize, Body(discriminator="kind")]
PowerRequest = Annotated[BinomialPower | MeanPower, Body(discriminator="kind")]
MdeRequest = Annotated[BinomialMde | MeanMde, Body(discriminator="kind")]


class DurationRequest(RequestBody):
    """Days until every arm has its units; `weights`, if given, has one share per arm, each
    > 0, summing to 1 (422 otherwise)."""

    model_config = ConfigDict(strict=True)

    n_per_variant: float = Field(
        gt=0, le=1e12,
        description="Units each arm needs (a plan's `n_per_variant`: its smallest arm's).",
    )
    daily_units: float = Field(gt=0, le=1e12, description="Eligible units arriving per day.")
    exposure: float = Field(default=1.0, gt=0, le=1, description="Fraction enrolled, (0, 1].")
    variants: Annotated[int, WholeNumber] = Field(default=2, ge=2, le=20)
    weights: list[float] | None = Field(
        default=None,
        max_length=20,
        description="Traffic share per arm (summing to 1); default equal.",
    )


class SampleSizeResult(BaseModel):
    sample_size: int = Field(
        description="Units in the control arm; each treatment arm needs ratio × this."
    )
    n_per_variant: int = Field(description="Units of the smallest arm (the planned sample size).")
    total: int = Field(description="Units over every arm.")
    days: int | None = Field(description="Days to enrol them; null without daily_traffic.")


class PowerResult(BaseModel):
    power: float


class MdeResult(BaseModel):
    mde: float = Field(
        description="Smallest ABSOLUTE effect detectable (rate difference, or metric units)."
    )
    relative_mde: float | None = Field(
        description="mde / baseline for binomial metrics; null for means."
    )


class DurationResult(BaseModel):
    days: int


# --------------------------------------------------------------------------- segments

class SegmentSliceOut(BaseModel):
    """One slice of a dimension: a value among the top N, or `(other)` pooling the rest."""

    model_config = ConfigDict(from_attributes=True)

    value: str = Field(description="The dimension value, or `(other)`.")
    members: list[str] = Field(description="The dimension values in the slice.")
    units: int = Field(description="Units assigned in the slice, all variants.")
    srm_p_value: float | None = Field(
        description="The slice's own SRM check (chi-square of its assignment counts against "
        "the planned split), shown for reference, not decided on; null with fewer than 2 "
        "variants or no units."
    )
    srm_flagged: bool = Field(
        description="SRM per dimension value: `srm_adjusted_p_value` < 0.001, the slice's "
        "assignment is broken and its effects are withheld.")
    srm_sequential_p_value: float | None = Field(
        default=None, description="Anytime-valid SRM p-value of the slice's counts "
        "(Dirichlet-multinomial Bayes factor, Lindon & Malek 2022): valid however often it is "
        "read.")
    srm_adjusted_p_value: float | None = Field(
        default=None, description="`srm_sequential_p_value` Holm-adjusted over the "
        "dimension's values: the p-value the flag is decided on.")


class SegmentComparisonOut(BaseModel):
    """One slice, one metric, one treatment against the control (fixed-horizon, two-sided)."""

    model_config = ConfigDict(from_attributes=True)

    value: str = Field(description="The slice (a dimension value or `(other)`).")
    metric: str
    kind: MetricKind
    treatment: str
    control_n: int
    treatment_n: int
    control_mean: float | None
    treatment_mean: float | None
    diff: float | None = Field(description="Treatment minus control (null when withheld).")
    diff_ci_low: float | None
    diff_ci_high: float | None
    p_value: float | None = Field(description="Raw p-value of the difference.")
    lift: float | None = Field(description="Treatment / control - 1.")
    lift_ci_low: float | None
    lift_ci_high: float | None
    lift_p_value: float | None = Field(description="p-value of the lift (its own test).")
    adjusted_p_value: float | None = Field(
        description="`p_value` corrected across every comparison of the dimension (the "
        "experiment's correction); null for a withheld or untested slice."
    )
    test: str = Field(description="The test used (`wald_z`, `mover_cp`, `welch`, "
                      "`delta_ratio`); empty when the slice was not tested.")
    significant: bool = Field(description="adjusted_p_value < alpha (exploratory).")
    srm_p_value: float | None
    blocked: bool = Field(description="The slice's SRM check failed: its effects are null.")
    untestable: Untestable | None = Field(
        default=None, description="Why the slice cannot be tested (`no_variation`: every unit "
        "has the same value in both arms), else null; such a slice is left out of the "
        "correction.")
    reason: str


class SegmentBreakdownOut(BaseModel):
    """Every slice of one dimension and their comparisons; exploratory: no ship decision is
    made from a slice."""

    model_config = ConfigDict(from_attributes=True)

    dimension: str
    top_n: int = Field(description="Values shown on their own; the rest are `(other)`.")
    correction: str = Field(description="The multiple-testing correction (`holm`, `bh`, ...).")
    alpha: float
    exploratory: str = Field(description="The exploratory label to show with the slices.")
    slices: list[SegmentSliceOut]
    comparisons: list[SegmentComparisonOut]


class SegmentsOut(BaseModel):
    """The segment drill-down of an experiment, one breakdown per dimension its data carries
    (none without dimension data); exploratory: no ship decision is made from a slice."""

    experiment_id: int
    exploratory: str = Field(description="The exploratory label to show with the slices.")
    breakdowns: list[SegmentBreakdownOut]


class ScanFindingOut(BaseModel):
    """One slice, one metric, one treatment: its effect against the effect in the rest of the
    experiment (exploratory: worth a look, never a ship decision)."""

    model_config = ConfigDict(from_attributes=True)

    dimension: str
    value: str = Field(description="The slice (a dimension value or `(other)`).")
    metric: str
    kind: MetricKind
    treatment: str
    slice_units: int = Field(description="Units in the slice, control and treatment.")
    rest_units: int = Field(description="Units outside the slice (its complement).")
    slice_effect: float = Field(description="Treatment minus control inside the slice.")
    rest_effect: float = Field(description="Treatment minus control over every other unit.")
    difference: float = Field(description="slice_effect - rest_effect.")
    ci_low: float = Field(description="Two-sided (1 - alpha) interval of the difference, "
                          "not adjusted for the number of slices.")
    ci_high: float
    p_value: float = Field(description="Two-sided p-value of the difference (z test of "
                           "interaction, Altman & Bland 2003).")
    adjusted_p_value: float = Field(description="`p_value` Holm-adjusted across every slice "
                                    "of every dimension, metric and treatment.")
    worth_a_look: bool = Field(
        description="adjusted_p_value < alpha: the slice's effect differs from the rest's. "
        "Worth a look, NOT a ship decision: a slice was not the plan.")


class SegmentScanOut(BaseModel):
    """Automatic segment scan: every slice of every dimension against the rest of the
    experiment, Holm-corrected across all of them. Worth a look, never a ship decision."""

    model_config = ConfigDict(from_attributes=True)

    experiment_id: int
    alpha: float
    correction: str = Field(description="Always `holm` (family-wise, across all slices).")
    tested: int = Field(description="Comparisons in the correction's family.")
    note: str = Field(description="The wording to show with the scan: worth a look, not a "
                      "ship decision.")
    findings: list[ScanFindingOut] = Field(
        description="Every tested comparison, those worth a look first.")


# --------------------------------------------------------------------------- reports


class ReportOut(BaseModel):
    """A recorded report: the PDF stored in the artifact store under `key`."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    experiment_id: int
    experiment_name: str
    key: str = Field(description="Where the PDF is in the artifact store (ARTIFACTS_URL).")
    size_bytes: int
    sha256: str = Field(description="SHA-256 of the PDF (hex); the download's ETag.")
    created_at: UtcDatetime | None
    created_by: str = Field(description="Who generated it; `api:<key name>` through a key.")


# --------------------------------------------------------------------------- health


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    database: Literal["ok"] | None = Field(
        default=None, description="`ok` when the database answered (absent on /health/live)."
    )
