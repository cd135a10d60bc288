"""Ingestion speed and memory against DuckDB's own GROUP BY over the same file.

    python bench/bench_ingestion.py [--rows 10000000] [--scale-rows 50000000] [--repeat 3]

1. Generates a user-level Parquet file: ``--rows`` units, 2 variants, 3 metrics (a 0/1
   conversion, revenue with a pre-period column for CUPED, page load in ms), 28 days (each day
   in both variants), string unit ids. DuckDB writes it from ``range()`` with hash-derived
   values (no Python rows).
2. Baseline, in a fresh process: DuckDB's own ``GROUP BY variant, date`` computing count, sum and
   sum of squares of every metric over the file (what any ingestion has to compute). It never
   reads the unit ids, so it checks nothing: for information. **The comparison** (issue 25,
   replacing issue 13's ratio to this baseline): the natural DuckDB SQL that gives the same
   outputs as ingestion, the statistics and ``count(*) - count(DISTINCT unit_id)`` in one
   statement; and the same outputs from polars in one lazy plan, when polars is installed
   (it is not a dependency of the project; ``pip install polars`` to add the line).
3. Floors, each in a fresh process, to read the ratio honestly: (a) the same GROUP BY that also
   reads and hashes every unit id (the least any exact per-unit proof must touch); (b) the
   baseline plus the exact unit proof as ingestion does it (the 64-bit hashes of the ids,
   streamed to numpy by a query that reads only the unit_id column, sorted, neighbours
   compared).
4. The two single-scan shapes of the proof, each in a fresh process, for comparison: (c) per
   unit first (``GROUP BY unit_id`` with count and min/max variant, then ``GROUP BY variant,
   date`` over the units); (d) the hashes collected in the aggregation itself
   (``list(hash(unit_id))`` per variant and day, then sorted in numpy).
5. Ingestion, in a fresh process: ``core.data.ingestion.ingest_file`` end to end into a migrated
   SQLite app database (file checks, the one aggregation scan with every validation counter, the
   unit proof, and the upsert), with its peak RSS.
6. The same for ``--scale-rows`` (0 to skip; baseline, floor (b) and ingestion, two rounds):
   time and RSS scaling.

Each phase runs ``--repeat`` rounds, the phases interleaved, each round a fresh process timing
two runs; it prints the best wall times and CPU seconds (user + system of the process: less
sensitive to other processes on a shared machine than wall time), the ratios ingestion /
baseline and ingestion / natural SQL (and / polars), the floors' and designs' ratios, peak
RSS (target <= 1.5 GB) and the machine's load average before and after (the machine is
shared: read the numbers with it).
No assertions: read the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DAYS = 28
METRICS = ("conversion", "revenue", "page_load_ms")


def _start() -> date:
    return datetime.now(UTC).date() - timedelta(days=DAYS + 1)


def generate(path: Path, rows: int) -> float:
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"""
        COPY (
            SELECT
                'user-' || lpad(CAST(i AS VARCHAR), 9, '0') AS unit_id,
                CASE WHEN hash(i, 1) % 2 = 0 THEN 'control' ELSE 'treatment' END AS variant,
                DATE '{_start().isoformat()}' + CAST((hash(i, 2) >> 32) % {DAYS} AS INTEGER)
                    AS date,
                CAST(hash(i, 3) % 1000 < 100 + 8 * (hash(i, 1) % 2) AS INTEGER) AS conversion,
                round((hash(i, 4) % 10000) / 250.0 + (hash(i, 5) % 1000) / 100.0, 2) AS revenue,
                round((hash(i, 4) % 10000) / 250.0, 2) AS revenue_pre,
                round(600 + (hash(i, 6) % 60000) / 100.0, 1) AS page_load_ms
            FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT parquet)
    """)
    con.close()
    return time.perf_counter() - started


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _sorted_repeats(hashes: Any) -> int:
    hashes.sort()
    return int((hashes[1:] == hashes[:-1]).sum())


def baseline(path: Path, repeat: int, phase: str) -> dict[str, float]:
    import duckdb

    from core.data.user_files import duplicate_units

    con = duckdb.connect(config={"preserve_insertion_order": False})
    sums = ", ".join(
        f"sum({m}) AS s_{m}, sum({m} * {m}) AS ss_{m}" for m in METRICS
    )
    src = f"read_parquet('{path}')"
    read_ids = ", sum(hash(unit_id)) AS h" if phase == "read_floor" else ""
    hash_list = ", list(hash(unit_id)) AS h" if phase == "list_in_scan" else ""
    group = (f"SELECT variant, date, count(*) AS n, {sums}{read_ids}{hash_list} FROM {src} "
             "GROUP BY variant, date")
    if phase == "natural":
        group = (f"WITH stats AS (SELECT variant, date, count(*) AS n, {sums} FROM {src} "
                 "GROUP BY variant, date), dup AS (SELECT count(*) - count(DISTINCT unit_id) "
                 f"AS duplicates FROM {src}) SELECT * FROM stats, dup")
    if phase == "per_unit_first":
        values = ", ".join(f"any_value({m}) AS {m}" for m in METRICS)
        group = (f"WITH units AS (SELECT unit_id, count(*) AS rows, min(variant) AS variant, "
                 f"max(variant) AS last_variant, any_value(date) AS date, {values} FROM {src} "
                 f"GROUP BY unit_id) SELECT variant, date, count(*) AS n, {sums}, "
                 "sum(rows - 1) + count_if(variant <> last_variant) AS duplicates "
                 "FROM units GROUP BY variant, date")
    times, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), _cpu()
        if phase == "list_in_scan":
            table = con.execute(group).fetch_arrow_table()
            hashes = table.column("h").combine_chunks().flatten().to_numpy().copy()
            _sorted_repeats(hashes)
        else:
            rows = con.execute(group).fetchall()
        if phase == "proof_floor":
            duplicate_units(con, src, "unit_id", sum(int(r[2]) for r in rows))
        times.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": min(times), "cpu": min(cpus), "peak_rss_mb": peak_kb / 1024}


def polars_natural(path: Path, repeat: int) -> dict[str, float]:
    """The natural polars query giving the same outputs: statistics per variant and day, and
    the count of repeated unit ids (``n_unique``), in one lazy plan over the file."""
    import polars as pl

    sums = [e for m in METRICS for e in (pl.col(m).sum().alias(f"s_{m}"),
                                         (pl.col(m) * pl.col(m)).sum().alias(f"ss_{m}"))]
    times, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), _cpu()
        frame = pl.scan_parquet(path)
        stats, dup = pl.collect_all([
            frame.group_by("variant", "date").agg(pl.len().alias("n"), *sums),
            frame.select((pl.len() - pl.col("unit_id").n_unique()).alias("duplicates")),
        ])
        assert stats.height and dup.height == 1
        times.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": min(times), "cpu": min(cpus), "peak_rss_mb": peak_kb / 1024}


def ingest(path: Path, repeat: int) -> dict[str, float]:
    from sqlalchemy.orm import Session

    from core import catalogue, registry
    from core.auth import Actor
    from core.data.ingestion import ingest_file
    from db.migrate import upgrade
    from db.session import make_engine

    actor = Actor(name="bench", role="admin")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        upgrade(url)
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as session:
            for name, kind, hib in (("conversion", "binomial", True), ("revenue", "mean", True),
                                    ("page_load_ms", "mean", False)):
                catalogue.create_metric(session, data={"name": name, "kind": kind,
                                                       "higher_is_better": hib}, actor=actor)
            view = registry.create_experiment(session, data={
                "name": "Bench", "owner": "bench", "hypothesis": "h",
                "primary_metric": "conversion", "guardrail_metrics": ["page_load_ms"],
                "secondary_metrics": ["revenue"],
                "variants": [{"name": "control", "weight": 0.5},
                             {"name": "treatment", "weight": 0.5}],
                "planned_sample_size": 1000,
            }, actor=actor)
            view = registry.transition_experiment(
                session, experiment_id=view.id, to_status="running",
                expected_version=view.version, actor=actor, on=_start(),
            )
            times, cpus = [], []
            report = None
            for _ in range(repeat):
                started, cpu = time.perf_counter(), _cpu()
                report = ingest_file(session, path=path, experiment_id=view.id, actor=actor)
                times.append(time.perf_counter() - started)
                cpus.append(_cpu() - cpu)
        engine.dispose()
    assert report is not None
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": min(times), "cpu": min(cpus), "peak_rss_mb": peak_kb / 1024,
            "rows": report.rows_read,
            "daily_rows": report.stats_rows_written}


def _child(phase: str, path: Path, repeat: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--file", str(path), "--repeat",
         str(repeat)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


try:
    import polars  # noqa: F401
    HAVE_POLARS = True
except ImportError:
    HAVE_POLARS = False
PHASES = ("baseline", "natural", *(("polars",) if HAVE_POLARS else ()), "read_floor",
          "proof_floor", "per_unit_first", "list_in_scan", "ingest")
LABELS = {
    "natural": "natural SQL: stats + count - count(DISTINCT id)",
    "polars": "polars: the same outputs in one lazy plan",
    "read_floor": "floor (a): GROUP BY that also reads+hashes ids",
    "proof_floor": "floor (b): GROUP BY + the exact proof (2 queries)",
    "per_unit_first": "single scan (c): per unit first, then per day",
    "list_in_scan": "single scan (d): hashes listed in the GROUP BY",
}


def _ratio(value: float, base: float) -> str:
    """``value / base`` as "1.23x"; "  n/a" when the base took no measurable time (tiny runs)."""
    return f"{value / base:5.2f}x" if base > 0 else "  n/a"


def _line(label: str, phase: dict[str, float], base: dict[str, float]) -> str:
    return (f"{label:50s}: {phase['seconds']:6.2f} s = {_ratio(phase['seconds'], base['seconds'])}"
            f" | CPU {phase['cpu']:6.2f} s = {_ratio(phase['cpu'], base['cpu'])}")


def _run(
    rows: int, repeat: int, keep: bool, phases: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    folder = Path(tempfile.mkdtemp(prefix="bench_ingestion_"))
    path = folder / "units.parquet"
    print(f"Generating {rows:,} rows (2 variants, 3 metrics + 1 pre-period, {DAYS} days)...")
    gen = generate(path, rows)
    print(f"  {path} ({path.stat().st_size / 1e6:.0f} MB) in {gen:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    # Rounds interleave the phases, so a change in the machine's load touches them alike.
    out: dict[str, dict[str, float]] = {}
    for _ in range(repeat):
        for phase in phases:
            got = _child(phase, path, 2)
            best = out.setdefault(phase, got)
            for key in ("seconds", "cpu"):
                best[key] = min(best[key], got[key])
            best["peak_rss_mb"] = max(best["peak_rss_mb"], got["peak_rss_mb"])
    base, ing = out["baseline"], out["ingest"]
    print(f"{'wall time (best of ' + str(2 * repeat) + ') and ratio to the baseline':50s}   "
          "                 | CPU seconds (user+system) and ratio")
    print(f"{'DuckDB GROUP BY variant, date (baseline)':50s}: {base['seconds']:6.2f} s        "
          f"  | CPU {base['cpu']:6.2f} s")
    for phase in phases:
        if phase in LABELS:
            print(_line(LABELS[phase], out[phase], base))
    print(_line("ingest_file end to end", ing, base)
          + f"  ({int(ing['rows']):,} rows -> {int(ing['daily_rows'])} daily rows)")
    print(f"ratio ingestion / baseline                        : "
          f"{_ratio(ing['seconds'], base['seconds'])} wall, {_ratio(ing['cpu'], base['cpu'])} CPU "
          "(for information: the baseline checks no unit)")
    if "natural" in out:
        print(f"ratio ingestion / natural SQL (the comparison)    : "
              f"{_ratio(ing['seconds'], out['natural']['seconds'])} wall, "
              f"{_ratio(ing['cpu'], out['natural']['cpu'])} CPU")
    if "polars" in out:
        print(f"ratio ingestion / polars                          : "
              f"{_ratio(ing['seconds'], out['polars']['seconds'])} wall, "
              f"{_ratio(ing['cpu'], out['polars']['cpu'])} CPU")
    elif "natural" in out:
        print("(polars is not installed: its comparison is skipped)")
    if "proof_floor" in out:
        print(f"ratio ingestion / floor (b)                       : "
              f"{_ratio(ing['seconds'], out['proof_floor']['seconds'])} wall, "
              f"{_ratio(ing['cpu'], out['proof_floor']['cpu'])} CPU")
    print(f"peak RSS of the ingesting process                 : {ing['peak_rss_mb']:.0f} MB "
          "(target <= 1536 MB)")
    print(f"load average after                                : {os.getloadavg()[0]:.1f}")
    if not keep:
        path.unlink()
        folder.rmdir()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--scale-rows", type=int, default=50_000_000,
                        help="a second, larger run for scaling (0 to skip)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        if args.phase == "ingest":
            result = ingest(args.file, args.repeat)
        elif args.phase == "polars":
            result = polars_natural(args.file, args.repeat)
        else:
            result = baseline(args.file, args.repeat, args.phase)
        print(json.dumps(result))
        return

    small = _run(args.rows, args.repeat, args.keep, PHASES)
    if args.scale_rows:
        print()
        big = _run(args.scale_rows, 2, args.keep, ("baseline", "proof_floor", "ingest"))
        factor = args.scale_rows / args.rows
        for phase in ("baseline", "proof_floor", "ingest"):
            grow = big[phase]["seconds"] / small[phase]["seconds"]
            cpu = big[phase]["cpu"] / small[phase]["cpu"]
            print(f"scaling {phase:11s} x{factor:g} rows: time x{grow:.2f} "
                  f"({grow / factor:.2f} of linear), CPU x{cpu:.2f} ({cpu / factor:.2f} of linear)")
        print(f"scaling ingest RSS: {small['ingest']['peak_rss_mb']:.0f} MB -> "
              f"{big['ingest']['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
