"""Planner routes: the planning service's numbers (the Planner page's and the backlog's), checked
against statsmodels, and clear 422s on impossible plans."""

from __future__ import annotations

import math
import threading
import time
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from core import planning, registry, stats
from core.backlog import rice
from core.config import get_settings
from db import repositories as repo
from db.models import AssignmentDailyCount, MetricDailyStat
from tests.api.conftest import headers, make_app
from tests.conftest import EDITOR
from tests.core.stats.reference_power import unpooled_n_control_ceil

URL = "/api/v1/planner"


@pytest.fixture
def reader(keys: dict[str, str]) -> dict[str, str]:
    return headers(keys["read"])


def test_planner_sample_size_matches_core_stats(client: TestClient, reader: dict) -> None:
    binomial = client.post(f"{URL}/sample-size", headers=reader,
                           json={"kind": "binomial", "baseline": 0.05, "mde": 0.1})
    assert binomial.status_code == 200, binomial.text
    n = stats.sample_size_proportion(0.05, 0.1)
    assert binomial.json() == {"sample_size": n, "n_per_variant": n, "total": 2 * n, "days": None}
    mean = client.post(f"{URL}/sample-size", headers=reader,
                       json={"kind": "mean", "sd": 10, "mde": 1, "alternative": "greater",
                             "variants": 3})
    assert mean.json()["sample_size"] == stats.sample_size_mean(10, 1, alternative="greater",
                                                                 variants=3)


def test_planner_power_mde_and_duration(client: TestClient, reader: dict) -> None:
    power = client.post(f"{URL}/power", headers=reader,
                        json={"kind": "binomial", "baseline": 0.05, "mde": 0.1, "n": 31000})
    assert power.json()["power"] == pytest.approx(stats.power_proportion(0.05, 0.1, 31000))
    mde = client.post(f"{URL}/mde", headers=reader,
                      json={"kind": "binomial", "baseline": 0.05, "n": 31000})
    expected = stats.mde_proportion(0.05, 31000)
    assert mde.json() == pytest.approx({"mde": expected, "relative_mde": expected / 0.05})
    mean_mde = client.post(f"{URL}/mde", headers=reader, json={"kind": "mean", "sd": 3, "n": 500})
    assert mean_mde.json()["mde"] == pytest.approx(stats.mde_mean(3, 500))
    assert mean_mde.json()["relative_mde"] is None
    days = client.post(f"{URL}/duration", headers=reader,
                       json={"n_per_variant": 9000, "daily_units": 1000, "exposure": 0.5,
                             "variants": 3, "weights": [0.5, 0.25, 0.25]})
    assert days.json() == {"days": stats.duration_days(9000, 1000, exposure=0.5, variants=3,
                                                       weights=[0.5, 0.25, 0.25])}


def test_planner_mean_plans_take_the_expected_variance_reduction(
    client: TestClient, reader: dict
) -> None:
    """`r_squared` (default 0) plans on sd^2 (1 - R^2): statsmodels TTestIndPower at effect size
    delta / (sd sqrt(1 - R^2)) (Deng et al. 2013), on SQLite and PostgreSQL alike."""
    from statsmodels.stats.power import TTestIndPower

    body = {"kind": "mean", "sd": 10, "mde": 1}
    plain = client.post(f"{URL}/sample-size", headers=reader, json=body)
    reduced = client.post(f"{URL}/sample-size", headers=reader, json=body | {"r_squared": 0.4})
    assert plain.status_code == reduced.status_code == 200, reduced.text
    effect = 1 / (10 * math.sqrt(1 - 0.4))
    reference = TTestIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8)
    assert reduced.json()["sample_size"] == math.ceil(reference)
    assert plain.json()["sample_size"] == math.ceil(
        TTestIndPower().solve_power(effect_size=0.1, alpha=0.05, power=0.8))
    power = client.post(f"{URL}/power", headers=reader,
                        json=body | {"n": 500, "r_squared": 0.4}).json()["power"]
    assert power == pytest.approx(TTestIndPower().power(effect_size=effect, nobs1=500,
                                                        alpha=0.05), rel=1e-10)
    mde = client.post(f"{URL}/mde", headers=reader,
                      json={"kind": "mean", "sd": 10, "n": 500, "r_squared": 0.4}).json()["mde"]
    assert TTestIndPower().power(effect_size=mde / (10 * math.sqrt(0.6)), nobs1=500,
                                 alpha=0.05) == pytest.approx(0.8, abs=1e-10)
    for bad in (1, 1.2, -0.1):
        refused = client.post(f"{URL}/sample-size", headers=reader,
                              json=body | {"r_squared": bad})
        assert refused.status_code == 422 and "body.mean.r_squared" in refused.text
    rate = client.post(f"{URL}/sample-size", headers=reader,
                       json={"kind": "binomial", "baseline": 0.05, "mde": 0.1, "r_squared": 0.3})
    assert rate.status_code == 422 and "r_squared" in rate.text  # means only


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [("sample-size", {"kind": "binomial", "baseline": 1.5, "mde": 0.1}, "baseline"),
     ("sample-size", {"kind": "binomial", "baseline": 0.9, "mde": 0.5}, "use a smaller mde"),
     ("sample-size", {"kind": "binomial", "baseline": 0.05, "mde": 0.1, "alpha": 0.5},
      "body.binomial.alpha"),
     ("sample-size", {"kind": "binomial", "baseline": 0.05, "mde": 0.1, "power": 0.3},
      "body.binomial.power"),
     ("sample-size", {"kind": "binomial", "baseline": 0.05, "mde": 0.1, "ratio": 2,
                      "weights": [0.5, 0.5]}, "not both"),
     ("sample-size", {"kind": "binomial", "baseline": 0.05, "mde": 0.1,
                      "weights": [0.5, 0.4]}, "add up to 100%"),
     ("sample-size", {"kind": "mean", "sd": 1, "mde": 0.1, "relative": True},
      "needs baseline_mean"),
     ("sample-size", {"kind": "poisson", "mde": 0.1}, "kind"),
     ("sample-size", {"kind": "mean", "sd": 1e12, "mde": 1e-9}, "no finite sample"),
     ("power", {"kind": "mean", "sd": 1, "mde": 0.1, "n": 1}, "body.mean.n"),
     ("mde", {"kind": "binomial", "baseline": 0.5, "n": 2, "power": 0.99},
      "too few to detect any effect"),
     ("duration", {"n_per_variant": 100, "daily_units": 10, "weights": [0.9, 0.9]},
      "weights"),
     ("duration", {"n_per_variant": 100, "daily_units": 0}, "daily_units")],
)
def test_planner_impossible_plans_are_422(
    client: TestClient, reader: dict, path: str, body: dict, words: str
) -> None:
    response = client.post(f"{URL}/{path}", json=body, headers=reader)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.text


# --------------------------------------------------------------------------- one answer per door
#
# The Planner page (core.planning.plan_sample_size, which pages/planner.py calls and
# tests/pages/test_planner_page.py holds it to), POST /planner/sample-size and the backlog's
# testability flag size the same experiment alike. The reference is independent of core:
# statsmodels' power of the test the engine runs, the unpooled two-proportion Wald z-test
# (statsmodels.stats.power.normal_power with that test's unpooled sd, both tails counted; Chow,
# Shao & Wang 2008 section 4.2), solved for the control's n with brentq
# (tests/core/stats/reference_power.py); the days are ceil(n_control / (daily users x exposure x
# control share)), when the control (and so every treatment, at its share) has its units.

_DAILY = 10_000.0


def _reference_n_control(baseline: float, relative_mde: float, weights: tuple[float, ...],
                         alternative: str, alpha: float = 0.05, power: float = 0.8) -> int:
    """The smallest control n whose binding comparison (smallest treatment share) reaches
    `power`, at alpha / (variants - 1) (Bonferroni), by statsmodels."""
    ratio = min(weights[1:]) / weights[0]
    treated = baseline * (1 - relative_mde if alternative == "less" else 1 + relative_mde)
    return unpooled_n_control_ceil(baseline, treated, power=power, ratio=ratio,
                                   alpha=alpha / (len(weights) - 1), alternative=alternative)


def _observed_segment(session: Session, segment: str, daily_units: float) -> None:
    """A past experiment on `segment`: one day of `daily_units` assigned, control converting
    10% (the backlog's observed traffic and baseline)."""
    exp = registry.create_experiment(session, actor=EDITOR, data={
        "name": f"Past test on {segment}", "owner": "o", "hypothesis": "h",
        "target_segment": segment, "primary_metric": "conversion",
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        "planned_sample_size": 1000})
    registry.transition_experiment(session, experiment_id=exp.id, to_status="running",
                                   expected_version=exp.version, actor=EDITOR)
    orm = repo.get_experiment(session, experiment_id=exp.id)
    assert orm is not None and orm.primary_metric_id is not None
    day = date(2026, 1, 5)
    for variant in orm.variants:
        session.add(AssignmentDailyCount(experiment_id=exp.id, variant_id=variant.id, day=day,
                                         units=int(daily_units / 2)))
    session.add(MetricDailyStat(experiment_id=exp.id, variant_id=orm.variants[0].id,
                                metric_id=orm.primary_metric_id, day=day, n=20_000,
                                sum=2_000, sum_squares=2_000, source="test"))
    session.flush()


DOORS = [
    pytest.param((0.2, 0.8), "two-sided", 1.0, 18, id="20/80 split: 18 days, not 29"),
    pytest.param((0.8, 0.2), "two-sided", 1.0, None, id="80/20 split"),
    pytest.param((0.5, 0.5), "greater", 1.0, None, id="one-sided"),
    pytest.param((0.4, 0.3, 0.3), "two-sided", 1.0, None, id="two treatments"),
    pytest.param((0.5, 0.5), "two-sided", 0.5, None, id="half the traffic exposed"),
]


@pytest.mark.parametrize(("weights", "alternative", "exposure", "days"), DOORS)
def test_planner_page_api_and_backlog_size_an_experiment_alike(
    client: TestClient, session: Session, reader: dict, metrics: list[str],
    weights: tuple[float, ...], alternative: str, exposure: float, days: int | None,
) -> None:
    n_control = _reference_n_control(0.10, 0.05, weights, alternative)
    expected_days = math.ceil(round(n_control / (_DAILY * exposure * weights[0]), 6))
    assert days is None or expected_days == days

    page = planning.plan_sample_size(planning.make_inputs(
        baseline=0.10, mde=0.05, weights=weights, alternative=alternative,
        daily_traffic=_DAILY, exposure=exposure))
    assert (page.n_control, page.days) == (n_control, expected_days)

    api = client.post(f"{URL}/sample-size", headers=reader, json={
        "kind": "binomial", "baseline": 0.10, "mde": 0.05, "alternative": alternative,
        "weights": list(weights), "daily_traffic": _DAILY, "exposure": exposure})
    assert api.status_code == 200, api.text
    assert api.json() == {"sample_size": n_control, "n_per_variant": page.n_per_variant,
                          "total": page.total, "days": expected_days}
    duration = client.post(f"{URL}/duration", headers=reader, json={
        "n_per_variant": page.n_per_variant, "daily_units": _DAILY, "exposure": exposure,
        "variants": len(weights), "weights": list(weights)})
    assert duration.json() == {"days": expected_days}

    # the backlog's traffic is what its segment was observed to enrol: the exposed share
    _observed_segment(session, "Doors", _DAILY * exposure)
    registry.create_experiment(session, actor=EDITOR, data={
        "name": "Door idea", "owner": "o", "hypothesis": "h", "target_segment": "Doors",
        "primary_metric": "conversion", "mde": 0.05, "alternative": alternative,
        "variants": [{"name": f"arm_{i}", "weight": w} for i, w in enumerate(weights)]})
    backlog = next(i for i in rice.rank_ideas(session, testable_weeks=8)
                   if i.experiment.name == "Door idea").testability
    assert (backlog.n_per_variant, backlog.days_needed) == (page.n_per_variant, expected_days)


# --------------------------------------------------------------------------- bounded work

HOSTILE = {"kind": "mean", "sd": 1, "n": 2, "alpha": 1e-12, "power": 0.999999}
"""Issue 24: 7.4 s of one worker thread before."""
SLOWEST_ALLOWED = {"kind": "mean", "sd": 1, "n": 2, "alpha": 1e-6, "power": 0.9999,
                   "variants": 20}
"""The slowest planner request still allowed (a seeded random search over every route and
field, at the limits and between): ~10-20 ms on a loaded 2-core machine."""


@pytest.mark.parametrize("route", ["mde", "sample-size"])
def test_planner_hostile_alpha_and_power_are_422_saying_the_range_at_once(
    client: TestClient, reader: dict, route: str
) -> None:
    body = dict(HOSTILE)
    if route == "sample-size":
        del body["n"]
        body["mde"] = 0.1
    started = time.perf_counter()
    response = client.post(f"{URL}/{route}", headers=reader, json=body)
    took = time.perf_counter() - started
    assert response.status_code == 422, response.text
    problem = response.json()
    assert {e["location"] for e in problem["errors"]} == {"body.mean.alpha", "body.mean.power"}
    assert "greater than or equal to 0.000001" in problem["detail"]
    assert "less than or equal to 0.9999" in problem["detail"]
    assert took < 1.0, f"{took:.2f} s"


def test_planner_slowest_allowed_plan_answers_quickly(client: TestClient, reader: dict) -> None:
    started = time.perf_counter()
    response = client.post(f"{URL}/mde", headers=reader, json=SLOWEST_ALLOWED)
    took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert response.json()["mde"] > 1000  # two units per arm, 19 comparisons at 5.3e-8
    assert took < 1.0, f"{took:.2f} s"  # ~20 ms; generous for a loaded machine


def test_planner_past_its_time_budget_is_422_with_the_reason(
    session: Session, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANNER_TIME_BUDGET_SECONDS", "1e-9")
    get_settings.cache_clear()
    try:
        with TestClient(make_app(session)) as client:
            response = client.post(f"{URL}/mde", headers=headers(keys["read"]),
                                   json={"kind": "mean", "sd": 1, "n": 100})
    finally:
        monkeypatch.delenv("PLANNER_TIME_BUDGET_SECONDS")
        get_settings.cache_clear()
    assert response.status_code == 422, response.text
    assert "within its 1e-09 s budget" in response.json()["detail"]


def test_planner_busy_threads_and_full_queue_are_503_with_retry_after(
    session: Session, keys: dict[str, str]
) -> None:
    """One planner thread, none may wait: while a call holds the thread, the next gets 503
    (the database routes, on their own threads, still answer)."""
    app = make_app(session, api_planner_threads=1, api_planner_max_queued=0)
    release = threading.Event()
    entered = threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(10)

    with TestClient(app) as client:
        pool = app.state.planner_pool

        async def occupy() -> None:
            await pool.run(hold)

        holder = threading.Thread(target=client.portal.call, args=(occupy,))
        holder.start()
        try:
            assert entered.wait(10)
            busy = client.post(f"{URL}/mde", headers=headers(keys["read"]),
                               json={"kind": "mean", "sd": 1, "n": 100})
            metrics = client.get("/api/v1/metrics", headers=headers(keys["read"]))
        finally:
            release.set()
            holder.join(10)
        after = client.post(f"{URL}/mde", headers=headers(keys["read"]),
                            json={"kind": "mean", "sd": 1, "n": 100})
    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] == "1"
    assert busy.headers["content-type"].startswith("application/problem+json")
    assert busy.json()["type"].endswith("overloaded")
    assert "planner" in busy.json()["detail"]
    assert metrics.status_code == 200
    assert after.status_code == 200
