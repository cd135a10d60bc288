"""Benchmark: seconds to generate one experiment report with its charts (no timed asserts).

Run: ``python bench/bench_report.py``

On a throwaway SQLite database seeded with the demo portfolio (setup, not timed), for the
three-arm "Recommendations carousel" (the largest demo report: 6 comparisons, 2 series):

* **report with charts** — :func:`core.reports.build_report_pdf`: results, risk checks, the
  fpdf2 layout and both charts drawn into it as vector graphics. Targets: <= 0.15 s warm
  (issue 25), <= 3 s cold.
* baseline **report without charts** — the same call with ``charts=False``, so the charts' cost
  is the difference.
* baseline **empty page** — fpdf2 registering the same DejaVu fonts and writing one page with a
  line of text: the floor any PDF from this stack pays.

Cold = first call in the process (imports fpdf2 and fontTools, parses the fonts); warm = best
of 5.
``--tiny``: one call of each (tests/test_benches.py runs it so a broken bench fails CI).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXPERIMENT = "Recommendations carousel"
TARGET_WARM_SECONDS = 0.15
"""Issue 25: a warm report."""
TARGET_COLD_SECONDS = 3.0


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_of(fn: Callable[[], object], repeats: int) -> float:
    return min(timed(fn) for _ in range(repeats))


def verdict(seconds: float, target: float) -> str:
    return f"target <= {target:g} s -> {'met' if seconds <= target else 'MISSED'}"


def empty_page() -> bytes:
    from fpdf import FPDF

    from core.reports.pdf import font_files

    pdf = FPDF()
    for style, path in font_files().items():
        pdf.add_font("DejaVu", style, str(path))
    pdf.add_page()
    pdf.set_font("DejaVu", "", 10)
    pdf.cell(text="ExperimentOS — empty page baseline")
    return bytes(pdf.output())


def main() -> None:
    repeats = 1 if "--tiny" in sys.argv[1:] else 5
    from core.demo import seed_demo
    from core.registry import get_experiment_by_name
    from core.reports import build_report_pdf
    from db.migrate import upgrade
    from db.session import make_engine, session_factory

    with tempfile.TemporaryDirectory(prefix="bench_report_") as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        with session_factory(engine)() as session:
            t_seed = timed(lambda: seed_demo(session))
            exp_id = get_experiment_by_name(session, name=EXPERIMENT).id

            def with_charts() -> bytes:
                return build_report_pdf(session, experiment_id=exp_id, generated_by="bench")

            def without_charts() -> bytes:
                return build_report_pdf(session, experiment_id=exp_id, generated_by="bench",
                                        charts=False)

            cold = timed(with_charts)
            warm = best_of(with_charts, repeats)
            no_charts = best_of(without_charts, repeats)
            floor = best_of(empty_page, repeats)
            size = len(with_charts())
        engine.dispose()

    print(f"Setup: demo portfolio seeded in {t_seed:.1f} s (not timed below).")
    print(f"Report on '{EXPERIMENT}' ({size / 1024:,.0f} KB PDF; warm = best of {repeats}):")
    print(f"  with charts, cold (first in process) : {cold:6.3f} s   "
          f"{verdict(cold, TARGET_COLD_SECONDS)}")
    print(f"  with charts, warm                    : {warm:6.3f} s   "
          f"{verdict(warm, TARGET_WARM_SECONDS)}")
    print(f"  baseline: without charts, warm       : {no_charts:6.3f} s   "
          f"charts cost {warm - no_charts:.3f} s, report = {warm / no_charts:.1f}x this baseline")
    print(f"  baseline: fpdf2 empty page, warm     : {floor:6.3f} s   "
          f"report = {warm / floor:.0f}x this baseline")


if __name__ == "__main__":
    main()
