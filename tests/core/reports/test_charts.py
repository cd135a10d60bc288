"""The PDF's forest plot draws an open (one-sided) interval to the axis edge with an arrow head,
never cut off at the estimate (core/reports/charts.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core import registry
from core.analysis.results import latest_snapshot
from core.reports.charts import forest_figure


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
