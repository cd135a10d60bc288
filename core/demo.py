"""The demo portfolio: a metrics catalogue, experiments in every status, and backlog ideas.

"Infinite scroll on search" also guards the p90 page load time (a quantile metric). Two plans
show the non-default tests: "Infinite scroll on search" tests its primary one-sided
(revenue per session up, ``alternative="greater"``), and "Search ranking v2" gives its page-load
guardrail a 2% non-inferiority margin.

Seeding is idempotent: anything already present (by name) is left alone. Dates are relative to
the day of seeding, so a fresh demo always has experiments mid-flight.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core import catalogue
from core.auth import Actor
from core.errors import NotFound
from core.registry.lifecycle import create_experiment, transition_experiment
from core.registry.listing import all_experiments, get_experiment_by_name

DEMO_ACTOR = Actor(name="demo-seed", role="admin")

METRICS: list[dict[str, Any]] = [
    {"name": "checkout_conversion", "kind": "binomial", "unit": "%",
     "description": "Share of exposed users who complete a purchase."},
    {"name": "add_to_cart_rate", "kind": "binomial", "unit": "%",
     "description": "Share of exposed users who add at least one item to the cart."},
    {"name": "signup_rate", "kind": "binomial", "unit": "%",
     "description": "Share of exposed visitors who create an account."},
    {"name": "retention_d7", "kind": "binomial", "unit": "%",
     "description": "Share of users active again 7 days after exposure."},
    {"name": "refund_rate", "kind": "binomial", "unit": "%", "higher_is_better": False,
     "description": "Share of exposed users who request a refund."},
    {"name": "revenue_per_user", "kind": "mean", "unit": "USD",
     "description": "Gross revenue per exposed user over the experiment."},
    {"name": "orders_per_user", "kind": "mean", "unit": "orders",
     "description": "Completed orders per exposed user."},
    {"name": "session_minutes", "kind": "mean", "unit": "min",
     "description": "Average session length per exposed user."},
    {"name": "page_load_time_ms", "kind": "mean", "unit": "ms", "higher_is_better": False,
     "description": "Mean page load time experienced by the user (guardrail)."},
    {"name": "revenue_per_session", "kind": "ratio", "unit": "USD", "numerator": "revenue",
     "denominator": "sessions",
     "description": "Revenue per session: total revenue over total sessions of the exposed "
                    "users (a ratio metric, analysed per user with the delta method)."},
    {"name": "p90_page_load_ms", "kind": "quantile", "quantile_p": 0.9, "unit": "ms",
     "higher_is_better": False,
     "description": "90th percentile over users of each user's page load time: the slow tail "
                    "a mean hides (a quantile metric, order-statistic interval)."},
]

AB = [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}]


def _experiments(today: date) -> list[dict[str, Any]]:
    d = lambda days: today + timedelta(days=days)  # noqa: E731
    return [
        # ---- running
        {"status": "running", "start": d(-21), "fields": {
            "name": "Checkout button colour", "owner": "maria.lopez",
            "hypothesis": "A high-contrast green 'Buy now' button makes the next step obvious "
            "and lifts checkout conversion by at least 5% relative.",
            "target_segment": "All web shoppers", "primary_metric": "checkout_conversion",
            "guardrail_metrics": ["refund_rate"], "secondary_metrics": ["revenue_per_user"],
            "variants": AB, "planned_sample_size": 9000, "mde": 0.1, "alpha": 0.05,
            "power": 0.8, "planned_start": d(-21), "planned_end": d(0),
            "reach": 120000, "impact": 1, "confidence": 80, "effort": 1,
            "tags": ["checkout", "ui"]}},
        {"status": "running", "start": d(-28), "fields": {
            "name": "Search ranking v2", "owner": "dev.patel",
            "hypothesis": "Ranking by personalised relevance instead of popularity raises add-to-"
            "cart from search results.",
            "target_segment": "Users who search", "primary_metric": "add_to_cart_rate",
            "guardrail_metrics": ["page_load_time_ms"], "secondary_metrics": ["session_minutes"],
            "guardrail_margins": {"page_load_time_ms": 0.02},
            "variants": AB, "planned_sample_size": 8000, "mde": 0.08,
            "planned_start": d(-28), "planned_end": d(-1),
            "reach": 90000, "impact": 2, "confidence": 50, "effort": 6,
            "tags": ["search", "ranking"]}},
        {"status": "running", "start": d(-14), "fields": {
            "name": "Onboarding checklist", "owner": "sam.chen",
            "hypothesis": "A three-step checklist after signup helps new users reach their "
            "first order and raises 7-day retention.",
            "target_segment": "New signups", "primary_metric": "retention_d7",
            "guardrail_metrics": ["page_load_time_ms"], "variants": AB,
            "planned_sample_size": 6000, "mde": 0.1, "planned_start": d(-14),
            "planned_end": d(7), "reach": 40000, "impact": 2, "confidence": 60, "effort": 3,
            "tags": ["onboarding", "retention"]}},
        {"status": "running", "start": d(-21), "fields": {
            "name": "Free shipping threshold", "owner": "maria.lopez",
            "hypothesis": "Lowering the free-shipping threshold from $50 to $35 increases "
            "orders per user without hurting margins.",
            "target_segment": "Returning customers", "primary_metric": "orders_per_user",
            "guardrail_metrics": ["refund_rate", "page_load_time_ms"],
            "secondary_metrics": ["revenue_per_user"], "variants": AB,
            "planned_sample_size": 7000, "mde": 0.05, "planned_start": d(-21),
            "planned_end": d(0), "reach": 60000, "impact": 1, "confidence": 70, "effort": 2,
            "tags": ["pricing", "shipping"]}},
        {"status": "running", "start": d(-5), "fields": {
            "name": "Pricing page redesign", "owner": "olivia.brown",
            "hypothesis": "A simpler pricing page with a plan comparison table raises signups.",
            "target_segment": "Visitors of /pricing", "primary_metric": "signup_rate",
            "guardrail_metrics": ["page_load_time_ms"], "variants": AB,
            "planned_sample_size": 20000, "mde": 0.05, "planned_start": d(-5),
            "planned_end": d(30), "reach": 50000, "impact": 2, "confidence": 50, "effort": 4,
            "tags": ["pricing", "ui"]}},
        {"status": "running", "start": d(-14), "fields": {
            "name": "Recommendations carousel", "owner": "dev.patel",
            "hypothesis": "A 'customers also bought' carousel on product pages increases revenue "
            "per user; two layouts are tried.",
            "target_segment": "Product page viewers", "primary_metric": "revenue_per_user",
            "guardrail_metrics": ["page_load_time_ms"],
            "secondary_metrics": ["add_to_cart_rate"],
            "variants": [{"name": "control", "weight": 0.34},
                         {"name": "carousel_top", "weight": 0.33},
                         {"name": "carousel_bottom", "weight": 0.33}],
            "planned_sample_size": 10000, "mde": 0.05, "analysis_mode": "sequential",
            # revenue per user has a long right tail: each user's revenue counts at most the
            # 99th percentile of every user's, pooled across the arms (docs/statistics.md)
            "capping": {"revenue_per_user": {"kind": "percentile", "value": 0.99}},
            "planned_start": d(-14), "planned_end": d(14),
            "reach": 150000, "impact": 1, "confidence": 50, "effort": 5,
            "tags": ["recommendations", "revenue"]}},
        {"status": "running", "start": d(-14), "fields": {
            "name": "Infinite scroll on search", "owner": "sam.chen",
            "hypothesis": "Loading more results as the user scrolls keeps sessions going and "
            "raises revenue per session by at least 4%.",
            "target_segment": "Search users", "primary_metric": "revenue_per_session",
            "alternative": "greater",
            "guardrail_metrics": ["page_load_time_ms", "p90_page_load_ms"], "variants": AB,
            "planned_sample_size": 6000, "mde": 0.05, "planned_start": d(-14),
            "planned_end": d(7), "reach": 90000, "impact": 1, "confidence": 50, "effort": 2,
            "tags": ["search", "revenue"]}},
        {"status": "running", "start": d(-18), "fields": {
            "name": "Mobile express checkout", "owner": "maria.lopez",
            "hypothesis": "One-tap wallet payment shortens checkout on phones and lifts checkout "
            "conversion; desktop web should not change.",
            "target_segment": "All shoppers (country and platform recorded)",
            "primary_metric": "checkout_conversion", "guardrail_metrics": ["refund_rate"],
            "variants": AB, "planned_sample_size": 8000, "mde": 0.08,
            "planned_start": d(-18), "planned_end": d(3), "reach": 110000, "impact": 2,
            "confidence": 80, "effort": 3, "tags": ["checkout", "mobile"]}},
        # ---- completed
        {"status": "completed", "start": d(-120), "end": d(-92), "decision": "ship",
         "learnings": "Removing the address step cut abandonment; mobile gained most.",
         "fields": {
            "name": "One-page checkout", "owner": "maria.lopez",
            "hypothesis": "Collapsing checkout into one page reduces abandonment.",
            "target_segment": "All web shoppers", "primary_metric": "checkout_conversion",
            "guardrail_metrics": ["refund_rate"], "variants": AB,
            "planned_sample_size": 8000, "mde": 0.08, "planned_start": d(-120),
            "planned_end": d(-92), "reach": 120000, "impact": 2, "confidence": 80, "effort": 5,
            "tags": ["checkout"]}},
        {"status": "completed", "start": d(-90), "end": d(-69), "decision": "dont_ship",
         "learnings": "Users switched dark mode off again; no effect on session length.",
         "fields": {
            "name": "Dark mode default", "owner": "sam.chen",
            "hypothesis": "Defaulting to dark mode in the evening lengthens sessions.",
            "target_segment": "Mobile app users", "primary_metric": "session_minutes",
            "guardrail_metrics": ["retention_d7"], "variants": AB,
            "planned_sample_size": 5000, "mde": 0.05, "planned_start": d(-90),
            "planned_end": d(-69), "reach": 80000, "impact": 1, "confidence": 80, "effort": 2,
            "tags": ["ui", "engagement"]}},
        {"status": "completed", "start": d(-75), "end": d(-47), "decision": "iterate",
         "learnings": "More annual plans but lower revenue per user; test a smaller discount.",
         "fields": {
            "name": "Annual plan discount", "owner": "olivia.brown",
            "hypothesis": "A 20% annual-plan discount raises revenue per user.",
            "target_segment": "Visitors of /pricing", "primary_metric": "revenue_per_user",
            "guardrail_metrics": ["refund_rate"], "variants": AB,
            "planned_sample_size": 6000, "mde": 0.05, "planned_start": d(-75),
            "planned_end": d(-47), "reach": 50000, "impact": 2, "confidence": 50, "effort": 2,
            "tags": ["pricing"]}},
        {"status": "completed", "start": d(-60), "end": d(-39), "decision": "ship",
         "learnings": "Trust badges helped first-time buyers; no effect on returning ones.",
         "fields": {
            "name": "Trust badges on cart", "owner": "dev.patel",
            "hypothesis": "Security and returns badges on the cart page reassure first-time "
            "buyers and raise checkout conversion.",
            "target_segment": "First-time buyers", "primary_metric": "checkout_conversion",
            "guardrail_metrics": ["page_load_time_ms"], "variants": AB,
            "planned_sample_size": 7000, "mde": 0.08, "planned_start": d(-60),
            "planned_end": d(-39), "reach": 30000, "impact": 0.5, "confidence": 100,
            "effort": 0.5, "tags": ["checkout", "trust"]}},
        # ---- abandoned
        {"status": "abandoned", "start": d(-40), "end": d(-33),
         "reason": "The chatbot vendor contract ended; the feature was removed.",
         "fields": {
            "name": "Chatbot greeting", "owner": "sam.chen",
            "hypothesis": "A proactive chatbot greeting answers questions and lifts signups.",
            "target_segment": "First-time visitors", "primary_metric": "signup_rate",
            "variants": AB, "planned_sample_size": 9000, "mde": 0.05,
            "reach": 70000, "impact": 0.5, "confidence": 20, "effort": 8,
            "tags": ["support"]}},
        {"status": "abandoned", "reason": "Superseded by the pricing page redesign.",
         "fields": {
            "name": "Pricing FAQ accordion", "owner": "olivia.brown",
            "hypothesis": "An FAQ accordion on /pricing answers objections and lifts signups.",
            "target_segment": "Visitors of /pricing", "primary_metric": "signup_rate",
            "reach": 50000, "impact": 0.5, "confidence": 50, "effort": 1, "tags": ["pricing"]}},
        # ---- proposed (the backlog)
        {"status": "proposed", "fields": {
            "name": "Social login", "owner": "sam.chen",
            "hypothesis": "Sign in with Google/Apple removes password friction and raises "
            "signups.", "target_segment": "First-time visitors", "primary_metric": "signup_rate",
            "guardrail_metrics": ["page_load_time_ms"], "variants": AB,
            "planned_sample_size": 12000, "mde": 0.05,
            "reach": 70000, "impact": 2, "confidence": 80, "effort": 3,
            "tags": ["onboarding", "auth"]}},
        {"status": "proposed", "fields": {
            "name": "Wishlist reminder emails", "owner": "maria.lopez",
            "hypothesis": "A reminder when a wishlisted item drops in price brings users back "
            "to buy.", "target_segment": "Users with a wishlist",
            "primary_metric": "checkout_conversion", "reach": 15000, "impact": 1,
            "confidence": 50, "effort": 2, "tags": ["email", "retention"]}},
        {"status": "proposed", "fields": {
            "name": "Gamified loyalty points", "owner": "dev.patel",
            "hypothesis": "Points for every order and a visible tier badge raise repeat orders.",
            "target_segment": "Returning customers", "primary_metric": "orders_per_user",
            "mde": 0.01, "reach": 60000, "impact": 3, "confidence": 20, "effort": 12,
            "tags": ["loyalty", "retention"]}},
        {"status": "proposed", "fields": {
            "name": "Simplified signup form", "owner": "olivia.brown",
            "hypothesis": "Asking only for e-mail and password (no name, no phone) raises "
            "signups.", "target_segment": "First-time visitors", "primary_metric": "signup_rate",
            "reach": 70000, "impact": 1, "confidence": 80, "effort": 0.5,
            "tags": ["onboarding"]}},
    ]


def seed_demo(session: Session, *, today: date | None = None) -> str:
    """Seed the demo portfolio, its metric data, and the demo warehouse with the experiments
    fed from it (core.demo_warehouse)."""
    today = today or datetime.now(UTC).date()
    existing_metrics = {m.name for m in catalogue.list_metrics(session)}
    new_metrics = 0
    for metric in METRICS:
        if metric["name"] not in existing_metrics:
            catalogue.create_metric(session, data=metric, actor=DEMO_ACTOR)
            new_metrics += 1
    new_experiments = 0
    for spec in _experiments(today):
        try:
            get_experiment_by_name(session, name=spec["fields"]["name"])
            continue
        except NotFound:
            pass
        view = create_experiment(session, data=spec["fields"], actor=DEMO_ACTOR)
        new_experiments += 1
        if spec["status"] in ("running", "completed") or spec.get("start"):
            view = transition_experiment(
                session, experiment_id=view.id, to_status="running",
                expected_version=view.version, actor=DEMO_ACTOR, on=spec.get("start"),
            )
        if spec["status"] == "completed":
            view = transition_experiment(
                session, experiment_id=view.id, to_status="completed",
                expected_version=view.version, actor=DEMO_ACTOR, decision=spec["decision"],
                learnings=spec.get("learnings"), on=spec.get("end"),
            )
        elif spec["status"] == "abandoned":
            transition_experiment(
                session, experiment_id=view.id, to_status="abandoned",
                expected_version=view.version, actor=DEMO_ACTOR, reason=spec["reason"],
                on=spec.get("end"),
            )
    from core.demo_data import seed_metric_data

    data = seed_metric_data(session, today=today)
    from core.demo_warehouse import seed_demo_warehouse

    warehouse = seed_demo_warehouse(session, today=today)
    snapshots = _seed_snapshots(session)
    return (
        f"Demo portfolio: {new_metrics} metrics and {new_experiments} experiments added "
        f"({len(METRICS)} metrics and {len(_experiments(today))} experiments in the demo). {data} "
        f"{warehouse} {snapshots} results snapshots stored."
    )


def _seed_snapshots(session: Session) -> int:
    """Store a first results snapshot for every demo experiment with data and none yet."""
    from core.analysis import results

    stored = 0
    for exp in all_experiments(session):
        if exp.status not in ("running", "completed"):
            continue
        if results.latest_snapshot(session, experiment_id=exp.id) is not None:
            continue
        snapshot = results.compute_results(session, experiment_id=exp.id)
        if snapshot.data_through is None:
            continue
        results.refresh_results(session, experiment_id=exp.id, actor=DEMO_ACTOR)
        stored += 1
    return stored
