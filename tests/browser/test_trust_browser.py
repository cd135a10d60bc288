"""Issue 23, the four trust breakers, in a real browser: what a widget acts on is what the page
shows (conftest.py: ``streamlit run`` on a freshly seeded demo database of this module's own).

1. Backlog: Archive and Promote act on the open idea, and afterwards the page says what became
   of it instead of showing (and acting on) another idea.
2. Links: "Open results" of a proposed or an abandoned experiment says there are no results,
   and an id that names no experiment is said to, on Registry, Results and Reports; the URL
   keeps the id it was given and no other experiment is shown.
3. Planner: a plan sized for one traffic split is not saved onto an experiment split another
   way; the page says so in plain words and offers to set the experiment's split.
4. Registry: two tabs edit one experiment; the second save is refused with a message above the
   form, and the form keeps what was typed.

The demo's objects are looked up by name, never by id. Each step saves
``screenshots/trust-<item><step>-<what>.png`` (e.g. ``trust-1b-backlog-archived.png``).
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import pytest

from core import registry
from core.auth import Actor
from core.backlog import rice
from core.registry import ExperimentView
from db.session import make_engine, session_factory
from tests.browser.conftest import (
    PAGE_TIMEOUT_MS,
    assert_no_exception,
    login,
    main_text,
    new_page,
    pick_option,
    settle,
    shoot,
)

pytestmark = pytest.mark.browser

EDITOR = Actor(name="erin.editor", role="editor")
_ATTEMPTS = itertools.count(1)


def _shot(page: Any, name: str) -> None:
    assert_no_exception(page, name)
    shoot(page, f"trust-{name}")


def _main(page: Any) -> Any:
    return page.locator('[data-testid="stMain"]')


def _view(database_url: str, name: str) -> ExperimentView:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return registry.get_experiment_by_name(session, name=name)
    finally:
        engine.dispose()


def _idea_names(database_url: str) -> list[str]:
    """The backlog's ideas in rank order."""
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return [i.experiment.name for i in rice.rank_ideas(session)]
    finally:
        engine.dispose()


def _wait_until(check: Any, what: str) -> None:
    """Poll the database until `check()` holds (a ceiling, not a timing check)."""
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.25)


def _sign_in_and_open(page: Any, url: str, path: str) -> None:
    """Sign in on the front page, then open `path` (a deep link) signed in."""
    login(page, url)
    page.goto(url + path)
    page.get_by_text("Signed in as").wait_for()
    settle(page)


def _combobox(page: Any, label: str) -> Any:
    return _main(page).locator(f'input[role="combobox"][aria-label^="{label}"]').first


# ---------------------------------------------------------------- 1. backlog


def test_trust_browser_backlog_archive_and_promote_act_on_the_open_idea(
    writable_app: dict[str, Any], browser: Any
) -> None:
    url, db = writable_app["url"], writable_app["database_url"]
    ranked = _idea_names(db)
    target, promoted = ranked[2], ranked[1]  # neither the first idea, which a fallback opens
    others = {name: _view(db, name) for name in ranked if name != target}
    page = new_page(browser)
    _sign_in_and_open(page, url, "/backlog")
    picker = _combobox(page, "Open idea")
    pick_option(page, picker, re.compile(rf"^#3 {re.escape(target)}$"))
    settle(page)
    opened = _view(db, target)
    page.wait_for_url(re.compile(rf"experiment={opened.id}$"))
    _main(page).get_by_text(opened.hypothesis).wait_for()
    _shot(page, "1a-backlog-idea-open")

    _main(page).get_by_role("button", name="Archive").click()
    _wait_until(lambda: _view(db, target).archived_at is not None, f"{target} archived")
    page.wait_for_timeout(1000)
    settle(page)
    page.wait_for_timeout(5000)  # the "5 s later"
    settle(page)
    _shot(page, "1b-backlog-archived")
    text = main_text(page)
    assert f"experiment={opened.id}" in page.url, page.url  # the URL keeps the archived idea
    for name, other in others.items():  # no other idea's text under the picker
        assert other.hypothesis not in text, f"{name}'s hypothesis is shown after archiving"
    assert f"'{target}' is archived" in text, text[-2500:]
    assert picker.input_value() == "", picker.input_value()  # the picker names no idea
    assert _main(page).get_by_role("button", name="Archive").count() == 0  # nothing to act on
    assert all(_view(db, name).archived_at is None for name in others)

    # Promote: the page says where the idea went, and the link opens it in the Planner
    pick_option(page, picker, re.compile(rf"^#\d+ {re.escape(promoted)}$"))
    settle(page)
    _main(page).get_by_text(others[promoted].hypothesis).wait_for()
    _main(page).get_by_role("button", name="Promote to experiment").click()
    _wait_until(lambda: promoted not in _idea_names(db), f"{promoted} promoted")
    page.wait_for_timeout(1000)
    settle(page)
    _shot(page, "1c-backlog-promoted")
    text = main_text(page)
    assert f"'{promoted}' was promoted" in text, text[-2500:]
    for name in ranked:
        if name not in (target, promoted):
            assert others[name].hypothesis not in text, f"{name}'s hypothesis is shown"
    assert picker.input_value() == ""
    assert [n for n in ranked if n not in (target, promoted)] == _idea_names(db)
    _main(page).get_by_role("link", name=re.compile("Plan it in the Planner")).click()
    page.wait_for_url(re.compile(rf"/planner\?experiment={others[promoted].id}$"))
    settle(page)
    assert _combobox(page, "Proposed experiment").input_value() == promoted
    _shot(page, "1d-backlog-promoted-planner")


# ---------------------------------------------------------------- 2. links


def test_trust_browser_links_never_open_another_experiment(
    writable_app: dict[str, Any], browser: Any
) -> None:
    url, db = writable_app["url"], writable_app["database_url"]
    proposed = _view(db, "Social login")
    abandoned = _view(db, "Pricing FAQ accordion")
    assert (proposed.status, abandoned.status) == ("proposed", "abandoned")
    page = new_page(browser)
    login(page, url)
    for exp, words in ((proposed, "is proposed: no results yet"),
                       (abandoned, "was abandoned before it was launched: it has no results")):
        page.goto(f"{url}/registry?experiment={exp.id}")
        _main(page).get_by_role("heading", name=exp.name).wait_for()
        settle(page)
        _main(page).get_by_role("link", name=re.compile("Open results")).click()
        page.wait_for_url(re.compile(r"/results\?"))
        settle(page)
        page.wait_for_timeout(1000)
        settle(page)
        _shot(page, f"2a-results-of-{exp.status}")
        text = main_text(page)
        assert page.url.endswith(f"/results?experiment={exp.id}"), page.url
        assert f"'{exp.name}' {words}" in text, text[:1500]
        assert "Verdict" not in text and "Decisions" not in text, text[:1500]
        assert _combobox(page, "Experiment").input_value() == ""

    for bad, said in (("999999", "There is no experiment #999999"),
                      ("abc", "“abc” is not an experiment number"),
                      ("-1", "“-1” is not an experiment number")):
        for where in ("registry", "results", "reports"):
            page.goto(f"{url}/{where}?experiment={bad}")
            page.get_by_text("Signed in as").wait_for()
            settle(page)
            page.wait_for_timeout(500)
            settle(page)
            if bad == "999999":
                _shot(page, f"2b-{where}-no-such-experiment")
            text = main_text(page)
            assert page.url.endswith(f"/{where}?experiment={bad}"), (where, page.url)
            assert said in text, (where, text[:1500])
            # nothing of another experiment: no detail, verdict, results or reports
            assert _main(page).get_by_role("heading", level=3).filter(
                has_not_text="Portfolio export").count() == 0, (where, text[:1500])
            assert "Verdict:" not in text and "Generate report" not in text, (where, text[:1500])
            assert _combobox(page, "Open experiment" if where == "registry" else
                             "Experiment").input_value() == "", where


# ---------------------------------------------------------------- 3. planner


def test_trust_browser_planner_refuses_a_plan_sized_for_another_split(
    writable_app: dict[str, Any], browser: Any
) -> None:
    url, db = writable_app["url"], writable_app["database_url"]
    attempt = next(_ATTEMPTS)
    name = "Three-way checkout copy" + ("" if attempt == 1 else f" {attempt}")
    engine = make_engine(db)
    try:
        with session_factory(engine)() as session:
            exp = registry.create_experiment(session, actor=EDITOR, data={
                "name": name, "owner": "erin.editor", "primary_metric": "checkout_conversion",
                "hypothesis": "Either new copy lifts checkout conversion.",
                "variants": [{"name": "control", "weight": 0.34},
                             {"name": "short", "weight": 0.33},
                             {"name": "long", "weight": 0.33}],
            })
    finally:
        engine.dispose()
    page = new_page(browser)
    _sign_in_and_open(page, url, f"/planner?experiment={exp.id}")
    _main(page).get_by_role("spinbutton", name="Variants (incl. control)").fill("3")
    _main(page).get_by_role("spinbutton", name="Variants (incl. control)").press("Enter")
    settle(page)
    split = _main(page).get_by_role("textbox", name="Traffic split (%), control first")
    split.fill("50, 25, 25")
    split.press("Enter")
    settle(page)
    # Under load the selectbox may be redrawn (empty for a moment) by a run after the one
    # settle() saw: wait for it to show the experiment (a timeout fails, as it should).
    from playwright.sync_api import expect

    expect(_combobox(page, "Proposed experiment")).to_have_value(name, timeout=PAGE_TIMEOUT_MS)
    planned = int(_main(page).locator('[data-testid="stMetricValue"]').first.inner_text()
                  .replace(",", ""))  # users per variant, as the page computed them

    save = _main(page).get_by_role("button", name="Save plan", exact=True)
    if save.is_enabled():
        save.click()
        settle(page)
        page.wait_for_timeout(1000)
        settle(page)
    _shot(page, "3a-planner-split-refused")
    text = main_text(page)
    assert _view(db, name).planned_sample_size is None, "a plan for 50/25/25 was saved"
    assert "This plan is sized for a 50/25/25 split" in text, text[-2500:]
    assert f"'{name}' splits its traffic 34/33/33" in text, text[-2500:]
    assert re.search(r"At 34/33/33 it needs [\d,]+ users per variant, not "
                     rf"{planned:,}", text), text[-2500:]
    assert "Saved onto" not in text

    _main(page).get_by_role("button", name="Set the experiment's split to 50/25/25 and save"
                            ).click()
    _wait_until(lambda: _view(db, name).planned_sample_size is not None, "the plan saved")
    settle(page)
    _shot(page, "3b-planner-split-set")
    saved = _view(db, name)
    assert [(v.name, v.weight) for v in saved.variants] == [
        ("control", 0.5), ("short", 0.25), ("long", 0.25)]
    assert saved.planned_sample_size == planned
    _main(page).get_by_text(f"Saved onto '{name}'").wait_for()


# ---------------------------------------------------------------- 4. two tabs


def _edit_form(page: Any) -> Any:
    _main(page).get_by_text("Edit", exact=True).click()
    form = _main(page).locator('[data-testid="stForm"]').filter(
        has=page.get_by_role("button", name="Save changes"))
    form.first.wait_for()
    return form.first


def test_trust_browser_two_tabs_the_second_save_is_refused_and_keeps_its_input(
    writable_app: dict[str, Any], browser: Any
) -> None:
    url, db = writable_app["url"], writable_app["database_url"]
    before = _view(db, "Gamified loyalty points")
    page_a = new_page(browser)
    _sign_in_and_open(page_a, url, f"/registry?experiment={before.id}")
    context = page_a.context
    page_b = context.new_page()  # a second tab of the same signed-in browser
    page_b.set_default_timeout(PAGE_TIMEOUT_MS)
    page_b.goto(f"{url}/registry?experiment={before.id}")
    _main(page_b).get_by_role("heading", name=before.name).wait_for()
    settle(page_b)
    form_a, form_b = _edit_form(page_a), _edit_form(page_b)
    settle(page_a)
    settle(page_b)

    form_a.get_by_label("Hypothesis").fill("Tab A: points make a second order likelier.")
    form_a.get_by_role("button", name="Save changes").click()
    _wait_until(lambda: _view(db, before.name).version == before.version + 1, "tab A saved")
    settle(page_a)

    form_b.get_by_label("Owner").fill("tab.b.owner")
    form_b.get_by_role("button", name="Save changes").click()
    settle(page_b)
    page_b.wait_for_timeout(1500)
    settle(page_b)
    _shot(page_b, "4a-registry-second-tab-refused")
    after = _view(db, before.name)
    assert after.version == before.version + 1  # B wrote nothing
    assert after.hypothesis == "Tab A: points make a second order likelier."
    assert after.owner == before.owner
    errors = _main(page_b).locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 1, main_text(page_b)[:2000]
    message = errors.first.inner_text()
    assert "was changed by someone else" in message, message
    form_b = _main(page_b).locator('[data-testid="stForm"]').filter(
        has=page_b.get_by_role("button", name="Save changes")).first
    assert form_b.get_by_label("Owner").input_value() == "tab.b.owner"  # the input is kept
    assert errors.first.bounding_box()["y"] < form_b.bounding_box()["y"]  # above the form

    # B loads the new version (Tab A's hypothesis), types the owner again, and saves
    load = _main(page_b).get_by_role("button", name=re.compile(rf"^Load version {after.version}"))
    load.click()
    load.wait_for(state="detached")  # the form is on the stored version now
    settle(page_b)
    form_b = _main(page_b).locator('[data-testid="stForm"]').filter(
        has=page_b.get_by_role("button", name="Save changes")).first
    assert form_b.get_by_label("Hypothesis").input_value() == after.hypothesis
    form_b.get_by_label("Owner").fill("tab.b.owner")
    form_b.get_by_role("button", name="Save changes").click()
    _wait_until(lambda: _view(db, before.name).owner == "tab.b.owner", "tab B saved")
    settle(page_b)
    _shot(page_b, "4b-registry-second-tab-saved")
    final = _view(db, before.name)
    assert final.hypothesis == after.hypothesis and final.version == after.version + 1
