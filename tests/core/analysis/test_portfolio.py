"""Portfolio overview: the demo's known problems surface as 'needs attention', nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from core import registry
from core.analysis import portfolio
from core.demo import seed_demo


def test_portfolio_flags_the_demo_experiments_built_to_need_attention(session: Session) -> None:
    today = datetime.now(UTC).date()
    seed_demo(session, today=today)
    reasons: dict[str, list[str]] = {}
    for item in portfolio.needs_attention(session, today=today):
        reasons.setdefault(item.name, []).append(item.reason)
    assert any("sample ratio mismatch" in r for r in reasons["Onboarding checklist"])
    assert reasons["Free shipping threshold"] == ["guardrail breach on refund_rate"]
    assert "reached its planned sample: ready for a decision" in reasons["Checkout button colour"]
    # Still collecting, clean: nothing to say.
    assert "Pricing page redesign" not in reasons
    assert "Recommendations carousel" not in reasons
    # Closed experiments never need attention.
    closed = {e.name for e in registry.all_experiments(session) if e.status in
              ("completed", "abandoned")}
    assert not closed & set(reasons)
    assert registry.status_counts(session) == {
        "proposed": 4, "running": 6, "completed": 4, "abandoned": 2
    }
