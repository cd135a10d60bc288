"""GET /api/v1/experiments/{id}/segments: the exploratory drill-down through the API, on SQLite
and PostgreSQL, from data uploaded through the API.

Every number is compared with core.analysis.segments.segment_results on the same session (the
route adds nothing), and the statistics with independent references: the Wald two-proportion
z test and Welch's t test from scipy (``stats.norm``, ``stats.ttest_ind_from_stats``), the SRM
chi-square from ``scipy.stats.chisquare`` and the Holm correction from statsmodels
``multipletests``.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose
from scipy import stats
from sqlalchemy.orm import Session
from statsmodels.stats.multitest import multipletests

from core.analysis import segments
from core.stats import OTHER
from tests.api.conftest import headers

URL = "/api/v1/experiments"
LATENCY = ((250.0, 60.0), (254.0, 61.0))  # latency guardrail (mean, sd): control, green
# country -> ((control n, green n), (control conversions, green conversions))
COUNTRIES = {
    "US": ((3000, 3000), (300, 390)),
    "DE": ((2000, 2600), (200, 260)),  # assignment 2000 : 2600 fails the slice's SRM check
    "FR": ((1500, 1500), (150, 160)),
    "IT": ((400, 400), (40, 44)),
    "ES": ((300, 300), (30, 27)),
}
TOP_N = 3  # US, DE, FR on their own; IT and ES pooled as "(other)"


def _latency_sums(n: int, arm: int) -> str:
    mean, sd = LATENCY[arm]
    return f"{n * mean!r},{(n - 1) * sd * sd + n * mean * mean!r}"


def segment_csv(day: str) -> bytes:
    """Aggregated rows: the whole arm per metric, and the same per country."""
    rows = ["variant,date,metric,n,sum,sum_squares,dimension,dimension_value"]
    for i, variant in enumerate(("control", "green")):
        n_all = sum(n[i] for n, _x in COUNTRIES.values())
        x_all = sum(x[i] for _n, x in COUNTRIES.values())
        rows.append(f"{variant},{day},conversion,{n_all},{x_all},{x_all},,")
        rows.append(f"{variant},{day},latency,{n_all},{_latency_sums(n_all, i)},,")
        for country, (n, x) in COUNTRIES.items():
            rows.append(f"{variant},{day},conversion,{n[i]},{x[i]},{x[i]},country,{country}")
            rows.append(f"{variant},{day},latency,{n[i]},{_latency_sums(n[i], i)},"
                        f"country,{country}")
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def sliced(client: TestClient, writer: dict[str, str], running: int) -> int:
    day = datetime.now(UTC).date().isoformat()
    upload = client.post(f"{URL}/{running}/data", headers=writer,
                         files={"file": ("countries.csv", segment_csv(day), "text/csv")})
    assert upload.status_code == 200, upload.text
    return running


def _finite(value: Any) -> Any:
    """What JSON carries for a core number: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _wald_p(n: tuple[int, int], x: tuple[int, int]) -> float:
    p_c, p_t = x[0] / n[0], x[1] / n[1]
    se = math.sqrt(p_c * (1 - p_c) / n[0] + p_t * (1 - p_t) / n[1])
    return float(2 * stats.norm.sf(abs(p_t - p_c) / se))


def _pooled(value: str, arm: int) -> tuple[float, float]:
    """Latency mean and sd of a slice's arm (IT and ES pooled for "(other)")."""
    parts = ["IT", "ES"] if value == OTHER else [value]
    ns = [COUNTRIES[c][0][arm] for c in parts]
    mean, sd = LATENCY[arm]
    n = sum(ns)
    return mean, sd * math.sqrt(sum(k - 1 for k in ns) / (n - 1))


def test_segments_route_returns_what_core_computes(
    client: TestClient, session: Session, writer: dict[str, str], sliced: int
) -> None:
    got = client.get(f"{URL}/{sliced}/segments", params={"top_n": TOP_N}, headers=writer)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["experiment_id"] == sliced
    assert body["exploratory"] == segments.EXPLORATORY
    (core_b,) = segments.segment_results(session, experiment_id=sliced, top_n=TOP_N)
    (b,) = body["breakdowns"]
    want = _finite(asdict(core_b))
    for comparison in want["comparisons"]:
        del comparison["dimension"]
    for one in want["slices"]:
        del one["dimension"]
    assert b == want


def test_segments_route_numbers_match_independent_references(
    client: TestClient, writer: dict[str, str], sliced: int
) -> None:
    (b,) = client.get(f"{URL}/{sliced}/segments", params={"top_n": TOP_N},
                      headers=writer).json()["breakdowns"]
    assert b["dimension"] == "country" and b["top_n"] == TOP_N and b["correction"] == "holm"
    assert b["exploratory"].startswith("Exploratory")
    slices = {s["value"]: s for s in b["slices"]}
    assert [s["value"] for s in b["slices"]] == ["US", "DE", "FR", OTHER]
    assert slices[OTHER]["members"] == ["ES", "IT"]
    assert slices[OTHER]["units"] == 400 + 400 + 300 + 300
    pooled = {OTHER: ((700, 700), (70, 71))}
    spec = {**{c: COUNTRIES[c] for c in ("US", "DE", "FR")}, **pooled}
    for value, (n, _x) in spec.items():
        assert_allclose(slices[value]["srm_p_value"], stats.chisquare(list(n)).pvalue,
                        rtol=1e-9)
    assert slices["DE"]["srm_flagged"] and not slices["US"]["srm_flagged"]

    rows = {(c["value"], c["metric"]): c for c in b["comparisons"]}
    assert len(rows) == 4 * 2  # 4 slices x 2 metrics (conversion, latency) x 1 treatment
    de = rows[("DE", "conversion")]
    assert de["blocked"] and de["diff"] is None and de["adjusted_p_value"] is None
    assert not de["significant"] and "Sample ratio mismatch in country = DE" in de["reason"]

    family, raw = [], []
    for value, (n, x) in spec.items():
        if value == "DE":
            continue
        conv = rows[(value, "conversion")]
        assert conv["test"] == "wald_z"
        assert_allclose(conv["diff"], x[1] / n[1] - x[0] / n[0], rtol=1e-12)
        assert_allclose(conv["p_value"], _wald_p(n, x), rtol=1e-9)
        latency = rows[(value, "latency")]
        assert latency["test"] == "welch"
        (m_c, sd_c), (m_t, sd_t) = (_pooled(value, arm) for arm in (0, 1))
        welch = stats.ttest_ind_from_stats(m_t, sd_t, n[1], m_c, sd_c, n[0], equal_var=False)
        assert_allclose(latency["p_value"], welch.pvalue, rtol=1e-9)
        family += [conv, latency]
        raw += [conv["p_value"], latency["p_value"]]
    holm = multipletests(raw, method="holm")[1]
    assert_allclose([r["adjusted_p_value"] for r in family], holm, rtol=1e-12)
    assert [r["significant"] for r in family] == [p < 0.05 for p in holm]
    assert rows[("US", "conversion")]["significant"]  # 10% -> 13% on 3,000 a side


def test_segments_route_filters_by_dimension_and_404s_an_unknown_one(
    client: TestClient, writer: dict[str, str], sliced: int
) -> None:
    one = client.get(f"{URL}/{sliced}/segments", params={"dimension": "country"},
                     headers=writer)
    assert one.status_code == 200
    assert [b["dimension"] for b in one.json()["breakdowns"]] == ["country"]
    assert len(one.json()["breakdowns"][0]["slices"]) == 5  # default top 10: all five alone
    unknown = client.get(f"{URL}/{sliced}/segments", params={"dimension": "platform"},
                         headers=writer)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert "no dimension 'platform'" in unknown.json()["detail"]
    assert "country" in unknown.json()["detail"]


def test_segments_route_as_of_before_the_data_has_no_breakdowns(
    client: TestClient, session: Session, writer: dict[str, str], metrics: list[str]
) -> None:
    from core import registry
    from tests.api.conftest import draft
    from tests.conftest import EDITOR

    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    exp = registry.create_experiment(session, data=draft(name="Launched yesterday"),
                                     actor=EDITOR)
    registry.transition_experiment(session, experiment_id=exp.id, to_status="running",
                                   expected_version=exp.version, actor=EDITOR, on=yesterday)
    upload = client.post(f"{URL}/{exp.id}/data", headers=writer,
                         files={"file": ("countries.csv", segment_csv(today.isoformat()),
                                         "text/csv")})
    assert upload.status_code == 200, upload.text
    got = client.get(f"{URL}/{exp.id}/segments", params={"as_of": yesterday.isoformat()},
                     headers=writer)
    assert got.status_code == 200 and got.json()["breakdowns"] == []
    # Before the start there is no day to compute as of (the refresh's rule): 422.
    before = (yesterday - timedelta(days=1)).isoformat()
    refused = client.get(f"{URL}/{exp.id}/segments", params={"as_of": before}, headers=writer)
    assert refused.status_code == 422 and "give a day from" in refused.json()["detail"]


def test_segments_route_without_dimension_data_is_empty(
    client: TestClient, writer: dict[str, str], running: int
) -> None:
    got = client.get(f"{URL}/{running}/segments", headers=writer)
    assert got.status_code == 200
    assert got.json() == {"experiment_id": running, "exploratory": segments.EXPLORATORY,
                          "breakdowns": []}
    named = client.get(f"{URL}/{running}/segments", params={"dimension": "country"},
                       headers=writer)
    assert named.status_code == 404 and "load data with dimension columns" in named.text


def test_segments_route_missing_experiment_is_404(
    client: TestClient, keys: dict[str, str]
) -> None:
    got = client.get(f"{URL}/999999/segments", headers=headers(keys["read"]))
    assert got.status_code == 404 and "999999" in got.json()["detail"]


@pytest.mark.parametrize("params", [{"top_n": "0"}, {"top_n": "101"}, {"top_n": "two"},
                                    {"as_of": "yesterday"}])
def test_segments_route_bad_query_is_422(
    client: TestClient, keys: dict[str, str], sliced: int, params: dict[str, str]
) -> None:
    got = client.get(f"{URL}/{sliced}/segments", params=params, headers=headers(keys["read"]))
    assert got.status_code == 422
    assert got.json()["errors"][0]["location"].startswith("query.")


def test_segments_route_needs_a_key_and_a_read_key_is_enough(
    client: TestClient, keys: dict[str, str], sliced: int
) -> None:
    assert client.get(f"{URL}/{sliced}/segments").status_code == 401
    assert client.get(f"{URL}/{sliced}/segments",
                      headers=headers(keys["read"])).status_code == 200


def _wald(n: tuple[int, int], x: tuple[int, int]) -> tuple[float, float]:
    p_c, p_t = x[0] / n[0], x[1] / n[1]
    return p_t - p_c, math.sqrt(p_c * (1 - p_c) / n[0] + p_t * (1 - p_t) / n[1])


def test_segment_scan_route_returns_what_core_computes_and_the_interaction_test(
    client: TestClient, session: Session, writer: dict[str, str], sliced: int
) -> None:
    got = client.get(f"{URL}/{sliced}/segments/scan", params={"top_n": TOP_N}, headers=writer)
    assert got.status_code == 200, got.text
    body = got.json()
    core_scan = segments.segment_scan(session, experiment_id=sliced, top_n=TOP_N)
    assert body["findings"] == [_finite(asdict(f)) for f in core_scan.findings]
    assert body["correction"] == "holm" and body["note"].startswith("Worth a look, not")
    # DE fails its SRM check: in no comparison; US, FR and (other) x 2 metrics are tested.
    assert body["tested"] == 6 and {f["value"] for f in body["findings"]} == {"US", "FR", OTHER}
    us = next(f for f in body["findings"] if (f["value"], f["metric"]) == ("US", "conversion"))
    # independent: Wald differences inside US and over FR + IT + ES, z test of interaction
    d_in, se_in = _wald(*COUNTRIES["US"])
    d_out, se_out = _wald((2200, 2200), (150 + 40 + 30, 160 + 44 + 27))
    z = (d_in - d_out) / math.hypot(se_in, se_out)
    assert_allclose([us["slice_effect"], us["rest_effect"]], [d_in, d_out], rtol=1e-12)
    assert_allclose(us["p_value"], 2 * stats.norm.sf(abs(z)), rtol=1e-9)
    holm = multipletests([f["p_value"] for f in body["findings"]], method="holm")[1]
    assert_allclose([f["adjusted_p_value"] for f in body["findings"]], holm, rtol=1e-12)
    assert [f["worth_a_look"] for f in body["findings"]] == [p < 0.05 for p in holm]


def test_segments_route_srm_per_value_is_sequential_and_holm_adjusted(
    client: TestClient, writer: dict[str, str], sliced: int
) -> None:
    from core.stats import sequential_srm_test

    (b,) = client.get(f"{URL}/{sliced}/segments", params={"top_n": TOP_N},
                      headers=writer).json()["breakdowns"]
    counts = [list(COUNTRIES[c][0]) for c in ("US", "DE", "FR")] + [[700, 700]]
    seq = [sequential_srm_test(c, [0.5, 0.5]).p_value for c in counts]
    assert_allclose([s["srm_sequential_p_value"] for s in b["slices"]], seq, rtol=1e-12)
    holm = multipletests(seq, method="holm")[1]
    assert_allclose([s["srm_adjusted_p_value"] for s in b["slices"]], holm, rtol=1e-12)
    assert [s["srm_flagged"] for s in b["slices"]] == [p < 0.001 for p in holm]
