"""Registry: browse, search, open, create, edit and move experiments through their lifecycle."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import catalogue, registry
from core import format as fmt
from core.analysis import results
from core.analysis.snapshot import ExperimentVerdict
from core.analysis.verdict import experiment_verdict
from core.types import DECISIONS, STATUSES
from ui.auth import current_actor
from ui.state import (
    as_shown,
    clear_reads,
    db_session,
    experiment_link,
    experiment_url,
    forget_choice,
    form_object,
    linked_experiment,
    query_int,
    query_value,
    reload_form,
    set_query,
    submit_key,
    url_selectbox,
)
from ui.widgets import (
    format_capping,
    format_margins,
    format_variants,
    parse_capping,
    parse_margins,
    parse_variants,
    run_action,
    split_list,
)

DECISION_LABELS = registry.DECISION_LABELS
ALTERNATIVE_LABELS = {"two-sided": "Two-sided",
                      "greater": "One-sided: treatment higher (greater)",
                      "less": "One-sided: treatment lower (less)"}
MARGINS_LABEL = "Guardrail non-inferiority margins (guardrail: % worse allowed)"
POST_STRATIFY_LABEL = "Post-stratify on (a dimension column of the data; empty = none)"
POST_STRATIFY_HELP = ("e.g. platform: the results weigh each platform's difference by its "
                      "share of units, which removes the variance the platforms' different "
                      "levels add. Declare it before the data comes in; frozen at launch.")
MARGINS_HELP = ("e.g. page_load_time_ms: 2%. A guardrail with a margin must be shown not worse "
                "by that much, else it reads inconclusive; without one it only gets the harm "
                "test.")
CAPPING_LABEL = "Capping of mean and ratio metrics (metric: p99 or a fixed value)"
CAPPING_HELP = ("e.g. revenue_per_user: p99, basket_value: 500. Each unit's value above the cap "
                "counts as the cap before the sums; p99 is the 99th percentile of every unit, "
                "pooled across the variants. Frozen at launch.")

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


def call(fn, success: str, container=None):  # type: ignore[no-untyped-def]
    with db_session() as session:
        result = run_action(lambda: fn(session), success, container)
    if result is not None:
        clear_reads()
    return result


def saved(fn, success: str, form: str, container=None) -> bool:  # type: ignore[no-untyped-def]
    """Save a form's edit; on success the form takes the new version (a rerun follows). A
    refusal is shown in `container` (above the form) and the form keeps what was typed."""
    if call(fn, success, container) is None:
        return False
    reload_form(form)
    return True


def stale_notice(container, form: str, edited, current, *, refused: bool = False
                 ) -> None:  # type: ignore[no-untyped-def]
    """Above a form drawn from an older version than the stored one: say so (after a refused
    save, that the edits are kept), and offer to load the stored version, dropping the edits."""
    if edited.version == current.version:
        return
    if refused:
        container.info(f"Your edits are still in the form below (it shows version "
                       f"{edited.version}). Load version {current.version} to see what changed, "
                       "then apply them again.")
    else:
        container.warning(
            f"'{current.name}' has changed since this form was opened: the form shows version "
            f"{edited.version}, version {current.version} is stored, so saving it would be "
            f"refused. Your edits stay in the form until you load version {current.version}.")
    if container.button(f"Load version {current.version} (drops the form's edits)",
                        key=f"{form}_reload"):
        reload_form(form)
        st.rerun()


owners, tags, metric_names = load_choices()

st.title("Experiment registry")

# ---------------------------------------------------------------- filters and list
f1, f2, f3, f4 = st.columns([1, 1, 1, 2])
new_list = {"on_change": forget_choice, "args": ("reg_open",)}  # a new list opens its first
status = f1.selectbox("Status", ["any", *STATUSES], key="reg_status", **new_list)
owner = f2.selectbox("Owner", ["any", *owners], key="reg_owner", **new_list)
tag = f3.selectbox("Tag", ["any", *tags], key="reg_tag", **new_list)
search = f4.text_input("Search name, hypothesis, learnings", key="reg_search", **new_list)
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
p2.caption(f"{fmt.plural(result.total, 'experiment')} match{'es' if result.total == 1 else ''}.")
experiments_csv, audit_csv = load_exports()
d1, d2 = st.columns(2)
d1.download_button("Export experiments (CSV)", experiments_csv, "experiments.csv", "text/csv")
d2.download_button("Export audit log (CSV)", audit_csv, "audit_log.csv", "text/csv")

# ---------------------------------------------------------------- create
NEW_DEFAULTS = {"new_name": "", "new_owner": actor.name, "new_hypothesis": "",
                "new_segment": "", "new_primary": None, "new_guardrails": [],
                "new_secondary": [], "new_variants": "control:0.5, treatment:0.5", "new_tags": "",
                "new_alternative": "two-sided", "new_margins": "", "new_post_stratify": ""}
# The New experiment form's inputs. Each lives in the URL (?new_name=…, only what differs from
# its default), so a reload keeps a draft; a created experiment empties the form.
if can_write:
    if st.session_state.pop("reg_new_created", False):  # before the inputs are drawn again
        st.session_state.update(NEW_DEFAULTS)
    drafting = any(st.query_params.get(key) for key in NEW_DEFAULTS)
    with st.expander("New experiment", expanded=drafting):
        draft_input = {"bind": "query-params", "on_change": "ignore"}  # typed, not run
        c1, c2 = st.columns(2)
        name = c1.text_input("Name", key="new_name", **draft_input)
        new_owner = c2.text_input("Owner", value=actor.name, key="new_owner", **draft_input)
        hypothesis = st.text_area("Hypothesis", key="new_hypothesis", **draft_input)
        c1, c2 = st.columns(2)
        segment = c1.text_input("Target segment", key="new_segment", **draft_input)
        primary = c2.selectbox("Primary metric", metric_names, index=None,
                               placeholder="Choose a metric", key="new_primary", **draft_input)
        guardrails = c1.multiselect("Guardrail metrics", metric_names, key="new_guardrails",
                                    **draft_input)
        secondary = c2.multiselect("Secondary metrics", metric_names, key="new_secondary",
                                   **draft_input)
        variants_text = c1.text_input("Variants (name:weight, control first)",
                                      value=NEW_DEFAULTS["new_variants"], key="new_variants",
                                      **draft_input)
        tags_text = c2.text_input("Tags (comma-separated)", key="new_tags", **draft_input)
        new_alternative = c1.selectbox("Primary metric test", list(ALTERNATIVE_LABELS),
                                       format_func=ALTERNATIVE_LABELS.get,
                                       key="new_alternative", **draft_input)
        new_margins = c2.text_input(MARGINS_LABEL, help=MARGINS_HELP, key="new_margins",
                                    **draft_input)
        new_strata = c1.text_input(POST_STRATIFY_LABEL, help=POST_STRATIFY_HELP,
                                   key="new_post_stratify", **draft_input)
        if st.button("Create experiment", type="primary", key="new_create"):
            created = call(
                lambda s: registry.create_experiment(s, actor=actor, data={
                    "name": name, "owner": new_owner, "hypothesis": hypothesis,
                    "target_segment": segment, "primary_metric": primary or None,
                    "guardrail_metrics": guardrails, "secondary_metrics": secondary,
                    "variants": parse_variants(variants_text), "tags": split_list(tags_text),
                    "alternative": new_alternative,
                    "guardrail_margins": parse_margins(new_margins),
                    "post_stratify_on": new_strata.strip() or None,
                }),
                "Experiment created",
            )
            if created:
                st.session_state["reg_open"] = created.id
                st.session_state["reg_new_created"] = True  # the next run empties the form
                set_query(experiment=created.id)
                st.rerun()

# ---------------------------------------------------------------- detail
st.divider()
ids = [e.id for e in result.items]
labels = {e.id: f"{e.name} ({e.status})" for e in result.items}
asked = query_value() is not None and query_int() not in labels
linked = linked_experiment() if asked else None
if isinstance(linked, registry.ExperimentView):
    ids.insert(0, linked.id)  # the URL's experiment opens whatever the list shows
    labels[linked.id] = f"{linked.name} ({linked.status})"
if not ids and linked is None:
    st.info("No experiment matches these filters.")
    st.stop()
chosen = url_selectbox("Open experiment", ids, key="reg_open", format_func=labels.get,
                       placeholder="Choose an experiment")
if chosen is None:
    st.warning(str(linked or "Choose an experiment."))
    st.stop()
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
    f"{format_margins(exp.guardrail_margins) or 'none (harm test only)'} · **Capping:** "
    f"{format_capping(exp.capping) or 'none'} · **Bayesian prior:** "
    + ("flat" if exp.prior_lift_sd is None else
       f"normal({fmt.signed_percent(exp.prior_lift_mean)}, sd "
       f"{fmt.percent(exp.prior_lift_sd, 4, trim=True)})")
    + (f" · **Post-stratified on:** {exp.post_stratify_on}" if exp.post_stratify_on else ""))
right.markdown(f"**Planned:** {fmt.period(exp.planned_start, exp.planned_end, none='no dates')}")
right.markdown(f"**Actual:** {fmt.period(exp.actual_start, exp.actual_end)}")
right.markdown(
    f"**RICE:** reach {fmt.number(exp.reach)} · impact {fmt.number(exp.impact)} · confidence "
    f"{fmt.percent(exp.confidence / 100 if exp.confidence is not None else None, trim=True)} · "
    f"effort {fmt.number(exp.effort)} → score {fmt.number(exp.rice_score)}")
right.markdown(f"**Decision:** {DECISION_LABELS.get(exp.decision or '', '—')} · "
               f"**Tags:** {', '.join(exp.tags) or '—'}")
right.markdown("**Results refresh:** every "
               + ("day" if (exp.refresh_every_days or 1) == 1
                  else fmt.plural(exp.refresh_every_days, "day")))
if exp.abandon_reason:
    right.markdown(f"**Abandoned because:** {exp.abandon_reason}")
if exp.learnings:
    st.markdown(f"**Learnings:** {exp.learnings}")

if can_write and exp.status in ("proposed", "running"):
    st.markdown("#### Lifecycle")
    seen = as_shown("reg_lifecycle", exp)  # a click acts on the version it was drawn for
    l1, l2 = st.columns(2)
    asked_launch = st.session_state.get("reg_confirm_launch")  # (id, version) asked to launch
    if asked_launch is not None and asked_launch[0] != exp.id:  # asked for another experiment
        del st.session_state["reg_confirm_launch"]
        asked_launch = None
    confirming = asked_launch is not None
    if exp.status == "proposed" and not confirming and l1.button(
        "Launch (freeze the plan)", type="primary"
    ):
        st.session_state["reg_confirm_launch"] = (seen.id, seen.version)
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
                        expected_version=asked_launch[1], actor=actor), "Launched"):
                    st.rerun()
            if c2.button("Cancel"):
                st.session_state.pop("reg_confirm_launch", None)
                st.rerun()
    if exp.status == "running":
        ending = form_object("reg_complete", exp)  # the learnings field starts from it
        complete_notice = l1.container()
        with l1.form(f"complete_{ending.id}_{ending.version}"):
            decision = st.selectbox("Decision", DECISIONS, index=None,
                                    format_func=DECISION_LABELS.get,
                                    placeholder="Choose ship, don't ship or iterate")
            learnings = st.text_area("Learnings", value=ending.learnings)
            complete = st.form_submit_button("Complete", key=submit_key("reg_complete"))
        if complete and saved(lambda s: registry.transition_experiment(
                s, experiment_id=ending.id, to_status="completed", decision=decision,
                learnings=learnings, expected_version=ending.version, actor=actor),
                "Completed", "reg_complete", complete_notice):
            st.rerun()
        stale_notice(complete_notice, "reg_complete", ending, exp, refused=complete)
    with l2.form("abandon"):
        reason = st.text_input("Reason for abandoning")
        if st.form_submit_button("Abandon") and call(lambda s: registry.transition_experiment(
            s, experiment_id=seen.id, to_status="abandoned", reason=reason,
            expected_version=seen.version, actor=actor), "Abandoned"):
            st.rerun()

if can_write:
    edit_notice = st.container()  # above the form: a refused save, or that the form is stale
    draft = form_object("reg_edit", exp)  # the version the form was opened on, kept until saved
    with st.expander("Edit"), st.form(f"edit_{draft.id}_{draft.version}"):
        e1, e2 = st.columns(2)
        changes = {
            "name": e1.text_input("Name", draft.name),
            "owner": e2.text_input("Owner", draft.owner),
            "hypothesis": st.text_area("Hypothesis", draft.hypothesis),
            "target_segment": e1.text_input("Target segment", draft.target_segment),
            "primary_metric": e2.selectbox(
                "Primary metric", ["", *metric_names],
                index=([""] + metric_names).index(draft.primary_metric or ""),
            ) or None,
            "guardrail_metrics": e1.multiselect(
                "Guardrail metrics", metric_names, default=draft.guardrail_metrics),
            "secondary_metrics": e2.multiselect(
                "Secondary metrics", metric_names, default=draft.secondary_metrics),
            "variants": parse_variants(e1.text_input(
                "Variants (name:weight)", format_variants(draft.variants))),
            "planned_sample_size": e2.number_input(
                "Planned sample size per variant", min_value=0,
                value=draft.planned_sample_size or 0) or None,
            "mde": _fraction(e1.number_input(
                "MDE (relative, %)", min_value=0.0, value=_percent(draft.mde) or 0.0,
                format="%g")) or None,
            "alpha": e2.number_input("Alpha", value=draft.alpha, format="%g"),
            "power": _fraction(e1.number_input("Power (%)", value=_percent(draft.power),
                                               format="%g")),
            "analysis_mode": e2.selectbox(
                "Analysis mode", ["fixed", "sequential"],
                index=["fixed", "sequential"].index(draft.analysis_mode)),
            "alternative": e1.selectbox(
                "Primary metric test", list(ALTERNATIVE_LABELS), format_func=ALTERNATIVE_LABELS.get,
                index=list(ALTERNATIVE_LABELS).index(draft.alternative),
                key=f"edit_alternative_{draft.id}_{draft.version}"),
            "guardrail_margins": parse_margins(e2.text_input(
                MARGINS_LABEL, format_margins(draft.guardrail_margins), help=MARGINS_HELP,
                key=f"edit_margins_{draft.id}_{draft.version}")),
            "capping": parse_capping(e1.text_input(
                CAPPING_LABEL, format_capping(draft.capping), help=CAPPING_HELP,
                key=f"edit_capping_{draft.id}_{draft.version}")),
            "prior_lift_mean": _fraction(e1.number_input(
                "Bayesian prior: mean lift (%, empty = flat prior)",
                value=_percent(draft.prior_lift_mean), format="%g",
                key=f"edit_prior_mean_{draft.id}_{draft.version}")),
            "prior_lift_sd": _fraction(e2.number_input(
                "Bayesian prior: sd of the lift (%, empty = flat prior)",
                value=_percent(draft.prior_lift_sd), format="%g",
                key=f"edit_prior_sd_{draft.id}_{draft.version}")),
            "post_stratify_on": e1.text_input(
                POST_STRATIFY_LABEL, draft.post_stratify_on or "", help=POST_STRATIFY_HELP,
                key=f"edit_post_stratify_{draft.id}_{draft.version}").strip() or None,
            "planned_start": e1.date_input("Planned start", draft.planned_start),
            "planned_end": e2.date_input("Planned end", draft.planned_end),
            "refresh_every_days": e2.number_input(
                "Refresh results every N days (0 = daily)", min_value=0,
                max_value=registry.MAX_REFRESH_EVERY_DAYS, value=draft.refresh_every_days or 0,
                step=1) or None,
            "tags": split_list(e1.text_input("Tags", ", ".join(draft.tags))),
            "learnings": st.text_area("Learnings", draft.learnings,
                                      key=f"learn_{draft.id}_{draft.version}"),
        }
        reason = st.text_input("Reason (required when a frozen plan field changes)")
        save = st.form_submit_button("Save changes", type="primary", key=submit_key("reg_edit"))
    if save and saved(lambda s: registry.update_experiment(
            s, experiment_id=draft.id, changes=changes, expected_version=draft.version,
            actor=actor, reason=reason or None), "Saved", "reg_edit", edit_notice):
        st.rerun()
    stale_notice(edit_notice, "reg_edit", draft, exp, refused=save)
else:
    st.caption("You have read-only access: ask an admin for the editor role to make changes.")

st.markdown("#### Audit history")
audit_rows = [
    {"When": fmt.timestamp(r.at), "Who": r.actor, "Action": r.action, "Reason": r.reason or "—",
     "Deviation": "yes" if r.is_deviation else "no",
     "Changes": registry.change_text(r.changes)}
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
