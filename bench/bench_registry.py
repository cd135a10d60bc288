"""Registry list at 100,000 experiments: every filter and sort through core beside the same
page's bare SQL, plus the owners and tags lists.

    python bench/bench_registry.py [--experiments 100000 | --tiny] [--repeat 5]
                                   [--postgres ADMIN_URL] [--keep]

1. Builds a throwaway database: a migrated SQLite file in a temporary folder and, with
   --postgres, a created-and-dropped PostgreSQL database on that server (nothing is written
   into the checkout). It holds --experiments experiments (250 owners, 80 tags, 0-3 tags and
   two variants each, names, hypotheses and learnings from a 1,000-word vocabulary, 30 % with
   no RICE score, 5 % archived), bulk-loaded (COPY on PostgreSQL), then ANALYZEd (PostgreSQL:
   VACUUM ANALYZE, what autovacuum does to a table this size).
2. For every filter the Registry page and ``GET /api/v1/experiments`` offer (none, status,
   owner, tag, a word, not archived, and status + owner + word together) and every sort key
   in both directions, times one page of 50 two ways, median of --repeat calls each:

   * core: ``core.registry.list_experiments`` on a Session (what the page and the route call);
   * bare: the same page as hand-written SQL on the DBAPI cursor: the count, the page's
     experiment rows with their primary metric's name, and their variants.

   The two must agree (total and ids in order); the ratio core / bare is printed beside the
   absolute time. Targets (issue 25): every case <= 3x its bare SQL and <= 20 ms.
3. ``registry.owners`` and ``registry.tags`` (<= 10 ms), beside the plain ``SELECT DISTINCT``
   and, for tags, reading every experiment's tag list into Python as the code before did.
4. The plans (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite) of the count and page
   queries core sends for four cases, then the same bare pages after dropping migration
   0009's indexes, for comparison with what the code before had.

The machine's load average is printed: the figures are only comparable within one run.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from throwaway import postgres_database  # noqa: E402

PAGE_SIZE = 50
OWNERS = 250
TAGS = 80
WORDS = 1_000
STATUSES = (("proposed", 0.40), ("running", 0.10), ("completed", 0.35), ("abandoned", 0.15))
RATIO_TARGET = 3.0
MS_TARGET = 20.0
CHOICES_MS_TARGET = 10.0
INDEXES_0009 = ("ix_experiments_updated_at", "ix_experiments_created_at", "ix_experiments_name",
                "ix_experiments_owner", "ix_experiments_status", "ix_experiments_rice_score",
                "ix_experiments_owner_lower", "ix_experiments_archived_at",
                "ix_experiment_tags_tag",
                "ix_experiments_name_trgm", "ix_experiments_hypothesis_trgm",
                "ix_experiments_learnings_trgm")
SORTS = ("name", "status", "owner", "created_at", "updated_at", "rice_score")
"""core.registry.SORT_FIELDS, repeated so a change there shows up as a failed check below."""


@dataclass(frozen=True)
class Case:
    label: str
    filters: dict[str, Any]
    sort: str
    descending: bool


def _vocabulary(rng: random.Random) -> list[str]:
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < WORDS:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def _rows(n: int, seed: int = 25) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]],
                                            list[tuple[Any, ...]], list[str]]:
    """(experiments, variants, experiment_tags) rows, and the vocabulary."""
    rng = random.Random(seed)
    words = _vocabulary(rng)
    statuses = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    experiments, variants, tags = [], [], []
    for i in range(1, n + 1):
        status = rng.choices(statuses, weights)[0]
        created = start + timedelta(seconds=rng.randrange(3 * 365 * 86_400))
        updated = created + timedelta(seconds=rng.randrange(60 * 86_400))
        own_tags = rng.sample(range(TAGS), rng.randint(0, 3))
        tag_names = [f"tag_{t:02d}" for t in own_tags]
        experiments.append((
            i, f"{rng.choice(words).title()} {rng.choice(words)} test {i}",
            f"Owner{rng.randrange(OWNERS):03d}",
            " ".join(rng.choice(words) for _ in range(rng.randint(8, 15))).capitalize() + ".",
            "", status, 0.05, 0.8, "fixed", "holm", "two-sided",
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))
            if status == "completed" else "",
            json.dumps(tag_names),
            None if rng.random() < 0.3 else round(rng.uniform(1, 5_000), 2),
            updated + timedelta(days=30) if rng.random() < 0.05 else None,
            created, updated, rng.randint(1, 5),
        ))
        variants += [(2 * i - 1, i, "control", 0.5, 0), (2 * i, i, "treatment", 0.5, 1)]
        tags += [(i, t) for t in tag_names]
    return experiments, variants, tags, words


EXPERIMENT_COLUMNS = ("id", "name", "owner", "hypothesis", "target_segment", "status", "alpha",
                      "power", "analysis_mode", "correction", "alternative", "learnings",
                      "tags", "rice_score", "archived_at", "created_at", "updated_at",
                      "version")
TABLES = (("experiments", EXPERIMENT_COLUMNS),
          ("variants", ("id", "experiment_id", "name", "weight", "position")),
          ("experiment_tags", ("experiment_id", "tag")))


def _load(url: str, n: int) -> list[str]:
    """Migrate the database and bulk-load `n` experiments; the vocabulary."""
    from db.migrate import upgrade
    from db.session import make_engine

    upgrade(url)
    started = time.perf_counter()
    *tables, words = _rows(n)
    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if url.startswith("postgresql"):
            for (table, columns), rows in zip(TABLES, tables, strict=True):
                buffer = io.StringIO()
                writer = csv.writer(buffer)
                for row in rows:
                    writer.writerow(["\\N" if v is None else v for v in row])
                buffer.seek(0)
                cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN "
                                   "WITH (FORMAT csv, NULL '\\N')", buffer)
            cursor.execute("SELECT setval('experiments_id_seq', %s)", (n,))
            raw.commit()
            raw.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            cursor.execute("VACUUM ANALYZE")
            raw.dbapi_connection.autocommit = False  # type: ignore[union-attr]
        else:
            cursor.execute("BEGIN")
            for (table, columns), rows in zip(TABLES, tables, strict=True):
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                    f"({', '.join('?' for _ in columns)})",
                    [[v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in row]
                     for row in rows])
            cursor.execute("COMMIT")
            cursor.execute("ANALYZE")
        cursor.close()
    finally:
        raw.close()
        engine.dispose()
    print(f"loaded {n:,} experiments, {len(tables[1]):,} variants, {len(tables[2]):,} tag rows "
          f"in {time.perf_counter() - started:.1f} s (load {os.getloadavg()[0]:.1f})")
    return words


# --------------------------------------------------------------------------- bare SQL


def _bare_sql(case: Case, postgres: bool, word_index: bool = True
              ) -> tuple[str, str, dict[str, Any]]:
    """The case's count and page as hand-written SQL with named parameters (on SQLite, a word
    of three characters or more through migration 0018's FTS5 trigram table when no owner is
    given, as core does, unless ``word_index`` is False)."""
    mark = (lambda name: f"%({name})s") if postgres else (lambda name: f":{name}")
    where, params = [], {}
    f = case.filters
    if f.get("status"):
        where.append(f"e.status = {mark('status')}")
        params["status"] = f["status"]
    if f.get("owner"):
        where.append(f"lower(e.owner) = {mark('owner')}")
        params["owner"] = f["owner"].lower()
    if f.get("tag"):
        tagged = f"SELECT experiment_id FROM experiment_tags WHERE tag = {mark('tag')}"
        where.append(f"e.id = ANY(ARRAY({tagged}))" if postgres else f"e.id IN ({tagged})")
        params["tag"] = f["tag"]
    if f.get("search"):
        where.append("(" + " OR ".join(
            f"lower(e.{c}) LIKE {mark('word')} ESCAPE '\\'"
            for c in ("name", "hypothesis", "learnings")) + ")")
        params["word"] = f"%{f['search'].lower()}%"
        if not postgres and word_index and not f.get("owner") and len(f["search"]) >= 3:
            where.append("e.id IN (SELECT rowid FROM experiments_search WHERE "
                         f"experiments_search MATCH {mark('phrase')})")
            params["phrase"] = f'"{f["search"].lower()}"'
    page_where = list(where)
    if f.get("include_archived") is False:
        where.append("e.archived_at IS NULL")
        # as core sends it: SQLite's planner would read the archived_at index for the page
        page_where.append("coalesce(e.archived_at, e.archived_at) IS NULL" if not postgres
                          else "e.archived_at IS NULL")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    page_clause = f"WHERE {' AND '.join(page_where)}" if page_where else ""
    direction = "DESC" if case.descending else "ASC"
    count = f"SELECT count(*) FROM experiments e {clause}"
    page = (f"SELECT e.*, m.name AS primary_metric FROM experiments e LEFT JOIN metrics m "
            f"ON m.id = e.primary_metric_id {page_clause} ORDER BY e.{case.sort} {direction}, "
            f"e.id {direction} LIMIT {PAGE_SIZE}")
    return count, page, params


def _bare(cursor: Any, case: Case, postgres: bool, word_index: bool = True
          ) -> tuple[int, list[int]]:
    count, page, params = _bare_sql(case, postgres, word_index)
    cursor.execute(count, params)
    total = cursor.fetchone()[0]
    cursor.execute(page, params)
    ids = [row[0] for row in cursor.fetchall()]
    if ids:
        marks = ", ".join("%s" if postgres else "?" for _ in ids)
        cursor.execute(f"SELECT experiment_id, name, weight FROM variants WHERE experiment_id "
                       f"IN ({marks}) ORDER BY experiment_id, position", ids)
        cursor.fetchall()
    return total, ids


# --------------------------------------------------------------------------- timing


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm: plans, caches
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _cases(words: list[str]) -> list[Case]:
    word = next(w for w in words[len(words) // 3:] if len(w) >= 6)
    filters: list[tuple[str, dict[str, Any]]] = [
        ("no filter", {}),
        ("status", {"status": "running"}),
        ("owner", {"owner": "owner042"}),
        ("tag", {"tag": "tag_17"}),
        (f"word '{word}'", {"search": word}),
        ("not archived", {"include_archived": False}),
        (f"status+owner+word '{word[:4]}'",
         {"status": "completed", "owner": "OWNER042", "search": word[:4]}),
    ]
    return [Case(label, f, sort, descending)
            for label, f in filters for sort in SORTS for descending in (True, False)]


def _explain(session: Any, case: Case, postgres: bool) -> list[str]:
    """The plans of the count and page queries core sends for `case` (captured as sent)."""
    from sqlalchemy import event

    from core import registry

    sent: list[tuple[str, Any]] = []
    engine = session.get_bind()

    def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        registry.list_experiments(session, sort=case.sort, descending=case.descending,
                                  page_size=PAGE_SIZE, **case.filters)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    cursor = session.connection().connection.dbapi_connection.cursor()
    lines = []
    for label, (statement, parameters) in zip(("count", "page"), sent[:2], strict=True):
        cursor.execute(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement,
                       parameters)
        lines += [f"{label}: {row[0] if postgres else row[-1]}" for row in cursor.fetchall()]
    cursor.close()
    return lines


def run(url: str, n: int, repeat: int) -> bool:
    from sqlalchemy.orm import Session

    from core import registry
    from db.session import make_engine

    postgres = url.startswith("postgresql")
    kind = "PostgreSQL" if postgres else "SQLite"
    words = _load(url, n)
    if tuple(registry.SORT_FIELDS) != SORTS:
        raise SystemExit(f"core.registry.SORT_FIELDS changed ({registry.SORT_FIELDS}): "
                         "update SORTS")
    engine = make_engine(url)
    met = True
    raw = engine.raw_connection()  # the bare SQL's own connection, in autocommit
    if postgres:
        raw.dbapi_connection.autocommit = True  # type: ignore[union-attr]
    cursor = raw.cursor()
    with Session(engine) as session:
        load = os.getloadavg()[0]
        print(f"\n{kind}, {n:,} experiments, page of {PAGE_SIZE}, median of {repeat} "
              f"(load {load:.1f})")
        print(f"{'filter':<28}{'sort':<13}{'total':>8}{'core ms':>9}{'bare ms':>9}"
              f"{'ratio':>7}")
        worst_ratio, worst_ms = (0.0, ""), (0.0, "")
        for case in _cases(words):
            def core(case: Case = case) -> Any:
                return registry.list_experiments(session, sort=case.sort,
                                                 descending=case.descending,
                                                 page_size=PAGE_SIZE, **case.filters)

            page = core()
            total, ids = _bare(cursor, case, postgres)
            if (page.total, [e.id for e in page.items]) != (total, ids):
                raise SystemExit(f"{case}: core and bare SQL disagree "
                                 f"({page.total} vs {total} rows)")
            core_ms = _median_ms(core, repeat)
            bare_ms = _median_ms(lambda case=case: _bare(cursor, case, postgres), repeat)
            ratio = core_ms / bare_ms
            sort = ("-" if case.descending else "") + case.sort
            print(f"{case.label:<28}{sort:<13}{total:>8}{core_ms:>9.2f}{bare_ms:>9.2f}"
                  f"{ratio:>6.2f}x")
            where = f"{case.label}, {sort}"
            worst_ratio = max(worst_ratio, (ratio, where))
            worst_ms = max(worst_ms, (core_ms, where))
        print(f"worst ratio {worst_ratio[0]:.2f}x ({worst_ratio[1]}), slowest "
              f"{worst_ms[0]:.2f} ms ({worst_ms[1]}) -> "
              + ("meets" if worst_ratio[0] <= RATIO_TARGET and worst_ms[0] <= MS_TARGET
                 else "misses")
              + f" the target (<= {RATIO_TARGET:g}x its bare SQL, <= {MS_TARGET:g} ms)")
        met &= worst_ratio[0] <= RATIO_TARGET and worst_ms[0] <= MS_TARGET

        print(f"\nowners and tags (load {os.getloadavg()[0]:.1f})")
        choices = [
            ("registry.owners", lambda: registry.owners(session), None),
            ("  SELECT DISTINCT owner", None,
             "SELECT DISTINCT owner FROM experiments ORDER BY owner"),
            ("registry.tags", lambda: registry.tags(session), None),
            ("  SELECT DISTINCT tag", None,
             "SELECT DISTINCT tag FROM experiment_tags ORDER BY tag"),
            ("  every tag list in Python (before)", None, "SELECT tags FROM experiments"),
        ]
        answers: dict[str, Any] = {}
        for label, fn, sql in choices:
            if fn is None:
                def fn(sql: str = sql, label: str = label) -> Any:
                    cursor.execute(sql)
                    rows = cursor.fetchall()
                    if "Python" in label:
                        found: set[str] = set()
                        for (value,) in rows:
                            found.update(json.loads(value) if isinstance(value, str) else value)
                        return sorted(found)
                    return [r[0] for r in rows]
            ms = _median_ms(fn, repeat)
            verdict = ""
            if label.startswith("registry"):
                ok = ms <= CHOICES_MS_TARGET
                met &= ok
                verdict = (f" -> {'meets' if ok else 'misses'} the target "
                           f"(<= {CHOICES_MS_TARGET:g} ms), {len(fn())} values")
            print(f"{label:<38}{ms:>9.2f} ms{verdict}")
            answers[label.strip()] = fn()
        if answers["registry.tags"] != answers["every tag list in Python (before)"] or \
                answers["registry.owners"] != answers["SELECT DISTINCT owner"]:
            raise SystemExit("registry.owners / registry.tags disagree with plain SQL")

        cases = _cases(words)
        shown = [cases[8], cases[-4], cases[3 * 12 + 8], cases[4 * 12 + 8]]
        print("\nplans of the count and page queries core sends")
        for case in shown:
            print(f"  {case.label}, {'-' if case.descending else ''}{case.sort}:")
            for line in _explain(session, case, postgres):
                print(f"    {line}")

    without = "" if postgres else " and 0018's word table"
    print(f"\nthe same bare pages without migration 0009's indexes{without} (load "
          f"{os.getloadavg()[0]:.1f})")
    for name in INDEXES_0009:
        cursor.execute(f"DROP INDEX IF EXISTS {name}")
    cursor.execute("ANALYZE")
    for case in shown:
        ms = _median_ms(lambda case=case: _bare(cursor, case, postgres, word_index=False),
                        repeat)
        print(f"  {case.label}, {'-' if case.descending else ''}{case.sort}: {ms:.2f} ms")
    cursor.close()
    raw.close()
    engine.dispose()
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--experiments", type=int, default=100_000)
    size.add_argument("--tiny", action="store_true", help="2,000 experiments, 2 repeats")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per case")
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="also run on a PostgreSQL database created (and dropped) there")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite folder")
    args = parser.parse_args(argv)
    n, repeat = (2_000, 2) if args.tiny else (args.experiments, args.repeat)
    if not 100 <= n <= 10_000_000 or not 1 <= repeat <= 100:
        parser.error("use 100 <= --experiments <= 10,000,000 and 1 <= --repeat <= 100")
    print(f"bench_registry on {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    folder = Path(tempfile.mkdtemp(prefix="experimentos-bench-registry-"))
    met = True
    try:
        met &= run(f"sqlite:///{folder / 'registry.db'}", n, repeat)
        if args.postgres:
            with postgres_database(args.postgres, "registry") as url:
                met &= run(url, n, repeat)
    finally:
        if args.keep:
            print(f"SQLite database kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; every target "
          + ("met" if met else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
