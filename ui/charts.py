"""Plotly figures for the Planner and Results pages. Each takes data computed in ``core`` and only
draws it (no statistics here)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from core.analysis.results import MetricComparison, SeriesPoint
from core.analysis.views import DailyUnits
from core.planning import Curve

STATE_COLOURS = {
    "significant": "#1a7f37",
    "not_significant": "#6e7781",
    "too_early": "#9a6700",
    "srm_untrustworthy": "#cf222e",
    "guardrail_breach": "#cf222e",
}
"""One colour per decision state, shared by the badges' meaning on the page."""
_PALETTE = ("#0969da", "#bf3989", "#8250df", "#1a7f37", "#bc4c00", "#6e7781")
_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "hovermode": "closest"}


def forest_plot(rows: Sequence[MetricComparison]) -> go.Figure:
    """Relative lift and its CI for every metric x treatment, coloured by decision state."""
    fig = go.Figure()
    shown = [r for r in rows if r.lift is not None]
    for state, colour in STATE_COLOURS.items():
        mine = [r for r in shown if r.decision_state == state]
        if not mine:
            continue
        fig.add_trace(go.Scatter(
            x=[r.lift for r in mine],
            y=[f"{r.metric} · {r.treatment}" for r in mine],
            mode="markers",
            marker={"color": colour, "size": 10},
            name=state,
            error_x={
                "type": "data", "symmetric": False,
                "array": [(r.lift_ci_high - r.lift) if r.lift_ci_high is not None else 0
                          for r in mine],  # type: ignore[operator]
                "arrayminus": [(r.lift - r.lift_ci_low) if r.lift_ci_low is not None else 0
                               for r in mine],  # type: ignore[operator]
            },
            hovertemplate="%{y}<br>lift %{x:.2%}<extra>" + state + "</extra>",
        ))
    fig.add_vline(x=0, line_dash="dash", line_color="#57606a")
    fig.update_layout(
        title="Relative lift with confidence intervals", xaxis_tickformat=".0%",
        height=max(260, 36 * len(shown) + 120), yaxis={"autorange": "reversed"},
        legend_title_text="Decision", **_LAYOUT,
    )
    return fig


def cumulative_lift(points: Sequence[SeriesPoint], metric: str) -> go.Figure:
    """Cumulative relative lift of each treatment over time with its CI band (the always-valid
    band for sequential experiments)."""
    fig = go.Figure()
    mine = [p for p in points if p.metric == metric and p.lift is not None]
    treatments = list(dict.fromkeys(p.treatment for p in mine))
    sequential = any(p.sequential for p in mine)
    band = "always-valid band" if sequential else "95% CI (valid on the planned day)"
    for i, treatment in enumerate(treatments):
        colour = _PALETTE[i % len(_PALETTE)]
        pts = [p for p in mine if p.treatment == treatment]
        days = [p.day for p in pts]
        high = [p.lift_ci_high for p in pts]
        low = [p.lift_ci_low for p in pts]
        fig.add_trace(go.Scatter(x=days, y=high, mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip", legendgroup=treatment))
        fig.add_trace(go.Scatter(x=days, y=low, mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=_fade(colour), name=f"{treatment}: {band}",
                                 hoverinfo="skip", legendgroup=treatment))
        fig.add_trace(go.Scatter(x=days, y=[p.lift for p in pts], mode="lines+markers",
                                 line={"color": colour}, name=f"{treatment}: lift",
                                 legendgroup=treatment,
                                 hovertemplate="%{x}<br>lift %{y:.2%}<extra></extra>"))
    fig.add_hline(y=0, line_dash="dash", line_color="#57606a")
    fig.update_layout(title=f"Cumulative lift of {metric}", yaxis_tickformat=".0%",
                      height=380, **_LAYOUT)
    return fig


def daily_units(rows: Sequence[DailyUnits]) -> go.Figure:
    """Units enrolled per day, one line per variant."""
    fig = go.Figure()
    variants = list(dict.fromkeys(r.variant for r in rows))
    for i, variant in enumerate(variants):
        mine = [r for r in rows if r.variant == variant]
        fig.add_trace(go.Scatter(x=[r.day for r in mine], y=[r.units for r in mine],
                                 mode="lines+markers", name=variant,
                                 line={"color": _PALETTE[i % len(_PALETTE)]}))
    fig.update_layout(title="Daily units per variant", yaxis_title="Units", height=320,
                      **_LAYOUT)
    return fig


def planner_curve(curve: Curve, *, title: str, percent_y: bool, marker_label: str) -> go.Figure:
    """A planner curve (power vs sample size, or MDE vs duration) with the plan marked."""
    fig = go.Figure(go.Scatter(x=list(curve.x), y=list(curve.y), mode="lines",
                               name=curve.y_label, line={"color": _PALETTE[0]}))
    if curve.marker_y is not None:
        fig.add_trace(go.Scatter(x=[curve.marker_x], y=[curve.marker_y], mode="markers",
                                 marker={"size": 12, "color": _PALETTE[1]}, name=marker_label))
    fig.update_layout(title=title, xaxis_title=curve.x_label, yaxis_title=curve.y_label,
                      height=340, showlegend=False, **_LAYOUT)
    if percent_y:
        fig.update_yaxes(tickformat=".0%")
    return fig


def _fade(hex_colour: str, alpha: float = 0.18) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
