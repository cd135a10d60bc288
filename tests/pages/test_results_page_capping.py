"""The Results page says beside a capped metric what the plan capped it at and the value the
data was loaded with (the demo's Recommendations carousel: revenue per user at p99)."""

from __future__ import annotations

from tests.pages.test_results_page import _core, _results


def test_results_page_shows_the_cap_beside_the_metric(demo_app: str) -> None:
    at = _results("demo-viewer", "Recommendations carousel")
    snap = _core(demo_app, "Recommendations carousel")
    (capping,) = {c.capping for c in snap.comparisons if c.metric == "revenue_per_user"}
    assert capping is not None and capping.startswith("capped at p99 (value ")
    lines = [md.value for md in at.markdown if md.value.startswith("**revenue_per_user**")]
    assert lines and all(f"(primary · {capping})" in line for line in lines), lines
    others = [md.value for md in at.markdown if md.value.startswith("**page_load_time_ms**")]
    assert others and not any("capped" in line for line in others)
