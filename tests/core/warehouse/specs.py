"""The experiment specs the warehouse tests run: one assignment source and two fact sources over
the synthetic warehouse's tables, and metrics covering every aggregation, windows of several
lengths, no window, and CUPED pre-periods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date

import pandas as pd

from core.warehouse.definitions import (
    AssignmentSource,
    Connection,
    ExperimentSpec,
    FactSource,
    WarehouseMetric,
)
from core.warehouse.synthetic import SyntheticWarehouse

ASSIGNMENT = "exposures"
ORDERS = "orders"
SESSIONS = "sessions"
DIMENSIONS = ("platform", "country")

METRICS: tuple[WarehouseMetric, ...] = (
    # orders: one metric without a window, so this fact source always recomputes fully.
    WarehouseMetric("conversion", ORDERS, "any", window_days=7),
    WarehouseMetric("revenue", ORDERS, "sum", column="revenue", window_days=7, cuped_days=14),
    WarehouseMetric("orders", ORDERS, "count", window_days=3, cuped_days=7),
    WarehouseMetric("items", ORDERS, "count", column="items", window_days=7),
    WarehouseMetric("discounted", ORDERS, "any", column="discount", window_days=7, cuped_days=14),
    WarehouseMetric("order_value", ORDERS, "mean", column="revenue", window_days=7),
    WarehouseMetric("revenue_to_date", ORDERS, "sum", column="revenue", cuped_days=7),
    # sessions: every metric has a window (the longest 7 days).
    WarehouseMetric("sessions", SESSIONS, "sum", column="session_count", window_days=7,
                    cuped_days=14),
    WarehouseMetric("active", SESSIONS, "any", window_days=3, cuped_days=14),
    WarehouseMetric("views_per_session", SESSIONS, "ratio", column="page_views",
                    denominator="session_count", window_days=7),
    WarehouseMetric("views_per_visit", SESSIONS, "mean", column="page_views", window_days=5),
)


def sources(
    connection: Connection, prefix: str = ""
) -> tuple[AssignmentSource, FactSource, FactSource]:
    """The three sources over ``{prefix}exposures``, ``{prefix}orders``, ``{prefix}sessions``
    (``prefix`` a schema such as ``wh.``)."""
    return (
        AssignmentSource(
            ASSIGNMENT, connection,
            "SELECT unit_id, timestamp, experiment_key, variant, platform, country "
            f"FROM {prefix}exposures",
            dimensions=DIMENSIONS,
        ),
        FactSource(
            ORDERS, connection,
            f"SELECT unit_id, timestamp, revenue, items, discount FROM {prefix}orders",
            columns=("revenue", "items", "discount"),
        ),
        FactSource(
            SESSIONS, connection,
            f"SELECT unit_id, timestamp, session_count, page_views FROM {prefix}sessions",
            columns=("session_count", "page_views"),
        ),
    )


def experiment_spec(
    warehouse: SyntheticWarehouse,
    key: str,
    connection: Connection,
    prefix: str = "",
    *,
    metrics: tuple[WarehouseMetric, ...] = METRICS,
    end: date | None = None,
) -> ExperimentSpec:
    """The spec of the synthetic experiment ``key`` on ``connection``."""
    exp = warehouse.experiment(key)
    assignment, orders, sessions = sources(connection, prefix)
    return ExperimentSpec(
        experiment_key=key,
        variants=exp.variants,
        start=exp.start(warehouse.start),
        end=end or exp.end(warehouse.start),
        assignment=assignment,
        facts=(orders, sessions),
        metrics=metrics,
        label=f"test: {key}",
    )


def with_sources(
    spec: ExperimentSpec,
    *,
    assignment_sql: str | None = None,
    dimensions: tuple[str, ...] | None = None,
    fact_sql: Mapping[str, str] | None = None,
    fact_columns: Mapping[str, tuple[str, ...]] | None = None,
) -> ExperimentSpec:
    """``spec`` with some sources' SQL, dimensions or columns replaced."""
    assignment = spec.assignment
    if assignment_sql is not None:
        assignment = replace(assignment, sql=assignment_sql)
    if dimensions is not None:
        assignment = replace(assignment, dimensions=dimensions)
    facts = tuple(
        replace(
            f,
            sql=(fact_sql or {}).get(f.name, f.sql),
            columns=(fact_columns or {}).get(f.name, f.columns),
        )
        for f in spec.facts
    )
    return replace(spec, assignment=assignment, facts=facts)


def frames(tables: Mapping[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """What the sources of :func:`sources` return, as frames: (assignment, facts by source)."""
    return tables["exposures"], {ORDERS: tables["orders"], SESSIONS: tables["sessions"]}
