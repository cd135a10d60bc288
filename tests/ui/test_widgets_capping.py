"""The Registry page's capping field: typed text to the plan's rules and back."""

import math

from core.registry.fields import CapSpec
from ui.widgets import format_capping, parse_capping


def test_parse_capping_reads_percentiles_and_fixed_values() -> None:
    assert parse_capping("revenue_per_user: p99, basket_value: 500, t: P99.5") == {
        "revenue_per_user": {"kind": "percentile", "value": 0.99},
        "basket_value": {"kind": "fixed", "value": 500.0},
        "t": {"kind": "percentile", "value": 0.995},
    }
    assert parse_capping("  ") == {}
    assert math.isnan(parse_capping("x: lots")["x"]["value"])


def test_format_capping_round_trips() -> None:
    rules = {"revenue_per_user": CapSpec(kind="percentile", value=0.99),
             "basket_value": CapSpec(kind="fixed", value=500.0)}
    text = format_capping(rules)
    assert text == "revenue_per_user: p99, basket_value: 500"
    assert {k: CapSpec(**v) for k, v in parse_capping(text).items()} == rules
