"""The app's charts give colours their meaning (ui/charts.py): neutral series, tones by outcome."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from pytest import approx

from core.analysis.snapshot import SeriesPoint
from core.format import TONE_COLOURS
from ui.charts import (
    OUTCOMES,
    PALETTE,
    calibration_points,
    cumulative_lift,
    owner_colours,
    rice_map,
)


def test_rice_map_gives_owners_neutral_colours_never_green_or_red() -> None:
    ideas = pd.DataFrame({
        "Idea": list("abcde"), "Owner": ["o1", "o2", "o3", "o4", "o5"],
        "Reach": [1e3, 2e3, 3e3, 4e3, 5e3], "Impact": [1, 2, 3, 0.5, 0.25],
        "Confidence %": [50] * 5, "Effort": [1, 2, 3, 4, 5], "Score": [1] * 5,
        "Rank": [1, 2, 3, 4, 5],
    })
    colours = {trace.marker.color for trace in rice_map(ideas).data}
    assert len(colours) == 5
    assert colours <= set(PALETTE)
    assert not colours & set(TONE_COLOURS.values())


def test_rice_map_keeps_each_owners_colour_and_labels_every_bubble() -> None:
    """Issue 23: the bubble colours changed between renders (plotly colours by order of
    appearance) and the bubbles were unlabelled."""
    ideas = pd.DataFrame({
        "Idea": ["Social login", "Wishlist", "Loyalty"], "Owner": ["maria", "dev", "li"],
        "Reach": [1e3, 2e3, 3e3], "Impact": [1, 2, 3], "Confidence %": [50] * 3,
        "Effort": [1, 2, 3], "Score": [1] * 3, "Rank": [1, 2, 3],
    })
    owners = ["dev", "li", "maria", "zoe"]

    def colours(frame: pd.DataFrame) -> dict[str, str]:
        return {t.name: t.marker.color for t in rice_map(frame, owners).data}

    everyone = colours(ideas)
    assert everyone == {o: c for o, c in owner_colours(owners).items() if o != "zoe"}
    assert colours(ideas.iloc[::-1]) == everyone  # re-ranked
    assert colours(ideas[ideas["Owner"] == "maria"]) == {"maria": everyone["maria"]}  # filtered
    labels = {t.name: list(t.text) for t in rice_map(ideas, owners).data}
    assert labels == {"dev": ["Wishlist"], "li": ["Loyalty"], "maria": ["Social login"]}
    # the legend sits under the plot: beside it, it squeezed the plot at 390 px (issue 23)
    assert rice_map(ideas, owners).layout.legend.orientation == "h"


def test_calibration_points_colour_outcomes_by_tone() -> None:
    points = pd.DataFrame({
        "Experiment": ["w", "l", "n"], "Owner": ["o"] * 3, "Decision": ["ship"] * 3,
        "Predicted impact": [1, 2, 3], "Confidence %": [50] * 3, "Realised lift": [0.1, -0.1, 0],
        "Raw lift": [0.15, -0.12, 0.01],
        "Outcome": [OUTCOMES["good"], OUTCOMES["bad"], OUTCOMES["inconclusive"]],
    })
    colours = {trace.name: trace.marker.color for trace in calibration_points(points).data}
    assert colours == {"significant win": TONE_COLOURS["good"],
                       "significant loss": TONE_COLOURS["bad"],
                       "not significant": TONE_COLOURS["inconclusive"]}


def _point(day: date, lift: float) -> SeriesPoint:
    return SeriesPoint(day=day, metric="m", treatment="treatment", control_n=1000,
                       treatment_n=1000, diff=None, diff_ci_low=None, diff_ci_high=None,
                       lift=lift, lift_ci_low=lift - 0.07, lift_ci_high=lift + 0.05,
                       p_value=0.3, sequential=False)


def test_cumulative_lift_of_one_day_shows_its_interval_as_an_error_bar() -> None:
    fig = cumulative_lift([_point(date(2026, 12, 7), 0.02)], "m")
    lift = next(t for t in fig.data if t.name == "treatment: lift")
    assert lift.error_y.array == (approx(0.05),) and lift.error_y.arrayminus == (approx(0.07),)
    days = [date(2026, 12, 1) + timedelta(days=i) for i in range(3)]
    over_days = cumulative_lift([_point(d, 0.02) for d in days], "m")
    assert next(t for t in over_days.data if t.name == "treatment: lift").error_y.array is None
