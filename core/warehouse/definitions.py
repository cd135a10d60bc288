"""What a team describes once about its warehouse: a connection, an assignment source, fact
sources and the metrics defined on them; and what one experiment's refresh asks of them.

Plain frozen dataclasses, no IO: :mod:`core.warehouse.queries` turns an :class:`ExperimentSpec`
into one Ibis expression per fact source, :mod:`core.warehouse.compute` runs them. The app
keeps these definitions in its database (``db.warehouse_repository``) and builds them there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from core.stats.capping import AppliedCap, CapRule
from core.stats.quantile import QuantileStats
from core.types import Aggregation

ASSIGNMENT_COLUMNS: tuple[str, ...] = ("unit_id", "timestamp", "experiment_key", "variant")
"""The columns an assignment source's SQL returns (plus its declared dimension columns)."""
FACT_KEY_COLUMNS: tuple[str, ...] = ("unit_id", "timestamp")
"""The columns every fact source's SQL returns, beside its numeric value columns."""


@dataclass(frozen=True)
class Connection:
    """Where the warehouse is.

    ``url`` is ``duckdb:///path/file.duckdb`` (the embedded engine), an SQLAlchemy-style
    ``postgresql://user@host:5432/db``, ``spark://local[2]`` (Spark; any master URL after
    ``spark://``), or an Ibis URL for the other engines (``bigquery://project/dataset``,
    ``snowflake://…``, ``trino://…``, ``databricks://…``). A ``${NAME}`` in it is replaced at
    connect time by the environment variable NAME (credentials are never stored).
    ``allow_app_database``: an admin's explicit consent to point it at the app's own
    database (refused otherwise).
    """

    name: str
    url: str
    allow_app_database: bool = False


@dataclass(frozen=True)
class AssignmentSource:
    """SQL in the warehouse's dialect returning ``unit_id, timestamp, experiment_key,
    variant``, the declared ``dimensions`` (columns such as platform or country) and the
    declared ``covariates``: numeric unit attributes (tenure, last month's spend) every metric
    is regression-adjusted on (Lin 2013), each unit's value at its first exposure. A NULL
    there counts as 0 beside a missingness indicator, 1 for it (Zhao & Ding 2024, "To adjust
    or not to adjust? Estimating the average treatment effect in randomized experiments with
    missing covariates", JASA 119: the missingness-indicator method), so attribute ``a`` gives
    the covariates :func:`covariate_names` names ``cov_a`` and ``cov_a_missing``."""

    name: str
    connection: Connection
    sql: str
    dimensions: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()


COVARIATE_PREFIX = "cov_"
"""A unit attribute's covariate name is ``cov_<column>`` (as a user-level file's column)."""
MISSING_SUFFIX = "_missing"
"""Its missingness indicator's: ``cov_<column>_missing``."""
PRE_SUFFIX = "_pre"
"""A metric's own pre-period covariate is ``<metric>_pre`` (a user-level file's column)."""


def attribute_names(column: str) -> tuple[str, str]:
    """The two covariates of a declared unit attribute: its value and its missingness
    indicator."""
    return COVARIATE_PREFIX + column, COVARIATE_PREFIX + column + MISSING_SUFFIX


@dataclass(frozen=True)
class FactSource:
    """SQL returning ``unit_id, timestamp`` and numeric ``columns`` (revenue, items, …)."""

    name: str
    connection: Connection
    sql: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class WarehouseMetric:
    """A catalogue metric computed from one fact source, per unit, over a window.

    Per unit, over the fact rows in its window: ``sum`` of ``column``; ``count`` of rows
    (of non-null ``column`` when given); ``any``: 1 if the unit has a row (with ``column`` >
    0 when given), else 0 — a binomial conversion; ``mean``: the average of ``column`` over
    all rows of exposed units, analysed as the ratio sum(column) / count(rows) per unit with
    the delta method; ``ratio``: sum(``column``) / sum(``denominator``) per unit, the delta
    method. Units with no fact rows count as 0 (their denominator too).

    ``window_days``: facts from the unit's first exposure up to that many days after it (None: up to
    the end of the analysis day). ``cuped_days``: the covariate for CUPED is the same per-unit
    aggregate over that many days before first exposure (a mean's or ratio's: its numerator, the
    sum of ``column``, over them, in its covariate vector: :func:`covariate_names`). ``cap``: the
    experiment's capping rule for the metric (sum, count, mean and ratio): each unit's value (a
    ratio's numerator and denominator each, the CUPED covariate at the value's cap) counts at most
    the cap, a fixed value or the percentile of every kept unit's value pooled across the variants
    (core.stats.capping). ``quantile_p``: a quantile metric (sum or count only): besides the daily
    sums of its per-unit value, the refresh reads that value's p-quantile and the order-statistic
    bounds per variant over every kept unit (core.stats.quantile; never CUPED or capped).
    """

    name: str
    fact_source: str
    aggregation: Aggregation
    column: str | None = None
    denominator: str | None = None
    window_days: int | None = None
    cuped_days: int | None = None
    cap: CapRule | None = None
    quantile_p: float | None = None


ADJUSTED_AGGREGATIONS: tuple[str, ...] = ("sum", "count", "any", "mean", "ratio")
"""The aggregations regression adjustment applies to (a quantile's test is on order
statistics, never on sums)."""


def pre_name(metric: WarehouseMetric) -> str:
    """The name of ``metric``'s own pre-period covariate: ``<name>_pre`` for a sum, count or
    any; for a mean or ratio, whose pre-period value is its numerator's (the sum of ``column``
    over the pre-period), ``<column>_pre``, the name a user-level file gives a ratio metric's
    pre-period numerator (``<numerator>_pre``, core.data.user_files)."""
    if metric.aggregation in ("mean", "ratio"):
        assert metric.column
        return metric.column + PRE_SUFFIX
    return metric.name + PRE_SUFFIX


def covariate_names(metric: WarehouseMetric, assignment: AssignmentSource) -> tuple[str, ...]:
    """The covariates ``metric`` is regression-adjusted on, in order: its own pre-period
    (:func:`pre_name`, with ``cuped_days``), then each declared unit attribute's value and
    missingness indicator. () for a quantile metric (never adjusted) and, without declared
    attributes, for a sum, count or any metric (it keeps the one-covariate CUPED sums of
    ``cuped_days``); a mean or ratio metric with ``cuped_days`` has its vector either way
    (a ratio has no one-covariate CUPED sums)."""
    if metric.aggregation not in ADJUSTED_AGGREGATIONS or metric.quantile_p is not None:
        return ()
    ratio_pre = metric.aggregation in ("mean", "ratio") and bool(metric.cuped_days)
    if not assignment.covariates and not ratio_pre:
        return ()
    own = (pre_name(metric),) if metric.cuped_days else ()
    return own + tuple(n for c in assignment.covariates for n in attribute_names(c))


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment's refresh: who was exposed (``experiment_key`` in the assignment
    source, ``variants``), from ``start`` to ``end`` (the analysis day, inclusive), and the
    metrics to compute from their fact sources. ``label`` names the experiment in a comment
    on every query."""

    experiment_key: str
    variants: tuple[str, ...]
    start: date
    end: date
    assignment: AssignmentSource
    facts: tuple[FactSource, ...]
    metrics: tuple[WarehouseMetric, ...]
    label: str = ""


@dataclass(frozen=True)
class Limits:
    """Cost and safety settings for one refresh (``core.config.Settings`` gives them)."""

    statement_timeout_seconds: float = 300.0
    max_result_rows: int = 100_000
    multi_variant_threshold: float = 0.01
    """A share of units seen in two variants above which the refresh refuses."""
    late_data_days: int = 2
    """Days after a window closes during which facts may still arrive (incremental refresh)."""
    duckdb_memory_limit: str = "2GB"
    """The embedded DuckDB's memory ceiling (it spills to disk past it), so the app process's
    memory does not grow with the warehouse."""


@dataclass(frozen=True)
class QueryRun:
    """One query that ran in the warehouse: the exact SQL, what came back, how long it took
    and the rows scanned where the engine reports them (None otherwise)."""

    source: str
    """The assignment source's or fact source's name."""
    sql: str
    rows_returned: int
    seconds: float
    rows_scanned: int | None = None


@dataclass(frozen=True)
class Exposure:
    """Who the assignment source exposed: units counted once, in one variant."""

    units: int
    """Units kept (each in exactly one variant)."""
    multi_variant_units: int
    """Units seen in more than one variant: excluded and reported."""
    units_by_variant: dict[str, int] = field(default_factory=dict)
    by_day: dict[date, dict[str | None, int]] = field(default_factory=dict)
    """Units per first-exposure day and variant (None: seen in more than one variant), the
    state an incremental refresh starts from (its final days are not counted again)."""


@dataclass(frozen=True)
class WarehouseResult:
    """A refresh's output: ``records`` in the shape :func:`core.data.ingestion.ingest_records`
    takes (``variant, day, metric, n, sum, sum_squares`` [, ``sum_x, sum_x2, sum_xy``]
    [, ``sum_den, sum_den_squares, sum_num_den``] [, the covariate cross-products
    ``sum_x__<a>``, ``sum_xx__<a>__<b>``, ``sum_xy__<a>`` [, ``sum_xden__<a>``] of
    :func:`covariate_names`] [, ``dimension, dimension_value``]; ``day``
    is the units' first-exposure day), every query that ran, the exposure check, and per fact
    source the first exposure day recomputed (``open_from``; the days before it were final
    and left out) and the last exposure day now final (``final_through``: its units' windows
    and the late-data allowance have passed; None while none is, and always None for a fact
    source with a metric without a window). The caller stores ``final_through`` with
    ``definition_keys`` and passes ``final_through + 1 day`` as the next ``open_from``."""

    records: list[dict[str, object]]
    queries: tuple[QueryRun, ...]
    exposure: Exposure
    open_from: dict[str, date]
    final_through: dict[str, date | None]
    definition_keys: dict[str, str]
    """Per fact source, a hash of everything its numbers depend on (its SQL, the assignment
    source, the experiment key and variants, its metrics' definitions): a stored
    ``final_through`` only holds while the key is unchanged."""
    notes: tuple[str, ...] = ()
    caps: dict[str, AppliedCap] = field(default_factory=dict)
    """The cap applied to each capped metric (by name) in this refresh."""
    quantiles: dict[tuple[str, str], QuantileStats] = field(default_factory=dict)
    """Each quantile metric's statistics by (variant, metric name), over every unit kept
    since the start (an arm too small for its interval has none, and a note)."""
    quantile_metrics: tuple[str, ...] = ()
    """The quantile metrics this refresh computed: their stored statistics are replaced by
    :attr:`quantiles` (none when their fact source was final and did not run)."""
