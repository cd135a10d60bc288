"""Plotly figures for the Planner and Results pages. Each takes data computed in ``core`` and only
draws it (no statistics here).

Colour means the same on every chart and badge, from :func:`core.analysis.verdict.tone`:
green = good (a significant improvement), red = bad (a significant change in the direction the
metric's ``higher_is_better`` calls worse, or a guardrail breach), grey = inconclusive. Series
that carry no such meaning (variants, treatments, planner curves) use :data:`PALETTE`, which has
neither green nor red.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core import format as fmt
from core.analysis.snapshot import MetricComparison, SeriesPoint
from core.analysis.verdict import tone
from core.analysis.views import DailyUnits
from core.backlog.rice import IMPACT_LABELS
from core.planning import Curve
from core.types import Tone

TONE_BADGES: dict[Tone, str] = {"good": "green", "bad": "red", "inconclusive": "gray"}
TONE_LABELS: dict[Tone, str] = {"good": "Better", "bad": "Worse", "inconclusive": "Inconclusive"}
PALETTE = fmt.SERIES_COLOURS
"""Neutral series colours (no green, no red: those mean better and worse), as in the PDF."""
_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "hovermode": "closest"}
_DAY_MS = 86_400_000
BOTTOM_LEGEND = {"legend": {"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
                 "autosize": True}
"""A legend under the plot, not beside it: at 390 px a legend on the right left the forest
plot 60 px wide (issue 23)."""


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def forest_plot(rows: Sequence[MetricComparison]) -> go.Figure:
    """Relative lift and its CI for every metric x treatment, coloured better / worse /
    inconclusive. An open (one-sided) end of an interval is drawn to the edge of the plot."""
    fig = go.Figure()
    shown = [r for r in rows if _finite(r.lift) is not None]
    for name, colour in fmt.TONE_COLOURS.items():
        mine = [r for r in shown if tone(r) == name]
        if not mine:
            continue
        fig.add_trace(go.Scatter(
            x=[r.lift for r in mine],
            y=[f"{r.metric}<br>{r.treatment}" for r in mine],  # narrow labels: a wide plot
            mode="markers",
            marker={"color": colour, "size": 10},
            name=TONE_LABELS[name],
            customdata=[[fmt.signed_percent(r.lift),
                         fmt.interval(r.lift_ci_low, r.lift_ci_high, fmt.signed_percent,
                                      open_ends=r.alternative != "two-sided")]
                        for r in mine],
            error_x={
                "type": "data", "symmetric": False,
                "array": [_span(r.lift, r.lift_ci_high) for r in mine],
                "arrayminus": [_span(r.lift_ci_low, r.lift) for r in mine],
            },
            hovertemplate="%{y}<br>lift %{customdata[0]} %{customdata[1]}<extra></extra>",
        ))
    fig.add_vline(x=0, line_dash="dash", line_color="#57606a")
    fig.update_xaxes(range=list(fmt.lift_axis(shown)))
    fig.update_layout(
        title="Relative lift with confidence intervals", xaxis_tickformat="+.0%",
        height=max(280, 44 * len(shown) + 140), yaxis={"autorange": "reversed"},
        legend_title_text="Effect", **_LAYOUT, **BOTTOM_LEGEND,
    )
    return fig


def _span(low: float | None, high: float | None) -> float:
    """Length of one arm of an error bar; an open end (None, ±inf) is drawn 1 (100%) long."""
    low, high = _finite(low), _finite(high)
    if low is None or high is None:
        return 1.0
    return max(high - low, 0.0)


def cumulative_lift(points: Sequence[SeriesPoint], metric: str, *, alpha: float = 0.05,
                    one_sided: bool = False) -> go.Figure:
    """Cumulative relative lift of each treatment over time with its CI band (the always-valid
    band for sequential experiments). The band is two-sided; ``one_sided`` (the metric is tested
    one-sided, its interval in the table open at one end) says so in its label."""
    fig = go.Figure()
    mine = [p for p in points if p.metric == metric and _finite(p.lift) is not None]
    treatments = list(dict.fromkeys(p.treatment for p in mine))
    sequential = any(p.sequential for p in mine)
    band = (("two-sided " if one_sided else "") + fmt.ci_label(alpha, sequential)
            + ("" if sequential else " (valid on the planned day)"))
    for i, treatment in enumerate(treatments):
        colour = PALETTE[i % len(PALETTE)]
        pts = [p for p in mine if p.treatment == treatment]
        days = [p.day for p in pts]
        high = [_finite(p.lift_ci_high) for p in pts]
        low = [_finite(p.lift_ci_low) for p in pts]
        fig.add_trace(go.Scatter(x=days, y=high, mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip", legendgroup=treatment))
        fig.add_trace(go.Scatter(x=days, y=low, mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=_fade(colour), name=f"{treatment}: {band}",
                                 hoverinfo="skip", legendgroup=treatment))
        # one day: the band has no width, so the interval is an error bar on the point
        bar = None if len(set(days)) > 1 else {
            "type": "data", "symmetric": False, "color": colour, "thickness": 2, "width": 8,
            "array": [0.0 if h is None else h - float(p.lift or 0) for h, p in zip(high, pts,
                                                                                  strict=True)],
            "arrayminus": [0.0 if lo is None else float(p.lift or 0) - lo
                           for lo, p in zip(low, pts, strict=True)]}
        fig.add_trace(go.Scatter(x=days, y=[p.lift for p in pts], mode="lines+markers",
                                 line={"color": colour}, name=f"{treatment}: lift",
                                 legendgroup=treatment, error_y=bar,
                                 customdata=[fmt.signed_percent(p.lift) for p in pts],
                                 hovertemplate="%{x|%Y-%m-%d}<br>lift %{customdata}"
                                               "<extra></extra>"))
    fig.add_hline(y=0, line_dash="dash", line_color="#57606a")
    fig.update_layout(title=f"Cumulative lift of {metric}", yaxis_tickformat="+.0%",
                      height=420, **_LAYOUT, **BOTTOM_LEGEND)
    _day_axis(fig, [p.day for p in mine])
    return fig


def daily_units(rows: Sequence[DailyUnits]) -> go.Figure:
    """Units enrolled per day, one line per variant."""
    fig = go.Figure()
    variants = list(dict.fromkeys(r.variant for r in rows))
    for i, variant in enumerate(variants):
        mine = [r for r in rows if r.variant == variant]
        fig.add_trace(go.Scatter(x=[r.day for r in mine], y=[r.units for r in mine],
                                 mode="lines+markers", name=variant,
                                 line={"color": PALETTE[i % len(PALETTE)]},
                                 hovertemplate="%{x|%Y-%m-%d}<br>%{y:,} units<extra>"
                                               + variant + "</extra>"))
    fig.update_layout(title="Daily units per variant", yaxis_title="Units", height=320,
                      yaxis_tickformat=",d", yaxis_rangemode="tozero", **_LAYOUT,
                      **BOTTOM_LEGEND)
    _day_axis(fig, [r.day for r in rows])
    return fig


def _day_axis(fig: go.Figure, days: Sequence[date]) -> None:
    """Ticks on whole days (never hours or milliseconds), also when the data covers one day."""
    fig.update_xaxes(type="date", tickformat="%b %d", hoverformat="%Y-%m-%d")
    if not days:
        return
    first, last = min(days), max(days)
    span = (last - first).days
    if span <= 10:
        fig.update_xaxes(dtick=_DAY_MS, tick0=first.isoformat(),
                         range=[(first - timedelta(hours=12)).isoformat(),
                                (last + timedelta(hours=12)).isoformat()])


def planner_curve(curve: Curve, *, title: str, percent_y: bool, marker_label: str) -> go.Figure:
    """A planner curve (power vs sample size, or MDE vs duration) with the plan marked."""
    fig = go.Figure(go.Scatter(x=list(curve.x), y=list(curve.y), mode="lines",
                               name=curve.y_label, line={"color": PALETTE[0]}))
    if curve.marker_y is not None:
        fig.add_trace(go.Scatter(x=[curve.marker_x], y=[curve.marker_y], mode="markers",
                                 marker={"size": 12, "color": PALETTE[1]}, name=marker_label))
    fig.update_layout(title=title, xaxis_title=curve.x_label, yaxis_title=curve.y_label,
                      height=340, showlegend=False, xaxis_tickformat=",", **_LAYOUT)
    if percent_y:
        fig.update_yaxes(tickformat=".0%")
    return fig


def _fade(hex_colour: str, alpha: float = 0.18) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def owner_colours(owners: Sequence[str]) -> dict[str, str]:
    """One neutral colour per owner, by the owner's place in the sorted list of every owner: the
    same owner keeps their colour whatever the filters show or the ranking does (plotly's own
    colouring goes by order of appearance, so colours changed between renders)."""
    return {owner: PALETTE[i % len(PALETTE)] for i, owner in enumerate(sorted(set(owners)))}


def rice_map(ideas: pd.DataFrame, owners: Sequence[str] | None = None) -> go.Figure:
    """The backlog's ideas, impact against effort, bubble size = reach, each bubble labelled with
    its idea and coloured by owner (:func:`owner_colours` over `owners`, every owner of the
    backlog; default: the ones shown). Neutral colours: owners are neither good nor bad, so no
    green and no red. ``ideas`` has the Backlog table's columns (Idea, Owner, Reach, Impact,
    Confidence %, Effort, Score, Rank)."""
    colours = owner_colours(list(owners) if owners is not None else list(ideas["Owner"]))
    fig = px.scatter(
        ideas, x="Effort", y="Impact", size="Reach", color="Owner", hover_name="Idea",
        text="Idea",
        hover_data={"Score": ":,.0f", "Reach": ":,.0f", "Confidence %": True, "Rank": True},
        size_max=60, title="RICE map (bubble size = reach)",
        labels={"Effort": "Effort (person-weeks)"}, color_discrete_map=colours,
        category_orders={"Owner": sorted(colours)},
    )
    fig.update_traces(textposition="top center", textfont={"size": 11},
                      cliponaxis=False)
    fig.update_yaxes(tickvals=list(IMPACT_LABELS),
                     ticktext=[f"{v:g} {n}" for v, n in IMPACT_LABELS.items()])
    fig.update_layout(**_LAYOUT, **BOTTOM_LEGEND)
    return fig


OUTCOMES: dict[Tone, str] = {
    "good": "significant win", "bad": "significant loss", "inconclusive": "not significant",
}
"""How a completed experiment's primary metric came out, by tone (the calibration chart)."""


def calibration_bars(groups: pd.DataFrame, by: str) -> go.Figure:
    """Predicted confidence against realised win rate per group ``by`` (owner, tag, quarter):
    the long table of columns ``by``, Measure, Share. Neutral colours: neither is good or bad."""
    fig = px.bar(groups, x=by, y="Share", color="Measure", barmode="group",
                 title="Predicted confidence against realised win rate",
                 color_discrete_sequence=list(PALETTE))
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    fig.update_layout(**_LAYOUT, **BOTTOM_LEGEND)
    return fig


def calibration_points(points: pd.DataFrame) -> go.Figure:
    """Predicted impact against realised lift per completed experiment, coloured by outcome:
    green = significant win, red = significant loss, grey = not significant. The realised lift
    is the shrunk one (empirical Bayes); hovering shows the raw lift ("Raw lift")."""
    fig = px.scatter(
        points, x="Predicted impact", y="Realised lift", color="Outcome",
        size="Confidence %", hover_name="Experiment",
        hover_data={"Owner": True, "Decision": True, "Raw lift": ":+.1%",
                    "Realised lift": ":+.1%"},
        title="Predicted impact against realised lift of the primary metric "
              "(shrunk, empirical Bayes)",
        color_discrete_map={OUTCOMES[t]: fmt.TONE_COLOURS[t] for t in OUTCOMES},
        category_orders={"Outcome": list(OUTCOMES.values())},
    )
    fig.update_yaxes(tickformat="+.0%")
    fig.update_layout(**_LAYOUT, **BOTTOM_LEGEND)
    return fig
