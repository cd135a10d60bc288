"""The Experiment Registry: create, edit, list and move experiments through their lifecycle.

Rules enforced here (and nowhere else):

* ``proposed → running`` needs a hypothesis, a primary metric, variants and a planned sample
  size; launching freezes the analysis plan (pre-registration).
* ``running → completed`` needs a decision; ``abandoned`` is reachable from proposed or running
  and needs a reason. No other move exists.
* After launch a frozen plan field changes only with a reason, and the audit entry is marked as
  a plan deviation. The plan includes the primary metric's test direction (``alternative``),
  each guardrail's non-inferiority margin (``guardrail_margins``) and the Bayesian readout's
  optional Gaussian prior on the relative lift (``prior_lift_mean``, ``prior_lift_sd``).
* A one-sided primary test points the way the primary metric calls better ("greater" for a
  higher-is-better metric, "less" for a lower-is-better one): a test that can only find harm
  could never show the win the experiment is for. A margin belongs to a guardrail of the
  experiment, and a prior has both its mean and its sd.
* Every update names the version it was based on; a stale one is refused (no lost updates).
* Every change writes its audit entry in the same transaction; bad input writes nothing.
* Input fits the database: integers fit their INTEGER columns, text fits its column (long
  texts such as the hypothesis and learnings have caps too) and holds no NUL character
  (PostgreSQL refuses them), numbers are finite and RICE inputs are bounded so the score is
  finite too. Numbers must be numbers (``true`` is not 1) and days ISO dates (``2026-03-09``).
  Callers (pages, API, CLI) need no checks of their own.
* Experiment names are unique (ignoring case): a taken name is a conflict (409 in the API).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from core.auth import Actor
from core.errors import Conflict, InvalidInput, NotFound, RuleViolation
from core.transactions import transaction
from core.types import Alternative, AnalysisMode, Correction, Decision, Status
from db import repositories as repo
from db.models import AuditEntry, Experiment, ExperimentMetric, Variant

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
)
"""The analysis plan: frozen when an experiment is launched."""

ALLOWED_MOVES: dict[str, tuple[str, ...]] = {
    "proposed": ("running", "abandoned"),
    "running": ("completed", "abandoned"),
    "completed": (),
    "abandoned": (),
}
EDITABLE_WHEN_CLOSED: tuple[str, ...] = ("owner", "learnings", "tags", "refresh_every_days")
RICE_IMPACTS: tuple[float, ...] = (3.0, 2.0, 1.0, 0.5, 0.25)
SORT_FIELDS: tuple[str, ...] = ("name", "status", "owner", "created_at", "updated_at", "rice_score")

MAX_SAMPLE_SIZE = 2_147_483_647
"""Largest planned sample size: the column is an INTEGER (PostgreSQL: 2**31 - 1)."""
MAX_REACH = 1e12
EFFORT_RANGE: tuple[float, float] = (0.01, 10_000.0)
"""Person-weeks; the lower bound keeps the RICE score finite."""
MAX_REFRESH_EVERY_DAYS = 90
"""Longest refresh schedule, in days (core.data.refresh uses the same bound)."""
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
MAX_METRICS = 20
"""Guardrail or secondary metrics per experiment (each list)."""
MAX_VARIANTS = 20
"""Variants per experiment, control included (the planner's limit too)."""
MAX_TAGS = 30
NO_NUL_PATTERN = r"^[^\u0000]*$"
"""JSON Schema pattern of text without NUL characters (documents :func:`text_problem`)."""
NOT_BLANK_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
"""Text without NUL holding at least one character that is not white space."""


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
SafeStr = Annotated[str, _NO_NUL, _SAFE]
"""Text the database can store (no NUL, no unpaired surrogate)."""
# Length limits come before the text check, so pydantic reports them as string lengths.
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), _NOT_BLANK, _SAFE]
Owner = Annotated[str, Field(min_length=1, max_length=MAX_OWNER_LENGTH), _NOT_BLANK, _SAFE]
Segment = Annotated[str, Field(max_length=MAX_SEGMENT_LENGTH), _NO_NUL, _SAFE]
Tag = Annotated[str, Field(max_length=MAX_TAG_LENGTH), _NO_NUL, _SAFE]
VariantName = Annotated[str, Field(min_length=1, max_length=80), _NOT_BLANK, _SAFE]
MetricRef = Annotated[str, Field(min_length=1, max_length=MAX_METRIC_NAME_LENGTH), _NO_NUL, _SAFE]
"""The name of a catalogue metric."""
Hypothesis = Annotated[str, Field(max_length=MAX_HYPOTHESIS_LENGTH), _NO_NUL, _SAFE]
Learnings = Annotated[str, Field(max_length=MAX_LEARNINGS_LENGTH), _NO_NUL, _SAFE]
Number = Annotated[float, Field(strict=True)]
"""A JSON number (an integer is fine; ``true`` or ``"3"`` is not)."""
SampleSize = Annotated[
    int | None,
    Field(strict=True, gt=0, le=MAX_SAMPLE_SIZE, description="Planned units per variant."),
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
}
"""What a valid value looks like, appended to pydantic's message for a field."""


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


@dataclass(frozen=True)
class Page:
    items: list[ExperimentView]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


# --------------------------------------------------------------------------- helpers


def like_escape(text: str) -> str:
    """`text` for a LIKE pattern with ``escape="\\"``: its ``%`` and ``_`` match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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


def _to_view(exp: Experiment) -> ExperimentView:
    return ExperimentView.model_validate(_view_dict(exp))


def _view_dict(exp: Experiment) -> dict[str, Any]:
    return {
        "id": exp.id,
        "name": exp.name,
        "owner": exp.owner,
        "hypothesis": exp.hypothesis,
        "target_segment": exp.target_segment,
        "primary_metric": exp.primary_metric.name if exp.primary_metric else None,
        "guardrail_metrics": [m.name for m in exp.metrics_with_role("guardrail")],
        "secondary_metrics": [m.name for m in exp.metrics_with_role("secondary")],
        "variants": [{"name": v.name, "weight": v.weight} for v in exp.variants],
        "planned_sample_size": exp.planned_sample_size,
        "mde": exp.mde,
        "alpha": exp.alpha,
        "power": exp.power,
        "analysis_mode": exp.analysis_mode,
        "correction": exp.correction,
        "alternative": exp.alternative,
        "guardrail_margins": {link.metric.name: link.margin for link in exp.metric_links
                              if link.role == "guardrail" and link.margin is not None},
        "prior_lift_mean": exp.prior_lift_mean,
        "prior_lift_sd": exp.prior_lift_sd,
        "planned_start": exp.planned_start,
        "planned_end": exp.planned_end,
        "reach": exp.reach,
        "impact": exp.impact,
        "confidence": exp.confidence,
        "effort": exp.effort,
        "decision": exp.decision,
        "learnings": exp.learnings,
        "tags": list(exp.tags or []),
        "refresh_every_days": exp.refresh_every_days,
        "status": exp.status,
        "rice_score": exp.rice_score,
        "actual_start": exp.actual_start,
        "actual_end": exp.actual_end,
        "abandon_reason": exp.abandon_reason,
        "frozen_plan": exp.frozen_plan,
        "plan_frozen_at": exp.plan_frozen_at,
        "archived_at": exp.archived_at,
        "created_at": exp.created_at,
        "updated_at": exp.updated_at,
        "version": exp.version,
    }


def _fields_of(view: ExperimentView) -> dict[str, Any]:
    return view.model_dump(include=set(ExperimentFields.model_fields))


def _plain(value: Any) -> Any:
    """A JSON-safe form of a field value, for the audit log and the frozen plan."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump()
    return value


def _apply(session: Session, exp: Experiment, fields: ExperimentFields) -> None:
    """Write validated fields onto the ORM object (metrics and variants included)."""
    scalar = set(ExperimentFields.model_fields) - {
        "primary_metric",
        "guardrail_metrics",
        "secondary_metrics",
        "guardrail_margins",
        "variants",
    }
    for name in scalar:
        setattr(exp, name, getattr(fields, name))
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
    exp.rice_score = rice_score(fields.reach, fields.impact, fields.confidence, fields.effort)


def _frozen_plan(fields: ExperimentFields) -> dict[str, Any]:
    return {name: _plain(getattr(fields, name)) for name in FROZEN_FIELDS}


def _load(session: Session, experiment_id: int, *, for_update: bool = False) -> Experiment:
    exp = repo.get_experiment(session, experiment_id=experiment_id)
    if exp is None:
        raise NotFound(f"No experiment with id {experiment_id}.")
    return exp


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


# --------------------------------------------------------------------------- reads


def get_experiment(session: Session, *, experiment_id: int) -> ExperimentView:
    return _to_view(_load(session, experiment_id))


def experiment_stamp(session: Session, *, experiment_id: int) -> tuple[int, Any]:
    """The experiment's (version, updated_at), one light query; NotFound without it. Every
    change to an experiment changes it, so a view built for a stamp stays right for it."""
    stamp = repo.experiment_stamp(session, experiment_id=experiment_id)
    if stamp is None:
        raise NotFound(f"No experiment with id {experiment_id}.")
    return stamp


def get_experiment_by_name(session: Session, *, name: str) -> ExperimentView:
    experiment_id = repo.experiment_id_by_name(session, name=name)
    if experiment_id is None:
        raise NotFound(f"No experiment named '{name}'.")
    return get_experiment(session, experiment_id=experiment_id)


def list_experiments(
    session: Session,
    *,
    status: Status | None = None,
    owner: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    include_archived: bool = True,
    sort: str = "updated_at",
    descending: bool = True,
    page: int = 1,
    page_size: int = 50,
) -> Page:
    """Experiments matching every given filter, sorted and paginated (page counts from 1)."""
    if sort not in SORT_FIELDS:
        raise InvalidInput(f"sort: use one of {', '.join(SORT_FIELDS)} (got '{sort}')")
    if page < 1 or not 1 <= page_size <= 500:
        raise InvalidInput("page must be ≥ 1 and page_size between 1 and 500")
    query = select(Experiment)
    if status:
        query = query.where(Experiment.status == status)
    if owner:
        query = query.where(func.lower(Experiment.owner) == owner.strip().lower())
    if tag:
        tag_pattern = f'%"{like_escape(tag.strip())}"%'
        query = query.where(cast(Experiment.tags, Text).like(tag_pattern, escape="\\"))
    if search:
        pattern = f"%{like_escape(search.strip().lower())}%"
        query = query.where(
            or_(
                func.lower(Experiment.name).like(pattern, escape="\\"),
                func.lower(Experiment.hypothesis).like(pattern, escape="\\"),
                func.lower(Experiment.learnings).like(pattern, escape="\\"),
            )
        )
    if not include_archived:
        query = query.where(Experiment.archived_at.is_(None))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    column = getattr(Experiment, sort)
    order = column.desc() if descending else column.asc()
    rows = session.scalars(
        query.order_by(order, Experiment.id).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return Page(items=[_to_view(e) for e in rows], total=total, page=page, page_size=page_size)


def all_experiments(session: Session, *, status: Status | None = None) -> list[ExperimentView]:
    """Every experiment (no pagination), e.g. for exports and scheduled jobs."""
    query = select(Experiment).order_by(Experiment.id)
    if status:
        query = query.where(Experiment.status == status)
    return [_to_view(e) for e in session.scalars(query).all()]


def owners(session: Session) -> list[str]:
    return list(session.scalars(select(Experiment.owner).distinct().order_by(Experiment.owner)))


def tags(session: Session) -> list[str]:
    found: set[str] = set()
    for row in session.scalars(select(Experiment.tags)):
        found.update(row or [])
    return sorted(found)


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Experiment.status, func.count()).group_by(Experiment.status))
    counts = {s: 0 for s in ALLOWED_MOVES}
    counts.update({status: n for status, n in rows})
    return counts


# --------------------------------------------------------------------------- writes


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
    return _to_view(exp)


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
        exp = _load(session, experiment_id)
        check_version(exp, expected_version)
        before = _fields_of(_to_view(exp))
        merged = {**before, **patch}
        fields = _validate(merged, session)
        after = fields.model_dump()
        changed = {
            k: [_plain(before[k]), _plain(after[k])]
            for k in after
            if _plain(before[k]) != _plain(after[k])
        }
        if not changed:
            return _to_view(exp)
        if exp.status in ("completed", "abandoned"):
            locked = sorted(set(changed) - set(EDITABLE_WHEN_CLOSED))
            if locked:
                raise RuleViolation(
                    f"'{exp.name}' is {exp.status}: only {', '.join(EDITABLE_WHEN_CLOSED)} "
                    f"can still change (you changed {', '.join(locked)})."
                )
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
    return _to_view(exp)


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
    """Move an experiment along its lifecycle (see the module docstring for the rules)."""
    actor.require("editor", "change an experiment's status")
    with transaction(session):
        exp = _load(session, experiment_id)
        check_version(exp, expected_version)
        current = exp.status
        if to_status not in ALLOWED_MOVES.get(current, ()):
            allowed = ALLOWED_MOVES.get(current, ())
            hint = f"from {current} it can go to {' or '.join(allowed)}" if allowed else (
                f"a {current} experiment is closed for good"
            )
            raise RuleViolation(f"'{exp.name}' cannot move from {current} to {to_status}: {hint}.")
        view = _to_view(exp)
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
                    f"'{exp.name}' needs a decision (ship, dont_ship or iterate) to complete."
                )
            if final != exp.decision:
                changes["decision"] = [exp.decision, final]
            exp.decision = final
            exp.actual_end = today
            changes["actual_end"] = [None, today.isoformat()]
        elif to_status == "abandoned":
            if not (reason and reason.strip()):
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
    return _to_view(exp)


# --------------------------------------------------------------------------- audit


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    entity_type: str
    entity_id: int
    action: str
    changes: dict[str, Any]
    reason: str | None
    is_deviation: bool


def _record(entry: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        entity_type=entry.entity_type,
        entity_id=entry.entity_id,
        action=entry.action,
        changes=dict(entry.changes or {}),
        reason=entry.reason,
        is_deviation=entry.is_deviation,
    )


def audit_history(
    session: Session, *, experiment_id: int | None = None, entity_type: str = "experiment"
) -> list[AuditRecord]:
    """Audit entries, oldest first; all entities of `entity_type` when no id is given."""
    return [
        _record(e)
        for e in repo.audit_entries(session, entity_type=entity_type, entity_id=experiment_id)
    ]


def plan_deviations(session: Session, *, experiment_id: int | None = None) -> list[AuditRecord]:
    """Changes to a frozen analysis plan after launch (reports flag them)."""
    return [
        _record(e)
        for e in repo.audit_entries(
            session, entity_type="experiment", entity_id=experiment_id, deviations_only=True
        )
    ]


AUDIT_CSV_COLUMNS = (
    "at", "actor", "entity_type", "entity_id", "action", "field", "before", "after", "reason",
    "plan_deviation",
)


def audit_csv(records: list[AuditRecord]) -> str:
    """One CSV row per changed field."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(AUDIT_CSV_COLUMNS)
    for r in records:
        for field, (before, after) in (r.changes or {"": [None, None]}).items():
            writer.writerow(
                [r.at.isoformat() if r.at else "", r.actor, r.entity_type, r.entity_id,
                 r.action, field, _csv_value(before), _csv_value(after), r.reason or "",
                 r.is_deviation]
            )
    return out.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, ensure_ascii=False)
    return str(value)


EXPERIMENT_CSV_COLUMNS = (
    "id", "name", "owner", "status", "primary_metric", "guardrail_metrics", "variants",
    "planned_sample_size", "mde", "alpha", "power", "analysis_mode", "planned_start",
    "planned_end", "actual_start", "actual_end", "decision", "rice_score", "tags", "hypothesis",
)


def experiments_csv(items: list[ExperimentView]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPERIMENT_CSV_COLUMNS)
    for e in items:
        row = e.model_dump()
        row["variants"] = [f"{v['name']}:{v['weight']:g}" for v in row["variants"]]
        writer.writerow(
            [_csv_value(row[c]) if isinstance(row[c], (list, dict)) else
             ("" if row[c] is None else row[c]) for c in EXPERIMENT_CSV_COLUMNS]
        )
    return out.getvalue()

