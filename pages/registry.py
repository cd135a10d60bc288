"""Registry: browse, search, open, create, edit and move experiments through their lifecycle."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import catalogue, registry
from core.types import DECISIONS, STATUSES
from ui.auth import current_actor
from ui.state import clear_reads, db_session
from ui.widgets import format_variants, parse_variants, run_action, split_list

actor = current_actor()
can_write = actor.can("editor")


@st.cache_data(ttl=30, show_spinner=False)
def load_page(status, owner, tag, search, sort, descending, page, page_size):  # type: ignore[no-untyped-def]
    with db_session() as session:
        return registry.list_experiments(
            session, status=status, owner=owner, tag=tag, search=search, sort=sort,
            descending=descending, page=page, page_size=page_size,
        )


@st.cache_data(ttl=30, show_spinner=False)
def load_choices() -> tuple[list[str], list[str], list[str]]:
    with db_session() as session:
        metrics = [m.name for m in catalogue.list_metrics(session)]
        return registry.owners(session), registry.tags(session), metrics


@st.cache_data(ttl=30, show_spinner=False)
def load_detail(experiment_id: int):  # type: ignore[no-untyped-def]
    with db_session() as session:
        return (
            registry.get_experiment(session, experiment_id=experiment_id),
            registry.audit_history(session, experiment_id=experiment_id),
        )


@st.cache_data(ttl=30, show_spinner=False)
def load_exports() -> tuple[str, str]:
    with db_session() as session:
        return (
            registry.experiments_csv(registry.all_experiments(session)),
            registry.audit_csv(registry.audit_history(session)),
        )


def call(fn, success: str):  # type: ignore[no-untyped-def]
    with db_session() as session:
        result = run_action(lambda: fn(session), success)
    if result is not None:
        clear_reads()
    return result


owners, tags, metric_names = load_choices()

st.title("Experiment registry")

# ---------------------------------------------------------------- filters and list
f1, f2, f3, f4 = st.columns([1, 1, 1, 2])
status = f1.selectbox("Status", ["any", *STATUSES], key="reg_status")
owner = f2.selectbox("Owner", ["any", *owners], key="reg_owner")
tag = f3.selectbox("Tag", ["any", *tags], key="reg_tag")
search = f4.text_input("Search name, hypothesis, learnings", key="reg_search")
s1, s2, s3 = st.columns([1, 1, 1])
sort = s1.selectbox("Sort by", list(registry.SORT_FIELDS), index=4, key="reg_sort")
descending = s2.toggle("Descending", value=True, key="reg_desc")
page_size = s3.selectbox("Per page", [10, 25, 50, 100], index=1, key="reg_page_size")
page_number = st.session_state.get("reg_page", 1)

result = load_page(
    None if status == "any" else status, None if owner == "any" else owner,
    None if tag == "any" else tag, search or None, sort, descending, page_number, page_size,
)
if page_number > result.pages:
    st.session_state["reg_page"] = 1
    st.rerun()
rows = [
    {"id": e.id, "Name": e.name, "Owner": e.owner, "Status": e.status,
     "Primary metric": e.primary_metric or "—", "Sample/variant": e.planned_sample_size,
     "Mode": e.analysis_mode, "Decision": e.decision or "", "Tags": ", ".join(e.tags),
     "Updated": e.updated_at}
    for e in result.items
]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
p1, p2 = st.columns([1, 3])
p1.number_input(
    f"Page (of {result.pages})", min_value=1, max_value=result.pages, step=1, key="reg_page"
)
p2.caption(f"{result.total} experiments match.")
experiments_csv, audit_csv = load_exports()
d1, d2 = st.columns(2)
d1.download_button("Export experiments (CSV)", experiments_csv, "experiments.csv", "text/csv")
d2.download_button("Export audit log (CSV)", audit_csv, "audit_log.csv", "text/csv")

# ---------------------------------------------------------------- create
if can_write:
    with st.expander("New experiment"), st.form("create_experiment", clear_on_submit=False):
        c1, c2 = st.columns(2)
        name = c1.text_input("Name", key="new_name")
        new_owner = c2.text_input("Owner", value=actor.name, key="new_owner")
        hypothesis = st.text_area("Hypothesis", key="new_hypothesis")
        segment = c1.text_input("Target segment", key="new_segment")
        primary = c2.selectbox("Primary metric", ["", *metric_names], key="new_primary")
        guardrails = c1.multiselect("Guardrail metrics", metric_names, key="new_guardrails")
        secondary = c2.multiselect("Secondary metrics", metric_names, key="new_secondary")
        variants_text = c1.text_input("Variants (name:weight, control first)",
                                      value="control:0.5, treatment:0.5", key="new_variants")
        tags_text = c2.text_input("Tags (comma-separated)", key="new_tags")
        if st.form_submit_button("Create experiment", type="primary"):
            created = call(
                lambda s: registry.create_experiment(s, actor=actor, data={
                    "name": name, "owner": new_owner, "hypothesis": hypothesis,
                    "target_segment": segment, "primary_metric": primary or None,
                    "guardrail_metrics": guardrails, "secondary_metrics": secondary,
                    "variants": parse_variants(variants_text), "tags": split_list(tags_text),
                }),
                "Experiment created",
            )
            if created:
                st.session_state["reg_open"] = created.id
                st.rerun()

# ---------------------------------------------------------------- detail
st.divider()
ids = [e.id for e in result.items]
labels = {e.id: f"{e.name} ({e.status})" for e in result.items}
if st.session_state.get("reg_open") not in ids and ids:
    st.session_state["reg_open"] = ids[0]
if not ids:
    st.info("No experiment matches these filters.")
    st.stop()
chosen = st.selectbox("Open experiment", ids, format_func=labels.get, key="reg_open")
exp, history = load_detail(chosen)

st.subheader(exp.name)
st.markdown(f"**Status:** `{exp.status}` · **Owner:** {exp.owner} · **Version:** {exp.version}")
if exp.is_frozen:
    st.info(f"Analysis plan frozen at launch ({exp.plan_frozen_at:%Y-%m-%d %H:%M} UTC). "
            "Changing it needs a reason and is recorded as a plan deviation.")
left, right = st.columns(2)
left.markdown(f"**Hypothesis:** {exp.hypothesis or '—'}")
left.markdown(f"**Target segment:** {exp.target_segment or '—'}")
left.markdown(f"**Primary metric:** {exp.primary_metric or '—'}")
left.markdown(f"**Guardrails:** {', '.join(exp.guardrail_metrics) or '—'}")
left.markdown(f"**Secondary:** {', '.join(exp.secondary_metrics) or '—'}")
left.markdown(f"**Variants:** {format_variants(exp.variants) or '—'}")
right.markdown(
    f"**Plan:** n/variant {exp.planned_sample_size or '—'} · MDE {exp.mde or '—'} · "
    f"α {exp.alpha} · power {exp.power} · {exp.analysis_mode} · {exp.correction}"
)
right.markdown(f"**Planned:** {exp.planned_start or '—'} → {exp.planned_end or '—'}")
right.markdown(f"**Actual:** {exp.actual_start or '—'} → {exp.actual_end or '—'}")
right.markdown(f"**RICE:** R {exp.reach} · I {exp.impact} · C {exp.confidence}% · "
               f"E {exp.effort} → score {exp.rice_score if exp.rice_score is not None else '—'}")
right.markdown(f"**Decision:** {exp.decision or '—'} · **Tags:** {', '.join(exp.tags) or '—'}")
right.markdown(f"**Results refresh:** every {exp.refresh_every_days or 1} day(s)")
if exp.abandon_reason:
    right.markdown(f"**Abandoned because:** {exp.abandon_reason}")
if exp.learnings:
    st.markdown(f"**Learnings:** {exp.learnings}")

if can_write and exp.status in ("proposed", "running"):
    st.markdown("#### Lifecycle")
    l1, l2 = st.columns(2)
    if (
        exp.status == "proposed"
        and l1.button("Launch (freeze the plan)", type="primary")
        and call(lambda s: registry.transition_experiment(
            s, experiment_id=exp.id, to_status="running", expected_version=exp.version,
            actor=actor), "Launched")
    ):
        st.rerun()
    if exp.status == "running":
        with l1.form("complete"):
            decision = st.selectbox("Decision", DECISIONS)
            learnings = st.text_area("Learnings", value=exp.learnings)
            if st.form_submit_button("Complete") and call(
                lambda s: registry.transition_experiment(
                    s, experiment_id=exp.id, to_status="completed", decision=decision,
                    learnings=learnings, expected_version=exp.version, actor=actor),
                "Completed",
            ):
                st.rerun()
    with l2.form("abandon"):
        reason = st.text_input("Reason for abandoning")
        if st.form_submit_button("Abandon") and call(lambda s: registry.transition_experiment(
            s, experiment_id=exp.id, to_status="abandoned", reason=reason,
            expected_version=exp.version, actor=actor), "Abandoned"):
            st.rerun()

if can_write:
    with st.expander("Edit"), st.form(f"edit_{exp.id}_{exp.version}"):
        e1, e2 = st.columns(2)
        changes = {
            "name": e1.text_input("Name", exp.name),
            "owner": e2.text_input("Owner", exp.owner),
            "hypothesis": st.text_area("Hypothesis", exp.hypothesis),
            "target_segment": e1.text_input("Target segment", exp.target_segment),
            "primary_metric": e2.selectbox(
                "Primary metric", ["", *metric_names],
                index=([""] + metric_names).index(exp.primary_metric or ""),
            ) or None,
            "guardrail_metrics": e1.multiselect(
                "Guardrail metrics", metric_names, default=exp.guardrail_metrics),
            "secondary_metrics": e2.multiselect(
                "Secondary metrics", metric_names, default=exp.secondary_metrics),
            "variants": parse_variants(e1.text_input(
                "Variants (name:weight)", format_variants(exp.variants))),
            "planned_sample_size": e2.number_input(
                "Planned sample size per variant", min_value=0,
                value=exp.planned_sample_size or 0) or None,
            "mde": e1.number_input("MDE (relative)", min_value=0.0, value=exp.mde or 0.0,
                                   format="%.4f") or None,
            "alpha": e2.number_input("Alpha", value=exp.alpha, format="%.3f"),
            "power": e1.number_input("Power", value=exp.power, format="%.2f"),
            "analysis_mode": e2.selectbox("Analysis mode", ["fixed", "sequential"],
                                          index=["fixed", "sequential"].index(exp.analysis_mode)),
            "planned_start": e1.date_input("Planned start", exp.planned_start),
            "planned_end": e2.date_input("Planned end", exp.planned_end),
            "refresh_every_days": e2.number_input(
                "Refresh results every N days (0 = daily)", min_value=0,
                max_value=registry.MAX_REFRESH_EVERY_DAYS, value=exp.refresh_every_days or 0,
                step=1) or None,
            "tags": split_list(e1.text_input("Tags", ", ".join(exp.tags))),
            "learnings": st.text_area("Learnings", exp.learnings, key=f"learn_{exp.id}"),
        }
        reason = st.text_input("Reason (required when a frozen plan field changes)")
        if st.form_submit_button("Save changes", type="primary") and call(
            lambda s: registry.update_experiment(
                s, experiment_id=exp.id, changes=changes, expected_version=exp.version,
                actor=actor, reason=reason or None),
            "Saved",
        ):
            st.rerun()
else:
    st.caption("You have read-only access: ask an admin for the editor role to make changes.")

st.markdown("#### Audit history")
audit_rows = [
    {"When": r.at, "Who": r.actor, "Action": r.action, "Reason": r.reason or "",
     "Plan deviation": r.is_deviation,
     "Changes": "; ".join(f"{k}: {v[0]!r} → {v[1]!r}" for k, v in r.changes.items())}
    for r in history
]
st.dataframe(pd.DataFrame(audit_rows), hide_index=True, width="stretch")
st.download_button(
    "Download this experiment's audit (CSV)", registry.audit_csv(history),
    f"audit_{exp.id}.csv", "text/csv",
)
