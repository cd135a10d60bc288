"""Registry: browse, search, open, create, edit and move experiments through their lifecycle."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import catalogue, registry
from core import format as fmt
from core.analysis import results
from core.analysis.snapshot import ExperimentVerdict
from core.analysis.verdict import experiment_verdict
from core.errors import NotFound
from core.types import DECISIONS, STATUSES
from ui.auth import current_actor
from ui.state import (
    clear_reads,
    db_session,
    experiment_link,
    experiment_url,
    query_int,
    set_query,
    url_selectbox,
)
from ui.widgets import (
    format_margins,
    format_variants,
    parse_margins,
    parse_variants,
    run_action,
    split_list,
)

DECISION_LABELS = {"ship": "Ship", "dont_ship": "Don't ship", "iterate": "Iterate"}
ALTERNATIVE_LABELS = {"two-sided": "Two-sided",
                      "greater": "One-sided: treatment higher (greater)",
                      "less": "One-sided: treatment lower (less)"}
MARGINS_LABEL = "Guardrail non-inferiority margins (guardrail: % worse allowed)"
MARGINS_HELP = ("e.g. page_load_time_ms: 2%. A guardrail with a margin must be shown not worse "
                "by that much, else it reads inconclusive; without one it only gets the harm "
                "test.")

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
def load_verdicts(ids: tuple[int, ...]) -> dict[int, ExperimentVerdict]:
    """Each experiment's verdict from its latest stored results (none stored: no verdict)."""
    with db_session() as session:
        verdicts = {}
        for experiment_id in ids:
            snapshot = results.latest_snapshot(session, experiment_id=experiment_id)
            if snapshot is not None:
                verdicts[experiment_id] = snapshot.verdict or experiment_verdict(snapshot)
        return verdicts


@st.cache_data(ttl=30, show_spinner=False)
def load_label(experiment_id: int) -> str | None:
    """A deep-linked experiment's label, or None if there is no such experiment."""
    with db_session() as session:
        try:
            exp = registry.get_experiment(session, experiment_id=experiment_id)
        except NotFound:
            return None
        return f"{exp.name} ({exp.status})"


def _value(v: object) -> str:
    """An audited value for people: no None, no 96000.0, lists as comma-separated words."""
    if v is None or v == "" or v == []:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return fmt.number(v)
    if isinstance(v, list | tuple):
        return ", ".join(_value(x) for x in v)
    return str(v)


def _percent(fraction: float | None) -> float | None:
    """A stored fraction as the percentage people type (0.05 → 5.0), free of float noise."""
    return None if fraction is None else round(fraction * 100, 8)


def _fraction(percent: float | None) -> float | None:
    return None if percent is None else round(percent / 100, 10)


def launch_warnings(exp) -> list[str]:  # type: ignore[no-untyped-def]
    """What a launch would go ahead without (the service refuses only what it cannot analyse)."""
    warnings = []
    if not exp.guardrail_metrics:
        warnings.append("No guardrail metrics: harm to other metrics will go unnoticed.")
    if not exp.planned_start or not exp.planned_end:
        warnings.append("No planned start and end dates: nobody will know when to stop.")
    if not exp.planned_sample_size:
        warnings.append("No planned sample size: size it in the Planner first (launch will be "
                        "refused).")
    if not exp.primary_metric:
        warnings.append("No primary metric (launch will be refused).")
    return warnings


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
verdicts = load_verdicts(tuple(e.id for e in result.items))
rows = [
    {"Name": e.name, "Status": e.status,
     "Verdict": verdicts[e.id].label if e.id in verdicts else "—",
     "Owner": e.owner, "Primary metric": e.primary_metric or "—",
     "n / variant": fmt.count(e.planned_sample_size),
     "Decision": DECISION_LABELS.get(e.decision or "", "—"),
     "Updated": fmt.day(e.updated_at),
     "Results": experiment_url("results", e.id), "Reports": experiment_url("reports", e.id)}
    for e in result.items
]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
    "Name": st.column_config.TextColumn("Name", width=190),
    "Status": st.column_config.TextColumn("Status", width=75),
    "Verdict": st.column_config.TextColumn(
        "Verdict", width=100, help="From the latest results: ship, don't ship, keep running, "
        "investigate"),
    "Owner": st.column_config.TextColumn("Owner", width=95),
    "Primary metric": st.column_config.TextColumn("Primary metric", width=140),
    "n / variant": st.column_config.TextColumn("n / variant", width=70),
    "Decision": st.column_config.TextColumn("Decision", width=75),
    "Updated": st.column_config.TextColumn("Updated", width=85),
    "Results": st.column_config.LinkColumn("Results", display_text="Results", width=50),
    "Reports": st.column_config.LinkColumn("Reports", display_text="Reports", width=55),
})
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
        new_alternative = c1.selectbox("Primary metric test", list(ALTERNATIVE_LABELS),
                                       format_func=ALTERNATIVE_LABELS.get, key="new_alternative")
        new_margins = c2.text_input(MARGINS_LABEL, help=MARGINS_HELP, key="new_margins")
        if st.form_submit_button("Create experiment", type="primary"):
            created = call(
                lambda s: registry.create_experiment(s, actor=actor, data={
                    "name": name, "owner": new_owner, "hypothesis": hypothesis,
                    "target_segment": segment, "primary_metric": primary or None,
                    "guardrail_metrics": guardrails, "secondary_metrics": secondary,
                    "variants": parse_variants(variants_text), "tags": split_list(tags_text),
                    "alternative": new_alternative,
                    "guardrail_margins": parse_margins(new_margins),
                }),
                "Experiment created",
            )
            if created:
                st.session_state["reg_open"] = created.id
                set_query(experiment=created.id)
                st.rerun()

# ---------------------------------------------------------------- detail
st.divider()
ids = [e.id for e in result.items]
labels = {e.id: f"{e.name} ({e.status})" for e in result.items}
linked = query_int()
opened = "reg_open" in st.session_state  # not on a fresh load (a deep link, a reload)
if not opened and linked is not None and linked not in labels and (label := load_label(linked)):
    ids.insert(0, linked)  # a deep link opens its experiment whatever the list shows
    labels[linked] = label
if not ids:
    st.info("No experiment matches these filters.")
    st.stop()
chosen = url_selectbox("Open experiment", ids, key="reg_open", format_func=labels.get)
exp, history = load_detail(chosen)

st.subheader(exp.name)
if exp.status != "proposed":
    verdict = load_verdicts((exp.id,)).get(exp.id) or experiment_verdict(None)
    show = {"ship": st.success, "dont_ship": st.error, "investigate": st.warning}.get(
        verdict.recommendation, st.info)
    why = verdict.reason.removeprefix(verdict.label + ": ")
    show(f"**Verdict: {verdict.label}.** {why[:1].upper()}{why[1:]}")
st.markdown(f"**Status:** `{exp.status}` · **Owner:** {exp.owner} · **Version:** {exp.version}")
k1, k2, k3 = st.columns([1, 1, 4])
experiment_link("results", exp.id, "Open results", k1, icon=":material/monitoring:")
experiment_link("reports", exp.id, "Open reports", k2, icon=":material/picture_as_pdf:")
if exp.is_frozen:
    st.info(f"Analysis plan frozen at launch ({fmt.timestamp(exp.plan_frozen_at)}). "
            "Changing it needs a reason and is recorded as a plan deviation.")
left, right = st.columns(2)
left.markdown(f"**Hypothesis:** {exp.hypothesis or '—'}")
left.markdown(f"**Target segment:** {exp.target_segment or '—'}")
left.markdown(f"**Primary metric:** {exp.primary_metric or '—'}")
left.markdown(f"**Guardrails:** {', '.join(exp.guardrail_metrics) or '—'}")
left.markdown(f"**Secondary:** {', '.join(exp.secondary_metrics) or '—'}")
left.markdown(f"**Variants:** {format_variants(exp.variants) or '—'}")
right.markdown(
    f"**Plan:** {fmt.count(exp.planned_sample_size)} users per variant · MDE "
    f"{fmt.percent(exp.mde, trim=True)} · α {fmt.number(exp.alpha)} · power "
    f"{fmt.percent(exp.power, trim=True)} · {exp.analysis_mode} · {exp.correction}"
)
right.markdown(
    f"**Primary test:** {ALTERNATIVE_LABELS[exp.alternative].lower()} · **Guardrail margins:** "
    f"{format_margins(exp.guardrail_margins) or 'none (harm test only)'} · **Bayesian prior:** "
    + ("flat" if exp.prior_lift_sd is None else
       f"normal({fmt.signed_percent(exp.prior_lift_mean)}, sd "
       f"{fmt.percent(exp.prior_lift_sd, 4, trim=True)})"))
right.markdown(f"**Planned:** {fmt.day(exp.planned_start)} → {fmt.day(exp.planned_end)}")
right.markdown(f"**Actual:** {fmt.day(exp.actual_start)} → {fmt.day(exp.actual_end)}")
right.markdown(
    f"**RICE:** reach {fmt.number(exp.reach)} · impact {fmt.number(exp.impact)} · confidence "
    f"{fmt.percent(exp.confidence / 100 if exp.confidence is not None else None, trim=True)} · "
    f"effort {fmt.number(exp.effort)} → score {fmt.number(exp.rice_score)}")
right.markdown(f"**Decision:** {DECISION_LABELS.get(exp.decision or '', '—')} · "
               f"**Tags:** {', '.join(exp.tags) or '—'}")
right.markdown(f"**Results refresh:** every {exp.refresh_every_days or 1} day(s)")
if exp.abandon_reason:
    right.markdown(f"**Abandoned because:** {exp.abandon_reason}")
if exp.learnings:
    st.markdown(f"**Learnings:** {exp.learnings}")

if can_write and exp.status in ("proposed", "running"):
    st.markdown("#### Lifecycle")
    l1, l2 = st.columns(2)
    confirming = st.session_state.get("reg_confirm_launch") == (exp.id, exp.version)
    if exp.status == "proposed" and not confirming and l1.button(
        "Launch (freeze the plan)", type="primary"
    ):
        st.session_state["reg_confirm_launch"] = (exp.id, exp.version)
        st.rerun()
    if exp.status == "proposed" and confirming:
        with l1.container(border=True):
            st.markdown(f"**Launch '{exp.name}'?** Its analysis plan freezes: changing it later "
                        "needs a reason and is recorded as a plan deviation.")
            for warning in launch_warnings(exp):
                st.warning(warning)
            c1, c2 = st.columns(2)
            if c1.button("Confirm launch", type="primary"):
                st.session_state.pop("reg_confirm_launch", None)
                if call(lambda s: registry.transition_experiment(
                        s, experiment_id=exp.id, to_status="running",
                        expected_version=exp.version, actor=actor), "Launched"):
                    st.rerun()
            if c2.button("Cancel"):
                st.session_state.pop("reg_confirm_launch", None)
                st.rerun()
    if exp.status == "running":
        with l1.form("complete"):
            decision = st.selectbox("Decision", DECISIONS, index=None,
                                    format_func=DECISION_LABELS.get,
                                    placeholder="Choose ship, don't ship or iterate")
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
            "mde": _fraction(e1.number_input(
                "MDE (relative, %)", min_value=0.0, value=_percent(exp.mde) or 0.0,
                format="%g")) or None,
            "alpha": e2.number_input("Alpha", value=exp.alpha, format="%g"),
            "power": _fraction(e1.number_input("Power (%)", value=_percent(exp.power),
                                               format="%g")),
            "analysis_mode": e2.selectbox("Analysis mode", ["fixed", "sequential"],
                                          index=["fixed", "sequential"].index(exp.analysis_mode)),
            "alternative": e1.selectbox(
                "Primary metric test", list(ALTERNATIVE_LABELS), format_func=ALTERNATIVE_LABELS.get,
                index=list(ALTERNATIVE_LABELS).index(exp.alternative),
                key=f"edit_alternative_{exp.id}_{exp.version}"),
            "guardrail_margins": parse_margins(e2.text_input(
                MARGINS_LABEL, format_margins(exp.guardrail_margins), help=MARGINS_HELP,
                key=f"edit_margins_{exp.id}_{exp.version}")),
            "prior_lift_mean": _fraction(e1.number_input(
                "Bayesian prior: mean lift (%, empty = flat prior)",
                value=_percent(exp.prior_lift_mean), format="%g",
                key=f"edit_prior_mean_{exp.id}_{exp.version}")),
            "prior_lift_sd": _fraction(e2.number_input(
                "Bayesian prior: sd of the lift (%, empty = flat prior)",
                value=_percent(exp.prior_lift_sd), format="%g",
                key=f"edit_prior_sd_{exp.id}_{exp.version}")),
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
    {"When": fmt.timestamp(r.at), "Who": r.actor, "Action": r.action, "Reason": r.reason or "—",
     "Deviation": "yes" if r.is_deviation else "no",
     "Changes": "; ".join(f"{fmt.label(k)}: {_value(v[0])} → {_value(v[1])}"
                          for k, v in r.changes.items())}
    for r in history
]
st.dataframe(pd.DataFrame(audit_rows), hide_index=True, width="stretch", column_config={
    "When": st.column_config.TextColumn("When", width=145),
    "Who": st.column_config.TextColumn("Who", width=100),
    "Action": st.column_config.TextColumn("Action", width=140),
    "Reason": st.column_config.TextColumn("Reason", width=150),
    "Deviation": st.column_config.TextColumn("Deviation", width=75),
    "Changes": st.column_config.TextColumn("Changes", width=300),
})
st.download_button(
    "Download this experiment's audit (CSV)", registry.audit_csv(history),
    f"audit_{exp.id}.csv", "text/csv",
)
