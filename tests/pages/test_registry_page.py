"""Registry page (AppTest) on the demo data: browse, filter, open, role rules, create, launch."""

from __future__ import annotations

from sqlalchemy import select

from db.models import AuditEntry, Experiment
from db.session import make_engine, session_factory
from tests.apptest import login, open_page


def _labels(at) -> set[str]:  # type: ignore[no-untyped-def]
    return {b.label for b in at.button} | {e.label for e in at.expander}


def test_registry_page_lists_the_demo_portfolio(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "registry")
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 21  # 18, and 3 fed from the demo warehouse
    assert "Checkout button colour" in set(table["Name"])
    assert any("21 experiments match" in c.value for c in at.caption)


def test_registry_page_filters_by_status_and_search(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "registry")
    at.selectbox(key="reg_status").select("completed").run()
    assert set(at.dataframe[0].value["Status"]) == {"completed"}
    assert len(at.dataframe[0].value) == 4
    at.text_input(key="reg_search").input("vendor").run()  # searches learnings/hypotheses too
    assert len(at.dataframe[0].value) == 0
    at.selectbox(key="reg_status").select("any").run()
    at.text_input(key="reg_search").input("carousel").run()
    assert list(at.dataframe[0].value["Name"]) == ["Recommendations carousel"]


def test_registry_page_viewer_sees_no_write_controls(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "registry")
    labels = _labels(at)
    assert not labels & {"New experiment", "Edit", "Launch (freeze the plan)", "Abandon",
                         "Complete", "Create experiment", "Save changes"}
    assert any("read-only access" in c.value for c in at.caption)


def test_registry_page_editor_sees_write_controls_and_audit(demo_app: str) -> None:
    at = open_page(login("demo-editor"), "registry")
    at.text_input(key="reg_search").input("Checkout button").run()
    assert {"New experiment", "Edit", "Complete", "Abandon"} <= _labels(at)
    assert at.subheader[0].value == "Checkout button colour"
    assert any("frozen at launch" in i.value for i in at.info)
    audit = at.dataframe[1].value
    assert list(audit["Action"])[:2] == ["create", "transition:running"]


def test_registry_page_editor_creates_and_launches(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "registry")
    at.text_input(key="new_name").input("Sticky add-to-cart bar")
    at.text_area(key="new_hypothesis").input("A sticky bar keeps the CTA visible on mobile.")
    at.selectbox(key="new_primary").select("add_to_cart_rate")
    next(b for b in at.button if b.label == "Create experiment").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.subheader[0].value == "Sticky add-to-cart bar"
    # Launch asks first, warning about what is missing; confirmed, it is refused with a
    # message a PM understands: no sample size yet.
    next(b for b in at.button if b.label == "Launch (freeze the plan)").click().run()
    warnings = " ".join(w.value for w in at.warning)
    assert "No guardrail metrics" in warnings and "No planned start and end dates" in warnings
    assert "No planned sample size" in warnings
    assert not at.error  # nothing happened yet
    next(b for b in at.button if b.label == "Confirm launch").click().run()
    assert any("planned sample size" in e.value for e in at.error)
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as s:
        exp = s.scalar(select(Experiment).where(Experiment.name == "Sticky add-to-cart bar"))
        assert exp is not None and exp.status == "proposed"
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == exp.id)))
    engine.dispose()
    assert actions == ["create"]


def test_registry_page_create_form_keeps_a_draft_in_the_url_and_empties_once_created(
    fresh_demo_app: str
) -> None:
    """Issue 23: a reload (the same URL) brings the New experiment form's draft back, open;
    Create experiment empties the form for the next one (it stayed filled)."""
    at = login("demo-editor")
    at.query_params.update({"new_name": "Sticky add-to-cart bar",
                            "new_hypothesis": "A sticky bar keeps the CTA visible.",
                            "new_primary": "add_to_cart_rate", "new_tags": "mobile, cart"})
    at = open_page(at, "registry")
    assert not at.exception, at.exception
    assert at.text_input(key="new_name").value == "Sticky add-to-cart bar"
    assert at.text_area(key="new_hypothesis").value == "A sticky bar keeps the CTA visible."
    assert at.selectbox(key="new_primary").value == "add_to_cart_rate"
    assert at.expander[0].label == "New experiment" and at.expander[0].proto.expanded
    next(b for b in at.button if b.label == "Create experiment").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.subheader[0].value == "Sticky add-to-cart bar"
    assert at.text_input(key="new_name").value == ""
    assert at.text_area(key="new_hypothesis").value == ""
    assert at.selectbox(key="new_primary").value is None
    assert at.text_input(key="new_tags").value == ""
    assert at.text_input(key="new_owner").value == "demo-editor"
    assert at.text_input(key="new_variants").value == "control:0.5, treatment:0.5"
    assert not any(key.startswith("new_") for key in at.query_params)
    # issue 23: the detail and its audit read for people
    text = " ".join(m.value for m in at.markdown)
    assert "**Actual:** not started" in text and "**Planned:** no dates" in text
    changes = " ".join(at.dataframe[-1].value["Changes"])
    assert "control 50%, treatment 50%" in changes and "{'" not in changes


def test_registry_page_shows_errors_for_bad_input(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "registry")
    at.text_input(key="new_name").input("Checkout button colour")  # taken
    at.text_input(key="new_variants").input("control:0.7, b:0.7")
    next(b for b in at.button if b.label == "Create experiment").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "Nothing was saved" in errors and "sum to 1" in errors


def test_registry_page_launch_can_be_cancelled_and_confirmed(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "registry")
    at.selectbox(key="reg_status").select("proposed").run()
    name = at.subheader[0].value
    next(b for b in at.button if b.label == "Launch (freeze the plan)").click().run()
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert "Launch (freeze the plan)" in _labels(at) and "Confirm launch" not in _labels(at)
    with session_factory(make_engine(fresh_demo_app))() as s:
        assert s.scalar(select(Experiment.status).where(Experiment.name == name)) == "proposed"


def test_registry_page_complete_form_has_no_preselected_decision(demo_app: str) -> None:
    at = open_page(login("demo-editor"), "registry")
    at.text_input(key="reg_search").input("Checkout button").run()
    decision = next(s for s in at.selectbox if s.label == "Decision")
    assert decision.value is None


def test_registry_page_opens_the_deep_linked_experiment(demo_app: str) -> None:
    with session_factory(make_engine(demo_app))() as s:
        target = s.scalars(select(Experiment).where(Experiment.name == "One-page checkout")).one()
    at = login("demo-viewer")
    at.query_params["experiment"] = str(target.id)
    at = open_page(at, "registry")
    assert not at.exception, at.exception
    assert at.subheader[0].value == "One-page checkout"
    assert at.query_params["experiment"] == str(target.id)
    assert any("Verdict" in m.value for m in [*at.success, *at.error, *at.info, *at.warning])


def test_registry_page_numbers_read_for_people(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "registry")
    table = at.dataframe[0].value
    assert not {"id", "control_n", "Mode"} & set(table.columns)
    assert "None" not in table.to_string() and ".0 " not in table.to_string()
    at.text_input(key="reg_search").input("Pricing page").run()
    text = " ".join(m.value for m in at.markdown)
    assert "20,000 users per variant" in text and "MDE 5%" in text and "power 80%" in text
    assert "50000.0" not in text and "None" not in text


def test_registry_page_editor_sets_the_plan_tests(fresh_demo_app: str) -> None:
    """The create form sets a one-sided primary test, a guardrail margin typed as a
    percentage and the post-stratification dimension; the edit form reads them back as typed,
    sets the Gaussian prior, and shows a bad margin's message without saving anything."""
    at = open_page(login("demo-editor"), "registry")
    at.text_input(key="new_name").input("Sticky add-to-cart bar")
    at.text_area(key="new_hypothesis").input("A sticky bar keeps the CTA visible on mobile.")
    at.selectbox(key="new_primary").select("add_to_cart_rate")
    at.multiselect(key="new_guardrails").select("page_load_time_ms")
    at.selectbox(key="new_alternative").select("greater")
    at.text_input(key="new_margins").input("page_load_time_ms: 2.5%")
    at.text_input(key="new_post_stratify").input(" platform ")
    next(b for b in at.button if b.label == "Create experiment").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    text = " ".join(m.value for m in at.markdown)
    assert "one-sided: treatment higher (greater)" in text
    assert "page_load_time_ms: 2.5%" in text and "Bayesian prior:** flat" in text
    assert "Post-stratified on:** platform" in text
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as s:
        exp = s.scalar(select(Experiment).where(Experiment.name == "Sticky add-to-cart bar"))
        assert exp is not None and exp.alternative == "greater"
        assert exp.post_stratify_on == "platform"
        assert {link.metric.name: link.margin for link in exp.metric_links} == {
            "page_load_time_ms": 0.025}
        exp_id, version = exp.id, exp.version

    margins = at.text_input(key=f"edit_margins_{exp_id}_{version}")
    assert margins.value == "page_load_time_ms: 2.5%"  # as typed
    assert at.selectbox(key=f"edit_alternative_{exp_id}_{version}").value == "greater"
    margins.input("page_load_time_ms: 150%")
    next(b for b in at.button if b.label == "Save changes").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "Nothing was saved" in errors and "Guardrail margins" in errors
    # the form takes percent, so the bound reads in percent too
    assert "Guardrail margins page load time ms must be less than 100%" in errors, errors
    assert "above 0% and below 100% per guardrail" in errors

    at.text_input(key=f"edit_margins_{exp_id}_{version}").input("page_load_time_ms: 1%")
    at.number_input(key=f"edit_prior_mean_{exp_id}_{version}").set_value(0.0)
    at.number_input(key=f"edit_prior_sd_{exp_id}_{version}").set_value(5.0)
    next(b for b in at.button if b.label == "Save changes").click().run()
    assert not at.error, [e.value for e in at.error]
    with session_factory(engine)() as s:
        exp = s.get(Experiment, exp_id)
        assert exp is not None and exp.version == version + 1
        assert (exp.prior_lift_mean, exp.prior_lift_sd) == (0.0, 0.05)
        assert [link.margin for link in exp.metric_links] == [0.01]
    engine.dispose()
    text = " ".join(m.value for m in at.markdown)
    assert "normal(0.0%, sd 5%)" in text


def test_registry_page_says_there_is_no_such_experiment(demo_app: str) -> None:
    """Issue 23: an id that names no experiment opens no other one, and the URL keeps it."""
    for value, said in (("999999", "There is no experiment #999999"),
                        ("abc", "“abc” is not an experiment number"),
                        ("-1", "“-1” is not an experiment number")):
        at = login("demo-editor")
        at.query_params["experiment"] = value
        at = open_page(at, "registry")
        assert not at.exception, at.exception
        assert at.selectbox(key="reg_open").value is None
        assert at.query_params["experiment"] == value
        assert any(said in w.value for w in at.warning)
        assert not at.subheader and "Save changes" not in _labels(at)


def _edit_field(at, kind: str, label: str):  # type: ignore[no-untyped-def]
    """A field of the Edit form (the New experiment form has some of the same labels)."""
    return next(w for w in getattr(at, kind) if w.label == label and not
                str(w.key or "").startswith("new_"))


def test_registry_page_second_tab_save_is_refused_and_keeps_its_input(
    fresh_demo_app: str
) -> None:
    """Issue 23: two tabs edit one experiment; the second save carries the version its form
    was drawn from, so it is refused with a message above the form, and the input stays."""
    with session_factory(make_engine(fresh_demo_app))() as s:
        exp = s.scalars(select(Experiment).where(Experiment.name == "Social login")).one()
        exp_id, version, owner = exp.id, exp.version, exp.owner
    tabs = []
    for _ in range(2):
        at = login("demo-editor")
        at.query_params["experiment"] = str(exp_id)
        tabs.append(open_page(at, "registry"))
    tab_a, tab_b = tabs
    _edit_field(tab_a, "text_area", "Hypothesis").input("Tab A's hypothesis.")
    next(b for b in tab_a.button if b.label == "Save changes").click().run()
    assert not tab_a.error, [e.value for e in tab_a.error]

    _edit_field(tab_b, "text_input", "Owner").input("tab.b.owner")
    next(b for b in tab_b.button if b.label == "Save changes").click().run()
    errors = [e.value for e in tab_b.error]
    assert len(errors) == 1 and "was changed by someone else" in errors[0], errors
    assert _edit_field(tab_b, "text_input", "Owner").value == "tab.b.owner"
    assert any("Your edits are still in the form" in i.value for i in tab_b.info)
    with session_factory(make_engine(fresh_demo_app))() as s:
        stored = s.get(Experiment, exp_id)
        assert stored is not None and stored.version == version + 1
        assert (stored.owner, stored.hypothesis) == (owner, "Tab A's hypothesis.")
