"""ui.state's query-parameter helpers: a deep link opens its option, a choice rewrites the URL."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _app() -> None:
    import streamlit as st

    from ui.state import experiment_url, query_int, set_query, url_selectbox

    chosen = url_selectbox("Open experiment", [3, 5, 8], key="pick",
                           format_func=lambda i: f"Experiment {i}")
    st.write(f"chosen={chosen} url_int={query_int()}")
    st.write(experiment_url("results", chosen))
    if st.button("Clear tab"):
        set_query(tab=None)


def test_state_url_selectbox_opens_the_deep_linked_option() -> None:
    at = AppTest.from_function(_app)
    at.query_params["experiment"] = "5"
    at.run()
    assert not at.exception
    assert at.selectbox[0].value == 5
    assert at.query_params["experiment"] == "5"


def test_state_url_selectbox_leaves_the_url_for_the_default_and_writes_a_choice() -> None:
    """Issue 23: opening a page writes nothing into the URL (each write is a history entry,
    and Back then needed two presses to leave the page); a choice is written."""
    at = AppTest.from_function(_app).run()
    assert at.selectbox[0].value == 3
    assert "experiment" not in at.query_params
    at.run()
    assert "experiment" not in at.query_params
    at.selectbox[0].select(8).run()
    assert at.selectbox[0].value == 8
    assert at.query_params["experiment"] == "8"
    assert "./results?experiment=8" in [m.value for m in at.markdown]


def test_state_url_selectbox_opens_no_other_option_for_an_unknown_or_malformed_id() -> None:
    """Issue 23: an id the options do not hold is never replaced by another option; the picker
    shows no choice and the URL keeps the id it was given, until the user chooses."""
    for bad in ("99", "abc", "-1"):
        at = AppTest.from_function(_app)
        at.query_params["experiment"] = bad
        at.run()
        assert not at.exception
        assert at.selectbox[0].value is None
        assert at.query_params["experiment"] == bad
        assert "chosen=None" in at.markdown[0].value
        at.selectbox[0].select(5).run()
        assert at.selectbox[0].value == 5 and at.query_params["experiment"] == "5"


def test_state_url_selectbox_does_not_fall_back_when_the_open_option_goes() -> None:
    """An option that disappears (an idea archived) leaves no choice, not the first option."""
    def app() -> None:
        import streamlit as st

        from ui.state import url_selectbox

        options = [3, 5, 8] if not st.session_state.get("gone") else [3, 8]
        st.write(f"chosen={url_selectbox('Open idea', options, key='pick')}")
        if st.button("Archive 5"):
            st.session_state["gone"] = True
            st.rerun()

    at = AppTest.from_function(app)
    at.query_params["experiment"] = "5"
    at.run()
    assert at.selectbox[0].value == 5
    at.button[0].click().run()
    assert at.selectbox[0].value is None and at.markdown[0].value == "chosen=None"
    assert at.query_params["experiment"] == "5"


def test_state_url_selectbox_an_option_open_by_default_that_goes_opens_no_other() -> None:
    """The first option opens without a URL parameter; when it goes (archived), the picker
    shows no choice and the URL names it, so the page can say what became of it."""
    def app() -> None:
        import streamlit as st

        from ui.state import url_selectbox

        options = [3, 5, 8] if not st.session_state.get("gone") else [5, 8]
        st.write(f"chosen={url_selectbox('Open idea', options, key='pick')}")
        if st.button("Archive 3"):
            st.session_state["gone"] = True
            st.rerun()

    at = AppTest.from_function(app).run()
    assert at.selectbox[0].value == 3 and "experiment" not in at.query_params
    at.button[0].click().run()
    assert at.selectbox[0].value is None and at.markdown[0].value == "chosen=None"
    assert at.query_params["experiment"] == "3"
    at.run()
    assert at.selectbox[0].value is None


def _versions_app() -> None:
    from dataclasses import dataclass

    import streamlit as st

    from ui.state import as_shown, form_object, reload_form, submit_key

    @dataclass(frozen=True)
    class Row:
        id: int
        version: int

    current = Row(7, st.session_state.get("stored", 1))
    seen = as_shown("buttons", current)
    if st.button("Act"):
        st.write(f"button acts on version {seen.version}")
    held = form_object("edit", current)
    with st.form(f"edit_{held.version}"):
        st.text_input("Owner", f"owner at version {held.version}", key=f"owner_{held.version}")
        if st.form_submit_button("Save", key=submit_key("edit")):
            st.write(f"form saves version {held.version}")
    if st.button("Reload"):
        reload_form("edit")
        st.rerun()


def _someone_else_saves(at: AppTest) -> None:
    """Another tab saves: the stored version goes up by one."""
    at.session_state["stored"] = at.session_state.get("stored", 1) + 1


def test_state_as_shown_gives_the_version_the_buttons_were_drawn_for() -> None:
    at = AppTest.from_function(_versions_app).run()
    _someone_else_saves(at)  # between the drawing and the click
    next(b for b in at.button if b.label == "Act").click().run()
    assert "button acts on version 1" in [m.value for m in at.markdown]
    next(b for b in at.button if b.label == "Act").click().run()  # drawn at 2 by then
    assert "button acts on version 2" in [m.value for m in at.markdown]


def test_state_form_object_keeps_the_version_and_the_input_until_reloaded() -> None:
    at = AppTest.from_function(_versions_app).run()
    _someone_else_saves(at)
    at.run()  # any rerun: the form stays on the version it was drawn from
    at.text_input(key="owner_1").input("typed by me")
    _someone_else_saves(at)
    next(b for b in at.button if b.label == "Save").click().run()
    assert "form saves version 1" in [m.value for m in at.markdown]
    assert at.text_input(key="owner_1").value == "typed by me"
    at.run()
    assert at.text_input(key="owner_1").value == "typed by me"  # kept until reloaded
    next(b for b in at.button if b.label == "Reload").click().run()
    assert at.text_input(key="owner_3").value == "owner at version 3"


def test_state_set_query_removes_a_parameter_and_keeps_the_others() -> None:
    at = AppTest.from_function(_app)
    at.query_params["tab"] = "knowledge"
    at.run()
    assert at.query_params["tab"] == "knowledge"
    next(b for b in at.button if b.label == "Clear tab").click().run()
    assert "tab" not in at.query_params
    assert "experiment" not in at.query_params


def test_state_url_selectbox_clearing_the_picker_keeps_the_open_option() -> None:
    at = AppTest.from_function(_app)
    at.query_params["experiment"] = "5"
    at.run()
    at.selectbox[0].set_value(None).run()
    assert at.selectbox[0].value == 5 and at.query_params["experiment"] == "5"
