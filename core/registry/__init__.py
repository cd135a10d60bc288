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

from core.registry.audit import (
    DECISION_LABELS,
    AuditRecord,
    audit_history,
    audit_value,
    change_text,
    plan_deviations,
)
from core.registry.export import (
    AUDIT_CSV_COLUMNS,
    EXPERIMENT_CSV_COLUMNS,
    audit_csv,
    experiments_csv,
)
from core.registry.fields import (
    EFFORT_RANGE,
    MARGIN_RANGE,
    MAX_HYPOTHESIS_LENGTH,
    MAX_LEARNINGS_LENGTH,
    MAX_METRIC_NAME_LENGTH,
    MAX_METRICS,
    MAX_NAME_LENGTH,
    MAX_OWNER_LENGTH,
    MAX_PRIOR_SD,
    MAX_REACH,
    MAX_REASON_LENGTH,
    MAX_REFRESH_EVERY_DAYS,
    MAX_SAMPLE_SIZE,
    MAX_SEGMENT_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_VARIANTS,
    NO_NUL_PATTERN,
    NOT_BLANK_PATTERN,
    PRIOR_MEAN_RANGE,
    RICE_IMPACTS,
    AlternativeField,
    Day,
    Effort,
    ExperimentFields,
    ExperimentPatch,
    ExperimentView,
    GuardrailMargins,
    Hypothesis,
    Learnings,
    Margin,
    MetricRef,
    Name,
    Number,
    Owner,
    PriorMean,
    PriorSd,
    Reach,
    RefreshEveryDays,
    SafeStr,
    SampleSize,
    Segment,
    Tag,
    VariantName,
    VariantSpec,
    WholeNumber,
    drop_null_defaults,
    has_visible_text,
    rice_score,
    text_problem,
    validation_problems,
)
from core.registry.lifecycle import (
    ALLOWED_MOVES,
    EDITABLE_WHEN_CLOSED,
    FROZEN_FIELDS,
    check_version,
    create_experiment,
    transition_experiment,
    update_experiment,
)
from core.registry.listing import (
    SORT_FIELDS,
    Page,
    all_experiments,
    get_experiment,
    get_experiment_by_name,
    list_experiments,
    owners,
    status_counts,
    tags,
)

__all__ = [
    "ALLOWED_MOVES",
    "AUDIT_CSV_COLUMNS",
    "AlternativeField",
    "AuditRecord",
    "Day",
    "EDITABLE_WHEN_CLOSED",
    "EFFORT_RANGE",
    "EXPERIMENT_CSV_COLUMNS",
    "Effort",
    "ExperimentFields",
    "ExperimentPatch",
    "ExperimentView",
    "FROZEN_FIELDS",
    "GuardrailMargins",
    "Hypothesis",
    "Learnings",
    "MARGIN_RANGE",
    "MAX_HYPOTHESIS_LENGTH",
    "MAX_LEARNINGS_LENGTH",
    "MAX_METRICS",
    "MAX_METRIC_NAME_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_OWNER_LENGTH",
    "MAX_PRIOR_SD",
    "MAX_REACH",
    "MAX_REASON_LENGTH",
    "MAX_REFRESH_EVERY_DAYS",
    "MAX_SAMPLE_SIZE",
    "MAX_SEGMENT_LENGTH",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_VARIANTS",
    "Margin",
    "MetricRef",
    "NOT_BLANK_PATTERN",
    "NO_NUL_PATTERN",
    "Name",
    "Number",
    "Owner",
    "PRIOR_MEAN_RANGE",
    "Page",
    "PriorMean",
    "PriorSd",
    "RICE_IMPACTS",
    "Reach",
    "RefreshEveryDays",
    "SORT_FIELDS",
    "SafeStr",
    "SampleSize",
    "Segment",
    "Tag",
    "VariantName",
    "VariantSpec",
    "WholeNumber",
    "all_experiments",
    "DECISION_LABELS",
    "audit_csv",
    "audit_history",
    "audit_value",
    "change_text",
    "check_version",
    "create_experiment",
    "drop_null_defaults",
    "experiments_csv",
    "get_experiment",
    "get_experiment_by_name",
    "has_visible_text",
    "list_experiments",
    "owners",
    "plan_deviations",
    "rice_score",
    "status_counts",
    "tags",
    "text_problem",
    "transition_experiment",
    "update_experiment",
    "validation_problems",
]
