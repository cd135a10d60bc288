"""Results page render time, and segment results, for an experiment with many metrics and
dimensions.

Builds a throwaway SQLite database (in a temporary folder: nothing is written into the
checkout) with one running experiment loaded through the real ingestion path: by default
20 catalogue metrics x 3 variants (control + 2 treatments) x 90 days x 5 dimensions
(issue 25's shape: 118,800 daily slice rows), 60,000 users. Then, in one run:

* ``segment_results`` called directly (the per-dimension breakdowns, summed in SQL);
* the Results page's first render with its caches empty (results, daily series and
  segments computed), logged in through Streamlit's AppTest;
* the Results page rerun once cached;
* baseline, same harness: an AppTest run of a trivial page (a title and a line of text),
  i.e. Streamlit's own floor for a script run.

Prints medians, the ratios to the baseline and whether the targets are met (segment results
<= 150 ms, first render <= 0.5 s, cached rerun < 1 s); it never fails on timing. ``--tiny``
runs a small shape in seconds (tests/test_benches.py runs it so a broken bench fails CI).

Run: ``.venv/bin/python bench/bench_results_page.py`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEGMENTS_TARGET_S = 0.150
FIRST_RENDER_TARGET_S = 0.5
CACHED_TARGET_S = 1.0
DIMENSIONS = {
    "country": {"US": 0.4, "DE": 0.2, "FR": 0.15, "GB": 0.15, "JP": 0.1},
    "platform": {"ios": 0.45, "android": 0.4, "web": 0.15},
    "user_type": {"new": 0.3, "returning": 0.7},
    "channel": {"organic": 0.5, "paid": 0.3, "email": 0.2},
    "plan": {"free": 0.6, "pro": 0.3, "team": 0.1},
}


@dataclass(frozen=True)
class Shape:
    metrics: int
    treatments: int
    days: int
    dimensions: int
    users: int
    runs: int

    @property
    def metric_kinds(self) -> dict[str, str]:
        half = self.metrics // 2
        return ({f"bench_rate_{i}": "binomial" for i in range(self.metrics - half)}
                | {f"bench_mean_{i}": "mean" for i in range(half)})

    @property
    def treatment_names(self) -> tuple[str, ...]:
        return tuple(f"treatment_{chr(ord('a') + i)}" for i in range(self.treatments))


FULL = Shape(metrics=20, treatments=2, days=90, dimensions=5, users=60_000, runs=5)
TINY = Shape(metrics=4, treatments=1, days=5, dimensions=2, users=2_000, runs=2)


def _weights(k: int) -> list[float]:
    """An (almost) even split of k arms that sums to exactly 1: hundredths, the control
    taking the remainder."""
    share = 100 // k
    return [(100 - share * (k - 1)) / 100] + [share / 100] * (k - 1)


def write_bench_file(folder: Path, shape: Shape, name: str) -> Path:
    """The user-level Parquet file of experiment ``name`` in ``folder`` (seeded by the name),
    its days ending yesterday."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.demo_data import DemoTruth, MetricModel, generate_units

    last = datetime.now(UTC).date() - timedelta(days=1)
    kinds = shape.metric_kinds
    models = {metric: MetricModel("binomial", 0.1) if kind == "binomial"
              else MetricModel("mean", 10.0, cv=1.5, pre_correlation=0.5)
              for metric, kind in kinds.items()}
    arms = ("control", *shape.treatment_names)
    truth = DemoTruth(units=dict.fromkeys(arms, shape.users // len(arms)), metrics=models,
                      effects={(m, t): 0.02 * (i + 1)
                               for i, t in enumerate(shape.treatment_names) for m in kinds},
                      dimensions=dict(list(DIMENSIONS.items())[:shape.dimensions]))
    cols = generate_units(name, truth, start=last - timedelta(days=shape.days - 1), last=last)
    path = folder / "bench.parquet"
    pq.write_table(pa.table(cols), path)
    return path


def create_bench_experiment(session: Session, shape: Shape) -> tuple[int, str]:
    """The shape's catalogue metrics and a running experiment over them; its id and name."""
    from core import catalogue, registry
    from core.auth import Actor

    admin = Actor(name="bench", role="admin")
    kinds = shape.metric_kinds
    for metric, kind in kinds.items():
        catalogue.create_metric(session, data={"name": metric, "kind": kind}, actor=admin)
    names = list(kinds)
    arms = ("control", *shape.treatment_names)
    view = registry.create_experiment(session, actor=admin, data={
        "name": f"Bench: {shape.metrics} metrics x {len(arms)} variants", "owner": "bench",
        "hypothesis": "Benchmark.", "primary_metric": names[0],
        "guardrail_metrics": names[1:4], "secondary_metrics": names[4:],
        "variants": [{"name": arm, "weight": weight}
                     for arm, weight in zip(arms, _weights(len(arms)), strict=True)],
        "planned_sample_size": 8000, "mde": 0.05,
    })
    start = datetime.now(UTC).date() - timedelta(days=shape.days)
    view = registry.transition_experiment(
        session, experiment_id=view.id, to_status="running",
        expected_version=view.version, actor=admin, on=start)
    return view.id, view.name


def build_database(folder: Path, shape: Shape) -> int:
    """A migrated SQLite file ``folder/bench.db`` holding the bench experiment; its id."""
    from core.auth import Actor
    from core.data.ingestion import ingest_file
    from db.migrate import upgrade
    from db.session import make_engine, session_factory

    url = f"sqlite:///{folder / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        experiment_id, name = create_bench_experiment(session, shape)
        path = write_bench_file(folder, shape, name)
        ingest_file(session, path=path, experiment_id=experiment_id,
                    actor=Actor(name="bench", role="admin"))
    engine.dispose()
    return experiment_id


def timed(run: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        out.append(time.perf_counter() - started)
    return out


def _line(label: str, what: str, times: list[float]) -> str:
    return (f"  {label:<9} {what:<44} median {statistics.median(times) * 1000:8.1f} ms "
            f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; {len(times)} runs)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a small shape, in seconds")
    args = parser.parse_args(argv)
    shape = TINY if args.tiny else FULL
    with tempfile.TemporaryDirectory(prefix="experimentos_bench_") as tmp:
        # The URL is set before anything reads the (cached) settings: the pages, the
        # ingestion and the segments all open this database, never the checkout's default.
        os.environ["DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'bench.db'}"
        os.environ.setdefault("SPOOL_DIR", str(Path(tmp) / "spool"))
        from core.config import get_settings

        get_settings.cache_clear()
        experiment_id = build_database(Path(tmp), shape)
        import streamlit as st
        from streamlit.testing.v1 import AppTest

        from core.analysis.segments import segment_results
        from db.session import make_engine, session_factory
        from tests.apptest import login, open_page

        engine = make_engine(os.environ["DATABASE_URL"])
        with session_factory(engine)() as session:
            found = segment_results(session, experiment_id=experiment_id)
            if len(found) != shape.dimensions:
                raise SystemExit(f"segment results: {len(found)} dimensions, expected "
                                 f"{shape.dimensions}")

            def segments() -> None:
                segment_results(session, experiment_id=experiment_id)
                session.rollback()

            segment_times = timed(segments, shape.runs)
        engine.dispose()

        trivial = AppTest.from_string(
            "import streamlit as st\nst.title('Trivial')\nst.write('one line of text')",
            default_timeout=60,
        )
        trivial.run()
        baseline = timed(trivial.run, shape.runs)

        at = login("demo-viewer")
        at = open_page(at, "results")
        assert not at.exception, at.exception
        comparisons = shape.metrics * shape.treatments
        badges = sum(md.value.count("-badge[") for md in at.markdown)
        if badges != comparisons:
            raise SystemExit(f"the Results page did not render the bench experiment "
                             f"({badges} decision badges, expected {comparisons})")

        def first_render() -> None:
            st.cache_data.clear()
            at.run()

        first = timed(first_render, shape.runs)
        page = timed(at.run, shape.runs)
        assert not at.exception and at.title[0].value == "Results"

    base = statistics.median(baseline)
    seg, cold, warm = (statistics.median(t) for t in (segment_times, first, page))
    print(f"Results page: {shape.metrics} metrics x {shape.treatments + 1} variants x "
          f"{shape.days} days x {shape.dimensions} dimensions, {shape.users:,} users "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(_line("baseline", "trivial page (AppTest run)", baseline))
    print(_line("segments", "segment_results (every dimension)", segment_times))
    print(_line("first", "Results page, caches empty (AppTest run)", first))
    print(_line("cached", "Results page, cached (AppTest rerun)", page))
    print(f"  ratios    first / trivial = {cold / base:.1f}x, cached / trivial = "
          f"{warm / base:.1f}x")
    for what, value, target in (("segment_results", seg, SEGMENTS_TARGET_S),
                                ("first render", cold, FIRST_RENDER_TARGET_S),
                                ("cached rerun", warm, CACHED_TARGET_S)):
        verdict = "met" if value <= target else "NOT met"
        print(f"  target    {what} <= {target * 1000:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
