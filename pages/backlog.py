"""Backlog: RICE-ranked ideas, inline scoring, promote/archive, and the knowledge base."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import catalogue
from core import format as fmt
from core.backlog import knowledge, rice
from core.backlog.rice import IMPACT_LABELS
from ui import charts
from ui.auth import current_actor
from ui.grid import changed_cells, versioned_key
from ui.state import (
    as_shown,
    clear_reads,
    db_session,
    experiment_link,
    experiment_url,
    forget_choice,
    linked_experiment,
    set_query,
    url_selectbox,
)
from ui.widgets import delta_style, empty_form, run_action, split_list

actor = current_actor()
can_write = actor.can("editor")
EDITOR_KEY = "backlog_editor"
COLUMNS = {"reach": "Reach", "impact": "Impact", "confidence": "Confidence %", "effort": "Effort"}
TESTABLE = {True: "yes", False: "NOT testable", None: "unknown"}
SIGNIFICANT = {True: "yes", False: "no", None: "—"}
SHRUNK_COLUMN = f"Lift, {knowledge.SHRUNK_LABEL}"
# The grid's columns: the score and its four inputs first, so they fit beside the sidebar at
# 1,024 px (issue 23: Confidence, Effort and Score were off screen); owner and segment (the
# filters above) after them; tags and observed reach are in the idea.
SHOWN = ["Rank", "Idea", "Score", "Reach", "Impact", "Confidence %", "Effort", "Testable",
         "Owner", "Segment"]


@st.cache_data(ttl=30, show_spinner=False)
def load_ideas(owner: str | None, tag: str | None, segment: str | None) -> list[rice.Idea]:
    with db_session() as session:
        return rice.rank_ideas(session, owner=owner, tag=tag, segment=segment)


@st.cache_data(ttl=60, show_spinner=False)
def load_metric_names() -> list[str]:
    with db_session() as session:
        return [m.name for m in catalogue.list_metrics(session)]


NEW_IDEA_KEYS = ("bl_new_name", "bl_new_owner", "bl_new_hypothesis", "bl_new_segment",
                 "bl_new_metric", "bl_new_tags", "bl_new_reach", "bl_new_impact",
                 "bl_new_confidence", "bl_new_effort")


@st.cache_data(ttl=30, show_spinner=False)
def load_choices() -> tuple[list[str], list[str], list[str]]:
    with db_session() as session:
        return rice.filter_choices(session)


@st.cache_data(ttl=30, show_spinner=False)
def load_side_lists():  # type: ignore[no-untyped-def]
    with db_session() as session:
        return rice.promoted_experiments(session), rice.archived_ideas(session)


@st.cache_data(ttl=30, show_spinner=False)
def load_not_an_idea(experiment_id: int) -> rice.NotAnIdea | None:
    with db_session() as session:
        return rice.not_an_idea(session, experiment_id=experiment_id)


def not_shown() -> None:
    """In place of the idea the URL names but the list cannot show: where it went, in words."""
    linked = linked_experiment(noun="idea")
    if isinstance(linked, str):
        st.warning(linked)
        return
    gone = load_not_an_idea(linked.id)
    if gone is None:
        st.info(f"'{linked.name}' is hidden by the filters above: set them to “any” to see it.")
    elif gone.why == "promoted":
        st.info(gone.message)
        l1, l2 = st.columns(2)
        experiment_link("registry", gone.experiment_id, "Open the experiment in the Registry",
                        container=l1, icon=":material/science:")
        experiment_link("planner", gone.experiment_id, "Plan it in the Planner",
                        container=l2, icon=":material/calculate:")
    elif gone.why == "launched":
        st.info(gone.message)
        experiment_link("registry", gone.experiment_id, "Open it in the Registry",
                        icon=":material/science:")
    else:
        st.info(gone.message)


@st.cache_data(ttl=30, show_spinner=False)
def load_knowledge(search: str, by: str, calibrate_by: str):  # type: ignore[no-untyped-def]
    with db_session() as session:
        kb = knowledge.knowledge_base(session, search=search)
        return (
            kb.experiments,
            knowledge.win_rates(session, by=by, items=kb.everything),
            knowledge.calibration(session, by=calibrate_by, items=kb.everything,
                                  impact=kb.impact),
        )


def call(fn, success: str):  # type: ignore[no-untyped-def]
    with db_session() as session:
        result = run_action(lambda: fn(session), success)
    if result is not None:
        clear_reads()
    return result


def editor_key(ideas: list[rice.Idea]) -> str:
    """The grid's key: every shown idea's id and version, so a re-rank starts a fresh grid."""
    return versioned_key(EDITOR_KEY, [(i.id, i.experiment.version) for i in ideas])


def rice_edits(ideas: list[rice.Idea], before: pd.DataFrame, after: pd.DataFrame
               ) -> list[rice.RiceEdit]:
    """The changed cells as edits keyed by idea id and the version the user saw."""
    changed = changed_cells(before, after, COLUMNS)
    return [rice.RiceEdit(i.id, i.experiment.version, changed[i.id])
            for i in ideas if i.id in changed]


st.title("Backlog")
backlog_tab, knowledge_tab = st.tabs(["Ranked ideas", "Knowledge base"])

# ---------------------------------------------------------------- backlog
with backlog_tab:
    owners, tags, segments = load_choices()
    f1, f2, f3 = st.columns(3)
    new_list = {"on_change": forget_choice, "args": ("bl_idea",)}  # a new list opens its first
    owner = f1.selectbox("Owner", ["any", *owners], key="bl_owner", **new_list)
    tag = f2.selectbox("Tag", ["any", *tags], key="bl_tag", **new_list)
    segment = f3.selectbox("Segment", ["any", *segments], key="bl_segment", **new_list)
    ideas = load_ideas(
        None if owner == "any" else owner, None if tag == "any" else tag,
        None if segment == "any" else segment,
    )
    st.caption(
        "Score = Reach (units per quarter) × Impact (3 massive … 0.25 minimal) × Confidence % "
        "/ Effort (person-weeks). Ideas are ranked by score across the whole backlog."
    )
    if can_write:
        with st.expander("Add idea"), st.form("bl_new_idea"):
            n1, n2 = st.columns(2)
            idea_name = n1.text_input("Idea", key="bl_new_name")
            idea_owner = n2.text_input("Owner", value=actor.name, key="bl_new_owner")
            idea_hypothesis = st.text_area("Hypothesis", key="bl_new_hypothesis", height=80)
            n1, n2, n3 = st.columns(3)
            idea_segment = n1.text_input("Segment", key="bl_new_segment")
            idea_metric = n2.selectbox("Primary metric", load_metric_names(), index=None,
                                       placeholder="Choose a metric", key="bl_new_metric")
            idea_tags = n3.text_input("Tags (comma-separated)", key="bl_new_tags")
            r1, r2, r3, r4 = st.columns(4)
            idea_reach = r1.number_input("Reach (units per quarter)", min_value=0, step=1000,
                                         value=None, key="bl_new_reach")
            idea_impact = r2.selectbox("Impact", list(IMPACT_LABELS), index=None,
                                       format_func=lambda v: f"{v:g} {IMPACT_LABELS[v]}",
                                       placeholder="Choose", key="bl_new_impact")
            idea_confidence = r3.number_input("Confidence (%)", min_value=0, max_value=100,
                                              value=None, step=10, key="bl_new_confidence")
            idea_effort = r4.number_input("Effort (person-weeks)", min_value=0.0, value=None,
                                          step=0.5, format="%g", key="bl_new_effort")
            if st.form_submit_button("Add idea", type="primary") and (added := call(
                lambda s: rice.add_idea(s, actor=actor, data={
                    "name": idea_name, "owner": idea_owner, "hypothesis": idea_hypothesis,
                    "target_segment": idea_segment, "primary_metric": idea_metric,
                    "tags": split_list(idea_tags), "reach": idea_reach, "impact": idea_impact,
                    "confidence": idea_confidence, "effort": idea_effort}),
                f"Idea '{idea_name.strip()}' added and ranked.",
            )):
                empty_form(*NEW_IDEA_KEYS)  # the next idea starts from an empty form
                st.session_state.pop("bl_idea", None)
                set_query(experiment=added.id)  # the new idea opens below
                st.rerun()
    if not ideas:
        st.info("No backlog ideas match these filters.")
    else:
        table = pd.DataFrame([
            {"Rank": i.rank, "Idea": i.experiment.name, "Owner": i.experiment.owner,
             "Segment": i.experiment.target_segment, "Tags": ", ".join(i.experiment.tags),
             "Reach": i.experiment.reach, "Impact": i.experiment.impact,
             "Confidence %": i.experiment.confidence, "Effort": i.experiment.effort,
             "Score": None if i.score is None else round(i.score),
             "Testable": TESTABLE[i.testability.testable],
             "Observed reach": (None if i.observed_reach is None
                                else round(i.observed_reach))}
            for i in ideas
        ], index=pd.Index([i.id for i in ideas], name="id"))
        config = {
            "Rank": st.column_config.NumberColumn("Rank", width=40),
            "Idea": st.column_config.TextColumn("Idea", width=145),
            "Owner": st.column_config.TextColumn("Owner", width=95),
            "Segment": st.column_config.TextColumn("Segment", width=115),
            "Testable": st.column_config.TextColumn("Testable", width=90),
            "Reach": st.column_config.NumberColumn("Reach", min_value=0, format="localized",
                                                   width=72, help="Units affected per quarter"),
            "Impact": st.column_config.SelectboxColumn(
                "Impact", options=list(IMPACT_LABELS), width=66,
                help="3 massive, 2 high, 1 medium, 0.5 low, 0.25 minimal"),
            "Confidence %": st.column_config.NumberColumn("Confidence %", min_value=0,
                                                          max_value=100, width=96),
            "Effort": st.column_config.NumberColumn("Effort", min_value=0.01, width=62,
                                                    help="Person-weeks"),
            "Score": st.column_config.NumberColumn("Score", format="localized", width=72),
            "Observed reach": st.column_config.NumberColumn(
                "Observed reach", format="localized",
                help="Units per quarter the segment showed in past experiments"),
        }
        if can_write:
            edited = st.data_editor(
                table, key=editor_key(ideas), hide_index=True, width="stretch",
                column_config=config, column_order=SHOWN,
                disabled=[c for c in table.columns if c not in COLUMNS.values()],
            )
            if st.button("Save score changes", type="primary"):
                edits = rice_edits(ideas, table, edited)
                if not edits:
                    st.info("No score changed.")
                elif call(lambda s: rice.edit_many(s, edits=edits, actor=actor),
                          f"Saved {len(edits)} idea(s); the backlog is re-ranked."):
                    st.rerun()  # new versions: a new editor key, so no edit is carried over
        else:
            st.dataframe(table, hide_index=True, width="stretch", column_config=config,
                         column_order=SHOWN)
            st.caption("You have read-only access: ask an admin for the editor role to "
                       "score, promote or archive ideas.")

        chart = table.dropna(subset=["Reach", "Impact", "Effort"])
        if not chart.empty:
            figure = charts.rice_map(chart, owners)  # every owner: colours stay put
            st.plotly_chart(figure, width="stretch")

        st.markdown("#### Idea")
        by_id = {i.id: i for i in ideas}
        chosen = url_selectbox("Open idea", list(by_id), key="bl_idea",
                               format_func=lambda i: f"#{by_id[i].rank} {by_id[i].experiment.name}",
                               placeholder="Choose an idea")
        if chosen is None:
            not_shown()
        else:
            idea = by_id[chosen]
            exp = idea.experiment
            seen = as_shown("bl_idea", exp)  # the buttons act on the version they were drawn for
            st.markdown(f"**Hypothesis:** {exp.hypothesis or '—'}")
            st.markdown(
                f"**Primary metric:** {exp.primary_metric or '—'} · **MDE:** "
                f"{fmt.percent(exp.mde, trim=True)} · **Segment:** {exp.target_segment or '—'}"
            )
            st.markdown(
                f"**Tags:** {', '.join(exp.tags) or '—'} · **Observed reach:** "
                f"{fmt.count(idea.observed_reach)} units per quarter in past experiments"
                if idea.observed_reach is not None else f"**Tags:** {', '.join(exp.tags) or '—'}"
            )
            if idea.testability.testable is False:
                st.warning(idea.testability.message)
            elif idea.testability.testable:
                st.success(idea.testability.message)
            else:
                st.info(idea.testability.message)
            if can_write:
                a1, a2, a3 = st.columns(3)
                if a1.button("Promote to experiment", type="primary", key="bl_promote") and call(
                    lambda s: rice.promote_idea(s, experiment_id=seen.id,
                                                expected_version=seen.version, actor=actor),
                    f"'{exp.name}' promoted: it is an experiment now (Registry), ready for "
                    "the Planner.",
                ):
                    st.rerun()
                if a2.button("Archive", key="bl_archive") and call(
                    lambda s: rice.archive_idea(s, experiment_id=seen.id,
                                                expected_version=seen.version, actor=actor),
                    f"'{exp.name}' archived.",
                ):
                    st.rerun()
                if idea.observed_reach is not None and a3.button(
                    f"Use observed reach ({fmt.count(idea.observed_reach)}/quarter)", key="bl_reach"
                ) and call(
                    lambda s: rice.apply_observed_reach(s, experiment_id=seen.id,
                                                        expected_version=seen.version,
                                                        actor=actor),
                    "Reach updated from observed traffic.",
                ):
                    st.rerun()

    promoted, archived = load_side_lists()
    with st.expander(f"Promoted, ready for planning ({len(promoted)})"):
        st.dataframe(pd.DataFrame([
            {"Experiment": v.name, "Owner": v.owner, "Primary metric": v.primary_metric,
             "Score": fmt.number(v.rice_score),
             "Planned n/variant": fmt.count(v.planned_sample_size),
             "Registry": experiment_url("registry", v.id),
             "Planner": experiment_url("planner", v.id)}
            for v in promoted
        ]), hide_index=True, width="stretch", column_config={
            "Registry": st.column_config.LinkColumn("Registry", display_text="Open"),
            "Planner": st.column_config.LinkColumn("Planner", display_text="Plan it"),
        })
    with st.expander(f"Archived ideas ({len(archived)})"):
        st.dataframe(pd.DataFrame([
            {"Idea": v.name, "Owner": v.owner, "Score": fmt.number(v.rice_score),
             "Archived": fmt.timestamp(v.archived_at)}
            for v in archived
        ]), hide_index=True, width="stretch")
        if can_write and archived:
            names = {v.id: v for v in archived}
            back = st.selectbox("Restore", list(names), format_func=lambda i: names[i].name,
                                key="bl_restore_pick")
            if st.button("Restore to backlog", key="bl_restore") and call(
                lambda s: rice.restore_idea(s, experiment_id=back,
                                            expected_version=names[back].version,
                                            actor=actor),
                "Restored.",
            ):
                set_query(experiment=back)  # the restored idea opens
                st.rerun()

# ---------------------------------------------------------------- knowledge base
with knowledge_tab:
    k1, k2, k3 = st.columns([2, 1, 1])
    search = k1.text_input("Search name, hypothesis, learnings, metrics", key="kb_search",
                           help="Finds any of your words (a question works too: “what did we "
                                "learn about checkout”), best match first.")
    by = k2.selectbox("Win rate by", list(knowledge.GROUPINGS), key="kb_by")
    calibrate_by = k3.selectbox("Calibrate by", list(knowledge.CALIBRATION_GROUPINGS),
                                key="kb_cal_by")
    found, rates, cal = load_knowledge(search.strip(), by, calibrate_by)

    impact = cal.impact
    assert impact is not None  # calibration always carries the shrinkage it used
    st.markdown("#### Completed experiments")
    if not found:
        st.info("No completed experiment matches." if search else "Nothing completed yet.")
    else:
        st.dataframe(pd.DataFrame([
            {"Experiment": e.name, "Owner": e.owner, "Completed": fmt.day(e.ended),
             "Decision": fmt.label(e.decision) if e.decision else "—",
             "Primary metric": e.result.metric if e.result else "—",
             "Lift (raw)": fmt.signed_percent(e.result.lift if e.result else None),
             SHRUNK_COLUMN: fmt.signed_percent(x.shrunk_lift if x else None),
             "p-value": fmt.pvalue(e.result.p_value if e.result else None),
             "Significant": SIGNIFICANT[e.result.significant if e.result else None],
             "Result state": fmt.label(e.result.decision_state) if e.result else "No data",
             "Tags": ", ".join(e.tags), "Learnings": e.learnings}
            for e in found for x in [impact.lift_of(e.id)]
        ]), hide_index=True, width="stretch")
        st.download_button("Export the knowledge base (CSV)",
                           knowledge.knowledge_csv(found, impact), "knowledge_base.csv",
                           "text/csv", key="kb_export")

    st.markdown("#### Programme impact")
    shipped = impact.shipped
    if shipped.count == 0:
        st.info("No shipped experiment has a primary-metric result yet.")
    else:
        p1, p2, p3 = st.columns(3)
        p1.metric("Shipped experiments with a result", shipped.count)
        p2.metric("Summed lift (raw)", fmt.signed_percent(shipped.raw_sum),
                  help=f"± {fmt.percent(shipped.raw_sum_se)} (standard error); mean "
                       f"{fmt.signed_percent(shipped.raw_mean)} per experiment")
        p3.metric(f"Summed lift, {knowledge.SHRUNK_LABEL}",
                  fmt.signed_percent(shipped.shrunk_sum),
                  help=f"± {fmt.percent(shipped.shrunk_sum_sd)} (posterior SD); mean "
                       f"{fmt.signed_percent(shipped.shrunk_mean)} per experiment")
        st.caption("Each shipped experiment's primary-metric lift in its good direction, "
                   f"summed. {impact.summary}")
    if impact.without_result:
        st.caption(f"{impact.without_result} completed experiment(s) without a primary-metric "
                   "lift and its standard error are left out of the shrinkage.")

    st.markdown(f"#### Win rate by {by}")
    st.dataframe(pd.DataFrame([
        {by.capitalize(): r.group, "Completed": r.completed, "Shipped": r.shipped,
         "Win rate": fmt.percent(r.rate, trim=True)} for r in rates
    ]), hide_index=True, width="stretch")

    st.markdown("#### RICE calibration")
    if cal.overall is None:
        st.info("No completed experiment carries an Impact and a Confidence yet.")
    else:
        o = cal.overall
        m1, m2, m3 = st.columns(3)
        m1.metric("High-confidence ideas that won",
                  f"{o.high_confidence_won}/{o.high_confidence}",
                  help=f"Confidence ≥ {rice.HIGH_CONFIDENCE:.0f} % and the decision was ship")
        m2.metric("Mean predicted confidence", fmt.percent(o.mean_confidence, trim=True))
        m3.metric("Win rate", fmt.percent(o.win_rate, trim=True),
                  delta=f"{fmt.signed_percent(-o.overconfidence, digits=0)} vs confidence",
                  **delta_style(-o.overconfidence))
        groups = pd.DataFrame([
            {calibrate_by.capitalize(): g.group, "Experiments": g.experiments,
             "Predicted confidence": g.mean_confidence, "Win rate": g.win_rate,
             "High-confidence won": f"{g.high_confidence_won}/{g.high_confidence}",
             "Significant wins": f"{g.significant_wins}/{g.with_result}",
             "Mean realised lift, shrunk": g.mean_shrunk_lift,
             "Mean realised lift (raw)": g.mean_lift}
            for g in cal.groups
        ])
        st.dataframe(groups, hide_index=True, width="stretch", column_config={
            "Predicted confidence": st.column_config.NumberColumn(format="percent"),
            "Win rate": st.column_config.NumberColumn(format="percent"),
            "Mean realised lift, shrunk": st.column_config.NumberColumn(
                format="percent", help=f"Lift {knowledge.SHRUNK_LABEL}: see Programme impact"),
            "Mean realised lift (raw)": st.column_config.NumberColumn(format="percent"),
        })
        bars = groups.melt(id_vars=[calibrate_by.capitalize()],
                           value_vars=["Predicted confidence", "Win rate"],
                           var_name="Measure", value_name="Share")
        st.plotly_chart(charts.calibration_bars(bars, calibrate_by.capitalize()), width="stretch")
        points = pd.DataFrame([
            {"Experiment": p.name, "Owner": p.owner, "Predicted impact": p.impact,
             "Confidence %": p.confidence, "Realised lift": p.shrunk_lift,
             "Raw lift": p.lift,
             "Outcome": charts.OUTCOMES[("good" if p.significant_win else "inconclusive"
                                         if p.significant is False else "bad")],
             "Decision": p.decision}
            for p in cal.points if p.shrunk_lift is not None
        ])
        if points.empty:
            st.caption("No completed experiment has primary-metric results yet: the "
                       "predicted-against-realised chart appears once results are loaded.")
        else:
            st.plotly_chart(charts.calibration_points(points), width="stretch")
        if cal.unscored:
            st.caption(f"{cal.unscored} completed experiment(s) had no Impact/Confidence and "
                       "are left out of the calibration.")
