"""Writing a loaded file's statistics into the app database, against reading the file.

    python bench/bench_load.py [--postgres ADMIN_URL] [--repeat 3] [--tiny]

Issue 25's file: 20 metrics x 3 variants x 90 days x 5 dimensions (60,000 users; 5,400 daily
rows and 118,800 daily slice rows to store), loaded with ``core.data.ingestion.ingest_file``
into a migrated SQLite database in a temporary folder and, with ``--postgres``, into a
throwaway PostgreSQL database created and dropped on that server. Each load is split at the
ingestion's own progress mark "Writing daily statistics":

* read: the file checks and DuckDB's one aggregation scan (the baseline, named in the issue:
  "the DuckDB aggregation itself");
* write: storing every row (upserts, the slices replaced, the ledger row, the audit entry) and
  the commit.

Loading the same file again replaces the same days, so every round does the same work. Prints
the best and median of ``--repeat`` rounds per database, the ratio write / read (target
<= 1.0) and the load average. No assertions: read the numbers. ``--tiny`` runs a small shape in
seconds (tests/test_benches.py runs it so a broken bench fails CI). Nothing is written into the
checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_results_page import FULL, TINY, Shape, create_bench_experiment, write_bench_file  # noqa: E402
from throwaway import postgres_database  # noqa: E402

TARGET_RATIO = 1.0


def measure(url: str, folder: Path, shape: Shape, repeat: int) -> tuple[list[float], list[float]]:
    """Read and write seconds of ``repeat`` loads of the bench file into the database ``url``."""
    from core.auth import Actor
    from core.data.ingestion import ingest_file
    from db.migrate import upgrade
    from db.session import make_engine, session_factory

    upgrade(url)
    engine = make_engine(url)
    reads: list[float] = []
    writes: list[float] = []
    try:
        with session_factory(engine)() as session:
            experiment_id, name = create_bench_experiment(session, shape)
            path = write_bench_file(folder, shape, name)
            for _ in range(repeat):
                marks: dict[str, float] = {}

                def progress(_share: float, message: str, marks: dict[str, float] = marks
                             ) -> None:
                    if message.startswith("Writing daily statistics"):
                        marks["write"] = time.perf_counter()

                started = time.perf_counter()
                report = ingest_file(session, path=path, experiment_id=experiment_id,
                                     actor=Actor(name="bench", role="admin"), progress=progress)
                ended = time.perf_counter()
                expected = shape.metrics * (shape.treatments + 1) * shape.days
                if report.stats_rows_written != expected:
                    raise SystemExit(f"{report.stats_rows_written} daily rows written, "
                                     f"expected {expected}")
                reads.append(marks["write"] - started)
                writes.append(ended - marks["write"])
            slices = report.slice_rows_written
    finally:
        engine.dispose()
    print(f"  ({report.stats_rows_written:,} daily rows and {slices:,} slice rows per load)")
    return reads, writes


def _ms(values: list[float]) -> str:
    return (f"best {min(values) * 1000:7.0f} ms, median "
            f"{statistics.median(values) * 1000:7.0f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="also load into a throwaway database on this PostgreSQL server")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="a small shape, in seconds")
    args = parser.parse_args(argv)
    shape = TINY if args.tiny else FULL
    repeat = 1 if args.tiny else args.repeat
    print(f"Loading a user-level file: {shape.metrics} metrics x {shape.treatments + 1} "
          f"variants x {shape.days} days x {shape.dimensions} dimensions, {shape.users:,} users "
          f"(load average {os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory(prefix="experimentos_bench_") as tmp:
        folder = Path(tmp)
        os.environ.setdefault("SPOOL_DIR", str(folder / "spool"))
        targets = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
        for label, admin in targets:
            print(f"{label}:")
            with contextlib.ExitStack() as throwaway:
                url = (throwaway.enter_context(postgres_database(admin, "load")) if admin
                       else f"sqlite:///{folder / 'load.db'}")
                reads, writes = measure(url, folder, shape, repeat)
            ratio = min(writes) / min(reads)
            print(f"  read      file checks + DuckDB aggregation   {_ms(reads)}")
            print(f"  write     rows stored + commit               {_ms(writes)}")
            verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
            print(f"  ratio     write / read = {ratio:.2f} (best of each; target <= "
                  f"{TARGET_RATIO:.1f}: {verdict})")
    print(f"(load average after: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
