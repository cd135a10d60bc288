"""Home.py: the login gate, wrong passwords, role-aware pages, unsafe settings refused."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import HOME, login, open_page, use_database


def test_home_shows_only_the_login_form_before_login(demo_app: str) -> None:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.metric  # no portfolio before login
    assert "Demo mode" in at.info[0].value and "demo-only" in at.info[0].value


def test_home_refuses_a_wrong_password(demo_app: str) -> None:
    at = login("demo-editor", "not-the-password")
    assert not at.exception
    assert any("incorrect" in e.value for e in at.error)
    assert not at.metric


def test_home_pages_are_unreachable_before_login(demo_app: str) -> None:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("pages/registry.py").run()
    assert not at.exception
    assert not at.dataframe and not at.metric
    assert [b.label for b in at.button] in ([], ["Login"])  # only the login form, if anything
    shown = [t.label for t in at.text_input] + [e.value for e in at.error]
    assert shown in (["Username", "Password"], ["Please sign in from the home page."])


def test_home_overview_after_login(demo_app: str) -> None:
    at = login("demo-viewer")
    assert not at.exception
    counts = {m.label: int(m.value) for m in at.metric}
    assert counts == {"Proposed": 4, "Running": 11, "Completed": 4, "Abandoned": 2}
    assert any("Signed in as" in m.value and "viewer" in m.value for m in at.sidebar.markdown)


def test_home_refuses_to_start_outside_demo_mode_with_default_secret(
    monkeypatch: pytest.MonkeyPatch, demo_db_url: str
) -> None:
    use_database(monkeypatch, demo_db_url, DEMO_MODE="false")
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert any("AUTH_COOKIE_SECRET" in e.value for e in at.error)
    assert not at.text_input  # not even a login form


def test_home_outside_demo_mode_has_no_demo_users(
    monkeypatch: pytest.MonkeyPatch, demo_db_url: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from core.config import get_settings
    from core.users import add_user

    creds = tmp_path / "credentials.yaml"
    use_database(monkeypatch, demo_db_url, DEMO_MODE="false",
                 AUTH_COOKIE_SECRET="a-real-secret-for-this-test-only-0123456789",
                 CREDENTIALS_FILE=str(creds))
    add_user(username="alice", name="Alice", role="editor", password="correct horse battery",
             settings=get_settings())
    at = login("demo-editor")
    assert any("incorrect" in e.value for e in at.error)
    assert not at.info  # no demo banner
    at = login("alice", "correct horse battery")
    assert not at.exception and at.metric


def test_home_registry_page_opens_after_login(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "registry")
    assert not at.exception
    assert at.title[0].value == "Experiment registry"


def test_home_log_out_ends_the_session_without_an_error(demo_app: str) -> None:
    at = login("demo-editor")
    at.session_state["reg_search"] = "checkout"  # a page's state, gone after log out
    next(b for b in at.sidebar.button if b.label == "Log out").click().run()
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert any("signed out" in s.value for s in at.success)
    assert not at.sidebar.markdown and not at.dataframe
    assert "reg_search" not in at.session_state and "actor" not in at.session_state
    at = login("demo-viewer")  # the next user signs in afresh
    assert any("Signed in as" in m.value and "viewer" in m.value for m in at.sidebar.markdown)


def test_home_sign_in_resumes_the_deep_link_asked_for_while_signed_out(demo_app: str) -> None:
    # a return visit signs in by cookie on a rerun that may arrive without its page: the
    # signed-out run remembered /registry?experiment=3, so the sign-in opens it there
    at = login("demo-viewer")
    assert at.title[0].value == "ExperimentOS"  # the Overview
    at.session_state["_eos_wanted_page"] = ("registry", {"experiment": "3"}, float("inf"))
    at.run()
    assert not at.exception
    assert at.title[0].value == "Experiment registry"
    assert at.query_params["experiment"] == "3"
    assert "_eos_wanted_page" not in at.session_state  # once: the next run stays put
    at.run()
    assert at.title[0].value == "Experiment registry"


def test_home_signed_out_visit_remembers_the_page_the_url_asked_for(demo_app: str) -> None:
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params["experiment"] = "3"
    at.switch_page("pages/results.py").run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert at.session_state["_eos_wanted_page"] == ("results", {"experiment": "3"},
                                                    float("inf"))


def test_home_first_signed_in_run_remembers_its_page_for_the_next_run_only(demo_app: str
                                                                          ) -> None:
    # a return visit signs in by cookie on its first run; the rerun right after it (the cookie
    # component's) may arrive without its page, so that run's page is kept for one run
    at = login("demo-viewer")
    path, params, until = at.session_state["_eos_wanted_page"]
    assert (path, params) == ("", {}) and until < float("inf")
    at.run()
    assert "_eos_wanted_page" not in at.session_state
    # past its deadline, a remembered page is not followed: the Overview the user chose stays
    at.session_state["_eos_wanted_page"] = ("registry", {"experiment": "3"}, 0.0)
    at.run()
    assert at.title[0].value == "ExperimentOS"


@pytest.mark.parametrize("revision", [None, "0004"])
def test_home_refuses_to_start_on_an_unmigrated_database_naming_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path, revision: str | None  # type: ignore[no-untyped-def]
) -> None:
    """The app never migrates: on an empty database or an older schema it shows the command
    and nothing else; once migrated, the same database starts."""
    from db.migrate import MIGRATE_COMMAND, upgrade

    url = f"sqlite:///{tmp_path / 'app.db'}"
    if revision is not None:
        upgrade(url, revision)
    use_database(monkeypatch, url)
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert not at.exception
    assert len(at.error) == 1 and MIGRATE_COMMAND in at.error[0].value
    assert not at.text_input  # not even a login form
    if revision is None:
        assert not (tmp_path / "app.db").exists()  # nor an empty database file

    upgrade(url)
    at.run()
    assert not at.exception and not at.error
    assert [t.label for t in at.text_input] == ["Username", "Password"]
