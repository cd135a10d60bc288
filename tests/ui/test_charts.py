"""The app's charts give colours their meaning (ui/charts.py): neutral series, tones by outcome."""

from __future__ import annotations

import pandas as pd

from core.format import TONE_COLOURS
from ui.charts import OUTCOMES, PALETTE, calibration_points, rice_map


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


def test_calibration_points_colour_outcomes_by_tone() -> None:
    points = pd.DataFrame({
        "Experiment": ["w", "l", "n"], "Owner": ["o"] * 3, "Decision": ["ship"] * 3,
        "Predicted impact": [1, 2, 3], "Confidence %": [50] * 3, "Realised lift": [0.1, -0.1, 0],
        "Outcome": [OUTCOMES["good"], OUTCOMES["bad"], OUTCOMES["inconclusive"]],
    })
    colours = {trace.name: trace.marker.color for trace in calibration_points(points).data}
    assert colours == {"significant win": TONE_COLOURS["good"],
                       "significant loss": TONE_COLOURS["bad"],
                       "not significant": TONE_COLOURS["inconclusive"]}
