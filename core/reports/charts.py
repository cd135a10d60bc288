"""Report charts as PNG bytes, drawn by matplotlib's Agg backend (no display, no system fonts).

:func:`forest_plot_png` shows every metric x treatment's lift with its interval, coloured by
decision state; :func:`cumulative_lift_png` the primary metric's cumulative lift over time.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np

from core import format as fmt
from core.analysis.snapshot import ResultsSnapshot, SeriesPoint
from core.analysis.verdict import tone

if TYPE_CHECKING:
    from matplotlib.figure import Figure


_warming: threading.Thread | None = None
_warming_lock = threading.Lock()


def _import_matplotlib() -> None:
    import matplotlib.dates  # noqa: F401
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401


def warm_up() -> threading.Thread:
    """Import matplotlib (about 0.8 s cold) on a background thread, once per process, so the
    first report a user asks for does not wait for it (the Reports page calls this when it
    opens). Returns the thread; importing again later is free either way."""
    global _warming
    with _warming_lock:
        if _warming is None:
            _warming = threading.Thread(target=_import_matplotlib, name="matplotlib-warm-up",
                                        daemon=True)
            _warming.start()
        return _warming


def forest_plot_png(snapshot: ResultsSnapshot) -> bytes | None:
    """Lift and CI of every metric x treatment (PNG), or None without estimates."""
    fig = forest_figure(snapshot)
    if fig is None:
        return None
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def forest_figure(snapshot: ResultsSnapshot) -> Figure | None:
    """The forest plot's matplotlib figure (:func:`forest_plot_png` renders it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in snapshot.comparisons if r.lift is not None]
    if not rows:
        return None
    fig = Figure(figsize=(7.2, 0.42 * len(rows) + 1.1), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    edge_low, edge_high = fmt.lift_axis(rows)
    for y, r in zip(ys, rows, strict=True):
        colour = fmt.TONE_COLOURS[tone(r)]
        assert r.lift is not None
        # an end that is open (one-sided, +-inf) or beyond the axis is drawn to the edge, with an
        # arrow head saying it goes on
        # (a stored snapshot keeps an open end as None: JSON has no infinity); a two-sided lift
        # with neither end is unbounded (Fieller's set when the control mean is within noise of
        # 0, core.stats._effects), drawn to both edges
        open_end = r.alternative != "two-sided" or (r.lift_ci_low is None
                                                     and r.lift_ci_high is None)
        low = (-math.inf if open_end else r.lift) if r.lift_ci_low is None else r.lift_ci_low
        high = (math.inf if open_end else r.lift) if r.lift_ci_high is None else r.lift_ci_high
        ax.plot([max(low, edge_low) * 100, min(high, edge_high) * 100], [y, y], color=colour,
                linewidth=2)
        if low < edge_low:
            ax.plot([edge_low * 100], [y], "<", color=colour, markersize=6, clip_on=False)
        if high > edge_high:
            ax.plot([edge_high * 100], [y], ">", color=colour, markersize=6, clip_on=False)
        ax.plot([r.lift * 100], [y], "o", color=colour, markersize=6)
    ax.set_xlim(edge_low * 100, edge_high * 100)
    ax.axvline(0, color="#24292f", linewidth=0.8, linestyle="--")
    ax.set_yticks(ys, [f"{r.metric} ({r.role})\n{r.treatment} vs {r.control}" for r in rows],
                  fontsize=7)
    label = fmt.ci_label(snapshot.alpha, snapshot.analysis_mode == "sequential")
    ax.set_xlabel(f"Lift, % ({label})", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title("Forest plot: relative lift by metric and treatment", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def cumulative_lift_png(series: Sequence[SeriesPoint], metric: str, alpha: float,
                        one_sided: bool = False) -> bytes | None:
    """Cumulative lift of the primary metric per treatment over time, with its two-sided band
    (PNG); ``one_sided`` (the metric is tested one-sided) says so in the axis label."""
    fig = cumulative_figure(series, metric, alpha, one_sided)
    if fig is None:
        return None
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def cumulative_figure(series: Sequence[SeriesPoint], metric: str, alpha: float,
                      one_sided: bool = False) -> Figure | None:
    """The cumulative lift's matplotlib figure (:func:`cumulative_lift_png` renders it), or None
    without estimates. With one day of data a band has no width, so each treatment's interval
    is an error bar and the axis spans that day and one either side (not the years matplotlib
    picks around a single date)."""
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = [p for p in series if p.lift is not None]
    if not points:
        return None
    fig = Figure(figsize=(7.2, 3.0), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    one_day = len({p.day for p in points}) == 1
    for treatment in dict.fromkeys(p.treatment for p in points):
        mine = [p for p in points if p.treatment == treatment]
        days = np.array([p.day for p in mine], dtype="datetime64[D]")
        lifts = np.array([p.lift * 100 if p.lift is not None else math.nan for p in mine])
        low = np.array([p.lift_ci_low * 100 if p.lift_ci_low is not None else math.nan
                        for p in mine])
        high = np.array([p.lift_ci_high * 100 if p.lift_ci_high is not None else math.nan
                         for p in mine])
        if one_day:
            # an open end (None) has no bar on that side
            below = np.nan_to_num(lifts - low, nan=0.0)
            above = np.nan_to_num(high - lifts, nan=0.0)
            ax.errorbar(days, lifts, yerr=np.vstack([below, above]), fmt="o", capsize=6,
                        elinewidth=2, label=treatment)
        else:
            line, = ax.plot(days, lifts, marker=".", label=treatment)
            ax.fill_between(days, low, high, alpha=0.15, color=line.get_color())
    if one_day:
        day = points[0].day
        ax.set_xlim(day - timedelta(days=1), day + timedelta(days=1))  # type: ignore[arg-type]
        ax.xaxis.set_major_locator(mdates.DayLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.axhline(0, color="#24292f", linewidth=0.8, linestyle="--")
    sequential = points[0].sequential
    band = ("two-sided " if one_sided else "") + fmt.ci_label(alpha, sequential)
    ax.set_ylabel(f"Cumulative lift, % ({band})", fontsize=8)
    title = f"Cumulative lift of {metric} over time"
    ax.set_title(title + (" (one day of data so far)" if one_day else ""), fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
