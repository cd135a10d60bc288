"""A seeded synthetic warehouse: exposures, orders and sessions with known effects.

Small and fast (a few thousand units in well under a second), pure numpy/pandas; the only IO
is in the loaders (:func:`load_duckdb`, :func:`load_postgres`, :func:`load_spark`). It feeds the
engine tests (the same tables loaded into DuckDB, PostgreSQL and Spark), the demo warehouse and
anything else that needs realistic warehouse tables with awkward cases in them:

- ``exposures`` (``unit_id, timestamp, experiment_key, variant, platform, country,
  tenure_days``): per experiment a random share of the units, first exposed at a uniform time
  over the experiment's days; some units are exposed again later (same variant, and now and
  then another ``platform``: a dimension counts at the *first* exposure); a few
  (``multi_variant_share``) are later exposed to a second variant. ``tenure_days``, a numeric
  unit attribute (a covariate), is the whole days since the unit signed up at the row's
  timestamp (so a repeat exposure has a larger one: the first exposure's counts), longer for
  more active units, and NULL for the units whose signup is unknown (about one in ten).
- ``orders`` (``unit_id, timestamp, revenue, items, discount``; ``items`` is sometimes null,
  ``discount`` mostly 0) and
  ``sessions`` (``unit_id, timestamp, session_count, page_views``): daily activity of each
  unit from ``pre_days`` before the first experiment day (pre-exposure facts, correlated with
  the later ones through a per-unit propensity: what CUPED uses) to ``post_days`` after the
  last one (facts after any window). Each fact row has ``arrival_day`` (the day the warehouse
  got it: its timestamp's day, or up to ``max_lag_days`` later for ``late`` rows), so a test can
  replay what was visible on each day (:meth:`SyntheticWarehouse.visible_on`).
- Edge rows: for a few units per experiment, facts exactly at the first exposure and at whole
  days before and after it (window and pre-period boundaries).

Effects: after a unit's first exposure to an experiment, its order rate, revenue per order and
session rate are multiplied by the lifts of its variant (:attr:`SyntheticExperiment.lifts`);
experiments are assigned independently, so other experiments' effects are balanced noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import duckdb

TABLES: tuple[str, ...] = ("exposures", "orders", "sessions")
PLATFORMS: tuple[str, ...] = ("ios", "android", "web")
COUNTRIES: tuple[str, ...] = ("DE", "FR", "GB", "US")
EDGE_OFFSETS_DAYS: tuple[int, ...] = (-14, -7, -1, 0, 1, 3, 7, 14)
"""Whole days from a unit's first exposure at which edge units get an order and a session."""

_DAY = np.timedelta64(1, "D")
_SECOND = np.timedelta64(1, "s")


@dataclass(frozen=True)
class Lift:
    """Multipliers applied to a unit's activity after its first exposure to a variant."""

    orders: float = 1.0
    """On the daily probability of an order."""
    revenue: float = 1.0
    """On the revenue of each order."""
    sessions: float = 1.0
    """On the daily probability of a session."""


@dataclass(frozen=True)
class SyntheticExperiment:
    """One experiment of the synthetic warehouse and its true effects."""

    key: str
    variants: tuple[str, ...]
    first_day: int
    """Offset of its first exposure day from the warehouse's ``start``."""
    days: int
    """Exposure days (units are first exposed on days first_day .. first_day + days - 1)."""
    share: float = 0.7
    """Share of all units it exposes."""
    lifts: Mapping[str, Lift] = field(default_factory=dict)
    """Per variant (the first, the control, has none); a missing variant has no effect."""

    def start(self, origin: date) -> date:
        return origin + timedelta(days=self.first_day)

    def end(self, origin: date) -> date:
        """The last exposure day."""
        return origin + timedelta(days=self.first_day + self.days - 1)


DEFAULT_EXPERIMENTS: tuple[SyntheticExperiment, ...] = (
    SyntheticExperiment(
        "checkout_button", ("control", "treatment"), first_day=0, days=10,
        lifts={"treatment": Lift(orders=1.15, revenue=1.0)},
    ),
    SyntheticExperiment(
        "search_ranking", ("control", "treatment"), first_day=2, days=8, share=0.5,
        lifts={},  # a true null
    ),
    SyntheticExperiment(
        "recs_carousel", ("control", "carousel_a", "carousel_b"), first_day=1, days=9,
        lifts={"carousel_a": Lift(revenue=1.10), "carousel_b": Lift(orders=1.05, sessions=1.10)},
    ),
)


@dataclass(frozen=True)
class SyntheticWarehouse:
    """The generated tables and what they were generated from."""

    exposures: pd.DataFrame
    orders: pd.DataFrame
    sessions: pd.DataFrame
    start: date
    """Day 0: the first experiment day (facts begin ``pre_days`` earlier)."""
    last_day: date
    """The last day with facts (by timestamp; late ones arrive up to ``max_lag_days`` later)."""
    experiments: tuple[SyntheticExperiment, ...]
    seed: int

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"exposures": self.exposures, "orders": self.orders, "sessions": self.sessions}

    def experiment(self, key: str) -> SyntheticExperiment:
        for exp in self.experiments:
            if exp.key == key:
                return exp
        have = ", ".join(e.key for e in self.experiments)
        raise ValueError(f"no experiment '{key}' (have {have})")

    def visible_on(self, day: date) -> dict[str, pd.DataFrame]:
        """The tables as the warehouse held them at the end of ``day``: exposures up to that
        day, facts that had arrived by then (``arrival_day <= day``)."""
        limit = np.datetime64(day + timedelta(days=1))
        return {
            "exposures": self.exposures[self.exposures["timestamp"] < limit].reset_index(drop=True),
            "orders": _arrived(self.orders, day),
            "sessions": _arrived(self.sessions, day),
        }


def _arrived(frame: pd.DataFrame, day: date) -> pd.DataFrame:
    return frame[frame["arrival_day"] <= day].reset_index(drop=True)


def generate_warehouse(
    *,
    units: int = 3000,
    days: int = 10,
    seed: int = 21,
    start: date = date(2026, 3, 2),
    experiments: tuple[SyntheticExperiment, ...] | None = None,
    pre_days: int = 21,
    post_days: int = 10,
    repeat_share: float = 0.3,
    multi_variant_share: float = 0.004,
    late_share: float = 0.15,
    max_lag_days: int = 2,
    edge_units: int = 12,
) -> SyntheticWarehouse:
    """Generate the tables (see the module docstring).

    ``units``: the population; ``days``: experiment days (the default experiments are cut to
    fit); ``seed`` fixes every draw. ``repeat_share``: share of exposed units exposed again
    (same variant); ``multi_variant_share``: share later exposed to a second variant (within
    36 hours, so their windows see it); ``late_share``: share of fact rows arriving 1 ..
    ``max_lag_days`` days after their timestamp's day; ``edge_units``: units per experiment
    with facts at whole days from their first exposure.
    """
    if units < 10 or days < 1:
        raise ValueError("generate_warehouse needs at least 10 units and 1 day")
    rng = np.random.default_rng(seed)
    exps = tuple(
        _fit(e, days) for e in (DEFAULT_EXPERIMENTS if experiments is None else experiments)
    )
    origin = np.datetime64(start, "s")
    ids = np.array([f"u{i:06d}" for i in range(units)], dtype=object)
    platform = rng.choice(len(PLATFORMS), size=units, p=[0.35, 0.35, 0.30])
    country = rng.choice(len(COUNTRIES), size=units, p=[0.3, 0.2, 0.2, 0.3])
    # Per-unit propensity: drives pre- and post-exposure activity alike (CUPED's correlation).
    propensity = rng.lognormal(mean=0.0, sigma=0.6, size=units)

    exposure_parts: list[pd.DataFrame] = []
    first_seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    edge_rows: list[tuple[int, np.datetime64]] = []
    for exp in exps:
        frame, units_idx, first_ts, variant_idx = _exposures(
            rng, exp, ids, platform, country, origin,
            repeat_share=repeat_share, multi_variant_share=multi_variant_share,
        )
        exposure_parts.append(frame)
        first_seen.append((units_idx, first_ts, variant_idx))
        for i in rng.choice(len(units_idx), size=min(edge_units, len(units_idx)), replace=False):
            edge_rows.append((int(units_idx[i]), first_ts[i]))
    exposures = (
        pd.concat(exposure_parts, ignore_index=True)
        .sort_values(["timestamp", "unit_id", "experiment_key"], kind="stable")
        .reset_index(drop=True)
    )
    exposures["tenure_days"] = _tenure(np.random.default_rng([seed, 1]), exposures, propensity,
                                       origin)

    first_fact = origin - pre_days * _DAY
    fact_days = pre_days + days + post_days
    order_mult, revenue_mult, session_mult = _lift_lookup(exps, first_seen, units)

    # Orders: per unit and day an order with probability rate * lift.
    grid_unit = np.repeat(np.arange(units), fact_days)
    grid_day = np.tile(np.arange(fact_days), units)
    order_ts = first_fact + grid_day * _DAY + rng.integers(0, 86_400, grid_unit.size) * _SECOND
    order_p = np.clip(0.06 * propensity[grid_unit], 0, 0.9)
    lifted = order_mult(grid_unit, order_ts)
    keep = rng.random(grid_unit.size) < np.clip(order_p * lifted, 0, 0.95)
    o_unit, o_ts = grid_unit[keep], order_ts[keep]
    # Sessions: per unit and day a session with its own rate.
    session_ts = first_fact + grid_day * _DAY + rng.integers(0, 86_400, grid_unit.size) * _SECOND
    session_p = np.clip(0.25 * propensity[grid_unit], 0, 0.9)
    keep_s = rng.random(grid_unit.size) < np.clip(
        session_p * session_mult(grid_unit, session_ts), 0, 0.97
    )
    s_unit, s_ts = grid_unit[keep_s], session_ts[keep_s]

    # Edge facts at whole days from a first exposure (window and pre-period boundaries).
    if edge_rows:
        e_unit = np.array([u for u, _ in edge_rows for _ in EDGE_OFFSETS_DAYS])
        e_ts = np.array(
            [ts + k * _DAY for _, ts in edge_rows for k in EDGE_OFFSETS_DAYS], dtype="M8[s]"
        )
        o_unit, o_ts = np.concatenate([o_unit, e_unit]), np.concatenate([o_ts, e_ts])
        s_unit, s_ts = np.concatenate([s_unit, e_unit]), np.concatenate([s_ts, e_ts])

    revenue = np.round(
        rng.lognormal(mean=3.2, sigma=0.7, size=o_unit.size)
        * np.sqrt(propensity[o_unit])
        * revenue_mult(o_unit, o_ts),
        2,
    )
    items = pd.array(1 + rng.poisson(1.2, size=o_unit.size), dtype="Int64")
    items[rng.random(o_unit.size) < 0.03] = pd.NA
    # A discount on about one order in five (0 otherwise): an "any" metric with a column.
    discount = np.where(
        rng.random(o_unit.size) < 0.2, np.round(rng.uniform(1, 15, o_unit.size), 2), 0.0
    )
    orders = _facts(
        rng, ids[o_unit], o_ts, {"revenue": revenue, "items": items, "discount": discount},
        late_share=late_share, max_lag_days=max_lag_days,
    )
    sessions = _facts(
        rng, ids[s_unit], s_ts,
        {
            "session_count": 1 + rng.poisson(0.4, size=s_unit.size),
            "page_views": rng.poisson(4.0 * np.sqrt(propensity[s_unit])) + 1,
        },
        late_share=late_share, max_lag_days=max_lag_days,
    )
    last_day = max(orders["timestamp"].max(), sessions["timestamp"].max()).date()
    return SyntheticWarehouse(
        exposures=exposures, orders=orders, sessions=sessions, start=start,
        last_day=last_day, experiments=exps, seed=seed,
    )


def _tenure(rng: np.random.Generator, exposures: pd.DataFrame, propensity: np.ndarray,
            origin: np.datetime64) -> pd.Series:
    """Whole days since signup at each exposure row (nullable: unknown for about 10% of the
    units). Drawn from a generator of its own, so the other tables do not change with it."""
    units = propensity.size
    age = np.round(90.0 * propensity * rng.lognormal(0.0, 0.25, size=units))
    unknown = rng.random(units) < 0.1
    unit = exposures["unit_id"].str[1:].astype(int).to_numpy()
    since = (exposures["timestamp"].to_numpy().astype("M8[s]") - origin) // _DAY
    out = pd.array(age[unit].astype(np.int64) + since.astype(np.int64), dtype="Int64")
    out[unknown[unit]] = pd.NA
    return pd.Series(out, index=exposures.index)


def _fit(exp: SyntheticExperiment, days: int) -> SyntheticExperiment:
    first = min(exp.first_day, days - 1)
    return SyntheticExperiment(
        exp.key, exp.variants, first_day=first, days=max(1, min(exp.days, days - first)),
        share=exp.share, lifts=exp.lifts,
    )


def _exposures(
    rng: np.random.Generator,
    exp: SyntheticExperiment,
    ids: np.ndarray,
    platform: np.ndarray,
    country: np.ndarray,
    origin: np.datetime64,
    *,
    repeat_share: float,
    multi_variant_share: float,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """One experiment's exposure rows, and per exposed unit its index, first exposure time
    and variant index."""
    n_units = ids.size
    chosen = np.sort(rng.choice(n_units, size=max(2, int(exp.share * n_units)), replace=False))
    k = len(exp.variants)
    variant = rng.integers(0, k, size=chosen.size)
    begin = origin + exp.first_day * _DAY
    span = exp.days * 86_400
    first_ts = begin + rng.integers(0, span, size=chosen.size) * _SECOND
    end = begin + exp.days * _DAY  # exclusive
    rows_unit = [chosen]
    rows_ts = [first_ts]
    rows_variant = [variant]
    rows_platform = [platform[chosen]]
    # Repeat exposures, same variant, strictly later; now and then on another platform.
    rep = rng.random(chosen.size) < repeat_share
    for _ in range(2):
        later = first_ts[rep] + rng.integers(1, 3 * 86_400, size=int(rep.sum())) * _SECOND
        inside = later < end
        rows_unit.append(chosen[rep][inside])
        rows_ts.append(later[inside])
        rows_variant.append(variant[rep][inside])
        switch = rng.random(int(inside.sum())) < 0.2
        plat = platform[chosen[rep][inside]].copy()
        plat[switch] = (plat[switch] + 1) % len(PLATFORMS)
        rows_platform.append(plat)
        rep = rep & (rng.random(chosen.size) < 0.5)
    # A few units later exposed to a second variant, within 36 hours.
    multi = np.flatnonzero(rng.random(chosen.size) < multi_variant_share)
    if multi.size:
        other = (variant[multi] + rng.integers(1, k, size=multi.size)) % k
        later = first_ts[multi] + rng.integers(60, 36 * 3600, size=multi.size) * _SECOND
        later = np.minimum(later, end - _SECOND)
        # A unit first exposed in the last second gets its second variant one second later
        # at the most; keep it strictly after the first.
        ok = later > first_ts[multi]
        rows_unit.append(chosen[multi][ok])
        rows_ts.append(later[ok])
        rows_variant.append(other[ok])
        rows_platform.append(platform[chosen[multi][ok]])
    unit_idx = np.concatenate(rows_unit)
    frame = pd.DataFrame(
        {
            "unit_id": ids[unit_idx],
            "timestamp": np.concatenate(rows_ts).astype("M8[us]"),
            "experiment_key": exp.key,
            "variant": np.asarray(exp.variants, dtype=object)[np.concatenate(rows_variant)],
            "platform": np.asarray(PLATFORMS, dtype=object)[np.concatenate(rows_platform)],
            "country": np.asarray(COUNTRIES, dtype=object)[country[unit_idx]],
        }
    )
    return frame, chosen, first_ts, variant


def _lift_lookup(
    exps: tuple[SyntheticExperiment, ...],
    first_seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    units: int,
) -> tuple[Any, Any, Any]:
    """Functions (unit index array, timestamp array) -> multiplier, one per Lift field."""
    tables = []
    for exp, (unit_idx, first_ts, variant_idx) in zip(exps, first_seen, strict=True):
        since = np.full(units, np.datetime64("NaT"), dtype="M8[s]")
        since[unit_idx] = first_ts
        lift = np.ones((units, 3))
        for v, name in enumerate(exp.variants):
            got = exp.lifts.get(name)
            if got is not None:
                lift[unit_idx[variant_idx == v]] = (got.orders, got.revenue, got.sessions)
        tables.append((since, lift))

    def lookup(column: int) -> Any:
        def multiplier(unit: np.ndarray, ts: np.ndarray) -> np.ndarray:
            out = np.ones(unit.size)
            for since, lift in tables:
                after = ~np.isnat(since[unit]) & (ts >= since[unit])
                out = np.where(after, out * lift[unit, column], out)
            return out

        return multiplier

    return lookup(0), lookup(1), lookup(2)


def _facts(
    rng: np.random.Generator,
    unit_ids: np.ndarray,
    ts: np.ndarray,
    values: dict[str, Any],
    *,
    late_share: float,
    max_lag_days: int,
) -> pd.DataFrame:
    lag = np.where(
        rng.random(ts.size) < late_share,
        rng.integers(1, max(1, max_lag_days) + 1, size=ts.size),
        0,
    ) if max_lag_days > 0 else np.zeros(ts.size, dtype=int)
    day = ts.astype("M8[D]")
    frame = pd.DataFrame(
        {
            "unit_id": unit_ids,
            "timestamp": ts.astype("M8[us]"),
            **values,
            "arrival_day": pd.Series((day + lag * _DAY).astype("M8[D]")).dt.date,
            "late": lag > 0,
        }
    )
    return frame.sort_values(["timestamp", "unit_id"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------- loaders


def load_duckdb(
    path_or_con: str | Path | duckdb.DuckDBPyConnection,
    tables: Mapping[str, pd.DataFrame],
    *,
    schema: str | None = None,
) -> None:
    """Create (or replace) each table in a DuckDB file or open connection; a path is opened
    and closed here (so the engine may open it read-only afterwards)."""
    import duckdb

    con = duckdb.connect(str(path_or_con)) if isinstance(path_or_con, str | Path) else path_or_con
    try:
        prefix = ""
        if schema:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            prefix = f'"{schema}".'
        for name, frame in tables.items():
            view = f"_synthetic_{name}"
            con.register(view, _for_engines(frame))
            try:
                con.execute(f'CREATE OR REPLACE TABLE {prefix}"{name}" AS SELECT * FROM "{view}"')
            finally:
                con.unregister(view)
    finally:
        if isinstance(path_or_con, str | Path):
            con.close()


def load_postgres(url: str, schema: str, tables: Mapping[str, pd.DataFrame]) -> None:
    """Create (or replace) each table in ``schema`` of the PostgreSQL database at ``url`` (an
    SQLAlchemy URL; ``postgresql://`` uses psycopg2, ``postgresql+psycopg://`` psycopg 3),
    with COPY."""
    import io

    from sqlalchemy import create_engine, text
    from sqlalchemy.types import Date

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            for name, frame in tables.items():
                data = _for_engines(frame)
                dtypes = {c: Date() for c in data.columns if _is_date(data[c])}
                data.head(0).to_sql(
                    name, conn, schema=schema, if_exists="replace", index=False, dtype=dtypes
                )
                buffer = io.StringIO()
                data.to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S")
                buffer.seek(0)
                columns = ", ".join(f'"{c}"' for c in data.columns)
                copy = f'COPY "{schema}"."{name}" ({columns}) FROM STDIN WITH (FORMAT csv)'
                raw = conn.connection.dbapi_connection
                assert raw is not None
                cursor: Any = raw.cursor()
                try:
                    if hasattr(cursor, "copy_expert"):  # psycopg2
                        cursor.copy_expert(copy, buffer)
                    else:  # psycopg 3
                        with cursor.copy(copy) as stream:
                            stream.write(buffer.getvalue())
                finally:
                    cursor.close()
    finally:
        engine.dispose()


def load_spark(
    spark: Any, tables: Mapping[str, pd.DataFrame], *, database: str | None = None
) -> None:
    """Make each table visible to ``spark`` (a SparkSession): a temporary view by default,
    or a table saved in ``database`` (created when missing). Frames go over with Arrow."""
    from pyspark.sql import types as T

    kinds = {
        "object": T.StringType(),
        "float64": T.DoubleType(),
        "int64": T.LongType(),
        "Int64": T.LongType(),
        "bool": T.BooleanType(),
    }
    if database:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    arrow = "spark.sql.execution.arrow.pyspark.enabled"
    before = spark.conf.get(arrow)
    spark.conf.set(arrow, "true")
    try:
        for name, frame in tables.items():
            data = _for_engines(frame)
            fields = []
            for column, dtype in data.dtypes.items():
                if _is_date(data[column]):
                    kind: Any = T.DateType()
                elif str(dtype).startswith("datetime64"):
                    kind = T.TimestampType()
                else:
                    kind = kinds[str(dtype)]
                fields.append(T.StructField(str(column), kind, nullable=True))
            df = spark.createDataFrame(data, schema=T.StructType(fields))
            if database:
                df.write.mode("overwrite").saveAsTable(f"`{database}`.`{name}`")
            else:
                df.createOrReplaceTempView(name)
    finally:
        spark.conf.set(arrow, before)


def _is_date(series: pd.Series) -> bool:
    return series.dtype == object and len(series) > 0 and type(series.iloc[0]) is date


def _for_engines(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as every engine stores it: timestamps at microseconds, naive UTC."""
    out = frame.copy()
    for column, dtype in out.dtypes.items():
        if str(dtype).startswith("datetime64"):
            out[column] = out[column].astype("datetime64[us]")
    return out
