"""Backlog page (AppTest) on the demo data: rank order, inline edit re-scores and re-ranks,
promote writes an audit entry, archive, a viewer sees no write controls, knowledge base tab."""

from __future__ import annotations

from sqlalchemy import select
from streamlit.proto.Metric_pb2 import Metric as MetricProto
from streamlit.testing.v1 import AppTest

from core import format as fmt
from core.backlog import knowledge, rice
from db.models import AuditEntry, Experiment
from db.session import make_engine, session_factory
from tests.apptest import login, open_page
from ui.grid import versioned_key

DEMO_RANKING = ["Simplified signup form", "Social login", "Wishlist reminder emails",
                "Gamified loyalty points"]
"""Demo RICE: 70000·1·0.8/0.5 = 112000; 70000·2·0.8/3 ≈ 37333; 15000·1·0.5/2 = 3750;
60000·3·0.2/12 = 3000."""


def _buttons(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


def _ranked(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["Idea"])


def _db(url: str):  # type: ignore[no-untyped-def]
    return session_factory(make_engine(url))()


def _editor_key(url: str) -> str:
    """The grid's key for the whole backlog as it stands (ids and versions in rank order)."""
    with _db(url) as s:
        return versioned_key("backlog_editor",
                             [(i.id, i.experiment.version) for i in rice.rank_ideas(s)])


def test_backlog_page_ranks_the_demo_ideas(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "backlog")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["Idea"]) == DEMO_RANKING
    assert list(table["Rank"]) == [1, 2, 3, 4]
    assert list(table["Score"]) == [112000, 37333, 3750, 3000]  # shown rounded to whole units
    assert len(at.get("plotly_chart")) >= 1  # the RICE bubble chart


def test_backlog_page_viewer_sees_no_write_controls(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "backlog")
    assert not at.data_editor  # a read-only table, not an editor
    assert not _buttons(at) & {"Save score changes", "Promote to experiment", "Archive",
                               "Restore to backlog"}
    assert any("read-only access" in c.value for c in at.caption)


def test_backlog_page_filters_by_owner_and_tag(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "backlog")
    at.selectbox(key="bl_tag").select("onboarding").run()
    assert _ranked(at) == ["Simplified signup form", "Social login"]
    at.selectbox(key="bl_owner").select("sam.chen").run()
    assert _ranked(at) == ["Social login"]
    assert list(at.dataframe[0].value["Rank"]) == [2]  # ranks stay global


def test_backlog_page_inline_edit_recomputes_score_and_reranks(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "backlog")
    assert at.data_editor, "editors get an editable table"
    # Gamified loyalty points is last (row 3); with confidence 100 % and effort 1 it scores
    # 60000 · 3 · 1.0 / 1 = 180000 and goes to the top.
    at.session_state[_editor_key(fresh_demo_app)] = {
        "edited_rows": {3: {"Confidence %": 100, "Effort": 1}}, "added_rows": [],
        "deleted_rows": [],
    }
    next(b for b in at.button if b.label == "Save score changes").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table["Idea"])[0] == "Gamified loyalty points"
    assert table["Score"].iloc[0] == 180000.0
    with _db(fresh_demo_app) as s:
        exp = s.scalar(select(Experiment).where(Experiment.name == "Gamified loyalty points"))
        assert exp is not None and (exp.confidence, exp.effort, exp.rice_score) == (
            100.0, 1.0, 180000.0)
        last = s.scalars(select(AuditEntry).where(AuditEntry.entity_id == exp.id)
                         .order_by(AuditEntry.id.desc())).first()
        assert last is not None and last.action == "update" and last.actor == "demo-editor"


def test_backlog_page_bad_edit_shows_error_and_writes_nothing(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "backlog")
    at.session_state[_editor_key(fresh_demo_app)] = {
        "edited_rows": {0: {"Confidence %": 150}}, "added_rows": [], "deleted_rows": []}
    next(b for b in at.button if b.label == "Save score changes").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "Nothing was saved" in errors and "confidence" in errors.lower()
    with _db(fresh_demo_app) as s:
        exp = s.scalar(select(Experiment).where(Experiment.name == "Simplified signup form"))
        assert exp is not None and exp.confidence == 80.0


def test_backlog_page_promote_creates_audit_entry(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "backlog")
    at.selectbox(key="bl_idea").select_index(1).run()  # Social login
    next(b for b in at.button if b.label == "Promote to experiment").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Social login" not in _ranked(at)
    assert any("Promoted, ready for planning (1)" in e.label for e in at.expander)
    assert at.selectbox(key="bl_idea").value is None  # issue 23: no other idea opens
    assert any(i.value.startswith("'Social login' was promoted") for i in at.info)
    with _db(fresh_demo_app) as s:
        exp = s.scalar(select(Experiment).where(Experiment.name == "Social login"))
        assert exp is not None and exp.status == "proposed"
        entry = s.scalars(select(AuditEntry).where(AuditEntry.entity_id == exp.id,
                                                   AuditEntry.action == "promote")).one()
        assert entry.actor == "demo-editor"
        assert entry.changes["stage"] == ["backlog idea", "proposed experiment"]
    # issue 23: the promoted idea links to its experiment (Registry and Planner)
    links = {(p.label, p.proto.page) for p in at.get("page_link")}
    assert {label for label, _ in links} >= {"Open the experiment in the Registry",
                                             "Plan it in the Planner"}
    promoted = next(d.value for d in at.dataframe if "Registry" in d.value.columns)
    assert list(promoted["Registry"]) == [f"./registry?experiment={exp.id}"]
    assert list(promoted["Planner"]) == [f"./planner?experiment={exp.id}"]


def test_backlog_page_adds_an_idea_with_its_rice_inputs(fresh_demo_app: str) -> None:
    """Issue 23: the Backlog had no "Add idea"; an idea with R/I/C/E is scored, ranked and
    opened at once, and the form is empty for the next one. Bad RICE input is refused."""
    at = open_page(login("demo-editor"), "backlog")
    at.text_input(key="bl_new_name").input("Saved carts")
    at.text_area(key="bl_new_hypothesis").input("Reminders bring carts back.")
    at.selectbox(key="bl_new_metric").select("checkout_conversion")
    at.number_input(key="bl_new_reach").set_value(40000)
    at.selectbox(key="bl_new_impact").select(2.0)
    at.number_input(key="bl_new_confidence").set_value(80)
    at.number_input(key="bl_new_effort").set_value(2.0)
    next(b for b in at.button if b.label == "Add idea").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    score = 40000 * 2 * 0.8 / 2  # 32,000: between Social login (37,333) and Wishlist (3,750)
    assert _ranked(at) == [*DEMO_RANKING[:2], "Saved carts", *DEMO_RANKING[2:]]
    assert at.dataframe[0].value.set_index("Idea").loc["Saved carts", "Score"] == score
    with _db(fresh_demo_app) as s:
        added = s.scalar(select(Experiment).where(Experiment.name == "Saved carts"))
        assert added is not None and added.rice_score == score and added.status == "proposed"
    assert at.selectbox(key="bl_idea").value == added.id  # the new idea opens
    assert at.text_input(key="bl_new_name").value == ""  # the form is empty again
    assert at.number_input(key="bl_new_reach").value is None
    at.text_input(key="bl_new_name").input("No effort given")
    at.number_input(key="bl_new_reach").set_value(100)
    next(b for b in at.button if b.label == "Add idea").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "Nothing was saved" in errors and "effort" in errors.lower()
    with _db(fresh_demo_app) as s:
        assert s.scalar(select(Experiment).where(Experiment.name == "No effort given")) is None


def test_backlog_page_archive_removes_the_idea(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "backlog")
    # the top idea is open by default
    next(b for b in at.button if b.label == "Archive").click().run()
    assert not at.error, [e.value for e in at.error]
    assert _ranked(at) == DEMO_RANKING[1:]
    assert any("Archived ideas (1)" in e.label for e in at.expander)
    # issue 23: the page says what became of the idea; it opens no other one to act on
    assert at.selectbox(key="bl_idea").value is None
    assert any(i.value.startswith("'Simplified signup form' is archived") for i in at.info)
    assert not {"Archive", "Promote to experiment"} & {b.label for b in at.button}
    with _db(fresh_demo_app) as s:
        archived = s.scalars(select(Experiment.name).where(Experiment.archived_at.is_not(None)))
        assert list(archived) == ["Simplified signup form"]


def test_backlog_page_knowledge_base_search_and_calibration(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "backlog")
    at.text_input(key="kb_search").input("abandonment").run()
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    completed = next(f for f in frames if "Learnings" in f.columns)
    assert list(completed["Experiment"]) == ["One-page checkout"]
    at.text_input(key="kb_search").input("What did we learn about checkout?").run()
    frames = [d.value for d in at.dataframe]
    completed = next(f for f in frames if "Learnings" in f.columns)
    assert list(completed["Experiment"]) == ["One-page checkout", "Trust badges on cart"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["High-confidence ideas that won"] == "2/3"
    assert metrics["Win rate"] == "50%"
    # issue 23: a win rate below the confidence is a shortfall: a red ↓, not a green ↑
    win_rate = next(m for m in at.metric if m.label == "Win rate")
    assert win_rate.proto.delta.startswith("−") and win_rate.proto.delta.endswith(
        "vs confidence")
    assert (win_rate.proto.direction, win_rate.proto.color) == (
        MetricProto.MetricDirection.DOWN, MetricProto.MetricColor.RED)


def test_backlog_page_knowledge_base_shows_raw_and_shrunk_lifts(demo_app: str) -> None:
    """The list, the programme impact and the CSV show each lift raw and shrunk (empirical
    Bayes), the same numbers as the service (core.backlog.knowledge.knowledge_base)."""
    with _db(demo_app) as s:
        kb = knowledge.knowledge_base(s)
    at = open_page(login("demo-viewer"), "backlog")
    assert not at.exception, at.exception
    completed = next(d.value for d in at.dataframe if "Learnings" in d.value.columns)
    lifts = [c for c in completed.columns if c.startswith("Lift")]
    assert lifts == ["Lift (raw)", "Lift, shrunk (empirical Bayes)"]
    for e in kb.experiments:
        x = kb.impact.lift_of(e.id)
        assert x is not None
        row = completed[completed["Experiment"] == e.name].iloc[0]
        assert row["Lift, shrunk (empirical Bayes)"] == fmt.signed_percent(x.shrunk_lift)
        assert row["Lift (raw)"] == fmt.signed_percent(x.lift)
    metrics = {m.label: m.value for m in at.metric}
    shipped = kb.impact.shipped
    assert metrics["Shipped experiments with a result"] == "2"
    assert metrics["Summed lift (raw)"] == fmt.signed_percent(shipped.raw_sum)
    assert metrics["Summed lift, shrunk (empirical Bayes)"] == fmt.signed_percent(
        shipped.shrunk_sum)
    assert shipped.shrunk_sum < shipped.raw_sum
    assert any("DerSimonian–Laird" in c.value and "winner's curse" in c.value
               for c in at.caption)
    groups = next(d.value for d in at.dataframe if "Mean realised lift, shrunk" in d.value.columns)
    assert "Mean realised lift (raw)" in groups.columns


def test_backlog_page_opens_the_deep_linked_idea(demo_app: str) -> None:
    with _db(demo_app) as s:
        target = s.scalar(select(Experiment.id)
                          .where(Experiment.name == "Wishlist reminder emails"))
    at = login("demo-viewer")
    at.query_params["experiment"] = str(target)
    at = open_page(at, "backlog")
    assert not at.exception, at.exception
    assert at.selectbox(key="bl_idea").value == target
    at.selectbox(key="bl_idea").select_index(0).run()
    assert at.query_params["experiment"] != str(target)  # the new choice is in the URL
