"""Results page (AppTest) on the demo data: every experiment renders, the SRM experiment is
blocked with a red banner and no `significant` badge, the underpowered one shows `too_early`,
decision badges are exactly core's states, viewers see no upload or refresh."""

from __future__ import annotations

import re

from sqlalchemy import delete
from streamlit.testing.v1 import AppTest

from core import registry
from core.analysis import results, views
from db.models import ResultSnapshot
from db.session import make_engine, session_factory
from tests.apptest import login, open_page

BADGE = re.compile(r":(\w+)-badge\[(\w+)\]")


def _results(user: str, experiment: str | None = None) -> AppTest:
    at = open_page(login(user), "results")
    assert not at.exception, at.exception
    if experiment is not None:
        box = at.selectbox(key="res_experiment")
        box.select_index(next(i for i, o in enumerate(box.options)
                              if o.startswith(experiment + " ("))).run()
        assert not at.exception, at.exception
    return at


def _badges(at: AppTest) -> list[str]:
    return [m.group(2) for md in at.markdown for m in BADGE.finditer(md.value)]


def _core_states(url: str, name: str) -> list[str]:
    engine = make_engine(url)
    with session_factory(engine)() as session:
        choice = next(c for c in views.experiments_with_results(session) if c.name == name)
        snap = results.compute_results(session, experiment_id=choice.id)
    engine.dispose()
    return [c.decision_state for c in snap.comparisons]


def test_results_page_renders_every_experiment(demo_app: str) -> None:
    at = _results("demo-viewer")
    options = at.selectbox(key="res_experiment").options
    assert len(options) == 12  # 8 running + 4 completed demo experiments
    for i in range(len(options)):
        at.selectbox(key="res_experiment").select_index(i).run()
        assert not at.exception, (options[i], at.exception)
        assert at.title[0].value == "Results"
        assert _badges(at), options[i]  # every demo experiment has decisions
        assert len(at.get("plotly_chart")) == 3  # forest, cumulative lift, daily units


def test_results_page_blocks_the_srm_experiment(demo_app: str) -> None:
    at = _results("demo-viewer", "Onboarding checklist")
    banner = [e.value for e in at.error]
    assert len(banner) == 1 and "Sample ratio mismatch — results blocked" in banner[0]
    assert "control 6,000" in banner[0] and "treatment 6,600" in banner[0]
    assert "significant" not in _badges(at)
    assert set(_badges(at)) == {"srm_untrustworthy"}
    assert _badges(at) == _core_states(demo_app, "Onboarding checklist")


def test_results_page_shows_the_underpowered_experiment_as_too_early(demo_app: str) -> None:
    at = _results("demo-viewer", "Pricing page redesign")
    assert not at.error
    assert _badges(at) == ["too_early", "too_early"]
    assert _badges(at) == _core_states(demo_app, "Pricing page redesign")
    assert "significant" not in _badges(at)
    assert any("40%" in md.value for md in at.markdown)  # the reason names the progress
    assert {m.label: m.value for m in at.metric} == {"control (50%)": "8,000",
                                                     "treatment (50%)": "8,000"}


def test_results_page_shows_a_clear_winner_as_significant(demo_app: str) -> None:
    at = _results("demo-viewer", "Checkout button colour")
    assert not at.error
    assert _badges(at) == _core_states(demo_app, "Checkout button colour")
    assert _badges(at)[0] == "significant"  # checkout_conversion, true lift +15%
    table = at.dataframe[0].value
    assert list(table["metric"]) == ["checkout_conversion", "refund_rate", "revenue_per_user"]
    assert list(table["decision_state"]) == _badges(at)


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
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("Refreshed:") for s in at.success)
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as session:
        choice = next(c for c in views.experiments_with_results(session)
                      if c.name == "Search ranking v2")
        stored = results.latest_snapshot(session, experiment_id=choice.id)
    engine.dispose()
    assert stored is not None and stored.computed_by == "demo-editor"
