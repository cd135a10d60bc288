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


def test_state_url_selectbox_writes_the_default_and_a_new_choice_into_the_url() -> None:
    at = AppTest.from_function(_app).run()
    assert at.selectbox[0].value == 3
    assert at.query_params["experiment"] == "3"
    at.selectbox[0].select(8).run()
    assert at.selectbox[0].value == 8
    assert at.query_params["experiment"] == "8"
    assert "./results?experiment=8" in [m.value for m in at.markdown]


def test_state_url_selectbox_ignores_an_unknown_or_malformed_id() -> None:
    for bad in ("99", "abc"):
        at = AppTest.from_function(_app)
        at.query_params["experiment"] = bad
        at.run()
        assert not at.exception
        assert at.selectbox[0].value == 3
        assert at.query_params["experiment"] == "3"


def test_state_set_query_removes_a_parameter_and_keeps_the_others() -> None:
    at = AppTest.from_function(_app)
    at.query_params["tab"] = "knowledge"
    at.run()
    assert at.query_params["tab"] == "knowledge"
    next(b for b in at.button if b.label == "Clear tab").click().run()
    assert "tab" not in at.query_params
    assert at.query_params["experiment"] == "3"
