"""The report's two charts as geometry: where every line, marker, band and label goes, in
millimetres from the chart's top-left corner. Pure: no PDF here (:mod:`core.reports.pdf` draws
the result with fpdf2's vector primitives), so what a chart shows is testable without one.

:func:`forest_plot` shows every metric x treatment's lift with its interval, coloured by decision
state; :func:`cumulative_plot` the primary metric's cumulative lift over time with its band.
Text widths come from the caller's ``measure(text, size_pt) -> mm`` (the PDF's font metrics), so
labels are placed for the font they are set in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from core import format as fmt
from core.analysis.snapshot import ResultsSnapshot, SeriesPoint
from core.analysis.verdict import tone

Measure = Callable[[str, float], float]
"""The width in mm of a text at a font size in points."""
Point = tuple[float, float]

WIDTH = 180.0
"""A chart's width in mm: A4's text width between 15 mm margins."""
TITLE_SIZE, LABEL_SIZE, TICK_SIZE = 9.0, 8.0, 7.0
"""Font sizes in points: the title, an axis label, tick and row labels."""
PT = 25.4 / 72
"""One point in mm."""
TICK_GAP = 1.5
"""mm between the plot's frame and a tick label."""
FOREST_ROW = 9.0
"""mm per comparison in the forest plot (two lines of 7 pt and air)."""
CUMULATIVE_PLOT_HEIGHT = 56.0
"""mm of the cumulative chart's plot area."""
_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
_DAY_STEPS = (1, 2, 3, 7, 14, 28, 56, 91, 182, 364)


@dataclass(frozen=True)
class Frame:
    """The plot area inside a chart, mm from the chart's top-left corner."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class Scale:
    """Maps data values in [``low``, ``high``] linearly onto mm from ``start`` to ``end``."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


@dataclass(frozen=True)
class Tick:
    """A tick: its position along the axis (mm) and its label."""

    at: float
    label: str


@dataclass(frozen=True)
class Text:
    """A label: anchored at ``x`` (its left, centre or right end by ``align``) and centred
    vertically on ``y``; ``rotated`` texts run upwards, centred on (x, y)."""

    x: float
    y: float
    text: str
    size: float
    align: str = "C"
    style: str = ""
    rotated: bool = False


@dataclass(frozen=True)
class ForestRow:
    """One comparison: its two-line label, the interval's ends and the estimate (mm); an end
    beyond the axis or open (one-sided, or unbounded) stops at the edge with an arrow head."""

    y: float
    label: tuple[str, str]
    colour: str
    low: float
    high: float
    estimate: float
    arrow_low: bool
    arrow_high: bool


@dataclass(frozen=True)
class ForestPlot:
    width: float
    height: float
    frame: Frame
    texts: tuple[Text, ...]
    """The title and the axis label."""
    x_ticks: tuple[Tick, ...]
    zero: float
    """x of the zero-lift line."""
    label_right: float
    """x where the row labels end (right-aligned)."""
    rows: tuple[ForestRow, ...]


@dataclass(frozen=True)
class ErrorBar:
    """One day's interval drawn as an error bar; an open end (None) has no arm on that side."""

    x: float
    y: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class LiftSeries:
    """One treatment's cumulative lift: the line through its days, the interval band (one
    outline per run of days with both ends known) and, with one day of data, the error bar."""

    name: str
    colour: str
    line: tuple[Point, ...]
    bands: tuple[tuple[Point, ...], ...]
    bars: tuple[ErrorBar, ...]


@dataclass(frozen=True)
class LegendEntry:
    x: float
    y: float
    name: str
    colour: str


@dataclass(frozen=True)
class CumulativePlot:
    width: float
    height: float
    frame: Frame
    texts: tuple[Text, ...]
    """The title and the (rotated) axis label."""
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    zero: float
    """y of the zero-lift line."""
    series: tuple[LiftSeries, ...]
    legend: tuple[LegendEntry, ...]
    one_day: bool


def nice_ticks(low: float, high: float, max_count: int = 8) -> list[float]:
    """Round values within [``low``, ``high``] a step of 1, 2, 2.5 or 5 x 10^k apart: the
    smallest such step that gives at most ``max_count`` ticks (``low < high``)."""
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"an axis needs finite low < high, got {low!r}, {high!r}")
    if max_count < 2:
        raise ValueError(f"max_count must be at least 2, got {max_count}")
    magnitude = 10.0 ** math.floor(math.log10((high - low) / max_count))
    for step in (s * magnitude * scale for scale in (1, 10) for s in _STEPS):
        first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
        if last - first + 1 <= max_count:
            return [round(i * step, 12) + 0.0 for i in range(first, last + 1)]
    raise AssertionError("unreachable: a step of 100 x magnitude leaves at most 2 ticks")


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """A tick value with as many decimals as the step between ``ticks`` needs, and the
    typographic minus ("−5", "2.5")."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = 0
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    return f"{value:.{decimals}f}".replace("-", fmt.MINUS)


def day_ticks(first: date, last: date, max_count: int = 7) -> list[date]:
    """Days from ``first`` to ``last`` a whole number of days apart (1, 2, 3 days, a week,
    two, four...): the smallest such step that gives at most ``max_count`` ticks."""
    if last < first:
        raise ValueError(f"the last day {last} is before the first {first}")
    span = (last - first).days
    step = next((s for s in _DAY_STEPS if span // s + 1 <= max_count), max(span, 1))
    return [first + timedelta(days=i) for i in range(0, span + 1, step)]


def forest_plot(snapshot: ResultsSnapshot, measure: Measure, *,
                width: float = WIDTH) -> ForestPlot | None:
    """The forest plot of every metric x treatment with an estimate: lift (%) and interval on
    the axis :func:`core.format.lift_axis` picks, coloured by :func:`~core.analysis.verdict.tone`;
    None without estimates."""
    rows = [r for r in snapshot.comparisons if r.lift is not None]
    if not rows:
        return None
    labels = [(f"{r.metric} ({r.role})", f"{r.treatment} vs {r.control}") for r in rows]
    label_width = min(max(measure(line, TICK_SIZE) for pair in labels for line in pair),
                      width * 0.4)
    labels = [(_fit(a, label_width, measure), _fit(b, label_width, measure)) for a, b in labels]
    title_h = TITLE_SIZE * PT * 2.2
    frame = Frame(left=label_width + 3.0, top=title_h, right=width - 2.0,
                  bottom=title_h + FOREST_ROW * len(rows))
    edge_low, edge_high = (100 * x for x in fmt.lift_axis(rows))
    x = Scale(edge_low, edge_high, frame.left, frame.right)
    values = nice_ticks(edge_low, edge_high, _tick_room(frame, edge_low, edge_high, measure))
    ticks = tuple(Tick(x(v), tick_label(v, values)) for v in values)
    drawn = []
    for i, (r, label) in enumerate(zip(rows, labels, strict=True)):
        assert r.lift is not None
        # an open end (one-sided, +-inf; a stored snapshot keeps it as None: JSON has no
        # infinity) runs to the edge; a two-sided lift with neither end is unbounded (Fieller's
        # set when the control mean is within noise of 0, core.stats._effects): both edges
        open_end = r.alternative != "two-sided" or (r.lift_ci_low is None
                                                     and r.lift_ci_high is None)
        low = (-math.inf if open_end else r.lift) if r.lift_ci_low is None else r.lift_ci_low
        high = (math.inf if open_end else r.lift) if r.lift_ci_high is None else r.lift_ci_high
        low, high = low * 100, high * 100
        drawn.append(ForestRow(
            y=frame.top + FOREST_ROW * (i + 0.5), label=label,
            colour=fmt.TONE_COLOURS[tone(r)],
            low=x(max(low, edge_low)), high=x(min(high, edge_high)),
            estimate=x(min(max(r.lift * 100, edge_low), edge_high)),
            arrow_low=low < edge_low, arrow_high=high > edge_high))
    tick_h = TICK_SIZE * PT
    axis_label = f"Lift, % ({fmt.ci_label(snapshot.alpha, snapshot.analysis_mode == 'sequential')})"
    label_y = frame.bottom + TICK_GAP + tick_h * 1.8 + LABEL_SIZE * PT * 0.8
    texts = (
        Text((frame.left + frame.right) / 2, title_h * 0.45,
             "Forest plot: relative lift by metric and treatment", TITLE_SIZE),
        Text((frame.left + frame.right) / 2, label_y, axis_label, LABEL_SIZE),
    )
    return ForestPlot(width=width, height=label_y + LABEL_SIZE * PT, frame=frame, texts=texts,
                      x_ticks=ticks, zero=x(0.0), label_right=frame.left - 2.0,
                      rows=tuple(drawn))


def cumulative_plot(series: Sequence[SeriesPoint], metric: str, alpha: float, measure: Measure,
                    *, one_sided: bool = False, width: float = WIDTH) -> CumulativePlot | None:
    """The cumulative lift (%) of ``metric`` per treatment over time with its two-sided band,
    ``one_sided`` (the metric is tested one-sided) saying so in the axis label; None without
    estimates. With one day of data a band has no width, so each treatment's interval is an
    error bar and the axis spans that day and one either side."""
    points = [p for p in series if p.lift is not None]
    if not points:
        return None
    first, last = min(p.day for p in points), max(p.day for p in points)
    one_day = first == last
    treatments = list(dict.fromkeys(p.treatment for p in points))
    values = [0.0, *(100 * v for p in points
                     for v in (p.lift, p.lift_ci_low, p.lift_ci_high)
                     if v is not None and math.isfinite(v))]
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 1.0, high + 1.0
    pad = (high - low) * 0.05
    low, high = low - pad, high + pad

    title_h = TITLE_SIZE * PT * 2.2
    legend_h = TICK_SIZE * PT * 2.0
    top = title_h + legend_h
    bottom = top + CUMULATIVE_PLOT_HEIGHT
    y = Scale(low, high, bottom, top)
    y_values = nice_ticks(low, high, 7)
    y_labels = [tick_label(v, y_values) for v in y_values]
    axis_h = LABEL_SIZE * PT
    left = axis_h * 1.6 + max(measure(s, TICK_SIZE) for s in y_labels) + TICK_GAP + 0.5
    date_width = measure("2026-12-31", TICK_SIZE)
    frame = Frame(left=left, top=top, right=width - date_width / 2, bottom=bottom)

    if one_day:
        day_low, day_high = -1.0, 1.0
        days = [first - timedelta(days=1), first, first + timedelta(days=1)]
    else:
        span = (last - first).days
        day_low, day_high = -span * 0.03, span * 1.03
        days = day_ticks(first, last, max(2, int((frame.right - frame.left) // (date_width + 5))))
    x = Scale(day_low, day_high, frame.left, frame.right)

    def at(day: date) -> float:
        return x((day - first).days)

    drawn = []
    for i, treatment in enumerate(treatments):
        mine = sorted((p for p in points if p.treatment == treatment), key=lambda p: p.day)
        colour = fmt.SERIES_COLOURS[i % len(fmt.SERIES_COLOURS)]
        # one day: the treatments' bars side by side (a dodge of a tenth of a day), not on top
        dodge = (i - (len(treatments) - 1) / 2) * 0.1 if one_day else 0.0
        line = tuple((x((p.day - first).days + dodge), y(100 * _number(p.lift))) for p in mine)
        bars: tuple[ErrorBar, ...] = ()
        bands: list[tuple[Point, ...]] = []
        if one_day:
            bars = tuple(ErrorBar(px, py, _scaled(y, p.lift_ci_low), _scaled(y, p.lift_ci_high))
                         for (px, py), p in zip(line, mine, strict=True))
        else:
            run: list[SeriesPoint] = []
            for p in [*mine, None]:
                if p is not None and _scaled(y, p.lift_ci_low) is not None and _scaled(
                        y, p.lift_ci_high) is not None:
                    run.append(p)
                    continue
                if len(run) > 1:  # an outline along the upper ends and back along the lower
                    bands.append(tuple([(at(q.day), y(100 * _number(q.lift_ci_high)))
                                        for q in run]
                                       + [(at(q.day), y(100 * _number(q.lift_ci_low)))
                                          for q in reversed(run)]))
                run = []
        drawn.append(LiftSeries(treatment, colour, line, tuple(bands), bars))

    # the legend: one entry per treatment (a 6 mm line sample and the name), right-aligned
    sample = 7.0
    entries, cursor = [], frame.right
    for s in reversed(drawn):
        cursor -= measure(s.name, TICK_SIZE) + sample
        entries.append(LegendEntry(cursor, title_h + legend_h * 0.4, s.name, s.colour))
        cursor -= 4.0
    band = ("two-sided " if one_sided else "") + fmt.ci_label(alpha, points[0].sequential)
    title = f"Cumulative lift of {metric} over time" + (" (one day of data so far)"
                                                        if one_day else "")
    tick_h = TICK_SIZE * PT
    texts = (
        Text((frame.left + frame.right) / 2, title_h * 0.45, title, TITLE_SIZE),
        Text(axis_h * 0.6, (frame.top + frame.bottom) / 2, f"Cumulative lift, % ({band})",
             LABEL_SIZE, rotated=True),
    )
    return CumulativePlot(
        width=width, height=frame.bottom + TICK_GAP + tick_h * 1.6, frame=frame, texts=texts,
        x_ticks=tuple(Tick(at(d), fmt.day(d)) for d in days),
        y_ticks=tuple(Tick(y(v), s) for v, s in zip(y_values, y_labels, strict=True)),
        zero=y(0.0), series=tuple(drawn), legend=tuple(reversed(entries)), one_day=one_day)


def _number(x: float | None) -> float:
    assert x is not None
    return x


def _scaled(scale: Scale, fraction: float | None) -> float | None:
    """A lift fraction's position, None for an open or non-finite end."""
    if fraction is None or not math.isfinite(fraction):
        return None
    return scale(100 * fraction)


def _tick_room(frame: Frame, low: float, high: float, measure: Measure) -> int:
    """How many tick labels fit along a horizontal axis, at most 10."""
    widest = max(measure(tick_label(v, [v, v + 0.5]), TICK_SIZE) for v in (low, high))
    return max(2, min(10, int((frame.right - frame.left) // (widest + 6.0))))


def _fit(text: str, width: float, measure: Measure) -> str:
    """``text`` cut with an ellipsis to fit ``width`` mm at the tick size."""
    if measure(text, TICK_SIZE) <= width:
        return text
    while text and measure(text + "…", TICK_SIZE) > width:
        text = text[:-1]
    return text + "…"
