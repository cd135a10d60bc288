"""The PDF's charts (core/reports/charts.py), as geometry before any PDF: round ticks, dates on the
time axis, the forest plot's open (one-sided) interval run to the edge with an arrow head, the
cumulative lift's band over days and error bar on a single day; then drawn, as vector text and
lines in the PDF (pypdf extracts the labels) without importing matplotlib."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from numpy.testing import assert_allclose
from pypdf import PdfReader
from sqlalchemy.orm import Session

from core import format as fmt
from core import registry
from core.analysis.results import latest_snapshot
from core.analysis.snapshot import SeriesPoint
from core.reports.charts import (
    CumulativePlot,
    Tick,
    cumulative_plot,
    day_ticks,
    forest_plot,
    nice_ticks,
    tick_label,
)
from core.reports.pdf import _Pdf


def measure(text: str, size: float) -> float:
    """A stand-in for font metrics: 0.18 mm per character and point (DejaVu's average)."""
    return len(text) * size * 0.18


def _value(ticks: tuple[Tick, ...], at: float) -> float:
    """The data value at position ``at`` on an axis, read back from its first and last tick."""
    first, last = ticks[0], ticks[-1]
    v0, v1 = (float(t.label.replace(fmt.MINUS, "-")) for t in (first, last))
    return v0 + (at - first.at) / (last.at - first.at) * (v1 - v0)


# --------------------------------------------------------------------------- ticks


@pytest.mark.parametrize(("low", "high", "count", "expected"), [
    (-12.3, 24.8, 8, [-10, -5, 0, 5, 10, 15, 20]),
    (0.0, 1.0, 6, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (-2.6, 12.6, 7, [-2.5, 0, 2.5, 5, 7.5, 10, 12.5]),
    (-43.0, 58.0, 7, [-40, -20, 0, 20, 40]),
    (0.013, 0.021, 5, [0.014, 0.016, 0.018, 0.02]),
])
def test_charts_nice_ticks_are_round_steps_inside_the_range(
    low: float, high: float, count: int, expected: list[float],
) -> None:
    ticks = nice_ticks(low, high, count)
    assert_allclose(ticks, expected, atol=1e-12)
    assert len(ticks) <= count and low <= ticks[0] and ticks[-1] <= high


def test_charts_tick_labels_carry_the_decimals_of_their_step() -> None:
    assert [tick_label(v, [-5, 0, 5]) for v in (-5, 0, 5)] == ["−5", "0", "5"]
    assert [tick_label(v, [-2.5, 0, 2.5]) for v in (-2.5, 0)] == ["−2.5", "0.0"]
    assert tick_label(0.014, [0.014, 0.016]) == "0.014"
    with pytest.raises(ValueError, match="finite low < high"):
        nice_ticks(1.0, 1.0)


def test_charts_day_ticks_step_by_whole_days_and_weeks() -> None:
    first = date(2026, 11, 16)
    assert day_ticks(first, first + timedelta(days=4), 7) == [
        first + timedelta(days=i) for i in range(5)]
    assert day_ticks(first, first + timedelta(days=13), 7) == [
        first + timedelta(days=i) for i in range(0, 14, 2)]
    assert day_ticks(first, first + timedelta(days=89), 7) == [
        first + timedelta(days=i) for i in range(0, 90, 14)]


# --------------------------------------------------------------------------- forest plot


def test_charts_forest_runs_a_one_sided_interval_to_the_edge_with_an_arrow(
    demo_session: Session,
) -> None:
    # "Checkout button colour": two-sided primary, the refund_rate guardrail's harm test
    # one-sided [-10.4 %, +inf) (the snapshot stores the open end as None)
    exp = registry.get_experiment_by_name(demo_session, name="Checkout button colour")
    snapshot = latest_snapshot(demo_session, experiment_id=exp.id)
    assert snapshot is not None
    plot = forest_plot(snapshot, measure)
    assert plot is not None
    frame = plot.frame
    by_metric = {row.label[0].split(" (")[0]: row for row in plot.rows}
    comparisons = {c.metric: c for c in snapshot.comparisons}
    assert list(by_metric) == [c.metric for c in snapshot.comparisons]  # top to bottom
    assert [row.label for row in plot.rows][0] == (
        "checkout_conversion (primary)", "treatment vs control")
    assert all(a.y < b.y for a, b in zip(plot.rows, plot.rows[1:], strict=False))

    values = [float(t.label.replace(fmt.MINUS, "-")) for t in plot.x_ticks]
    steps = {round(b - a, 9) for a, b in zip(values, values[1:], strict=False)}
    assert len(steps) == 1 and steps.pop() in (1, 2, 2.5, 5, 10, 20, 25, 50)
    assert 0.0 in values
    assert _value(plot.x_ticks, plot.zero) == pytest.approx(0.0, abs=1e-9)
    low_edge, high_edge = (100 * x for x in fmt.lift_axis(snapshot.comparisons))
    assert _value(plot.x_ticks, frame.left) == pytest.approx(low_edge)
    assert _value(plot.x_ticks, frame.right) == pytest.approx(high_edge)

    guard, row = comparisons["refund_rate"], by_metric["refund_rate"]
    assert guard.lift_ci_high is None and guard.lift_ci_low is not None
    assert _value(plot.x_ticks, row.low) == pytest.approx(guard.lift_ci_low * 100)
    assert row.high == frame.right and row.arrow_high and not row.arrow_low
    assert row.colour == fmt.TONE_COLOURS["inconclusive"]

    primary, row = comparisons["checkout_conversion"], by_metric["checkout_conversion"]
    assert primary.lift is not None and primary.lift_ci_low is not None
    assert primary.lift_ci_high is not None
    assert_allclose([_value(plot.x_ticks, x) for x in (row.low, row.estimate, row.high)],
                    [primary.lift_ci_low * 100, primary.lift * 100, primary.lift_ci_high * 100])
    assert not (row.arrow_low or row.arrow_high)
    assert row.colour == fmt.TONE_COLOURS["good"]  # significant improvement
    assert [t.text for t in plot.texts] == [
        "Forest plot: relative lift by metric and treatment", "Lift, % (95% CI)"]


# --------------------------------------------------------------------------- cumulative lift


def _point(day: date, lift: float, low: float | None, high: float | None,
           treatment: str = "treatment") -> SeriesPoint:
    return SeriesPoint(day=day, metric="checkout_conversion", treatment=treatment,
                       control_n=1000, treatment_n=1000, diff=None, diff_ci_low=None,
                       diff_ci_high=None, lift=lift, lift_ci_low=low, lift_ci_high=high,
                       p_value=0.2, sequential=False)


def _y(plot: CumulativePlot, at: float) -> float:
    return _value(plot.y_ticks, at)


def test_charts_cumulative_with_one_day_spans_that_day_and_shows_its_interval() -> None:
    day = date(2026, 12, 1)
    plot = cumulative_plot([_point(day, 0.05, -0.02, 0.12),
                            _point(day, -0.03, -0.11, None, treatment="bigger")],
                           "checkout_conversion", 0.05, measure)
    assert plot is not None and plot.one_day
    assert [t.label for t in plot.x_ticks] == ["2026-11-30", "2026-12-01", "2026-12-02"]
    assert plot.x_ticks[0].at == plot.frame.left and plot.x_ticks[-1].at == plot.frame.right
    first, second = plot.series
    (bar,) = first.bars  # the interval, drawn as an error bar
    assert not first.bands
    assert_allclose([_y(plot, bar.y), _y(plot, bar.low or 0), _y(plot, bar.high or 0)],
                    [5.0, -2.0, 12.0])
    (open_bar,) = second.bars
    assert open_bar.high is None and _y(plot, open_bar.low or 0) == pytest.approx(-11.0)
    middle = plot.x_ticks[1].at  # the two treatments side by side around the day
    assert bar.x < middle < open_bar.x and middle - bar.x == pytest.approx(open_bar.x - middle)
    assert _y(plot, plot.zero) == pytest.approx(0.0, abs=1e-9)
    assert plot.texts[0].text == ("Cumulative lift of checkout_conversion over time "
                                  "(one day of data so far)")
    assert [e.name for e in plot.legend] == ["treatment", "bigger"]
    assert {s.colour for s in plot.series} <= set(fmt.SERIES_COLOURS)
    assert not {s.colour for s in plot.series} & set(fmt.TONE_COLOURS.values())


def test_charts_cumulative_over_days_draws_the_band_and_dated_ticks() -> None:
    days = [date(2026, 11, 28) + timedelta(days=i) for i in range(14)]
    plot = cumulative_plot([_point(d, 0.05 + i / 100, -0.02, 0.12 + i / 50)
                            for i, d in enumerate(days)], "m", 0.05, measure, one_sided=True)
    assert plot is not None and not plot.one_day
    (series,) = plot.series
    assert not series.bars and len(series.line) == 14
    (band,) = series.bands  # along the upper ends, back along the lower ones
    assert len(band) == 28
    assert_allclose([_y(plot, y) for _x, y in band[:14]], [12 + 2 * i for i in range(14)])
    assert_allclose([_y(plot, y) for _x, y in band[14:]], [-2.0] * 14)
    assert_allclose([_y(plot, y) for _x, y in series.line], [5 + i for i in range(14)])
    labels = [t.label for t in plot.x_ticks]
    assert labels[0] == "2026-11-28" and labels[1] in ("2026-11-29", "2026-11-30", "2026-12-01")
    assert all(date.fromisoformat(label) <= days[-1] for label in labels)
    spacing = {round(b.at - a.at, 6) for a, b in zip(plot.x_ticks, plot.x_ticks[1:],
                                                       strict=False)}
    assert len(spacing) == 1  # evenly spaced days
    assert plot.frame.left < plot.x_ticks[0].at and plot.x_ticks[-1].at < plot.frame.right
    assert plot.texts[1].text == "Cumulative lift, % (two-sided 95% CI)" and plot.texts[1].rotated


def test_charts_cumulative_leaves_a_gap_in_the_band_where_an_end_is_open() -> None:
    days = [date(2026, 12, 1) + timedelta(days=i) for i in range(6)]
    ends = [(-0.02, 0.1), (-0.02, 0.1), (None, 0.1), (-0.02, 0.1), (-0.02, 0.1), (-0.02, 0.1)]
    plot = cumulative_plot([_point(d, 0.04, low, high) for d, (low, high) in zip(days, ends,
                                                                                  strict=True)],
                           "m", 0.05, measure)
    assert plot is not None
    assert [len(band) for band in plot.series[0].bands] == [4, 6]  # days 1-2, then 4-6


def test_charts_nothing_to_draw_without_an_estimate() -> None:
    assert cumulative_plot([], "m", 0.05, measure) is None


# --------------------------------------------------------------------------- drawn into the PDF


def test_charts_drawn_as_vector_text_in_the_pdf() -> None:
    days = [date(2026, 12, 1) + timedelta(days=i) for i in range(8)]
    doc = _Pdf("charts", emoji_font=None)
    plot = cumulative_plot([_point(d, 0.05, -0.02, 0.12) for d in days], "checkout_conversion",
                           0.05, doc.text_width, width=doc.pdf.epw)
    assert plot is not None
    doc.cumulative_plot(plot)
    doc.para("After the chart.")
    data = bytes(doc.pdf.output())
    page = PdfReader(io.BytesIO(data)).pages[0]
    text = page.extract_text()
    assert "Cumulative lift of checkout_conversion over time" in text
    assert "Cumulative lift, % (95% CI)" in text
    for tick in (*plot.x_ticks, *plot.y_ticks):
        assert tick.label in text
    assert "After the chart." in text
    assert not page.images  # lines and text, not a picture


def test_charts_a_report_never_imports_matplotlib() -> None:
    """matplotlib only lends its DejaVu files (found without importing it: ``import
    matplotlib`` alone is 0.1 s cold). A fresh interpreter, so nothing imported it before."""
    code = (
        "import sys\n"
        "from datetime import date\n"
        "from core.analysis.snapshot import SeriesPoint\n"
        "from core.reports.charts import cumulative_plot\n"
        "from core.reports.pdf import _Pdf\n"
        "doc = _Pdf('x', emoji_font=None)\n"
        "p = SeriesPoint(day=date(2026, 12, 1), metric='m', treatment='t', control_n=1,\n"
        "                treatment_n=1, diff=None, diff_ci_low=None, diff_ci_high=None,\n"
        "                lift=0.05, lift_ci_low=-0.02, lift_ci_high=0.12, p_value=0.2,\n"
        "                sequential=False)\n"
        "doc.cumulative_plot(cumulative_plot([p], 'm', 0.05, doc.text_width))\n"
        "assert bytes(doc.pdf.output()).startswith(b'%PDF')\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'matplotlib']\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[3], timeout=120)
    assert done.returncode == 0, done.stderr
