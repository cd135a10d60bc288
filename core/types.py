"""Every fixed choice in ExperimentOS, as ``Literal`` aliases kept in one place."""

from typing import Literal, get_args

Alternative = Literal["two-sided", "greater", "less"]
"""``"greater"`` means treatment > control."""

Status = Literal["proposed", "running", "completed", "abandoned"]
MetricKind = Literal["binomial", "mean", "ratio", "quantile"]
"""``ratio``: sum of a numerator column over sum of a denominator column (e.g. revenue per
session), analysed per unit with the delta method. ``quantile``: the p-quantile of a per-unit
value (e.g. p90 page load time; the metric's ``quantile_p``), core.stats.quantile."""
AnalysisMode = Literal["fixed", "sequential"]
Decision = Literal["ship", "dont_ship", "iterate"]
Role = Literal["viewer", "editor", "admin"]
Correction = Literal["holm", "bh"]
DecisionState = Literal[
    "significant", "not_significant", "too_early", "srm_untrustworthy", "guardrail_breach",
    "guardrail_inconclusive", "not_testable",
]
"""``not_testable``: no test exists for the data (see :data:`Untestable`), not even later."""
Untestable = Literal["no_variation"]
"""Why a comparison cannot be tested: ``no_variation``, every unit of the metric has the same
value (no conversion anywhere, every unit converted, or a constant), so there is no variance
to test with."""
ApiScope = Literal["read", "write", "admin"]
MetricRole = Literal["primary", "guardrail", "secondary"]
SourceKind = Literal["user_file", "aggregate_file", "sql", "warehouse"]
CapKind = Literal["fixed", "percentile"]
"""How a mean or ratio metric's per-unit values are capped (winsorised) before summing: at a
``fixed`` value, or at a ``percentile`` of every unit's value pooled across the variants."""
Aggregation = Literal["sum", "count", "any", "mean", "ratio"]
"""How a warehouse metric aggregates its fact column per unit (core.warehouse.definitions)."""
FileKind = Literal["auto", "user", "aggregate"]
PlanMode = Literal["sample_size", "duration", "power"]
RiskCode = Literal[
    "srm", "underpowered", "read_early", "plan_deviation", "multiple_comparisons",
    "guardrail_breach", "drift", "multiple_exposures", "srm_by_value",
]
CheckStatus = Literal["flagged", "passed", "not_checked"]
Recommendation = Literal["ship", "dont_ship", "keep_running", "investigate", "none"]
Tone = Literal["good", "bad", "inconclusive"]
"""What an effect means for the product, whatever the metric's direction (chart colours)."""
VerdictBasis = Literal[
    "no_data", "no_primary", "srm", "primary_win", "win_with_guardrail_breach",
    "win_with_guardrail_inconclusive", "guardrail_breach", "primary_untestable", "too_early",
    "primary_worse", "no_effect",
]
"""Which rule of core.analysis.verdict gave the recommendation."""
Grouping = Literal["owner", "tag", "quarter"]
CalibrationGrouping = Literal["owner", "tag"]

ALTERNATIVES: tuple[str, ...] = get_args(Alternative)
STATUSES: tuple[str, ...] = get_args(Status)
METRIC_KINDS: tuple[str, ...] = get_args(MetricKind)
ANALYSIS_MODES: tuple[str, ...] = get_args(AnalysisMode)
DECISIONS: tuple[str, ...] = get_args(Decision)
ROLES: tuple[str, ...] = get_args(Role)
CORRECTIONS: tuple[str, ...] = get_args(Correction)
DECISION_STATES: tuple[str, ...] = get_args(DecisionState)
API_SCOPES: tuple[str, ...] = get_args(ApiScope)
GROUPINGS: tuple[str, ...] = get_args(Grouping)
CALIBRATION_GROUPINGS: tuple[str, ...] = get_args(CalibrationGrouping)
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)
QUANTILE_AGGREGATIONS: tuple[str, ...] = ("sum", "count")
"""The aggregations whose per-unit value a warehouse quantile metric takes the quantile of."""

TestMethod = Literal[
    "welch", "welch_cuped", "wald_z", "mover_cp", "delta_ratio", "quantile_woodruff",
    "regression_adjusted", "ratio_regression_adjusted", "post_stratified",
    "ratio_post_stratified",
]
"""How a two-sample result was computed (the ``method`` field of every core.stats test result)."""
PriorKind = Literal["flat", "gaussian"]
"""The prior on the relative lift used by :func:`core.stats.bayesian_readout`."""
TEST_METHODS: tuple[str, ...] = get_args(TestMethod)
PRIOR_KINDS: tuple[str, ...] = get_args(PriorKind)

ShrinkageMethod = Literal["dersimonian_laird", "paule_mandel"]
"""How core.stats.shrinkage estimates the portfolio's between-experiment variance tau^2."""
SHRINKAGE_METHODS: tuple[str, ...] = get_args(ShrinkageMethod)
