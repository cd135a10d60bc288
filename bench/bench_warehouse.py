"""A generated warehouse refresh against a hand-written DuckDB query, its memory, an
incremental refresh, and Spark local mode.

    python bench/bench_warehouse.py [--exposures 10000000] [--facts 50000000]
                                    [--small-facts 10000000] [--repeat 3]
                                    [--no-spark | --spark-only] [--quick] [--keep]
                                    [--layout appended|random]

1. Builds an embedded DuckDB warehouse file in a temporary folder, every row made by DuckDB
   itself from ``range()`` with seeded hashes (no Python rows): ``--exposures`` assignment rows
   (``unit_id, timestamp, experiment_key, variant, platform, country``; 85 % of the rows are
   units' first exposures over 28 days, the rest re-exposures up to 3 days later, a tenth of
   them on another platform and one in a thousand in the other variant; 5 % of the rows belong
   to another experiment) and ``--facts`` fact rows over three fact sources: ``orders``
   (revenue, items; 20 %), ``sessions`` (session_count, page_views; 50 %) and ``page_events``
   (load_ms, clicks; 30 %), spread from 14 days before the start to the analysis day, over the
   exposed units and 10 % never-exposed ones. The known effect: after its first exposure a
   treatment unit spends 5 % more per order, a control unit loses 5 % of its orders, and a
   treatment session has one more page view. Eight metrics: purchase (any, 7 days), revenue
   (sum, 14 days, CUPED 14), orders (count, 14 days), order value (mean, 14 days), sessions
   (sum, 7 days, CUPED 7), pages per session (ratio, 14 days), page events (count, no window)
   and clicked (any with a column, 7 days). Each table is stored in time order, as an event
   table loaded day after day is (``--layout random``: in random time order, where no time
   filter can skip a block of rows). A second file holds the same exposures and
   ``--small-facts`` fact rows.
2. Generated vs hand-written, on the big file: ``core.warehouse.compute.compute`` on a
   ``duckdb:///file`` Connection (the default path: it connects read-only with the engine's
   memory limit, checks the assignment rows, counts units per variant, then runs one query per
   fact source) against ONE hand-written DuckDB query (same read-only connection and memory
   limit) that computes the same records: first exposure per unit, units seen in two variants
   left out, every metric's per-unit value within its window and pre-period, per variant x
   first-exposure day, and per platform and per country value, the sufficient statistics
   (GROUPING SETS). The two are checked to agree (every statistic of every record to 1e-9
   relative) before the ratio is printed. Each run is a fresh process (imports excluded from
   the time, the OS file cache warm), the two alternating over ``--repeat`` rounds; the median
   wall time and CPU seconds (user + system, less sensitive to a shared machine) are quoted.
3. Incremental: a refresh with ``open_from`` = the analysis day for every fact source (one new
   exposure day) and the units per exposure day the full run counted (what the store holds
   after it), against the full refresh; its records checked equal to that day's records of
   the full run and its unit counts to the full run's (run in the same rounds).
4. Peak RSS (``VmHWM``) of a process that runs one generated refresh, on the small and on the
   big file, side by side, beside the same process's RSS after its imports.
5. Spark local mode (``spark://local[2]``): the small file's tables written to Parquet by
   DuckDB, registered as temporary views on ``core.warehouse.engines.spark_session()``, one
   generated refresh timed (the session's start and the views' registration printed apart) and
   its records checked against DuckDB's. ``SPARK_LOCAL_IP=127.0.0.1`` in that process: the
   engine's session binds the driver to the loopback, but its block manager otherwise
   advertises the machine's address, which this machine cannot reach.

Printed in that order (numbered 1 to 4 from step 2).

Targets (issue 21, "Performance"): generated <= 1.2x the hand-written query; peak RSS
independent of the number of fact rows; incremental <= 10 % of the full refresh; Spark: no
target. ``--quick`` (200,000 exposures, 1M and 200,000 fact rows, 2 rounds) takes one to two
minutes with ``--no-spark``, three to four with Spark; at that size a refresh's fixed cost
(connecting, reading the sources' columns, compiling) dominates the incremental ratio. The
default run is mostly CPU (about 13 CPU-minutes): roughly a quarter of an hour on the 2 cores
when idle, far longer on a shared machine, whose load average is printed with the figures.
No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEED = 21
START = date(2026, 11, 2)
DAYS = 28
END = START + timedelta(days=DAYS - 1)
PRE_DAYS = 14
"""Facts start this many days before the experiment (the longest CUPED pre-period)."""
NOW = datetime.combine(END + timedelta(days=1), datetime.min.time()) + timedelta(hours=1)
KEY = "checkout-2026"
FIRST_EXPOSURE_SHARE = 0.85
FACT_SHARES = {"orders": 0.2, "sessions": 0.5, "page_events": 0.3}
TOLERANCE = 1e-9
RATIO_TARGET = 1.2
INCREMENTAL_TARGET = 0.10
STATEMENT_TIMEOUT = 3600.0
"""Seconds; the engine's default (300) cancels Spark's fact queries on a loaded machine."""


# --------------------------------------------------------------------------- the data


def _h(expr: str, salt: int) -> str:
    """A seeded pseudo-random UBIGINT of ``expr`` (DuckDB's hash; deterministic)."""
    return f"hash({expr}, {SEED * 1000 + salt})"


def _first_ts(unit: str) -> str:
    """A unit's first exposure: a day of the experiment, before 23:53:20 (so a re-exposure,
    at least a second later and clipped to the analysis day, never ties with it)."""
    return (f"(TIMESTAMP '{START}' + to_days(CAST({_h(unit, 1)} % {DAYS} AS INTEGER))"
            f" + to_seconds(CAST({_h(unit, 2)} % 86000 AS BIGINT)))")


def _treated(unit: str) -> str:
    return f"({_h(unit, 7)} % 2 = 1)"


def generate(path: Path, exposures: int, facts: int,
             same_exposures_as: Path | None = None, layout: str = "appended") -> dict[str, int]:
    """Write the warehouse file; the rows of each table. ``same_exposures_as``: copy that
    file's exposures (made with the same ``exposures``) instead of generating them again.
    ``layout``: "appended" stores each table in time order, as an event table loaded day after
    day is (DuckDB's zone maps then skip the days a query's time filter leaves out);
    "random" in the hashes' order (no skipping: the worst case)."""
    import duckdb

    units = int(exposures * FIRST_EXPOSURE_SHARE)
    fact_units = int(units * 1.1)
    last = f"TIMESTAMP '{END}' + INTERVAL '23:59:59'"
    con = duckdb.connect(str(path))
    con.execute("SET preserve_insertion_order = false")
    if same_exposures_as is not None:
        con.execute(f"ATTACH '{same_exposures_as}' AS other (READ_ONLY)")
        con.execute("CREATE TABLE exposures AS SELECT * FROM other.exposures")
        con.execute("DETACH other")
    else:
        con.execute(f"""
        CREATE TABLE exposures AS
        WITH rows AS (
            SELECT i, CAST(CASE WHEN i < {units} THEN i ELSE {_h('i', 11)} % {units} END AS BIGINT)
                AS u
            FROM range({exposures}) t(i)
        )
        SELECT
            u AS unit_id,
            CASE WHEN i < {units} THEN {_first_ts('u')}
                 ELSE least({_first_ts('u')} + to_seconds(CAST(1 + {_h('i', 13)} % 259200
                                                             AS BIGINT)), {last})
            END AS timestamp,
            CASE WHEN {_h('i', 15)} % 20 = 0 THEN 'search-ranking' ELSE '{KEY}' END
                AS experiment_key,
            CASE WHEN {_treated('u')} <> (i >= {units} AND {_h('i', 12)} % 1000 = 0)
                 THEN 'treatment' ELSE 'control' END AS variant,
            (['ios', 'android', 'web'])[
                1 + CAST(CASE WHEN i >= {units} AND {_h('i', 14)} % 10 = 0 THEN {_h('i', 16)}
                              ELSE {_h('u', 3)} END % 3 AS INTEGER)] AS platform,
            (['US', 'DE', 'FR', 'GB', 'BR', 'IN', 'JP', 'CA'])[
                1 + CAST({_h('u', 4)} % 8 AS INTEGER)] AS country
        FROM rows
    """)
    span = (DAYS + PRE_DAYS) * 86400

    def common(table: str) -> str:
        return f"""
            SELECT j, CAST({_h('j', 21)} % {fact_units} AS BIGINT) AS u,
                   TIMESTAMP '{START - timedelta(days=PRE_DAYS)}'
                       + to_seconds(CAST({_h('j', 22)} % {span} AS BIGINT)) AS ts
            FROM range({int(facts * FACT_SHARES[table])}) t(j)"""

    after = f"(u < {units} AND ts >= {_first_ts('u')})"
    con.execute(f"""
        CREATE TABLE orders AS
        WITH rows AS ({common('orders')})
        SELECT u AS unit_id, ts AS timestamp,
               round((5 + ({_h('j', 23)} % 9000) / 100.0)
                     * CASE WHEN {after} AND {_treated('u')} THEN 1.05 ELSE 1 END, 2)
                   AS revenue,
               CAST(1 + {_h('j', 24)} % 4 AS INTEGER) AS items
        FROM rows
        WHERE NOT ({after} AND NOT {_treated('u')} AND {_h('j', 25)} % 100 < 5)
    """)
    con.execute(f"""
        CREATE TABLE sessions AS
        WITH rows AS ({common('sessions')})
        SELECT u AS unit_id, ts AS timestamp,
               1 + CAST({_h('j', 26)} % 10 = 0 AS INTEGER) AS session_count,
               CAST(1 + {_h('j', 27)} % 12 AS INTEGER)
                   + CAST({after} AND {_treated('u')} AS INTEGER)
                   AS page_views
        FROM rows
    """)
    con.execute(f"""
        CREATE TABLE page_events AS
        WITH rows AS ({common('page_events')})
        SELECT u AS unit_id, ts AS timestamp,
               round(200 + ({_h('j', 28)} % 200000) / 100.0, 1) AS load_ms,
               CAST({_h('j', 29)} % 10 = 0 AS INTEGER) AS clicks
        FROM rows
    """)
    if layout == "appended":
        con.execute("SET preserve_insertion_order = true")
        for table in ("exposures", "orders", "sessions", "page_events"):
            con.execute(f"CREATE TABLE {table}_by_time AS SELECT * FROM {table} "
                        "ORDER BY timestamp")
            con.execute(f"DROP TABLE {table}")
            con.execute(f"ALTER TABLE {table}_by_time RENAME TO {table}")
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("exposures", "orders", "sessions", "page_events")}
    con.execute("CHECKPOINT")
    con.close()
    return counts


def to_parquet(path: Path, folder: Path) -> None:
    """Each table of the warehouse file as ``folder/<table>.parquet`` (DuckDB writes them)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    for table in ("exposures", "orders", "sessions", "page_events"):
        con.execute(f"COPY {table} TO '{folder / table}.parquet' (FORMAT parquet)")
    con.close()


# --------------------------------------------------------------------------- the definitions


def spec_for(url: str) -> Any:
    from core.warehouse.definitions import (
        AssignmentSource,
        Connection,
        ExperimentSpec,
        FactSource,
        WarehouseMetric,
    )

    connection = Connection(name="bench", url=url)
    assignment = AssignmentSource(
        name="exposures", connection=connection,
        sql="SELECT unit_id, timestamp, experiment_key, variant, platform, country "
            "FROM exposures",
        dimensions=("platform", "country"))
    facts = (
        FactSource("orders", connection, "SELECT unit_id, timestamp, revenue, items FROM orders",
                   ("revenue", "items")),
        FactSource("sessions", connection,
                   "SELECT unit_id, timestamp, session_count, page_views FROM sessions",
                   ("session_count", "page_views")),
        FactSource("page_events", connection,
                   "SELECT unit_id, timestamp, load_ms, clicks FROM page_events",
                   ("load_ms", "clicks")),
    )
    metrics = (
        WarehouseMetric("purchase", "orders", "any", window_days=7),
        WarehouseMetric("revenue", "orders", "sum", "revenue", window_days=14, cuped_days=14),
        WarehouseMetric("orders", "orders", "count", window_days=14),
        WarehouseMetric("order_value", "orders", "mean", "revenue", window_days=14),
        WarehouseMetric("sessions", "sessions", "sum", "session_count", window_days=7,
                        cuped_days=7),
        WarehouseMetric("pages_per_session", "sessions", "ratio", "page_views",
                        denominator="session_count", window_days=14),
        WarehouseMetric("page_events", "page_events", "count"),
        WarehouseMetric("clicked", "page_events", "any", "clicks", window_days=7),
    )
    return ExperimentSpec(experiment_key=KEY, variants=("control", "treatment"), start=START,
                          end=END, assignment=assignment, facts=facts, metrics=metrics,
                          label="bench_warehouse")


# --------------------------------------------------------------------------- hand-written


def hand_sql() -> str:
    """ONE DuckDB query computing the refresh's records, written by hand for DuckDB.

    Per fact source, the facts are joined to the kept units on the unit and on the span any
    of that source's metrics reads (pre-period to window end), and aggregated per unit with
    FILTER clauses; the three per-unit tables are left-joined to the units (no facts: 0) and
    the statistics summed over GROUPING SETS: per variant and day, and per platform and
    country value."""
    end = f"TIMESTAMP '{END + timedelta(days=1)}'"
    start = f"TIMESTAMP '{START}'"

    def within(days: int | None) -> str:
        bound = f" AND f.timestamp < u.first_seen + INTERVAL {days} DAY" if days else ""
        return f"f.timestamp >= u.first_seen{bound}"

    def before(days: int) -> str:
        return f"f.timestamp >= u.first_seen - INTERVAL {days} DAY AND f.timestamp < u.first_seen"

    def facts(table: str, look_back: int, window: int | None, values: str) -> str:
        upper = f"least(u.first_seen + INTERVAL {window} DAY, {end})" if window else end
        return f"""
        SELECT u.unit_id, {values}
        FROM kept u JOIN {table} f
          ON f.unit_id = u.unit_id
         AND f.timestamp >= u.first_seen - INTERVAL {look_back} DAY AND f.timestamp < {upper}
        WHERE f.timestamp >= {start} - INTERVAL {look_back} DAY AND f.timestamp < {end}
        GROUP BY u.unit_id"""

    orders = facts("orders", 14, 14, f"""
            count(*) FILTER (WHERE {within(7)}) > 0 AS v0,
            coalesce(sum(f.revenue) FILTER (WHERE {within(14)}), 0) AS v1,
            coalesce(sum(f.revenue) FILTER (WHERE {before(14)}), 0) AS x1,
            count(*) FILTER (WHERE {within(14)}) AS v2,
            count(f.revenue) FILTER (WHERE {within(14)}) AS d3""")
    sessions = facts("sessions", 7, 14, f"""
            coalesce(sum(f.session_count) FILTER (WHERE {within(7)}), 0) AS v4,
            coalesce(sum(f.session_count) FILTER (WHERE {before(7)}), 0) AS x4,
            coalesce(sum(f.page_views) FILTER (WHERE {within(14)}), 0) AS v5,
            coalesce(sum(f.session_count) FILTER (WHERE {within(14)}), 0) AS d5""")
    events = facts("page_events", 0, None, f"""
            count(*) AS v6,
            count(*) FILTER (WHERE {within(7)} AND f.clicks > 0) > 0 AS v7""")
    values = {
        "v0": "CAST(o.v0 AS INTEGER)", "v1": "o.v1", "x1": "o.x1", "v2": "o.v2",
        "v3": "o.v1", "d3": "o.d3", "v4": "s.v4", "x4": "s.x4", "v5": "s.v5", "d5": "s.d5",
        "v6": "p.v6", "v7": "CAST(p.v7 AS INTEGER)",
    }
    per_unit = ",\n            ".join(
        f"CAST(coalesce({expr}, 0) AS DOUBLE) AS {name}" for name, expr in values.items())
    stats = ["count(*) AS n"]
    for i in range(8):
        v = f"v{i}"
        stats += [f"sum({v}) AS m{i}_sum", f"sum({v} * {v}) AS m{i}_sum_squares"]
        if f"x{i}" in values:
            x = f"x{i}"
            stats += [f"sum({x}) AS m{i}_sum_x", f"sum({x} * {x}) AS m{i}_sum_x2",
                      f"sum({x} * {v}) AS m{i}_sum_xy"]
        if f"d{i}" in values:
            d = f"d{i}"
            stats += [f"sum({d}) AS m{i}_sum_den", f"sum({d} * {d}) AS m{i}_sum_den_squares",
                      f"sum({v} * {d}) AS m{i}_sum_num_den"]
    return f"""
    WITH units AS (
        SELECT unit_id, min(timestamp) AS first_seen, min(variant) = max(variant) AS one,
               min(variant) AS variant,
               coalesce(arg_min(platform, timestamp), '(none)') AS platform,
               coalesce(arg_min(country, timestamp), '(none)') AS country
        FROM exposures
        WHERE experiment_key = '{KEY}' AND unit_id IS NOT NULL
        GROUP BY unit_id
    ),
    kept AS (
        SELECT * FROM units
        WHERE one AND first_seen >= {start} AND first_seen < {end}
    ),
    o AS ({orders}),
    s AS ({sessions}),
    p AS ({events}),
    per_unit AS (
        SELECT u.variant, CAST(u.first_seen AS DATE) AS day, u.platform, u.country,
            {per_unit}
        FROM kept u
        LEFT JOIN o ON o.unit_id = u.unit_id
        LEFT JOIN s ON s.unit_id = u.unit_id
        LEFT JOIN p ON p.unit_id = u.unit_id
    )
    SELECT variant, day, platform, country, GROUPING(platform, country) AS grouping,
           {', '.join(stats)}
    FROM per_unit
    GROUP BY GROUPING SETS ((variant, day), (variant, day, platform), (variant, day, country))
    """


def hand_records(frame: Any, spec: Any) -> list[dict[str, object]]:
    """The hand-written query's rows in the shape of ``WarehouseResult.records``."""
    from core.warehouse.queries import statistics_of

    out: list[dict[str, object]] = []
    for row in frame.to_dict("records"):
        dimension = {3: None, 1: "platform", 2: "country"}[int(row["grouping"])]
        for i, m in enumerate(spec.metrics):
            record: dict[str, object] = {"variant": row["variant"], "day": row["day"].date()
                                         if hasattr(row["day"], "date") else row["day"],
                                         "metric": m.name, "n": int(row["n"])}
            for stat in statistics_of(m):
                record[stat] = float(row[f"m{i}_{stat}"])
            if dimension is not None:
                record["dimension"] = dimension
                record["dimension_value"] = str(row[dimension])
            out.append(record)
    return out


# --------------------------------------------------------------------------- comparing


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
    day = record["day"]
    day = day.isoformat() if hasattr(day, "isoformat") else str(day)[:10]
    return (record["metric"], record["variant"], day, record.get("dimension"),
            record.get("dimension_value"))


def disagreements(a: list[dict[str, Any]], b: list[dict[str, Any]],
                  days: set[str] | None = None) -> list[str]:
    """What differs between two record lists (each statistic to TOLERANCE relative);
    ``days``: compare only those days (ISO dates)."""
    left = {_key(r): r for r in a if days is None or _key(r)[2] in days}
    right = {_key(r): r for r in b if days is None or _key(r)[2] in days}
    problems = [f"only in the first: {k}" for k in sorted(left.keys() - right.keys(), key=str)]
    problems += [f"only in the second: {k}" for k in sorted(right.keys() - left.keys(), key=str)]
    for k in left.keys() & right.keys():
        for stat, value in left[k].items():
            if stat in ("variant", "day", "metric", "dimension", "dimension_value"):
                continue
            other = right[k].get(stat)
            x, y = float(value), float(other if other is not None else "nan")
            if not abs(x - y) <= TOLERANCE * max(abs(x), abs(y), 1e-300):
                problems.append(f"{k} {stat}: {x!r} vs {y!r}")
    return problems


def totals(records: list[dict[str, Any]]) -> dict[str, float]:
    """Per metric, the sum of ``sum`` over the variant x day records (no dimension)."""
    out: dict[str, float] = {}
    for r in records:
        if r.get("dimension") is None:
            out[str(r["metric"])] = out.get(str(r["metric"]), 0.0) + float(r["sum"])
    return out


# --------------------------------------------------------------------------- one measured run


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(phase: str, path: Path, out: Path | None) -> dict[str, Any]:
    """One run of ``phase`` in this (fresh) process: its times, RSS, records written to
    ``out``."""
    import duckdb  # noqa: F401 - imported before the baseline RSS, as in every phase
    import ibis  # noqa: F401
    import pandas as pd  # noqa: F401

    from core.warehouse.compute import compute, read_stored_days, stored_days
    from core.warehouse.definitions import Limits

    # The statement timeout is a safety setting: the bench measures, on a shared machine.
    limits = Limits(statement_timeout_seconds=STATEMENT_TIMEOUT)
    spec = spec_for(f"duckdb:///{path}")
    open_from = None
    counted = None
    days_file = path.with_name(f"{path.stem}.exposure_days.json")
    if phase == "incremental":
        # What refresh_from_warehouse finds in the store after the full run: each fact
        # source final through the day before, and the units per exposure day counted.
        open_from = {f.name: END for f in spec.facts}
        counted = read_stored_days(json.loads(days_file.read_text()))
    extra: dict[str, Any] = {}
    if phase == "spark":
        from core.warehouse import engines

        started = time.perf_counter()
        session = engines.spark_session("local[2]")
        extra["session_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        for table in ("exposures", "orders", "sessions", "page_events"):
            session.read.parquet(str(path / f"{table}.parquet")).createOrReplaceTempView(table)
        extra["views_seconds"] = time.perf_counter() - started
        spec = spec_for("spark://local[2]")
    imported_rss = _rss_mb("VmRSS")
    cpu, started = _cpu(), time.perf_counter()
    if phase == "hand":
        import duckdb

        con = duckdb.connect(str(path), read_only=True,
                             config={"memory_limit": limits.duckdb_memory_limit})
        frame = con.execute(hand_sql()).fetch_df()
        con.close()
        records = hand_records(frame, spec)
        queries = 1
    else:
        result = compute(spec, limits=limits, open_from=open_from, today=NOW.date(), now=NOW,
                         exposure_days=counted)
        records = result.records
        if phase == "generated":
            days_file.write_text(json.dumps(stored_days(result.exposure, spec.end)))
        queries = len(result.queries)
        extra["query_seconds"] = {
            q.sql.splitlines()[0].removesuffix(" */").split(": ", 1)[-1]: q.seconds
            for q in result.queries}
        extra["units"] = result.exposure.units
        extra["multi_variant_units"] = result.exposure.multi_variant_units
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    if out is not None:
        out.write_bytes(pickle.dumps(records))
    return {"seconds": seconds, "cpu": cpu, "peak_rss_mb": _rss_mb("VmHWM"),
            "imported_rss_mb": imported_rss, "records": len(records), "queries": queries,
            **extra}


def _child(phase: str, path: Path, out: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", phase, "--file", str(path)]
    if out is not None:
        command += ["--out", str(out)]
    # Spark's block manager must answer on the loopback (this machine's address is not
    # reachable from itself), as the engine's session binds to it.
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"} if phase == "spark" else None
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"phase {phase} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _records(out: Path) -> list[dict[str, Any]]:
    return pickle.loads(out.read_bytes())


# --------------------------------------------------------------------------- the report


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _spread(runs: list[dict[str, Any]], key: str = "seconds") -> str:
    values = sorted(r[key] for r in runs)
    return f"median {statistics.median(values):6.2f} s (min {values[0]:.2f}, max {values[-1]:.2f})"


def _agree(label: str, a: list[dict[str, Any]], b: list[dict[str, Any]],
           days: set[str] | None = None) -> bool:
    problems = disagreements(a, b, days)
    if problems:
        print(f"  {label}: {len(problems)} DISAGREEMENTS, e.g.:")
        for p in problems[:8]:
            print(f"    {p}")
        return False
    checked = len([r for r in a if days is None or _key(r)[2] in days])
    print(f"  {label}: agree ({checked} records, every statistic to {TOLERANCE:g} relative)")
    return True


def run(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_warehouse_"))
    big, small = folder / "big.duckdb", folder / "small.duckdb"
    print(f"bench_warehouse on {os.cpu_count()} cores, load average {_load()} at the start; "
          f"DuckDB threads = cores, memory_limit = the engine's "
          f"(Limits().duckdb_memory_limit)")
    try:
        if args.spark_only:
            _spark_only(args, folder)
            return
        for path, facts, same in ((big, args.facts, None), (small, args.small_facts, big)):
            started = time.perf_counter()
            counts = generate(path, args.exposures, facts, same, args.layout)
            print(f"generated {path.name} ({args.layout}): "
                  + ", ".join(f"{t} {n:,}" for t, n in counts.items())
                  + f" rows ({path.stat().st_size / 1e6:.0f} MB) in "
                  f"{time.perf_counter() - started:.1f} s (load {_load()})")
        print()
        _report(args, folder, big, small)
    finally:
        if args.keep:
            print(f"\nkept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _report(args: argparse.Namespace, folder: Path, big: Path, small: Path) -> None:
    full_out, hand_out, inc_out = (folder / "full.pkl", folder / "hand.pkl",
                                   folder / "incremental.pkl")
    # 2. generated vs hand-written, alternating, each run a fresh process.
    generated: list[dict[str, Any]] = []
    hand: list[dict[str, Any]] = []
    incremental: list[dict[str, Any]] = []
    load_before = _load()
    for round_ in range(args.repeat):
        generated.append(_child("generated", big, full_out if round_ == 0 else None))
        hand.append(_child("hand", big, hand_out if round_ == 0 else None))
        incremental.append(_child("incremental", big, inc_out if round_ == 0 else None))
    load_after = _load()
    full_records, hand_rows = _records(full_out), _records(hand_out)
    g0 = generated[0]
    print(f"1. generated refresh vs ONE hand-written DuckDB query, {args.facts:,} fact rows, "
          f"{args.repeat} alternating rounds (load {load_before} -> {load_after})")
    print(f"  units kept {g0['units']:,}, seen in two variants (excluded) "
          f"{g0['multi_variant_units']:,}; {g0['records']:,} records")
    agree = _agree("generated vs hand-written", full_records, hand_rows)
    t = totals(full_records)
    print("  per-metric totals of sum (generated): "
          + ", ".join(f"{k} {v:,.2f}" for k, v in t.items()))
    print(f"  generated ({g0['queries']} queries):  {_spread(generated)}, "
          f"CPU {_median(generated, 'cpu'):.2f} s")
    for name, seconds in g0["query_seconds"].items():
        print(f"      round 1 query {name:60s} {seconds:6.2f} s")
    print(f"  hand-written (1 query): {_spread(hand)}, CPU {_median(hand, 'cpu'):.2f} s")
    ratio = _median(generated, "seconds") / _median(hand, "seconds")
    cpu_ratio = _median(generated, "cpu") / _median(hand, "cpu")
    if agree:
        verdict = "meets" if ratio <= RATIO_TARGET else "MISSES"
        print(f"  ratio generated / hand-written: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU -> "
              f"{verdict} the target (<= {RATIO_TARGET}x)")
    else:
        print("  no ratio: the two do not agree")

    # 4. incremental: one new exposure day.
    print(f"\n2. incremental refresh (open_from = {END}, one exposure day) vs the full one")
    inc_agree = _agree(f"incremental vs the full run's {END} records", _records(inc_out),
                       full_records, {END.isoformat()})
    i0 = incremental[0]
    same_units = (i0["units"], i0["multi_variant_units"]) == (g0["units"],
                                                              g0["multi_variant_units"])
    print(f"  units kept {i0['units']:,}, in two variants {i0['multi_variant_units']:,}: "
          f"{'equal to' if same_units else 'DIFFERENT FROM'} the full run's")
    inc_agree = inc_agree and same_units
    print(f"  incremental: {_spread(incremental)}, CPU {_median(incremental, 'cpu'):.2f} s")
    for name, seconds in incremental[0]["query_seconds"].items():
        print(f"      round 1 query {name:60s} {seconds:6.2f} s")
    share = _median(incremental, "seconds") / _median(generated, "seconds")
    cpu_share = _median(incremental, "cpu") / _median(generated, "cpu")
    if inc_agree:
        verdict = "meets" if share <= INCREMENTAL_TARGET else "MISSES"
        print(f"  incremental / full: {share:.1%} wall, {cpu_share:.1%} CPU -> {verdict} "
              f"the target (<= {INCREMENTAL_TARGET:.0%})")

    # 3. peak RSS at both sizes, fresh processes.
    print(f"\n3. peak RSS of a process running one generated refresh (load {_load()})")
    small_run = _child("generated", small, folder / "small.pkl")
    rows = [(args.small_facts, small_run), (args.facts, generated[0])]
    for facts, measured in rows:
        print(f"  {facts:>12,} fact rows: peak {measured['peak_rss_mb']:7.0f} MB "
              f"(after imports {measured['imported_rss_mb']:.0f} MB; refresh "
              f"{measured['seconds']:.2f} s)")
    grow = generated[0]["peak_rss_mb"] / small_run["peak_rss_mb"]
    print(f"  x{args.facts / args.small_facts:g} fact rows -> x{grow:.2f} peak RSS "
          f"(memory_limit {spec_limit()})")

    # 5. Spark local mode on the small file.
    if args.spark:
        _spark(args, folder, small, small_run)
    print(f"\nload average at the end {_load()} on {os.cpu_count()} cores")


def _spark(args: argparse.Namespace, folder: Path, small: Path,
           small_run: dict[str, Any]) -> None:
    print(f"\n4. Spark local mode (spark://local[2]), {args.small_facts:,} fact rows "
          f"(load {_load()})")
    parquet = folder / "parquet"
    parquet.mkdir()
    to_parquet(small, parquet)
    spark = _child("spark", parquet, folder / "spark.pkl")
    print(f"  session start {spark['session_seconds']:.1f} s, views "
          f"{spark['views_seconds']:.1f} s (not counted)")
    _agree("Spark vs DuckDB", _records(folder / "spark.pkl"), _records(folder / "small.pkl"))
    print(f"  refresh: {spark['seconds']:.1f} s wall ({spark['queries']} queries), "
          f"DuckDB on the same data {small_run['seconds']:.2f} s "
          f"({spark['seconds'] / small_run['seconds']:.0f}x); no target")
    for name, seconds in spark["query_seconds"].items():
        print(f"      query {name:68s} {seconds:6.1f} s")


def _spark_only(args: argparse.Namespace, folder: Path) -> None:
    """Only the small file, its DuckDB refresh (the reference) and the Spark one."""
    small = folder / "small.duckdb"
    started = time.perf_counter()
    counts = generate(small, args.exposures, args.small_facts, layout=args.layout)
    print(f"generated {small.name} ({args.layout}): "
          + ", ".join(f"{t} {n:,}" for t, n in counts.items())
          + f" rows in {time.perf_counter() - started:.1f} s (load {_load()})")
    small_run = _child("generated", small, folder / "small.pkl")
    print(f"  DuckDB refresh {small_run['seconds']:.2f} s, CPU {small_run['cpu']:.2f} s")
    _spark(args, folder, small, small_run)
    print(f"\nload average at the end {_load()} on {os.cpu_count()} cores")


def spec_limit() -> str:
    from core.warehouse.definitions import Limits

    return Limits().duckdb_memory_limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=int, default=10_000_000)
    parser.add_argument("--facts", type=int, default=50_000_000,
                        help="fact rows of the big file (three sources)")
    parser.add_argument("--small-facts", type=int, default=10_000_000,
                        help="fact rows of the small file (RSS, Spark)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (median quoted)")
    parser.add_argument("--no-spark", dest="spark", action="store_false")
    parser.add_argument("--spark-only", action="store_true",
                        help="only the small file: its DuckDB refresh, then Spark's")
    parser.add_argument("--quick", action="store_true",
                        help="200,000 exposures, 1M and 200,000 fact rows, 2 rounds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--layout", choices=("appended", "random"), default="appended",
                        help="tables in time order, as loaded day after day (default), or in "
                             "random time order (the worst case for time filters)")
    parser.add_argument("--phase", choices=("generated", "hand", "incremental", "spark"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(measure(args.phase, args.file, args.out)))
        return
    if args.quick:
        args.exposures, args.facts, args.small_facts, args.repeat = (
            200_000, 1_000_000, 200_000, 2)
    run(args)


if __name__ == "__main__":
    main()
