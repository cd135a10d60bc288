"""Results page render time for an experiment with 10 metrics x 3 treatments, data cached.

Builds a throwaway SQLite database with one running experiment (control + 3 treatments, 10
catalogue metrics, 21 days, 40,000 users) loaded through the real ingestion path, logs in with
Streamlit's AppTest, opens the Results page once to fill the caches, then times reruns.

Baseline, in the same run and the same harness: an AppTest run of a trivial page (a title and a
line of text), i.e. Streamlit's own floor for a script run. Prints medians and the ratio, and
whether the 1 s target is met; it never fails on timing.

Run: ``.venv/bin/python bench/bench_results_page.py`` (or ``make bench``).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = 7
TARGET_SECONDS = 1.0
TREATMENTS = ("treatment_a", "treatment_b", "treatment_c")
METRICS = {f"bench_rate_{i}": "binomial" for i in range(5)} | {
    f"bench_mean_{i}": "mean" for i in range(5)}


def build_database(folder: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core import catalogue, registry
    from core.auth import Actor
    from core.data.ingestion import ingest_file
    from core.demo_data import DemoTruth, MetricModel, generate_units
    from db.migrate import upgrade
    from db.session import make_engine, session_factory

    url = f"sqlite:///{folder / 'bench.db'}"
    upgrade(url)
    admin = Actor(name="bench", role="admin")
    start = datetime.now(UTC).date() - timedelta(days=21)
    models = {name: MetricModel("binomial", 0.1) if kind == "binomial"
              else MetricModel("mean", 10.0, cv=1.5, pre_correlation=0.5)
              for name, kind in METRICS.items()}
    truth = DemoTruth(units={"control": 10_000} | dict.fromkeys(TREATMENTS, 10_000),
                      metrics=models,
                      effects={(m, t): 0.02 * (i + 1) for i, t in enumerate(TREATMENTS)
                               for m in METRICS})
    engine = make_engine(url)
    with session_factory(engine)() as session:
        for name, kind in METRICS.items():
            catalogue.create_metric(session, data={"name": name, "kind": kind}, actor=admin)
        names = list(METRICS)
        view = registry.create_experiment(session, actor=admin, data={
            "name": "Bench: 10 metrics x 3 treatments", "owner": "bench",
            "hypothesis": "Benchmark.", "primary_metric": names[0],
            "guardrail_metrics": names[1:4], "secondary_metrics": names[4:],
            "variants": [{"name": "control", "weight": 0.25}]
            + [{"name": t, "weight": 0.25} for t in TREATMENTS],
            "planned_sample_size": 8000, "mde": 0.05,
        })
        view = registry.transition_experiment(
            session, experiment_id=view.id, to_status="running",
            expected_version=view.version, actor=admin, on=start)
        cols = generate_units(view.name, truth, start=start,
                              last=datetime.now(UTC).date() - timedelta(days=1))
        path = folder / "bench.parquet"
        pq.write_table(pa.table(cols), path)
        ingest_file(session, path=path, experiment_id=view.id, actor=admin)
    engine.dispose()
    return url


def timed(run) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="experimentos_bench_") as tmp:
        os.environ["DATABASE_URL"] = build_database(Path(tmp))
        from streamlit.testing.v1 import AppTest

        from tests.apptest import login, open_page

        trivial = AppTest.from_string(
            "import streamlit as st\nst.title('Trivial')\nst.write('one line of text')",
            default_timeout=60,
        )
        trivial.run()
        baseline = timed(trivial.run)

        at = login("demo-viewer")
        started = time.perf_counter()
        at = open_page(at, "results")  # the first run computes and fills the caches
        cold = time.perf_counter() - started
        assert not at.exception, at.exception
        badges = sum(md.value.count("-badge[") for md in at.markdown)
        if badges != 30 or len(at.get("plotly_chart")) != 3:
            raise SystemExit(f"the Results page did not render the bench experiment "
                             f"({badges} decision badges, expected 30)")
        page = timed(at.run)
        assert not at.exception and at.title[0].value == "Results"

    base_med, page_med = statistics.median(baseline), statistics.median(page)
    print("Results page, 10 metrics x 3 treatments (30 comparisons), data cached")
    print(f"  baseline  trivial page (AppTest run)     median {base_med * 1000:7.1f} ms "
          f"(min {min(baseline) * 1000:.1f}, max {max(baseline) * 1000:.1f}; {RUNS} runs)")
    print(f"  results   Results page (AppTest rerun)   median {page_med * 1000:7.1f} ms "
          f"(min {min(page) * 1000:.1f}, max {max(page) * 1000:.1f}; {RUNS} runs)")
    print(f"  (cold     first render, computing the results and the daily series: "
          f"{cold * 1000:.0f} ms)")
    print(f"  ratio     results / trivial = {page_med / base_med:.1f}x")
    verdict = "met" if page_med < TARGET_SECONDS else "NOT met"
    print(f"  target    < {TARGET_SECONDS:.0f} s once cached: {verdict}")


if __name__ == "__main__":
    main()
