"""Portfolio overview: the demo's known problems surface as 'needs attention', each result
reason being the experiment's verdict, and nothing else."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core import registry
from core.analysis import portfolio, results
from core.analysis.results import compute_results
from core.analysis.verdict import experiment_verdict
from core.demo import seed_demo
from tests.conftest import EDITOR


@pytest.fixture
def demo(demo_session: Session) -> Session:
    return demo_session


def test_portfolio_flags_the_demo_experiments_built_to_need_attention(session: Session) -> None:
    today = datetime.now(UTC).date()
    seed_demo(session, today=today)
    items = portfolio.needs_attention(session, today=today)
    reasons: dict[str, list[str]] = {}
    verdicts: dict[str, str | None] = {}
    for item in items:
        reasons.setdefault(item.name, []).append(item.reason)
        if item.recommendation is not None:
            verdicts[item.name] = item.recommendation
    assert verdicts["Onboarding checklist"] == "investigate"
    assert any("sample ratio mismatch" in r for r in reasons["Onboarding checklist"])
    # Significant on the primary AND a guardrail breach: never a win.
    assert verdicts["Free shipping threshold"] == "dont_ship"
    (free,) = reasons["Free shipping threshold"]
    assert "improves orders_per_user" in free and "guardrail refund_rate (treatment)" in free
    assert verdicts["Checkout button colour"] == "ship"
    # Sequential and already significant: a decision is due before the planned sample.
    assert verdicts["Recommendations carousel"] == "ship"
    # The ratio metric's planted +6% is a clean win.
    assert verdicts["Infinite scroll on search"] == "ship"
    # Still collecting, clean: nothing to say.
    assert "Pricing page redesign" not in reasons
    # Closed experiments never need attention.
    closed = {e.name for e in registry.all_experiments(session) if e.status in
              ("completed", "abandoned")}
    assert not closed & set(reasons)
    assert registry.status_counts(session) == {
        # incl. ratio, segments, and the three fed from the demo warehouse
        "proposed": 4, "running": 11, "completed": 4, "abandoned": 2
    }


def test_portfolio_standings_give_every_running_then_completed_experiment_its_verdict(
    demo: Session,
) -> None:
    found = portfolio.standings(demo)
    assert [s.status for s in found] == sorted((s.status for s in found),
                                               key=("running", "completed").index)
    assert {s.name for s in found} == {e.name for e in registry.all_experiments(demo)
                                       if e.status in ("running", "completed")}
    by_name = {s.name: s.verdict for s in found}
    assert by_name["Checkout button colour"].recommendation == "ship"
    assert by_name["Onboarding checklist"].recommendation == "investigate"  # SRM
    assert by_name["Free shipping threshold"].recommendation == "dont_ship"  # guardrail harm


def test_portfolio_csv_lists_every_experiment(demo: Session) -> None:
    rows = list(csv.DictReader(io.StringIO(portfolio.portfolio_csv(demo).removeprefix("\ufeff"))))
    assert {r["name"] for r in rows} == {e.name for e in registry.all_experiments(demo)}
    assert set(rows[0]) == set(portfolio.PORTFOLIO_CSV_COLUMNS)
    checkout = next(r for r in rows if r["name"] == "Checkout button colour")
    exp = registry.get_experiment_by_name(demo, name="Checkout button colour")
    lift = compute_results(demo, experiment_id=exp.id).rows(role="primary")[0].lift
    assert checkout["status"] == "running" and checkout["decision_state"] == "significant"
    assert checkout["recommendation"] == "ship"
    assert checkout["recommendation_reason"].startswith("Ship treatment: it significantly")
    # Significant on the primary with a guardrail breach: the CSV must not read as a win.
    free = next(r for r in rows if r["name"] == "Free shipping threshold")
    assert (free["decision_state"], free["recommendation"]) == ("significant", "dont_ship")
    assert "refund_rate" in free["recommendation_reason"]
    assert float(checkout["primary_lift"]) == pytest.approx(lift, rel=1e-5)
    carousel = [r for r in rows if r["name"] == "Recommendations carousel"]
    assert {r["treatment"] for r in carousel} == {"carousel_top", "carousel_bottom"}
    shipped = next(r for r in rows if r["name"] == "One-page checkout")
    assert shipped["decision"] == "ship" and shipped["primary_lift"]
    proposed = next(r for r in rows if r["name"] == "Social login")
    assert proposed["status"] == "proposed" and proposed["primary_lift"] == ""
    assert proposed["recommendation"] == "none"


def test_portfolio_result_reasons_are_the_verdict_of_the_latest_snapshot(demo: Session) -> None:
    for item in portfolio.needs_attention(demo):
        if item.recommendation in (None, "none"):
            continue
        snapshot = results.latest_snapshot(demo, experiment_id=item.experiment_id)
        assert snapshot is not None and snapshot.verdict is not None
        assert snapshot.verdict == experiment_verdict(snapshot)
        assert (item.recommendation, item.reason) == (
            snapshot.verdict.recommendation, snapshot.verdict.reason)


def test_portfolio_csv_neutralises_formulas(session: Session, tmp_path: Path) -> None:
    """OWASP "CSV Injection": the Reports page's portfolio CSV quotes names, owners and
    treatments starting with = + - @; a negative lift stays a number."""
    from tests.core.analysis.test_views import formula_experiment

    formula_experiment(session, tmp_path)
    registry.create_experiment(session, data={"name": "-1+1", "owner": "+owner"},
                               actor=EDITOR)
    rows = list(csv.DictReader(io.StringIO(
        portfolio.portfolio_csv(session).removeprefix("\ufeff"))))
    risky = next(r for r in rows if r["name"] == "'@risky")
    assert risky["treatment"] == "'=HYPERLINK(\"http://evil.example\")"
    assert float(risky["primary_lift"]) < 0 and risky["primary_lift"].startswith("-")
    plain = next(r for r in rows if r["name"] == "'-1+1")
    assert plain["owner"] == "'+owner"
