"""Results page (AppTest) on the demo data: every experiment renders with its verdict first, the
SRM experiment is blocked with a red banner and shows no effect anywhere, the underpowered one
shows `too_early`, decision badges are exactly core's states (as people's labels, coloured
better / worse / inconclusive), the table speaks people's numbers, ``?experiment=<id>`` opens
one experiment, viewers see no upload or refresh."""

from __future__ import annotations

import re

from sqlalchemy import delete
from streamlit.testing.v1 import AppTest

from core import format as fmt
from core import registry
from core.analysis import results, views
from core.analysis.snapshot import ResultsSnapshot
from core.analysis.verdict import STATE_LABELS
from db.models import ResultSnapshot
from db.session import make_engine, session_factory
from tests.apptest import login, open_page

BADGE = re.compile(r":(\w+)-badge\[([^\]]+)\]")
SIGNED_PERCENT = re.compile(r"[+−-]\d+(?:\.\d+)?%")
RAW_COLUMNS = {"control_n", "treatment_n", "diff_ci_low", "diff_ci_high", "lift_ci_low",
               "lift_ci_high", "p_value", "adjusted_p_value", "decision_state"}


def _results(user: str, experiment: str | None = None) -> AppTest:
    at = open_page(login(user), "results")
    assert not at.exception, at.exception
    if experiment is not None:
        box = at.selectbox(key="res_experiment")
        box.select_index(next(i for i, o in enumerate(box.options)
                              if o.startswith(experiment + " ("))).run()
        assert not at.exception, at.exception
    return at


def _badges(at: AppTest) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for md in at.markdown for m in BADGE.finditer(md.value)]


def _labels(at: AppTest) -> list[str]:
    return [label for _colour, label in _badges(at)]


def _core(url: str, name: str) -> ResultsSnapshot:
    engine = make_engine(url)
    with session_factory(engine)() as session:
        choice = next(c for c in views.experiments_with_results(session) if c.name == name)
        snap = results.compute_results(session, experiment_id=choice.id)
    engine.dispose()
    return snap


def _core_labels(url: str, name: str) -> list[str]:
    return [STATE_LABELS[c.decision_state] for c in _core(url, name).comparisons]


def test_results_page_renders_every_experiment(demo_app: str) -> None:
    at = _results("demo-viewer")
    options = at.selectbox(key="res_experiment").options
    assert len(options) == 15  # 8 running + 3 fed from the warehouse + 4 completed
    for i in range(len(options)):
        at.selectbox(key="res_experiment").select_index(i).run()
        assert not at.exception, (options[i], at.exception)
        assert at.title[0].value == "Results"
        assert _badges(at), options[i]  # every demo experiment has decisions
        blocked = any("results blocked" in e.value for e in at.error)
        # forest, cumulative lift, daily units; only daily units when SRM blocks the effects
        assert len(at.get("plotly_chart")) == (1 if blocked else 3), options[i]
        frame = at.table[0].value
        assert not RAW_COLUMNS & set(frame.columns), options[i]
        assert not frame.isna().any().any(), options[i]  # "—", never None / NaN


def test_results_page_blocks_the_srm_experiment(demo_app: str) -> None:
    at = _results("demo-viewer", "Onboarding checklist")
    banner = [e.value for e in at.error]
    assert len(banner) == 1 and "Sample ratio mismatch — results blocked" in banner[0]
    assert "control 6,000" in banner[0] and "treatment 6,600" in banner[0]
    assert set(_labels(at)) == {STATE_LABELS["srm_untrustworthy"]}
    assert _labels(at) == _core_labels(demo_app, "Onboarding checklist")
    shown = [md.value for md in at.markdown] + [c.value for c in at.caption] + \
        [i.value for i in at.info] + [w.value for w in at.warning]
    assert not [t for t in shown if SIGNED_PERCENT.search(t)], shown
    frame = at.table[0].value
    # one treatment: its column says nothing (each decision line names it) and is left out
    assert list(frame.columns) == ["Metric", "Users", "Decision"]
    assert any("hidden" in c.value and "sample ratio mismatch" in c.value for c in at.caption)
    assert any("Forest plot and cumulative lift hidden" in i.value for i in at.info)
    assert "Verdict: Investigate" in at.warning[0].value


def test_results_page_shows_the_underpowered_experiment_as_too_early(demo_app: str) -> None:
    at = _results("demo-viewer", "Pricing page redesign")
    assert not at.error
    assert _labels(at) == ["Too early", "Too early"]
    assert _labels(at) == _core_labels(demo_app, "Pricing page redesign")
    assert {colour for colour, _label in _badges(at)} == {"gray"}  # inconclusive
    assert any("40%" in md.value for md in at.markdown)  # the reason names the progress
    assert {m.label: m.value for m in at.metric} == {"control (50%)": "8,000",
                                                     "treatment (50%)": "8,000"}
    assert "Verdict: Keep running" in at.info[0].value


def test_results_page_shows_a_clear_winner_first_and_in_peoples_numbers(demo_app: str) -> None:
    at = _results("demo-viewer", "Checkout button colour")
    assert not at.error
    snap = _core(demo_app, "Checkout button colour")
    assert _labels(at) == [STATE_LABELS[c.decision_state] for c in snap.comparisons]
    assert _labels(at)[0] == "Significant"  # checkout_conversion, true lift +15%
    assert _badges(at)[0][0] == "green"
    assert at.success[0].value.startswith("**Verdict: Ship**")
    assert snap.verdict is not None and snap.verdict.reason in at.success[0].value
    table = at.table[0].value
    assert list(table["Metric"]) == ["checkout_conversion", "refund_rate", "revenue_per_user"]
    assert list(table["Decision"]) == _labels(at)
    first = snap.comparisons[0]
    # the lift with its interval in one cell, the p-value with its adjusted one (issue 23:
    # the table fits at 1,024 px)
    assert table["Lift (95% CI)"][0] == (
        f"+{first.lift * 100:.1f}% [+{first.lift_ci_low * 100:.1f}%, "
        f"+{first.lift_ci_high * 100:.1f}%]")
    assert table["p-value (adjusted)"][0] == (
        f"{fmt.pvalue(first.lift_p_value)} ({fmt.pvalue(first.adjusted_p_value)})")
    assert list(table.columns) == ["Metric", "Users", "Control → treatment", "Lift (95% CI)",
                                   "p-value (adjusted)", "Decision"]
    assert table["Users"][0] == f"{first.control_n:,} / {first.treatment_n:,}"
    assert table["Control → treatment"][0] == (  # conversion rates
        f"{first.control_mean * 100:.2f}% → {first.treatment_mean * 100:.2f}%")


def test_results_page_opens_the_deep_linked_experiment(demo_app: str) -> None:
    engine = make_engine(demo_app)
    with session_factory(engine)() as session:
        exp_id = registry.get_experiment_by_name(session, name="Search ranking v2").id
    engine.dispose()
    at = login("demo-viewer")
    at.query_params["experiment"] = str(exp_id)
    open_page(at, "results")
    assert not at.exception
    assert at.selectbox(key="res_experiment").value == exp_id
    at.selectbox(key="res_experiment").select_index(0).run()
    first = at.selectbox(key="res_experiment").value
    assert first != exp_id and at.query_params["experiment"] == str(first)


def test_results_page_viewer_sees_no_upload_or_refresh(demo_app: str) -> None:
    at = _results("demo-viewer", "Search ranking v2")  # the one with a SQL source
    assert not at.get("file_uploader")
    assert not [b for b in at.button if b.label in ("Load file", "Refresh from the SQL source")]
    assert any("read-only access" in c.value for c in at.caption)


def test_results_page_editor_sees_upload_and_refresh(demo_app: str) -> None:
    at = _results("demo-editor", "Search ranking v2")
    assert len(at.get("file_uploader")) == 1
    assert [b.label for b in at.button if b.label == "Refresh from the SQL source"]
    at = _results("demo-editor", "Checkout button colour")  # loaded from a file: no SQL source
    assert not [b for b in at.button if b.label == "Refresh from the SQL source"]
    assert any("no SQL metric source" in c.value for c in at.caption)


def test_results_page_refresh_from_sql_source(fresh_demo_app: str) -> None:
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as session:  # forget the seeded snapshot
        exp_id = registry.get_experiment_by_name(session, name="Search ranking v2").id
        session.execute(delete(ResultSnapshot).where(ResultSnapshot.experiment_id == exp_id))
        session.commit()
    engine.dispose()
    at = _results("demo-editor", "Search ranking v2")
    next(b for b in at.button if b.label == "Refresh from the SQL source").click().run()
    assert not at.exception
    assert not [e.value for e in at.error if "Verdict" not in e.value]
    refreshed = [s.value for s in at.success if s.value.startswith("Refreshed: Loaded ")]
    assert refreshed and " users (control " in refreshed[0] and " days (" in refreshed[0]
    assert "rows" not in refreshed[0]
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as session:
        stored = results.latest_snapshot(session, experiment_id=exp_id)
    engine.dispose()
    assert stored is not None and stored.computed_by == "demo-editor"


def test_results_page_shows_segments_as_exploratory_with_corrected_p(demo_app: str) -> None:
    at = _results("demo-viewer", "Mobile express checkout")
    assert any(s.value == "Segments (exploratory)" for s in at.subheader)
    assert any("no ship decision is made from a slice" in c.value for c in at.caption)
    tables = [df.value for df in at.dataframe if "Slice" in df.value.columns]
    assert len(tables) == 2  # platform and country
    platform = next(t for t in tables if {"ios", "android", "web"} <= set(t["Slice"]))
    assert any(col.startswith("p (") for col in platform.columns)
    assert not RAW_COLUMNS & set(platform.columns)
    ios = platform[(platform["Slice"] == "ios") & (platform["Metric"] == "checkout_conversion")]
    assert ios["Reads as"].tolist() == ["significant"]  # the planted +25% on ios
    web = platform[(platform["Slice"] == "web") & (platform["Metric"] == "checkout_conversion")]
    assert web["Reads as"].tolist() == ["not significant"]  # no effect planted on web
    # An experiment without dimension data shows no segment section.
    plain = _results("demo-viewer", "Checkout button colour")
    assert not any(s.value == "Segments (exploratory)" for s in plain.subheader)


def test_results_page_shows_the_plans_one_sided_test_and_guardrail_margin(demo_app: str) -> None:
    """Infinite scroll on search (one-sided primary): the plan says so and its interval reads
    [a, +∞); Search ranking v2: the guardrail's non-inferiority margin is stated."""
    at = _results("demo-viewer", "Infinite scroll on search")
    captions = " ".join(c.value for c in at.caption)
    assert "Primary metric revenue_per_session: one-sided test, as planned (treatment > " \
           "control)" in captions
    table = at.table[0].value
    primary = table[table["Metric"] == "revenue_per_session"].iloc[0]
    interval = primary[next(c for c in table.columns if c.endswith("CI)"))]
    assert " [" in interval and interval.endswith(", +∞)")
    at = _results("demo-viewer", "Search ranking v2")
    captions = " ".join(c.value for c in at.caption)
    assert "Guardrail page_load_time_ms: non-inferiority margin +2.0%" in captions
    assert any("non-inferior" in m.value for m in at.markdown)


# --------------------------------------------------------------------------- issue 22 (5, 6)


def test_results_page_says_why_the_bayesian_readout_differs(demo_app: str) -> None:
    """Recommendations carousel (sequential): page_load_time_ms reads "Too early" (always-valid
    interval) while its credible interval lies below 0: one sentence under the Bayesian table
    says why the two differ, and only for that comparison."""
    at = _results("demo-viewer", "Recommendations carousel")
    snap = _core(demo_app, "Recommendations carousel")
    row = next(c for c in snap.comparisons if c.metric == "page_load_time_ms")
    assert row.bayesian is not None and row.bayesian.ci_high < 0
    assert row.decision_state == "too_early" and row.sequential
    notes = [c.value for c in at.caption if "The Bayesian readout differs" in c.value]
    assert notes == [
        f"**page_load_time_ms · {row.treatment}:** The Bayesian readout differs from the "
        "decision because the decision's interval is always-valid (it holds however often the "
        "results are looked at, so it is wider than a one-look interval, above all before the "
        "planned sample), while the Bayesian readout reads the data as a single look."]
    assert any("can disagree with the decision above" in c.value for c in at.caption)


def test_results_page_shows_a_guardrail_improvement_and_a_metric_without_variation(
    fresh_demo_app: str,
) -> None:
    """A guardrail that fell significantly (refunds, lower is better) is a green "Significant",
    not grey; a secondary whose every unit is 0 reads "Cannot be tested: no variation" with no
    lift, interval or p-value."""
    from tests.core.analysis.test_results_inference import binomial, normal, put
    from tests.core.data.test_ingestion import make_experiment

    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as session:
        exp = make_experiment(session, name="Flat and better", primary="conv",
                              guardrails=("refunds",), secondaries=("revenue",), planned=100)
        put(session, exp, "conv", [binomial(10000, 1000), binomial(10000, 1100)])
        put(session, exp, "refunds", [binomial(10000, 500), binomial(10000, 380)], assign=False)
        put(session, exp, "revenue", [normal(10000, 0.0, 0.0), normal(10000, 0.0, 0.0)],
            assign=False)
        session.commit()
    engine.dispose()
    at = _results("demo-viewer", "Flat and better")
    badges = dict(zip(["conv", "refunds", "revenue"], _badges(at), strict=True))
    assert badges == {"conv": ("green", "Significant"), "refunds": ("green", "Significant"),
                      "revenue": ("gray", "Cannot be tested: no variation")}
    lines = " ".join(md.value for md in at.markdown)
    assert "Guardrail refunds is significantly better (lower)" in lines
    assert "revenue cannot be tested: no variation: every unit has the value 0 in both arms" \
        in lines
    table = at.table[0].value.set_index("Metric")
    assert table.loc["revenue", "Decision"] == "Cannot be tested: no variation"
    assert table.loc["revenue", "Control → treatment"] == "0 → 0"
    shown = table.loc["revenue"].drop(["Users", "Control → treatment", "Decision"])
    assert set(shown) == {"—"}  # no lift, interval, p-value or adjusted p
    lift = next(c for c in table.columns if c.startswith("Lift"))
    assert table.loc["refunds", lift].startswith("−24.0%")
    bayes = next(df.value for df in at.table if "Chance to beat control" in df.value)
    assert "revenue" not in set(bayes["Metric"])


def test_results_page_says_why_it_shows_no_results_for_a_link(demo_app: str) -> None:
    """Issue 23: a link to an experiment without results (proposed, abandoned) or to no
    experiment at all says so; it never opens another experiment or rewrites the URL."""
    engine = make_engine(demo_app)
    with session_factory(engine)() as session:
        ids = {name: registry.get_experiment_by_name(session, name=name).id
               for name in ("Social login", "Pricing FAQ accordion")}
    engine.dispose()
    cases = {
        str(ids["Social login"]): "'Social login' is proposed: no results yet.",
        str(ids["Pricing FAQ accordion"]):
            "'Pricing FAQ accordion' was abandoned before it was launched: it has no results.",
        "999999": "There is no experiment #999999",
        "abc": "“abc” is not an experiment number",
        "-1": "“-1” is not an experiment number",
    }
    for value, said in cases.items():
        at = login("demo-viewer")
        at.query_params["experiment"] = value
        at = open_page(at, "results")
        assert not at.exception, at.exception
        assert at.selectbox(key="res_experiment").value is None
        assert at.query_params["experiment"] == value
        assert any(said in m.value for m in [*at.info, *at.warning]), value
        assert not _badges(at) and not at.dataframe and not at.subheader, value


def test_results_page_shows_a_quantile_metric_with_its_quantiles_and_lift(demo_app: str) -> None:
    """Infinite scroll on search guards p90_page_load_ms (a quantile metric): its row shows the
    arms' p90s and the lift with its interval as core computes them, and a note says what the
    numbers are."""
    name = "Infinite scroll on search"
    at = _results("demo-viewer", name)
    assert not at.exception, at.exception
    core_row = next(c for c in _core(demo_app, name).comparisons
                    if c.metric == "p90_page_load_ms")
    assert core_row.test == "quantile_woodruff"
    table = at.table[0].value
    row = table[table["Metric"] == "p90_page_load_ms"].iloc[0]
    assert row["Control → treatment"] == (f"{fmt.number(core_row.control_mean)} → "
                                          f"{fmt.number(core_row.treatment_mean)}")
    shown = row[next(c for c in table.columns if c.startswith("Lift"))]
    assert shown.startswith(fmt.signed_percent(core_row.lift) + " [")
    captions = " ".join(c.value for c in at.caption)
    assert "Quantile metric p90_page_load_ms: control → treatment are the arms' quantiles" in (
        captions)
