"""The demo's warehouse: a DuckDB file beside the app database with synthetic exposures,
orders and sessions (:mod:`core.warehouse.synthetic`), described in the app once — a
connection, an assignment source (with two dimensions and one covariate, ``tenure_days``:
every mean, proportion and ratio metric is regression-adjusted on it, beside its own
pre-period), two fact sources and four metrics on them (one a quantile metric: the p90 of each
user's page views) — and three running experiments fed from it, refreshed from the warehouse
at seeding so their results show.

The truths (:data:`DEMO_WAREHOUSE_EXPERIMENTS`): "One-tap reorder" raises the daily order rate
by 15% (conversion and revenue per user up, revenue per session up); "Search filters v2" is a
true null; "Product bundles" has two arms, one with 15% more revenue per order, one with 10% more
orders over 25% more sessions (more revenue per user, less per session). About 0.4% of the units
are exposed to a second variant (excluded and counted), some facts arrive up to two days late,
and the data ends yesterday as a nightly-loaded warehouse would.

Idempotent: the file is written when it is missing or was generated for another day 0 (the day
0 and a version are kept in its table ``demo_warehouse``); definitions and experiments already
present (by name) are left alone; an experiment is refreshed only while it has no data. Day 0
is the existing demo experiments' (so a deleted file comes back the same), else 14 days before
the day of seeding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core import catalogue
from core.auth import Actor
from core.config import demo_warehouse_file
from core.errors import NotFound
from core.registry.lifecycle import create_experiment, transition_experiment
from core.registry.listing import get_experiment_by_name
from core.warehouse import catalog
from core.warehouse.refresh import refresh_from_warehouse
from core.warehouse.synthetic import (
    Lift,
    SyntheticExperiment,
    generate_warehouse,
    load_duckdb,
)
from db import metric_repository as mrepo

DEMO_ACTOR = Actor(name="demo-seed", role="admin")
WAREHOUSE_DAYS = 14
"""Days of exposures, ending yesterday."""
UNITS = 20_000
SEED = 21
VERSION = 3
"""Bumped when the generated data changes: a file of another version is written again."""

CONNECTION = "demo_warehouse"
ASSIGNMENT_SOURCE = "exposures"
ASSIGNMENT_SQL = ("SELECT unit_id, timestamp, experiment_key, variant, platform, country,\n"
                  "       tenure_days\n"
                  "FROM exposures")
COVARIATES = ["tenure_days"]
"""A numeric unit attribute (days since signup, NULL when unknown) every metric is
regression-adjusted on."""
FACT_SOURCES: tuple[dict[str, Any], ...] = (
    {"name": "orders", "columns": ["revenue", "items"],
     "sql": "SELECT unit_id, timestamp, revenue, items\nFROM orders"},
    {"name": "sessions", "columns": ["session_count", "page_views", "revenue"],
     "sql": "-- sessions, and the revenue of the orders placed: one source for revenue per "
            "session\n"
            "SELECT unit_id, timestamp, session_count, page_views, 0.0 AS revenue\n"
            "FROM sessions\n"
            "UNION ALL\n"
            "SELECT unit_id, timestamp, 0, 0, revenue\n"
            "FROM orders"},
)
METRICS: tuple[dict[str, Any], ...] = (
    {"name": "conversion_7d", "unit": "%", "fact_source": "orders",
     "aggregation": "any", "window_days": 7,
     "description": "Share of exposed users who place an order within 7 days of their first "
                    "exposure (computed in the warehouse)."},
    {"name": "revenue_per_user_7d", "unit": "USD", "fact_source": "orders",
     "aggregation": "sum", "value_column": "revenue", "window_days": 7, "cuped_days": 14,
     "description": "Revenue per exposed user within 7 days of first exposure, "
                    "regression-adjusted on the same revenue over the 14 days before it and "
                    "the user's tenure (computed in the warehouse)."},
    {"name": "rev_per_session_7d", "unit": "USD", "fact_source": "sessions",
     "aggregation": "ratio", "value_column": "revenue", "denominator_column": "session_count",
     "window_days": 7,
     "description": "Revenue over sessions of the exposed users within 7 days of first "
                    "exposure: a ratio, analysed per user with the delta method (computed in "
                    "the warehouse)."},
    {"name": "p90_page_views_7d", "unit": "views", "fact_source": "sessions",
     "aggregation": "sum", "value_column": "page_views", "window_days": 7, "quantile_p": 0.9,
     "description": "The 90th percentile of page views per exposed user within 7 days of "
                    "first exposure: a quantile metric with the order-statistic interval, read "
                    "over every user at each refresh (computed in the warehouse)."},
)
DEMO_WAREHOUSE_EXPERIMENTS: tuple[SyntheticExperiment, ...] = (
    SyntheticExperiment("one_tap_reorder", ("control", "treatment"), first_day=0, days=14,
                        share=0.6, lifts={"treatment": Lift(orders=1.15)}),
    SyntheticExperiment("search_filters_v2", ("control", "treatment"), first_day=3, days=11,
                        share=0.5, lifts={}),
    SyntheticExperiment("bundle_offers", ("control", "discounted", "upsell"),
                        first_day=1, days=13, share=0.9,
                        lifts={"discounted": Lift(revenue=1.15),
                               "upsell": Lift(orders=1.10, sessions=1.25)}),
)


@dataclass(frozen=True)
class _Plan:
    key: str
    fields: dict[str, Any]


def _plans() -> list[_Plan]:
    def ab(names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"name": n, "weight": 1 / len(names)} for n in names]

    one_tap, search, bundles = DEMO_WAREHOUSE_EXPERIMENTS
    return [
        _Plan(one_tap.key, {
            "name": "One-tap reorder", "owner": "maria.lopez",
            "hypothesis": "A 'buy again' button on past orders makes repeat purchases "
            "effortless and raises 7-day purchase conversion.",
            "target_segment": "Users with a past order", "primary_metric": "conversion_7d",
            "secondary_metrics": ["revenue_per_user_7d", "rev_per_session_7d"],
            "variants": ab(one_tap.variants), "planned_sample_size": 5000, "mde": 0.05,
            "tags": ["warehouse", "checkout"]}),
        _Plan(search.key, {
            "name": "Search filters v2", "owner": "dev.patel",
            "hypothesis": "Filters that remember the last choice help users find products "
            "and raise revenue per user.",
            "target_segment": "Users who search", "primary_metric": "revenue_per_user_7d",
            "secondary_metrics": ["conversion_7d"],
            "variants": ab(search.variants), "planned_sample_size": 4500, "mde": 0.05,
            "tags": ["warehouse", "search"]}),
        _Plan(bundles.key, {
            "name": "Product bundles", "owner": "olivia.brown",
            "hypothesis": "Offering a bundle at checkout raises revenue per session; a "
            "discounted bundle and an upsell bundle are tried.",
            "target_segment": "Shoppers at checkout", "primary_metric": "rev_per_session_7d",
            "secondary_metrics": ["revenue_per_user_7d", "conversion_7d",
                                  "p90_page_views_7d"],
            "variants": ab(bundles.variants), "planned_sample_size": 4000, "mde": 0.05,
            "tags": ["warehouse", "revenue"]}),
    ]


def warehouse_path(session: Session) -> Path:
    """The demo warehouse file of the session's app database (core.config)."""
    return demo_warehouse_file(session.get_bind().engine.url.render_as_string(
        hide_password=False))


def _origin_of_file(path: Path) -> tuple[date, int] | None:
    """Day 0 and version the file was generated for; None when missing or not ours."""
    if not path.exists():
        return None
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None
    try:
        row = con.execute("SELECT origin, version FROM demo_warehouse").fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return None if row is None else (row[0], int(row[1]))


def _existing_origin(session: Session) -> date | None:
    """Day 0 of a demo seeded before: its first warehouse experiment's start."""
    plan = _plans()[0]
    try:
        exp = get_experiment_by_name(session, name=plan.fields["name"])
    except NotFound:
        return None
    first_day = DEMO_WAREHOUSE_EXPERIMENTS[0].first_day
    return None if exp.actual_start is None else exp.actual_start - timedelta(days=first_day)


_WRITTEN: dict[tuple[date, int], Path] = {}
"""Files this process wrote, by day 0 and version: another demo database (the tests seed
many) copies one rather than generating the same tables again."""


def write_warehouse(path: Path, origin: date) -> None:
    """Generate the demo's tables for day 0 ``origin`` and write them to ``path``: as the
    warehouse holds them at the end of the day before ``origin + WAREHOUSE_DAYS`` (late facts
    not yet arrived are missing, as they would be)."""
    import shutil

    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    done = _WRITTEN.get((origin, VERSION))
    if done is not None and done != path and _origin_of_file(done) == (origin, VERSION):
        shutil.copyfile(done, path)
        return

    warehouse = generate_warehouse(
        units=UNITS, days=WAREHOUSE_DAYS, seed=SEED, start=origin,
        experiments=DEMO_WAREHOUSE_EXPERIMENTS, post_days=0)
    tables = warehouse.visible_on(origin + timedelta(days=WAREHOUSE_DAYS - 1))
    path.unlink(missing_ok=True)
    load_duckdb(path, {
        **tables,
        "demo_warehouse": pd.DataFrame({"origin": [origin], "version": [VERSION]}),
    })
    _WRITTEN[(origin, VERSION)] = path


def ensure_warehouse(session: Session, *, today: date) -> tuple[Path, date, bool]:
    """The demo warehouse file, its day 0, and whether it was (re)written now."""
    path = warehouse_path(session)
    origin = _existing_origin(session) or today - timedelta(days=WAREHOUSE_DAYS)
    if _origin_of_file(path) == (origin, VERSION):
        return path, origin, False
    write_warehouse(path, origin)
    return path, origin, True


def seed_demo_warehouse(session: Session, *, today: date | None = None) -> str:
    """Seed the warehouse file, its definitions and the experiments fed from it (see the
    module docstring); a one-sentence summary."""
    today = today or datetime.now(UTC).date()
    path, origin, written = ensure_warehouse(session, today=today)
    added: list[str] = []
    if not any(c.name == CONNECTION for c in catalog.list_connections(session)):
        catalog.create_connection(session, actor=DEMO_ACTOR, data={
            "name": CONNECTION, "url": f"duckdb:///{path}"})
        added.append("a connection")
    if not any(s.name == ASSIGNMENT_SOURCE for s in catalog.list_assignment_sources(session)):
        catalog.create_assignment_source(session, actor=DEMO_ACTOR, data={
            "name": ASSIGNMENT_SOURCE, "connection": CONNECTION, "sql": ASSIGNMENT_SQL,
            "dimensions": ["platform", "country"], "covariates": COVARIATES})
        added.append("an assignment source")
    facts = {f.name for f in catalog.list_fact_sources(session)}
    new_facts = [f for f in FACT_SOURCES if f["name"] not in facts]
    for fact in new_facts:
        catalog.create_fact_source(session, actor=DEMO_ACTOR,
                                   data={**fact, "connection": CONNECTION})
    metrics = {m.name for m in catalogue.list_metrics(session)}
    new_metrics = [m for m in METRICS if m["name"] not in metrics]
    for metric in new_metrics:
        catalogue.create_metric(session, data=metric, actor=DEMO_ACTOR)
    started = 0
    refreshed = 0
    for n, plan in enumerate(_plans()):
        synthetic = DEMO_WAREHOUSE_EXPERIMENTS[n]
        try:
            exp = get_experiment_by_name(session, name=plan.fields["name"])
        except NotFound:
            view = create_experiment(session, actor=DEMO_ACTOR, data={
                **plan.fields, "assignment_source": ASSIGNMENT_SOURCE,
                "experiment_key": plan.key,
                "planned_start": synthetic.start(origin),
                "planned_end": synthetic.start(origin) + timedelta(days=21)})
            exp = transition_experiment(
                session, experiment_id=view.id, to_status="running",
                expected_version=view.version, actor=DEMO_ACTOR, on=synthetic.start(origin))
            started += 1
        if exp.assignment_source is None or mrepo.count_daily_stats(
                session, experiment_id=exp.id):
            continue
        refresh_from_warehouse(session, experiment_id=exp.id, actor=DEMO_ACTOR, today=today,
                               now=datetime(today.year, today.month, today.day, tzinfo=UTC))
        refreshed += 1
    if new_facts:
        added.append(f"{len(new_facts)} fact sources")
    if new_metrics:
        added.append(f"{len(new_metrics)} metrics")
    if started:
        added.append(f"{started} experiments")
    return (f"Demo warehouse {path}{' written' if written else ''}: "
            f"{', '.join(added) or 'nothing'} added, {refreshed} experiments refreshed from it.")
