"""Synthetic metric data for the demo portfolio, with known true effects.

Each demo experiment gets user-level data drawn from a seeded generator (one row per unit:
exposure day, variant, one value per metric, pre-period values for CUPED), written to a Parquet
file and loaded through the real ingestion path (:func:`core.data.ingestion.ingest_file`). One
experiment ("Search ranking v2") is instead loaded by SQL push-down: its raw events go to an
``events`` table in the app's own database and its metric source aggregates them there.

The truths (:data:`DEMO_TRUTH`): a clear winner (Checkout button colour), a flat result (Search
ranking v2), a sample ratio mismatch (Onboarding checklist: 52/48 on a 50/50 plan), a guardrail
regression (Free shipping threshold: refund rate +40%), one short of its plan (Pricing page
redesign: 40%), a sequential three-arm test with one clear winner (Recommendations carousel), and
the completed experiments (for predicted-vs-realised comparisons), a ratio metric (Infinite
scroll on search: revenue per session +6%, sessions per user unchanged; its p90 page load time,
a quantile metric, unchanged) and an effect that lives
in one segment (Mobile express checkout: checkout conversion +25% on ios and android, none on
web; its data carries the dimension columns ``platform`` and ``country``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from core import spool
from core.auth import Actor
from core.data.ingestion import ingest_file
from core.data.metric_sources import ingest_sql, set_metric_source
from core.errors import NotFound
from core.registry.listing import load_experiment
from db import demo_events
from db import metric_repository as mrepo
from db import repositories as repo
from db.models import Experiment

DEMO_DATA_ACTOR = Actor(name="demo-seed", role="admin")


@dataclass(frozen=True)
class MetricModel:
    """How one metric is drawn: a conversion rate, or a mean with a coefficient of variation."""

    kind: str
    base: float
    cv: float = 1.0
    distribution: str = "lognormal"
    """"lognormal" (positive, skewed) or "poisson" (counts) for mean metrics."""
    pre_correlation: float | None = None
    """Correlation of the log-scale value with its pre-period value; None = no pre column."""
    numerator: str | None = None
    """Ratio metrics: the numerator column (``base`` is then the true ratio, e.g. revenue per
    session, and ``cv`` the per-session value's coefficient of variation)."""
    denominator: str | None = None
    denominator_mean: float = 3.0
    """Ratio metrics: mean of the denominator per unit (1 + Poisson)."""


@dataclass(frozen=True)
class DemoTruth:
    """The generating parameters of one demo experiment (the effects are true, relative)."""

    units: dict[str, int]
    """Units per variant over the whole run."""
    metrics: dict[str, MetricModel]
    effects: dict[tuple[str, str], float] = field(default_factory=dict)
    """(metric, treatment) -> true relative lift; missing pairs are 0."""
    sql_source: bool = False
    seed: int = 0
    """Added to the name's CRC-32 to seed the generator (chosen so each story reads true)."""
    dimensions: dict[str, dict[str, float]] = field(default_factory=dict)
    """Dimension column -> {value: share of units}: text columns of the file (segments)."""
    segment_effects: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    """(metric, treatment, dimension, value) -> true relative lift for those units, in place of
    ``effects``."""


_CONV = MetricModel("binomial", 0.10)
_REFUND = MetricModel("binomial", 0.03)
_REVENUE = MetricModel("mean", 12.0, cv=2.0, pre_correlation=0.6)
_LOAD = MetricModel("mean", 1200.0, cv=0.25)
_LOAD_TAIL = MetricModel("quantile", 1200.0, cv=0.6)
"""A quantile metric's per-unit value, drawn as a lognormal mean metric's (its p90 is tested)."""
_SESSION = MetricModel("mean", 6.0, cv=0.8, pre_correlation=0.5)
_ORDERS = MetricModel("mean", 1.2, distribution="poisson")

DEMO_TRUTH: dict[str, DemoTruth] = {
    "Checkout button colour": DemoTruth(
        units={"control": 10_000, "treatment": 10_000},
        metrics={"checkout_conversion": _CONV, "refund_rate": _REFUND,
                 "revenue_per_user": _REVENUE},
        effects={("checkout_conversion", "treatment"): 0.15,
                 ("revenue_per_user", "treatment"): 0.04},
    ),
    "Search ranking v2": DemoTruth(
        units={"control": 8_500, "treatment": 8_500},
        metrics={"add_to_cart_rate": MetricModel("binomial", 0.25), "page_load_time_ms": _LOAD,
                 "session_minutes": _SESSION},
        sql_source=True,
    ),
    "Onboarding checklist": DemoTruth(
        units={"control": 6_000, "treatment": 6_600},
        metrics={"retention_d7": MetricModel("binomial", 0.30), "page_load_time_ms": _LOAD},
        effects={("retention_d7", "treatment"): 0.08},
    ),
    "Free shipping threshold": DemoTruth(
        units={"control": 7_500, "treatment": 7_500},
        metrics={"orders_per_user": _ORDERS, "refund_rate": _REFUND,
                 "page_load_time_ms": _LOAD, "revenue_per_user": _REVENUE},
        effects={("orders_per_user", "treatment"): 0.06, ("refund_rate", "treatment"): 0.40,
                 ("revenue_per_user", "treatment"): 0.03},
        seed=2,
    ),
    "Pricing page redesign": DemoTruth(
        units={"control": 8_000, "treatment": 8_000},
        metrics={"signup_rate": MetricModel("binomial", 0.08), "page_load_time_ms": _LOAD},
        effects={("signup_rate", "treatment"): 0.10},
    ),
    "Recommendations carousel": DemoTruth(
        units={"control": 7_140, "carousel_top": 6_930, "carousel_bottom": 6_930},
        metrics={"revenue_per_user": _REVENUE, "page_load_time_ms": _LOAD,
                 "add_to_cart_rate": MetricModel("binomial", 0.25)},
        effects={("revenue_per_user", "carousel_top"): 0.20,
                 ("revenue_per_user", "carousel_bottom"): 0.01,
                 ("add_to_cart_rate", "carousel_top"): 0.05},
    ),
    "One-page checkout": DemoTruth(
        units={"control": 8_500, "treatment": 8_500},
        metrics={"checkout_conversion": _CONV, "refund_rate": _REFUND},
        effects={("checkout_conversion", "treatment"): 0.12},
    ),
    "Dark mode default": DemoTruth(
        units={"control": 5_500, "treatment": 5_500},
        metrics={"session_minutes": _SESSION, "retention_d7": MetricModel("binomial", 0.30)},
        seed=2,
    ),
    "Annual plan discount": DemoTruth(
        units={"control": 6_500, "treatment": 6_500},
        metrics={"revenue_per_user": _REVENUE, "refund_rate": _REFUND},
        effects={("revenue_per_user", "treatment"): -0.06},
    ),
    "Infinite scroll on search": DemoTruth(
        units={"control": 6_000, "treatment": 6_000},
        metrics={"revenue_per_session": MetricModel("ratio", 4.0, cv=1.2, numerator="revenue",
                                                    denominator="sessions"),
                 "page_load_time_ms": _LOAD, "p90_page_load_ms": _LOAD_TAIL},
        effects={("revenue_per_session", "treatment"): 0.06},
    ),
    "Mobile express checkout": DemoTruth(
        units={"control": 8_000, "treatment": 8_000},
        metrics={"checkout_conversion": _CONV, "refund_rate": _REFUND},
        dimensions={"platform": {"web": 0.5, "ios": 0.3, "android": 0.2},
                    "country": {"US": 0.5, "DE": 0.3, "FR": 0.2}},
        segment_effects={("checkout_conversion", "treatment", "platform", "ios"): 0.25,
                         ("checkout_conversion", "treatment", "platform", "android"): 0.25},
        seed=15,  # refund_rate unchanged in truth and in the draw (seed 0's +19% read as harm)
    ),
    "Trust badges on cart": DemoTruth(
        units={"control": 7_500, "treatment": 7_500},
        metrics={"checkout_conversion": _CONV, "page_load_time_ms": _LOAD},
        effects={("checkout_conversion", "treatment"): 0.08},
        seed=3,
    ),
}


def _rng(name: str, seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()) + seed)


def _days(start: date, last: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((last - start).days + 1)]


def generate_units(
    name: str, truth: DemoTruth, *, start: date, last: date
) -> dict[str, np.ndarray]:
    """User-level columns for one experiment: unit_id, variant, date, metrics, ``*_pre``, a
    ratio metric's numerator and denominator columns, and the dimension columns.

    Deterministic for a given experiment name and date range. Binomial metrics are Bernoulli
    with rate ``base * (1 + lift)``; lognormal means have mean ``base * (1 + lift)`` and the
    given CV, with the pre-period value sharing a normal factor (log-scale correlation
    ``pre_correlation``); Poisson counts have a gamma-distributed rate (mean preserved). A ratio
    metric draws its denominator as 1 + Poisson(``denominator_mean`` - 1) and its numerator as
    denominator x a lognormal value per session of mean ``base * (1 + lift)``. Dimension values
    are drawn with the given shares; a segment effect replaces the lift for its units.
    """
    rng = _rng(name, truth.seed)
    days = _days(start, last)
    variants = np.concatenate([np.full(n, v, dtype=object) for v, n in truth.units.items()])
    total = variants.size
    order = rng.permutation(total)
    variants = variants[order]
    slug = "".join(ch for ch in name.lower() if ch.isalnum())[:8]
    cols: dict[str, np.ndarray] = {
        "unit_id": np.array([f"{slug}-{i:07d}" for i in range(total)], dtype=object),
        "variant": variants,
        "date": np.array(days, dtype="datetime64[D]")[rng.integers(0, len(days), total)],
    }
    for dim, shares in truth.dimensions.items():
        values = np.array(list(shares), dtype=object)
        cols[dim] = values[rng.choice(len(values), total, p=list(shares.values()))]
    for metric, model in truth.metrics.items():
        lift = np.ones(total)
        for (m, v), eff in truth.effects.items():
            if m == metric:
                lift[variants == v] = 1.0 + eff
        for (m, v, dim, value), eff in truth.segment_effects.items():
            if m == metric:
                lift[(variants == v) & (cols[dim] == value)] = 1.0 + eff
        if model.kind == "ratio":
            assert model.numerator and model.denominator
            sessions = 1 + rng.poisson(model.denominator_mean - 1.0, total)
            s = math.sqrt(math.log(1.0 + model.cv**2))
            per_session = np.exp(math.log(model.base) - s * s / 2 + s * rng.standard_normal(
                total))
            cols[model.denominator] = sessions.astype(np.int64)
            cols[model.numerator] = np.round(sessions * per_session * lift, 2)
        elif model.kind == "binomial":
            cols[metric] = (rng.random(total) < model.base * lift).astype(np.int8)
        elif model.distribution == "poisson":
            rate = rng.gamma(2.0, 0.5, total) * model.base * lift
            cols[metric] = rng.poisson(rate).astype(np.float64)
        else:
            s = math.sqrt(math.log(1.0 + model.cv**2))
            mu = math.log(model.base) - s * s / 2
            shared = rng.standard_normal(total)
            rho = model.pre_correlation or 0.0
            own = rho * shared + math.sqrt(1 - rho * rho) * rng.standard_normal(total)
            cols[metric] = np.round(np.exp(mu + s * own) * lift, 2)
            if model.pre_correlation is not None:
                cols[metric + "_pre"] = np.round(np.exp(mu + s * shared), 2)
    return cols


def _last_day(exp: Experiment, today: date) -> date:
    assert exp.actual_start is not None
    last = exp.actual_end or (today - timedelta(days=1))
    return max(last, exp.actual_start)


# --------------------------------------------------------------------------- SQL push-down demo

EVENTS_QUERY = """
WITH exposures AS (
    SELECT unit_id, MIN(variant) AS variant, MIN(event_date) AS day
    FROM events
    WHERE experiment = :experiment AND event_type = 'exposure'
      AND event_date BETWEEN :start AND :interval_end
    GROUP BY unit_id
    HAVING MIN(event_date) >= :interval_start
), per_unit AS (
    SELECT x.unit_id, x.variant, x.day,
        MAX(CASE WHEN e.event_type = 'add_to_cart' AND e.event_date >= x.day
            THEN 1 ELSE 0 END) AS add_to_cart,
        SUM(CASE WHEN e.event_type = 'session' AND e.event_date >= x.day
            THEN e.value ELSE 0 END) AS minutes,
        SUM(CASE WHEN e.event_type = 'session' AND e.event_date < :start
            THEN e.value ELSE 0 END) AS minutes_pre,
        MAX(CASE WHEN e.event_type = 'exposure' THEN e.value END) AS load_ms
    FROM exposures x JOIN events e ON e.unit_id = x.unit_id
    GROUP BY x.unit_id, x.variant, x.day
)
SELECT variant, day, 'session_minutes' AS metric, COUNT(*) AS n, SUM(minutes) AS sum,
    SUM(minutes * minutes) AS sum_squares, SUM(minutes_pre) AS sum_x,
    SUM(minutes_pre * minutes_pre) AS sum_x2, SUM(minutes_pre * minutes) AS sum_xy
FROM per_unit GROUP BY variant, day
UNION ALL
SELECT variant, day, 'add_to_cart_rate', COUNT(*), SUM(add_to_cart), SUM(add_to_cart),
    NULL, NULL, NULL
FROM per_unit GROUP BY variant, day
UNION ALL
SELECT variant, day, 'page_load_time_ms', COUNT(*), SUM(load_ms), SUM(load_ms * load_ms),
    NULL, NULL, NULL
FROM per_unit GROUP BY variant, day
"""
"""The demo SQL source: per-unit metrics from raw events, then per-variant, per-day sums. Only
units first exposed in the window (``:interval_start``..``:interval_end``) are aggregated, so a
daily refresh joins one day's units to their events; a unit's first exposure is still looked
up from the experiment's ``:start``, and its pre-period is the week before ``:start``."""


def write_events(session: Session, name: str, cols: dict[str, np.ndarray], start: date) -> int:
    """Write one experiment's units as raw events into the ``events`` table; returns rows.

    Per unit: an exposure (carrying experiment and variant, its value the page load in ms), a
    session in the experiment and one in the week before it, and an add-to-cart if it converted.
    """
    days = cols["date"].astype(object)
    pre_day = start - timedelta(days=7)
    units = cols["unit_id"].tolist()
    rows: list[tuple[Any, ...]] = []
    for unit, day, variant, load, minutes, before, cart in zip(
        units, days, cols["variant"].tolist(), cols["page_load_time_ms"].tolist(),
        cols["session_minutes"].tolist(), cols["session_minutes_pre"].tolist(),
        cols["add_to_cart_rate"].tolist(), strict=True,
    ):
        rows.append((unit, day, "exposure", load, name, variant))
        rows.append((unit, day, "session", minutes, None, None))
        rows.append((unit, pre_day, "session", before, None, None))
        if cart:
            rows.append((unit, day, "add_to_cart", 1.0, None, None))
    demo_events.insert_events(session, rows=rows)
    return len(rows)


# --------------------------------------------------------------------------- seeding


def seed_metric_data(
    session: Session, *, today: date | None = None, names: list[str] | None = None
) -> str:
    """Load the demo metric data for every demo experiment that has none yet (idempotent)."""
    today = today or datetime.now(UTC).date()
    loaded, skipped = [], []
    with spool.scratch_dir("demo-") as folder:
        for name, truth in DEMO_TRUTH.items():
            if names is not None and name not in names:
                continue
            exp_id = repo.experiment_id_by_name(session, name=name)
            if exp_id is None:
                raise NotFound(f"Demo experiment '{name}' is missing: seed the portfolio first.")
            exp = load_experiment(session, experiment_id=exp_id)
            if exp.actual_start is None or mrepo.count_daily_stats(
                session, experiment_id=exp_id
            ):
                skipped.append(name)
                continue
            last = _last_day(exp, today)
            cols = generate_units(name, truth, start=exp.actual_start, last=last)
            if truth.sql_source:
                if not demo_events.has_events(session, experiment=name):
                    write_events(session, name, cols, exp.actual_start)
                    session.commit()
                set_metric_source(session, experiment_id=exp_id, query=EVENTS_QUERY.strip(),
                                  actor=DEMO_DATA_ACTOR)
                ingest_sql(session, experiment_id=exp_id, actor=DEMO_DATA_ACTOR)
            else:
                path = folder / f"{exp_id}.parquet"
                pq.write_table(pa.table(cols), path)
                ingest_file(session, path=path, experiment_id=exp_id, actor=DEMO_DATA_ACTOR)
            loaded.append(name)
    return f"Demo metric data: {len(loaded)} experiments loaded, {len(skipped)} already had data."
