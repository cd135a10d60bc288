"""Planner page (AppTest) on the demo data: the numbers are the planner service's, inputs change
them, inverse modes, observed baselines, bad inputs explained, saving a plan (editors only)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from core import planning, registry
from core.analysis import results
from db.session import make_engine, session_factory
from tests.apptest import login, open_page
from tests.conftest import EDITOR


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _planner(user: str = "demo-editor") -> AppTest:
    at = open_page(login(user), "planner")
    assert not at.exception, at.exception
    return at


def test_planner_page_shows_the_services_plan_and_both_curves(demo_app: str) -> None:
    at = _planner()
    expected = planning.plan_sample_size(
        planning.make_inputs(baseline=0.10, mde=0.05, daily_traffic=4200))
    assert _metrics(at) == {
        "Users per variant": f"{expected.n_per_variant:,}", "Total users": f"{expected.total:,}",
        "Duration": f"{expected.days:,} days", "Power": "80%",
    }
    assert at.success[0].value == expected.summary
    assert at.success[0].value.startswith("With 4,200 users a day you can detect a 5% relative")
    assert len(at.get("plotly_chart")) == 2


def test_planner_page_inputs_change_the_numbers(demo_app: str) -> None:
    at = _planner()
    before = _metrics(at)
    at.number_input(key="plan_mde_binomial_True").set_value(10.0).run()
    bigger_effect = _metrics(at)
    assert int(bigger_effect["Users per variant"].replace(",", "")) < int(
        before["Users per variant"].replace(",", ""))
    at.number_input(key="plan_daily_typed").set_value(20000.0).run()
    assert _metrics(at)["Duration"] != bigger_effect["Duration"]
    assert "With 20,000 users a day you can detect a 10% relative lift" in at.success[0].value
    at.number_input(key="plan_variants").set_value(3).run()
    assert not at.exception
    assert "2 treatments each at alpha 0.025" in at.success[0].value
    assert list(at.dataframe[0].value["Variant"]) == ["control", "treatment_1", "treatment_2"]


def test_planner_page_inverse_modes(demo_app: str) -> None:
    at = _planner()
    at.radio(key="plan_mode").set_value("Detectable effect in a fixed duration").run()
    at.number_input(key="plan_days").set_value(14).run()
    expected = planning.plan_for_duration(
        planning.make_inputs(baseline=0.10, mde=0.05, daily_traffic=4200), days=14)
    assert _metrics(at)["Detectable effect"] == expected.effect_text
    assert at.success[0].value == expected.summary
    at.radio(key="plan_mode").set_value("Power for a given sample size").run()
    at.number_input(key="plan_n").set_value(5000).run()
    expected = planning.plan_for_sample(
        planning.make_inputs(baseline=0.10, mde=0.05, daily_traffic=4200), n_per_variant=5000)
    assert _metrics(at)["Power"] == f"{expected.power:.1%}"
    assert "chance (power) to detect a 5% relative lift" in at.success[0].value


def test_planner_page_takes_the_baseline_from_observed_data(demo_app: str) -> None:
    at = _planner()
    at.toggle(key="plan_from_data").set_value(True).run()
    source = at.selectbox(key="plan_source")
    source.select_index(source.options.index("Annual plan discount")).run()
    at.selectbox(key="plan_source_metric").set_value("revenue_per_user").run()
    assert not at.exception, at.exception
    assert any("revenue_per_user in the control of 'Annual plan discount'" in i.value
               for i in at.info)
    kind = next(r for r in at.radio if r.label == "Metric type")
    assert kind.value == "Continuous (a mean)" and kind.disabled
    labels = {n.label for n in at.number_input}
    assert {"Baseline mean", "Standard deviation per user"} <= labels
    assert at.success  # a plan computed from the observed mean and SD


def test_planner_page_expected_variance_reduction_shrinks_the_plan(demo_app: str) -> None:
    """A typed R² is the service's plan with ``r_squared`` (the sd becomes sd sqrt(1 - R²))."""
    at = _planner()
    at.radio(key="plan_kind_typed").set_value("Continuous (a mean)").run()
    without = _metrics(at)
    at.number_input(key="plan_r2_typed").set_value(0.4).run()
    assert not at.exception, at.exception
    expected = planning.plan_sample_size(planning.make_inputs(
        kind="mean", baseline=12.0, sd=24.0, mde=0.05, daily_traffic=4200, r_squared=0.4))
    assert _metrics(at)["Users per variant"] == f"{expected.n_per_variant:,}"
    assert expected.n_per_variant < int(without["Users per variant"].replace(",", ""))
    assert at.success[0].value == expected.summary
    assert "CUPED removing 40% of the variance" in expected.summary


def test_planner_page_takes_r_squared_from_a_past_cuped_result(demo_app: str) -> None:
    """With the baseline from an experiment's data, the variance reduction CUPED achieved on
    that metric there (its stored results) can be taken as the plan's R²."""
    engine = make_engine(demo_app)
    with session_factory(engine)() as session:
        exp = registry.get_experiment_by_name(session, name="Annual plan discount")
        achieved = results.achieved_variance_reduction(session, experiment_id=exp.id,
                                                       metric="revenue_per_user")
        seen = planning.observed_baseline(session, experiment_id=exp.id,
                                          metric="revenue_per_user")
    engine.dispose()
    assert achieved is not None and 0 < achieved.r_squared < 1
    at = _planner()
    at.toggle(key="plan_from_data").set_value(True).run()
    source = at.selectbox(key="plan_source")
    source.select_index(source.options.index("Annual plan discount")).run()
    at.selectbox(key="plan_source_metric").set_value("revenue_per_user").run()
    seed = f"{exp.id}_revenue_per_user"
    assert at.number_input(key=f"plan_r2_{seed}").value == 0.0
    at.toggle(key=f"plan_r2_from_{seed}").set_value(True).run()
    assert not at.exception, at.exception
    assert any(c.value == achieved.description for c in at.caption)
    expected = planning.plan_sample_size(planning.make_inputs(
        kind="mean", baseline=seen.mean, sd=seen.sd, mde=0.05,
        daily_traffic=float(round(seen.daily_traffic)), r_squared=achieved.r_squared))
    assert _metrics(at)["Users per variant"] == f"{expected.n_per_variant:,}"
    assert at.success[0].value == expected.summary


def test_planner_page_explains_bad_inputs(demo_app: str) -> None:
    at = _planner()
    at.text_input(key="plan_split_2").set_value("70, 20").run()
    assert not at.exception
    assert "add up to 100%" in at.error[0].value
    assert "(they add up to 90%)" in at.error[0].value  # percent, as typed: not 0.9 or 90.0%
    assert "Traffic split" in at.error[0].value and "weights" not in at.error[0].value
    assert not at.metric and not at.success


def test_planner_page_shows_percentages_as_typed(demo_app: str) -> None:
    at = _planner()
    at.number_input(key="plan_mde_binomial_True").set_value(2.5).run()
    assert not at.exception
    assert "a 2.5% relative lift" in at.success[0].value
    saves = next(c.value for c in at.caption if c.value.startswith("Saves onto"))
    assert "MDE 2.5% relative" in saves and "power 80%" in saves


def test_planner_page_opens_the_deep_linked_experiment(demo_app: str) -> None:
    engine = make_engine(demo_app)
    with session_factory(engine)() as session:
        exp_id = registry.get_experiment_by_name(session, name="Simplified signup form").id
    engine.dispose()
    at = login("demo-editor")
    at.query_params["experiment"] = str(exp_id)
    open_page(at, "planner")
    assert not at.exception
    assert at.selectbox(key="plan_target").value == exp_id
    assert any("Saves onto 'Simplified signup form'" in c.value for c in at.caption)
    split = f"plan_split_2_e{exp_id}"  # the experiment's own inputs
    at.text_input(key=split).set_value("70, 20").run()  # no answer: no save form
    assert not at.get("selectbox") or all(b.key != "plan_target" for b in at.selectbox)
    at.text_input(key=split).set_value("50, 50").run()
    assert at.selectbox(key="plan_target").value == exp_id  # still the deep-linked one


def test_planner_page_opens_a_link_to_an_experiment_proposed_after_the_list_was_cached(
    fresh_demo_app: str
) -> None:
    """The proposed experiments are cached for 30 s; a link to one created meanwhile (by
    someone else, outside this process's writes) still opens it instead of naming none."""
    first = _planner()  # caches the list of proposed experiments
    assert "Late idea" not in first.selectbox(key="plan_target").options
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as session:
        exp = registry.create_experiment(session, actor=EDITOR, data={
            "name": "Late idea", "owner": "erin", "primary_metric": "checkout_conversion"})
    engine.dispose()
    at = login("demo-editor")
    at.query_params["experiment"] = str(exp.id)
    at = open_page(at, "planner")
    assert not at.exception
    assert at.selectbox(key="plan_target").value == exp.id
    assert any("Saves onto 'Late idea'" in c.value for c in at.caption)


def test_planner_page_saves_a_plan_onto_a_proposed_experiment(fresh_demo_app: str) -> None:
    at = _planner()
    target = at.selectbox(key="plan_target")
    target.select_index(target.options.index("Simplified signup form"))
    at.selectbox(key="plan_analysis_mode").set_value("sequential")
    next(b for b in at.button if b.label == "Save plan").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Saved onto 'Simplified signup form'" in s.value for s in at.success)
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as session:
        saved = registry.get_experiment_by_name(session, name="Simplified signup form")
        audit = registry.audit_history(session, experiment_id=saved.id)[-1]
    engine.dispose()
    assert saved.plan_inputs is not None  # choosing it opened its own inputs, saved with it
    expected = planning.plan_sample_size(planning.make_inputs(**saved.plan_inputs))
    assert _metrics(at)["Users per variant"] == f"{expected.n_per_variant:,}"
    assert (saved.planned_sample_size, saved.mde, saved.analysis_mode) == (
        expected.n_per_variant, round(expected.mde_relative, 6), "sequential")
    assert audit.actor == "demo-editor" and "planned_sample_size" in audit.changes


def test_planner_page_viewer_cannot_save(demo_app: str) -> None:
    at = _planner("demo-viewer")
    assert at.success  # the planner itself works for everyone
    assert not [b for b in at.button if b.label == "Save plan"]
    assert any("read-only access" in c.value for c in at.caption)


def test_planner_page_offers_the_plans_split_instead_of_saving_it_onto_another(
    fresh_demo_app: str
) -> None:
    """Issue 23: a 50/25/25 plan is not saved onto an experiment split 34/33/33; the page
    says why in plain words, and one click sets the experiment's split to the plan's."""
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as session:
        exp = registry.create_experiment(session, actor=EDITOR, data={
            "name": "Three-way copy", "owner": "erin", "primary_metric": "checkout_conversion",
            "variants": [{"name": "control", "weight": 0.34}, {"name": "a", "weight": 0.33},
                         {"name": "b", "weight": 0.33}]})
    at = login("demo-editor")
    at.query_params["experiment"] = str(exp.id)
    at = open_page(at, "planner")
    assert at.number_input(key=f"plan_variants_e{exp.id}").value == 3  # the experiment's
    assert at.text_input(key=f"plan_split_3_e{exp.id}").value == "34, 33, 33"
    assert list(at.dataframe[0].value["Variant"]) == ["control", "a", "b"]
    at.text_input(key=f"plan_split_3_e{exp.id}").set_value("50, 25, 25").run()
    assert at.selectbox(key="plan_target").value == exp.id
    warning = " ".join(w.value for w in at.warning)
    assert warning.startswith("This plan is sized for a 50/25/25 split, but 'Three-way copy' "
                              "splits its traffic 34/33/33.")
    assert next(b for b in at.button if b.label == "Save plan").disabled
    next(b for b in at.button
         if b.label == "Set the experiment's split to 50/25/25 and save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("its split is now 50/25/25" in s.value for s in at.success)
    assert not at.warning and not next(b for b in at.button if b.label == "Save plan").disabled
    with session_factory(engine)() as session:
        saved = registry.get_experiment(session, experiment_id=exp.id)
    engine.dispose()
    assert [v.weight for v in saved.variants] == [0.5, 0.25, 0.25]
    assert saved.planned_sample_size is not None and saved.version == exp.version + 1


def test_planner_page_a_reload_keeps_what_was_typed(demo_app: str) -> None:
    """Issue 23: every input lives in the URL (Streamlit's query-parameter binding), so the
    same URL — a reload, or the link shared — opens the same plan."""
    at = _planner()
    at.radio(key="plan_mode").set_value("Power for a given sample size").run()
    at.number_input(key="plan_mde_binomial_True").set_value(7.5).run()
    at.number_input(key="plan_daily_typed").set_value(20000.0).run()
    at.number_input(key="plan_n").set_value(6000).run()
    typed = _metrics(at)
    reloaded = login("demo-editor")
    for key, value in {"plan_mode": "Power for a given sample size",
                       "plan_mde_binomial_True": "7.5", "plan_daily_typed": "20000",
                       "plan_n": "6000"}.items():
        reloaded.query_params[key] = value
    reloaded = open_page(reloaded, "planner")
    assert not reloaded.exception, reloaded.exception
    assert reloaded.number_input(key="plan_mde_binomial_True").value == 7.5
    assert reloaded.number_input(key="plan_n").value == 6000
    assert _metrics(reloaded) == typed and typed["Users per variant"] == "6,000"
    assert "a 7.5% relative lift" in reloaded.success[0].value


def test_planner_page_prefills_from_the_experiments_primary_metric_and_saved_plan(
    fresh_demo_app: str
) -> None:
    """Issue 23: ``/planner?experiment=<id>`` opens on the experiment's primary metric (its
    observed control baseline and traffic, its MDE, alpha and split); a saved plan's inputs
    (a mean and its SD) come back with it, and saving sets the planned dates."""
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as session:
        social = registry.get_experiment_by_name(session, name="Social login")
        draft = planning.plan_draft(session, experiment_id=social.id)
    at = login("demo-editor")
    at.query_params["experiment"] = str(social.id)
    at = open_page(at, "planner")
    assert not at.exception, at.exception
    seed = f"e{social.id}"
    assert at.number_input(key=f"plan_rate_{seed}").value == round(
        draft.values["baseline"] * 100, 3)
    assert at.number_input(key=f"plan_daily_{seed}").value == round(
        draft.values["daily_traffic"])
    assert any(i.value.startswith("Planning 'Social login'. Baseline: ") for i in at.info)
    at.radio(key=f"plan_kind_{seed}").set_value("Continuous (a mean)").run()
    at.number_input(key=f"plan_mean_{seed}").set_value(40.0).run()
    at.number_input(key=f"plan_sd_{seed}").set_value(55.0).run()
    at.number_input(key=f"plan_r2_{seed}").set_value(0.3).run()
    next(b for b in at.button if b.label == "Save plan").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with session_factory(engine)() as session:
        saved = registry.get_experiment(session, experiment_id=social.id)
    assert saved.plan_inputs is not None
    assert (saved.plan_inputs["kind"], saved.plan_inputs["baseline"],
            saved.plan_inputs["sd"], saved.plan_inputs["r_squared"]) == ("mean", 40.0, 55.0, 0.3)
    reopened = login("demo-editor")
    reopened.query_params["experiment"] = str(social.id)
    reopened = open_page(reopened, "planner")  # the saved plan's R² comes back with it
    assert reopened.number_input(key=f"plan_r2_{seed}").value == 0.3
    assert _metrics(reopened)["Users per variant"] == _metrics(at)["Users per variant"]
    assert saved.planned_start is not None and saved.planned_end is not None
    days = int(_metrics(at)["Duration"].split()[0].replace(",", ""))
    assert (saved.planned_end - saved.planned_start).days == days - 1
    engine.dispose()
    again = login("demo-editor")  # another visit: the saved plan's inputs, not the metric's
    again.query_params["experiment"] = str(social.id)
    again = open_page(again, "planner")
    assert again.number_input(key=f"plan_mean_{seed}").value == 40.0
    assert again.number_input(key=f"plan_sd_{seed}").value == 55.0
    assert any(i.value == "Planning 'Social login'. Its saved plan's inputs, as they were typed."
               for i in again.info)
