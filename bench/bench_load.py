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
<= 1.0) and the load average.

Beside it, the database's own floor for the largest part of the write: the slice rows just
stored, read back, deleted, then stored again by the driver alone (``COPY`` on PostgreSQL, one
prepared ``INSERT`` on SQLite, the rows already in the driver's format) into the same table
with its keys and indexes, as empty as the first load found it, and rolled back; the write's
ratio to it says how much of the write is the database's own work on those rows.

No assertions: read the numbers. ``--tiny`` runs a small shape in seconds
(tests/test_benches.py runs it so a broken bench fails CI). Nothing is written into the
checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_results_page import FULL, TINY, Shape, create_bench_experiment, write_bench_file  # noqa: E402
from throwaway import postgres_database  # noqa: E402

TARGET_RATIO = 1.0


def measure(url: str, folder: Path, shape: Shape, repeat: int
            ) -> tuple[list[float], list[float], list[float]]:
    """Read and write seconds of ``repeat`` loads of the bench file into the database ``url``,
    and ``repeat`` times the slice rows' floor (:func:`_slice_floors`)."""
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
        floors = _slice_floors(engine, experiment_id, repeat)
    finally:
        engine.dispose()
    print(f"  ({report.stats_rows_written:,} daily rows and {slices:,} slice rows per load)")
    return reads, writes, floors


_SLICES = "metric_slice_daily_stats"


def _slice_floors(engine: Any, experiment_id: int, repeat: int) -> list[float]:
    """Seconds the driver alone takes, ``repeat`` times, to store this experiment's slice rows
    into their table (keys, indexes and all) as the first load found it: the rows are read and
    formatted, deleted and committed (and the table vacuumed on PostgreSQL), then each time
    stored and rolled back. Leaves the experiment without slices."""
    raw = engine.raw_connection()
    postgres = engine.dialect.name == "postgresql"
    try:
        cursor = raw.cursor()
        columns = [row[1] for row in _columns(cursor, engine.dialect.name)
                   if row[1] not in ("id", "loaded_at")]
        names = ", ".join(f'"{c}"' for c in columns)
        where = f"WHERE experiment_id = {int(experiment_id)}"
        if postgres:
            buffer = io.StringIO()
            cursor.copy_expert(f"COPY (SELECT {names} FROM {_SLICES} {where}) TO STDOUT",
                               buffer)
            text = buffer.getvalue()
        else:
            rows = cursor.execute(f"SELECT {names} FROM {_SLICES} {where}").fetchall()
            cursor.execute("BEGIN")  # the engine leaves BEGIN to the caller (db.session)
        cursor.execute(f"DELETE FROM {_SLICES} {where}")
        raw.commit()
        if postgres:
            raw.dbapi_connection.autocommit = True
            cursor.execute(f"VACUUM {_SLICES}")
            raw.dbapi_connection.autocommit = False
        floors = []
        marks = ", ".join("?" for _ in columns)
        for _ in range(repeat):
            if not postgres:
                cursor.execute("BEGIN")
            started = time.perf_counter()
            if postgres:
                cursor.copy_expert(f"COPY {_SLICES} ({names}) FROM STDIN", io.StringIO(text))
            else:
                cursor.executemany(f"INSERT INTO {_SLICES} ({names}) VALUES ({marks})", rows)
            floors.append(time.perf_counter() - started)
            raw.rollback()
        return floors
    finally:
        raw.close()


def _columns(cursor: Any, dialect: str) -> list[tuple[Any, ...]]:
    """(position, name) of the slice table's columns, in order."""
    if dialect == "postgresql":
        cursor.execute("SELECT ordinal_position, column_name FROM information_schema.columns "
                       f"WHERE table_name = '{_SLICES}' ORDER BY ordinal_position")
        return cursor.fetchall()
    return [(row[0], row[1]) for row in cursor.execute(f"PRAGMA table_info({_SLICES})")]


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
                reads, writes, floors = measure(url, folder, shape, repeat)
            ratio = min(writes) / min(reads)
            print(f"  read      file checks + DuckDB aggregation   {_ms(reads)}")
            print(f"  write     rows stored + commit               {_ms(writes)}")
            verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
            print(f"  ratio     write / read = {ratio:.2f} (best of each; target <= "
                  f"{TARGET_RATIO:.1f}: {verdict})")
            print(f"  floor     the slice rows alone, by the driver {_ms(floors)}")
            print(f"  ratio     write / floor = {min(writes) / min(floors):.2f}; floor / read = "
                  f"{min(floors) / min(reads):.2f} (best of each; for information)")
    print(f"(load average after: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
