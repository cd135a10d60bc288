"""The PDF's charts (core/reports/charts.py): the forest plot draws an open (one-sided) interval
to the axis edge with an arrow head, never cut off at the estimate; the cumulative lift with one
day of data spans that day, its interval an error bar."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import matplotlib.dates as mdates
from matplotlib.container import ErrorbarContainer
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core import registry
from core.analysis.results import latest_snapshot
from core.analysis.snapshot import SeriesPoint
from core.reports.charts import cumulative_figure, forest_figure


def test_forest_figure_runs_a_one_sided_interval_to_the_edge_with_an_arrow(
    demo_session: Session,
) -> None:
    # "Checkout button colour": two-sided primary, the refund_rate guardrail's harm test
    # one-sided [-10.4 %, +inf) (the snapshot stores the open end as None)
    exp = registry.get_experiment_by_name(demo_session, name="Checkout button colour")
    snapshot = latest_snapshot(demo_session, experiment_id=exp.id)
    assert snapshot is not None
    fig = forest_figure(snapshot)
    assert fig is not None
    ax = fig.axes[0]
    edge = ax.get_xlim()[1]
    drawn: dict[str, tuple[tuple[float, float], list[str]]] = {}
    for label, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True):
        mine = [line for line in ax.get_lines()
                if len(line.get_ydata()) and all(v == y for v in line.get_ydata())]
        bar = next(line for line in mine if len(line.get_xdata()) == 2)
        xs = bar.get_xdata()
        drawn[label.get_text().split(" (")[0]] = (
            (float(xs[0]), float(xs[1])),
            sorted(str(line.get_marker()) for line in mine if line is not bar))
    by_metric = {c.metric: c for c in snapshot.comparisons}

    guard = by_metric["refund_rate"]
    assert guard.lift_ci_high is None and guard.lift_ci_low is not None
    (low, high), markers = drawn["refund_rate"]
    assert low == guard.lift_ci_low * 100
    assert high == edge  # not the estimate: the interval goes on
    assert markers == [">", "o"]

    primary = by_metric["checkout_conversion"]
    assert primary.lift_ci_low is not None and primary.lift_ci_high is not None
    (low, high), markers = drawn["checkout_conversion"]
    assert (low, high) == (primary.lift_ci_low * 100, primary.lift_ci_high * 100)
    assert markers == ["o"]


def _point(day: date, lift: float, low: float, high: float) -> SeriesPoint:
    return SeriesPoint(day=day, metric="checkout_conversion", treatment="treatment",
                       control_n=1000, treatment_n=1000, diff=None, diff_ci_low=None,
                       diff_ci_high=None, lift=lift, lift_ci_low=low, lift_ci_high=high,
                       p_value=0.2, sequential=False)


def test_cumulative_figure_with_one_day_spans_that_day_and_shows_its_interval() -> None:
    day = date(2026, 12, 1)
    fig = cumulative_figure([_point(day, 0.05, -0.02, 0.12)], "checkout_conversion", 0.05)
    assert fig is not None
    ax = fig.axes[0]
    low, high = (mdates.num2date(x).date() for x in ax.get_xlim())
    assert (low, high) == (day - timedelta(days=1), day + timedelta(days=1))  # not 2025-2029
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    segment = bars[0].lines[2][0].get_segments()[0]  # the interval, drawn as an error bar
    assert_allclose(sorted(y for _x, y in segment), [-2.0, 12.0])
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "2026-12-01" in labels


def test_cumulative_figure_over_days_draws_the_band() -> None:
    days = [date(2026, 12, 1) + timedelta(days=i) for i in range(5)]
    fig = cumulative_figure([_point(d, 0.05, -0.02, 0.12) for d in days], "m", 0.05)
    assert fig is not None
    ax = fig.axes[0]
    assert ax.collections  # the band (fill_between)
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    low, high = (mdates.num2date(x).date() for x in ax.get_xlim())
    assert low <= days[0] and high >= days[-1] and (high - low).days < 10


def test_charts_warm_up_imports_matplotlib_once_in_the_background() -> None:
    """The Reports page starts this when it opens: the first report does not wait for
    matplotlib's cold import (issue 25). A fresh interpreter, so the import is really cold."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from core.reports import charts\n"
        "assert 'matplotlib.figure' not in sys.modules\n"
        "first = charts.warm_up()\n"
        "assert charts.warm_up() is first and first.daemon\n"
        "first.join(60)\n"
        "assert 'matplotlib.figure' in sys.modules and not first.is_alive()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[3], timeout=120)
    assert done.returncode == 0, done.stderr
