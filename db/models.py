"""Typed ORM models of the registry: experiments, variants, metrics catalogue, audit log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base

METRIC_RATIO_COLUMNS = (
    "fact_source_id IS NOT NULL AND numerator IS NULL AND denominator IS NULL OR "
    "fact_source_id IS NULL AND "
    "(kind = 'ratio') = (numerator IS NOT NULL AND denominator IS NOT NULL)"
)
"""A ratio metric loaded from files names its numerator and denominator columns; a metric
computed from a fact source names its fact columns instead (value_column, denominator_column)."""
METRIC_AGGREGATION = (
    "(aggregation IS NULL) = (fact_source_id IS NULL) AND (aggregation IS NULL OR "
    "aggregation IN ('sum', 'count') AND kind IN ('mean', 'quantile') OR "
    "aggregation = 'any' AND kind = 'binomial' OR "
    "aggregation IN ('mean', 'ratio') AND kind = 'ratio')"
)
"""A fact source's metric has an aggregation, and its kind follows from it (core.catalogue
.KIND_OF_AGGREGATION): sum and count are means per unit (or, with a quantile_p, the per-unit
value of a quantile metric), any a conversion, mean and ratio ratios of sums."""
METRIC_WAREHOUSE_COLUMNS = (
    "(fact_source_id IS NOT NULL OR value_column IS NULL AND denominator_column IS NULL AND "
    "window_days IS NULL AND cuped_days IS NULL) AND "
    "(value_column IS NOT NULL OR aggregation IS NULL OR aggregation IN ('count', 'any')) AND "
    "(denominator_column IS NOT NULL) = (aggregation IS NOT NULL AND aggregation = 'ratio') AND "
    "(window_days IS NULL OR window_days >= 1) AND "
    "(cuped_days IS NULL OR cuped_days >= 1)"
)
"""The fact-source fields belong to fact-source metrics: sum, mean and ratio aggregate a
column, a ratio has a denominator column (and nothing else has), and windows and CUPED's
pre-period (any aggregation; a mean's or ratio's is its numerator's) are whole days."""


METRIC_KIND = "kind IN ('binomial', 'mean', 'ratio', 'quantile')"
METRIC_QUANTILE = ("(kind = 'quantile') = (quantile_p IS NOT NULL) AND "
                   "(quantile_p IS NULL OR quantile_p > 0 AND quantile_p < 1)")
"""A quantile metric, and only it, has its level p, strictly between 0 and 1."""


class Metric(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(32), default="")
    higher_is_better: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    numerator: Mapped[str | None] = mapped_column(
        String(80), comment="Ratio metrics: the per-unit column summed above the line."
    )
    denominator: Mapped[str | None] = mapped_column(
        String(80), comment="Ratio metrics: the per-unit column summed below the line."
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    fact_source_id: Mapped[int | None] = mapped_column(
        ForeignKey("fact_sources.id"),
        comment="Warehouse metrics: the fact source it is computed from; NULL = loaded from "
        "files or a SQL source.",
    )
    aggregation: Mapped[str | None] = mapped_column(
        String(8), comment="Warehouse metrics: sum, count, any, mean or ratio, per unit."
    )
    value_column: Mapped[str | None] = mapped_column(
        String(80), comment="Warehouse metrics: the fact source's column aggregated."
    )
    denominator_column: Mapped[str | None] = mapped_column(
        String(80), comment="Warehouse ratio metrics: the fact source's column below the line."
    )
    window_days: Mapped[int | None] = mapped_column(
        comment="Warehouse metrics: days after a unit's first exposure counted; NULL = up to "
        "the analysis day."
    )
    cuped_days: Mapped[int | None] = mapped_column(
        comment="Warehouse metrics: days before first exposure aggregated as the CUPED "
        "covariate; NULL = no CUPED."
    )
    quantile_p: Mapped[float | None] = mapped_column(
        comment="Quantile metrics: the level p in (0, 1) of the per-unit value's quantile "
        "(0.9 = p90)."
    )

    __table_args__ = (
        CheckConstraint(METRIC_KIND, name="kind"),
        CheckConstraint(METRIC_QUANTILE, name="quantile_p"),
        CheckConstraint(METRIC_RATIO_COLUMNS, name="ratio_columns"),
        CheckConstraint(METRIC_AGGREGATION, name="aggregation"),
        CheckConstraint(METRIC_WAREHOUSE_COLUMNS, name="warehouse_columns"),
    )


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(120))
    hypothesis: Mapped[str] = mapped_column(Text, default="")
    target_segment: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    primary_metric_id: Mapped[int | None] = mapped_column(ForeignKey("metrics.id"))
    planned_sample_size: Mapped[int | None] = mapped_column(
        comment="Planned units per variant."
    )
    mde: Mapped[float | None] = mapped_column(comment="Minimum detectable effect, relative.")
    alpha: Mapped[float] = mapped_column(default=0.05)
    power: Mapped[float] = mapped_column(default=0.8)
    analysis_mode: Mapped[str] = mapped_column(String(16), default="fixed")
    correction: Mapped[str] = mapped_column(String(8), default="holm")
    alternative: Mapped[str] = mapped_column(
        String(16), default="two-sided", server_default="two-sided",
        comment="The primary metric's test: two-sided, or one-sided greater "
        "(treatment > control) / less.",
    )
    prior_lift_mean: Mapped[float | None] = mapped_column(
        comment="Bayesian readout: mean of a Gaussian prior on the relative lift."
    )
    prior_lift_sd: Mapped[float | None] = mapped_column(
        comment="Bayesian readout: sd of that prior; NULL (both) = flat prior."
    )
    plan_inputs: Mapped[dict[str, Any] | None] = mapped_column(
        comment="The Planner's inputs the planned sample size was sized from; NULL = not "
        "recorded."
    )
    post_stratify_on: Mapped[str | None] = mapped_column(
        String(200), comment="Plan: the pre-exposure dimension the results post-stratify on "
        "(a dimension column of the metric data); NULL = none.")
    capping: Mapped[dict[str, Any] | None] = mapped_column(
        comment="Capping rule per mean or ratio metric, {metric: {kind: fixed|percentile, "
        "value}}; NULL = no metric capped."
    )
    planned_start: Mapped[date | None]
    planned_end: Mapped[date | None]
    actual_start: Mapped[date | None]
    actual_end: Mapped[date | None]
    reach: Mapped[float | None] = mapped_column(comment="RICE: units affected per quarter.")
    impact: Mapped[float | None] = mapped_column(comment="RICE: 3, 2, 1, 0.5 or 0.25.")
    confidence: Mapped[float | None] = mapped_column(comment="RICE: percent, 0-100.")
    effort: Mapped[float | None] = mapped_column(comment="RICE: person-weeks, > 0.")
    rice_score: Mapped[float | None]
    decision: Mapped[str | None] = mapped_column(String(16))
    learnings: Mapped[str] = mapped_column(Text, default="")
    abandon_reason: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(default=list)
    frozen_plan: Mapped[dict[str, Any] | None] = mapped_column(
        comment="Analysis plan as frozen at launch (pre-registration)."
    )
    plan_frozen_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]
    refresh_every_days: Mapped[int | None] = mapped_column(
        comment="Scheduled refresh: every N days counted from the start; NULL = every day."
    )
    promoted_at: Mapped[datetime | None] = mapped_column(
        comment="Backlog: when the idea was promoted to the registry; NULL = still an idea."
    )
    promoted_rice: Mapped[dict[str, Any] | None] = mapped_column(
        comment="Backlog: reach, impact, confidence, effort and rice_score at promotion."
    )
    ready_for_decision_at: Mapped[datetime | None] = mapped_column(
        comment="Scheduled refresh: when it first found the experiment ready for a decision."
    )
    ready_report_id: Mapped[int | None] = mapped_column(
        ForeignKey("report_artifacts.id", ondelete="SET NULL", use_alter=True),
        comment="The report the scheduled refresh wrote when it found it ready.",
    )
    assignment_source_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignment_sources.id"),
        comment="Warehouse: the assignment source its exposures come from; NULL = none.",
    )
    experiment_key: Mapped[str | None] = mapped_column(
        String(200), comment="Warehouse: the experiment_key its exposures carry there."
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    version: Mapped[int] = mapped_column(default=1)

    primary_metric: Mapped[Metric | None] = relationship(lazy="joined")
    variants: Mapped[list[Variant]] = relationship(
        back_populates="experiment",
        order_by="Variant.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )
    metric_links: Mapped[list[ExperimentMetric]] = relationship(
        back_populates="experiment", cascade="all, delete-orphan", lazy="selectin"
    )
    tag_rows: Mapped[list[ExperimentTag]] = relationship(
        back_populates="experiment", cascade="all, delete-orphan", passive_deletes=True
    )

    # Optimistic concurrency: every UPDATE says "WHERE version = <the version read>"; the
    # registry service bumps the version once per change.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}
    __table_args__ = (
        Index("uq_experiments_name_lower", func.lower(name), unique=True),
        # The registry list (db.repositories.list_experiments): one index per sort key, ties
        # by id in the same direction, so a page of any sort is read in index order; the
        # owner filter with the status filter and the default sort (newest change first); the
        # "not archived" filter's count.
        # The word search's trigram indexes are PostgreSQL's only (migration 0009).
        Index("ix_experiments_updated_at", "updated_at", "id"),
        Index("ix_experiments_created_at", "created_at", "id"),
        Index("ix_experiments_name", "name", "id"),
        Index("ix_experiments_owner", "owner", "id"),
        Index("ix_experiments_status", "status", "id"),
        Index("ix_experiments_rice_score", "rice_score", "id"),
        Index("ix_experiments_owner_lower", func.lower(owner), status, updated_at, id),
        Index("ix_experiments_archived_at", "archived_at"),
        CheckConstraint(
            "status IN ('proposed', 'running', 'completed', 'abandoned')", name="status"
        ),
        CheckConstraint("analysis_mode IN ('fixed', 'sequential')", name="analysis_mode"),
        CheckConstraint("correction IN ('holm', 'bh')", name="correction"),
        CheckConstraint("alternative IN ('two-sided', 'greater', 'less')", name="alternative"),
        CheckConstraint(
            "(prior_lift_mean IS NULL) = (prior_lift_sd IS NULL) AND "
            "(prior_lift_sd IS NULL OR prior_lift_sd > 0)",
            name="prior",
        ),
        CheckConstraint(
            "decision IS NULL OR decision IN ('ship', 'dont_ship', 'iterate')", name="decision"
        ),
        CheckConstraint("alpha > 0 AND alpha < 0.5", name="alpha"),
        CheckConstraint("power > 0.5 AND power < 1", name="power"),
        CheckConstraint(
            "planned_sample_size IS NULL OR planned_sample_size > 0", name="sample_size"
        ),
        CheckConstraint(
            "refresh_every_days IS NULL OR refresh_every_days >= 1", name="refresh_every_days"
        ),
        CheckConstraint(
            "(assignment_source_id IS NULL) = (experiment_key IS NULL)", name="warehouse"
        ),
    )

    def metrics_with_role(self, role: str) -> list[Metric]:
        return [link.metric for link in self.metric_links if link.role == role]


class Variant(Base):
    __tablename__ = "variants"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    weight: Mapped[float]
    position: Mapped[int] = mapped_column(comment="0 is the control.")

    experiment: Mapped[Experiment] = relationship(back_populates="variants")

    __table_args__ = (
        UniqueConstraint("experiment_id", "name", name="uq_variants_experiment_name"),
        # The parent key of the slice tables' (experiment_id, variant_id) foreign key.
        Index("uq_variants_experiment_id", "experiment_id", "id", unique=True),
        CheckConstraint("weight > 0 AND weight < 1", name="weight"),
    )


class ExperimentTag(Base):
    """One tag of an experiment, for the tag filter and the list of tags in use.

    ``experiments.tags`` keeps the tags as written (their order); the registry writes both
    (core.registry.lifecycle)."""

    __tablename__ = "experiment_tags"

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(Text, primary_key=True)

    experiment: Mapped[Experiment] = relationship(back_populates="tag_rows")

    __table_args__ = (Index("ix_experiment_tags_tag", "tag", "experiment_id"),)


class ExperimentMetric(Base):
    """A guardrail or secondary metric of an experiment (the primary is on the experiment)."""

    __tablename__ = "experiment_metrics"

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    margin: Mapped[float | None] = mapped_column(
        comment="Guardrails: relative non-inferiority margin (0.01 = at most 1% worse)."
    )

    experiment: Mapped[Experiment] = relationship(back_populates="metric_links")
    metric: Mapped[Metric] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("role IN ('guardrail', 'secondary')", name="role"),
        CheckConstraint(
            "margin IS NULL OR (margin > 0 AND margin < 1 AND role = 'guardrail')",
            name="margin",
        ),
    )


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str] = mapped_column(String(120))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int]
    action: Mapped[str] = mapped_column(String(40))
    changes: Mapped[dict[str, Any]] = mapped_column(
        default=dict, comment="{field: [before, after]}"
    )
    reason: Mapped[str | None] = mapped_column(Text)
    is_deviation: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)


class ApiKey(Base):
    """An API key of the sidecar API; only its SHA-256 hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), comment="First characters, to recognise it.")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("scope IN ('read', 'write', 'admin')", name="scope"),)


class ReportArtifact(Base):
    """A generated report stored in the artifact store; immutable once written."""

    __tablename__ = "report_artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(500), unique=True)
    size_bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(120))


class IngestLoad(Base):
    """The latest load of one source of an experiment's metric data: the upload's file name,
    the file drop's key or the SQL source's window. Written in the load's transaction; the
    scheduled refresh skips a drop whose ``sha256`` is unchanged."""

    __tablename__ = "ingest_loads"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(500), comment="File name, drop key or SQL window.")
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str | None] = mapped_column(String(64))
    first_day: Mapped[date | None]
    last_day: Mapped[date | None]
    metrics: Mapped[list[str]] = mapped_column(default=list)
    rows_read: Mapped[int | None] = mapped_column(comment="NULL for loads from before 0006.")
    rows_written: Mapped[int] = mapped_column(comment="Daily statistics rows upserted.")
    loaded_at: Mapped[datetime] = mapped_column(server_default=func.now())
    loaded_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (
        UniqueConstraint("experiment_id", "key", name="uq_ingest_loads_key"),
        CheckConstraint("kind IN ('user_file', 'aggregate_file', 'sql', 'warehouse')",
                        name="kind"),
    )


class MetricDailyStat(Base):
    """Sufficient statistics of one metric in one variant on one exposure day (never unit rows).

    ``n`` units exposed that day, ``sum`` and ``sum_squares`` of their metric values; the
    ``cov_*`` sums are set when a pre-period covariate was given (CUPED): ``cov_sum`` and
    ``cov_sum_squares`` of the covariate x, ``cov_sum_products`` of x * y. For a ratio metric
    ``sum``/``sum_squares`` are the numerator's and the ``sum_den*``/``sum_num_den`` columns the
    denominator's sums and the sum of numerator x denominator. ``covariate_sums`` holds the
    cross-products of several covariates for regression adjustment (a JSON object).
    """

    __tablename__ = "metric_daily_stats"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id", ondelete="CASCADE"))
    day: Mapped[date]
    n: Mapped[int]
    sum: Mapped[float]
    sum_squares: Mapped[float]
    cov_sum: Mapped[float | None]
    cov_sum_squares: Mapped[float | None]
    cov_sum_products: Mapped[float | None]
    sum_den: Mapped[float | None]
    sum_den_squares: Mapped[float | None]
    sum_num_den: Mapped[float | None]
    covariate_sums: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True),
        comment="Regression adjustment: cross-products of several covariates "
        "(core.stats.covariates.CovariateSums as JSON); NULL = none.")
    source: Mapped[str] = mapped_column(String(200), comment="Where the numbers came from.")
    loaded_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint(
            "experiment_id", "variant_id", "metric_id", "day", name="uq_metric_daily_stats_key"
        ),
        CheckConstraint("n >= 0", name="n"),
        CheckConstraint("sum_squares >= 0", name="sum_squares"),
    )


class AppliedCap(Base):
    """The cap a load applied to one metric of one experiment (its plan's capping rule made a
    number): the fixed value, or the pooled percentile of every unit's value computed by the
    engine that read the units; a ratio metric's denominator has its own. Replaced by each load
    of unit-level data for the metric."""

    __tablename__ = "applied_caps"

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    metric_id: Mapped[int] = mapped_column(
        ForeignKey("metrics.id", ondelete="CASCADE"), primary_key=True)
    cap: Mapped[float] = mapped_column(comment="Per-unit values above it counted as it.")
    denominator_cap: Mapped[float | None] = mapped_column(
        comment="A ratio metric's cap of the per-unit denominator.")
    units: Mapped[int] = mapped_column(comment="Units the cap was computed over.")
    source: Mapped[str] = mapped_column(String(200), comment="The load that computed it.")
    loaded_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MetricQuantileStat(Base):
    """One arm's statistics of a quantile metric over all its units
    (:class:`core.stats.QuantileStats`): quantiles do not add up over days, so there is one
    row per (experiment, variant, metric), replaced by each load that carries the metric."""

    __tablename__ = "metric_quantile_stats"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id", ondelete="CASCADE"))
    n: Mapped[int]
    p: Mapped[float]
    quantile: Mapped[float]
    lower: Mapped[float] = mapped_column(comment="The quantile at p - z sqrt(p (1-p) / n_star).")
    upper: Mapped[float] = mapped_column(comment="The quantile at p + z sqrt(p (1-p) / n_star).")
    n_star: Mapped[int] = mapped_column(comment="The count the bounds' levels were set for.")
    source: Mapped[str] = mapped_column(String(200), comment="Where the numbers came from.")
    loaded_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("experiment_id", "variant_id", "metric_id",
                         name="uq_metric_quantile_stats_key"),
        CheckConstraint("n >= 1 AND n_star >= 1", name="n"),
        CheckConstraint("p > 0 AND p < 1", name="p"),
        CheckConstraint("lower <= quantile AND quantile <= upper", name="bounds"),
    )


class AssignmentDailyCount(Base):
    """Units assigned (exposed) to one variant on one day: the input of the SRM check."""

    __tablename__ = "assignment_daily_counts"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    day: Mapped[date]
    units: Mapped[int]
    loaded_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("experiment_id", "variant_id", "day", name="uq_assignment_daily_key"),
        CheckConstraint("units >= 0", name="units"),
    )


def _variant_of_experiment() -> ForeignKeyConstraint:
    """A slice row's one foreign key, (experiment_id, variant_id) onto the variant: the variant
    exists and belongs to that experiment, and deleting either deletes the row. One check per
    row instead of one per column: PostgreSQL checks each foreign key of each row it copies in,
    and a file's slices are tens of thousands of rows (issue 25 item 3, migration 0017)."""
    return ForeignKeyConstraint(["experiment_id", "variant_id"],
                                ["variants.experiment_id", "variants.id"], ondelete="CASCADE")


class MetricSliceDailyStat(Base):
    """Sufficient statistics of one metric in one variant on one day, over the units of one
    value of a dimension (e.g. country = DE): the input of segment drill-down. Same sums as
    :class:`MetricDailyStat` (no CUPED sums)."""

    __tablename__ = "metric_slice_daily_stats"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int]
    variant_id: Mapped[int]
    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id", ondelete="CASCADE"))
    day: Mapped[date]
    dimension: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(100))
    n: Mapped[int]
    sum: Mapped[float]
    sum_squares: Mapped[float]
    sum_den: Mapped[float | None]
    sum_den_squares: Mapped[float | None]
    sum_num_den: Mapped[float | None]
    source: Mapped[str] = mapped_column(String(200), comment="Where the numbers came from.")
    loaded_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # Dimension first: the sums per slice over the days read this index in order.
        UniqueConstraint(
            "experiment_id", "dimension", "value", "metric_id", "variant_id", "day",
            name="uq_metric_slice_daily_stats_key",
        ),
        Index("ix_metric_slice_daily_stats_day", "experiment_id", "day"),
        _variant_of_experiment(),
        CheckConstraint("n >= 0", name="n"),
        CheckConstraint("sum_squares >= 0", name="sum_squares"),
    )


class AssignmentSliceDailyCount(Base):
    """Units assigned to one variant on one day with one value of a dimension: the input of the
    SRM check per dimension value."""

    __tablename__ = "assignment_slice_daily_counts"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int]
    variant_id: Mapped[int]
    day: Mapped[date]
    dimension: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(100))
    units: Mapped[int]
    loaded_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("experiment_id", "dimension", "value", "variant_id", "day",
                         name="uq_assignment_slice_daily_key"),
        _variant_of_experiment(),
        CheckConstraint("units >= 0", name="units"),
    )


class MetricSource(Base):
    """An experiment's SQL push-down source: a parameterised query run inside another database.

    ``url`` is a SQLAlchemy URL; NULL means the app's own database.
    """

    __tablename__ = "metric_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), unique=True
    )
    url: Mapped[str | None] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class WarehouseConnection(Base):
    """Where a team's warehouse is: a URL whose credentials are ``${NAME}`` placeholders for
    environment variables, never stored (core.warehouse.catalog refuses a literal password)."""

    __tablename__ = "warehouse_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    url: Mapped[str] = mapped_column(Text)
    allow_app_database: Mapped[bool] = mapped_column(
        default=False, comment="An admin's consent to point it at the app's own database."
    )
    created_by: Mapped[str] = mapped_column(String(120))
    updated_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class AssignmentSource(Base):
    """SQL in the warehouse's dialect returning ``unit_id, timestamp, experiment_key,
    variant`` and the declared dimension and covariate columns."""

    __tablename__ = "assignment_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("warehouse_connections.id"))
    sql: Mapped[str] = mapped_column(Text)
    dimensions: Mapped[list[str]] = mapped_column(default=list)
    covariates: Mapped[list[str] | None] = mapped_column(
        JSON(none_as_null=True),
        comment="Numeric unit-attribute columns every metric is regression-adjusted on (each "
        "unit's value at its first exposure); NULL = none.")
    created_by: Mapped[str] = mapped_column(String(120))
    updated_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class FactSource(Base):
    """SQL returning ``unit_id, timestamp`` and the declared numeric columns."""

    __tablename__ = "fact_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("warehouse_connections.id"))
    sql: Mapped[str] = mapped_column(Text)
    columns: Mapped[list[str]] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(120))
    updated_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class WarehouseRun(Base):
    """The latest refresh's query of one experiment and one source (its assignment source or
    a fact source): the exact SQL, what it returned, and the incremental state of a fact
    source (``final_through`` under ``definition_key``)."""

    __tablename__ = "warehouse_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(80), comment="The source's name.")
    role: Mapped[str] = mapped_column(String(16), comment="assignment or fact.")
    sql: Mapped[str] = mapped_column(Text, comment="The exact SQL that ran.")
    rows_returned: Mapped[int]
    rows_scanned: Mapped[int | None] = mapped_column(
        comment="Where the engine reports it; NULL otherwise."
    )
    seconds: Mapped[float]
    ran_at: Mapped[datetime] = mapped_column(server_default=func.now())
    ran_by: Mapped[str] = mapped_column(String(120))
    open_from: Mapped[date | None] = mapped_column(
        comment="Fact sources: the first exposure day recomputed."
    )
    final_through: Mapped[date | None] = mapped_column(
        comment="Fact sources: the last exposure day whose values are final."
    )
    definition_key: Mapped[str | None] = mapped_column(
        String(64), comment="A hash of what the stored state depends on (a fact source's "
                            "numbers, the assignment source's units per day)."
    )
    units: Mapped[int | None] = mapped_column(
        comment="Assignment source: units kept (each in one variant)."
    )
    multi_variant_units: Mapped[int | None] = mapped_column(
        comment="Assignment source: units seen in more than one variant, excluded."
    )
    exposure_days: Mapped[dict[str, Any] | None] = mapped_column(
        comment="Assignment source: units per first-exposure day and variant (null: in more "
                "than one) through the last day counted, under definition_key; an incremental "
                "refresh counts only the days after its final ones."
    )

    __table_args__ = (
        UniqueConstraint("experiment_id", "source", name="uq_warehouse_runs_source"),
        CheckConstraint("role IN ('assignment', 'fact')", name="role"),
        CheckConstraint("rows_returned >= 0", name="rows_returned"),
    )


class ResultSnapshot(Base):
    """Results of an experiment as computed at one moment, with a fingerprint of their inputs."""

    __tablename__ = "result_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    computed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    computed_by: Mapped[str] = mapped_column(String(120))
    as_of: Mapped[date | None] = mapped_column(comment="Cut-off day; NULL = all data.")
    data_through: Mapped[date | None] = mapped_column(comment="Last day with data.")
    fingerprint: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_result_snapshots_experiment", "experiment_id", "computed_at"),)
