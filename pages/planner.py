"""Planner: sample size, duration, power and detectable effect for an experiment; save the plan."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import format as fmt
from core import planning
from core.errors import DomainError, InvalidInput
from ui import charts
from ui.auth import current_actor
from ui.messages import plain
from ui.state import as_shown, clear_reads, db_session, linked_experiment, url_selectbox
from ui.widgets import run_action

actor = current_actor()
can_write = actor.can("editor")
MODES = {
    "Sample size and duration for an effect": "sample_size",
    "Detectable effect in a fixed duration": "duration",
    "Power for a given sample size": "power",
}
SIDES = {"Two-sided": "two-sided", "One-sided (increase)": "greater",
         "One-sided (decrease)": "less"}
KINDS = {"Conversion (a rate)": "binomial", "Continuous (a mean)": "mean"}
SAVED = "plan_saved"  # session key: what the last save wrote, shown after its rerun


@st.cache_data(ttl=60, show_spinner=False)
def load_sources() -> list[planning.BaselineSource]:
    with db_session() as session:
        return planning.baseline_sources(session)


@st.cache_data(ttl=60, show_spinner=False)
def load_observed(experiment_id: int, metric: str) -> planning.ObservedBaseline | str:
    with db_session() as session:
        try:
            return planning.observed_baseline(session, experiment_id=experiment_id, metric=metric)
        except DomainError as exc:
            return exc.message


@st.cache_data(ttl=30, show_spinner=False)
def load_proposed():  # type: ignore[no-untyped-def]
    with db_session() as session:
        return planning.plannable_experiments(session)


st.title("Experiment planner")
st.caption("How many users, how many days, and what effect you can hope to see.")

mode = MODES[st.radio("What do you want to find?", list(MODES), horizontal=True,
                      key="plan_mode")]

# ---------------------------------------------------------------- the baseline
observed = None
from_data = st.toggle("Take the baseline from an existing experiment's data", key="plan_from_data")
if from_data:
    sources = load_sources()
    if not sources:
        st.info("No running or completed experiment has metrics yet: type the baseline in.")
    else:
        o1, o2 = st.columns(2)
        source = o1.selectbox("Experiment", sources, format_func=lambda s: s.experiment_name,
                              key="plan_source")
        metric = o2.selectbox("Metric", source.metrics, key="plan_source_metric")
        found = load_observed(source.experiment_id, metric)
        if isinstance(found, str):
            st.warning(found)
        else:
            observed = found
            st.info(f"Observed: {observed.description}")

seed = f"{observed.experiment_id}_{observed.metric}" if observed else "typed"
left, right = st.columns(2)
with left:
    st.markdown("##### Metric")
    kind_labels = list(KINDS)
    kind_index = 0 if observed is None or observed.kind == "binomial" else 1
    kind = KINDS[st.radio("Metric type", kind_labels, index=kind_index, horizontal=True,
                          disabled=observed is not None, key=f"plan_kind_{seed}")]
    sd = None
    if kind == "binomial":
        baseline = st.number_input(
            "Baseline conversion rate (%)", min_value=0.01, max_value=99.99, step=0.5,
            value=round(observed.mean * 100, 3) if observed else 10.0, format="%g",
            key=f"plan_rate_{seed}") / 100
    else:
        baseline = st.number_input("Baseline mean", value=float(observed.mean) if observed
                                   else 12.0, format="%.4g", key=f"plan_mean_{seed}")
        sd = st.number_input("Standard deviation per user", min_value=1e-9,
                             value=float(observed.sd) if observed else 24.0, format="%.4g",
                             key=f"plan_sd_{seed}")
    relative = st.radio("Effect expressed as", ["Relative (%)", "Absolute"], horizontal=True,
                        key="plan_relative") == "Relative (%)"
    if mode != "duration":
        unit = "%" if relative else ("percentage points" if kind == "binomial" else "units")
        mde_value = st.number_input(f"Minimum detectable effect ({unit})", min_value=1e-6,
                                    value=5.0 if relative or kind == "binomial" else 1.0,
                                    format="%g", key=f"plan_mde_{kind}_{relative}")
        mde = mde_value / 100 if relative or kind == "binomial" else mde_value
    else:
        mde = 0.05  # not used: the duration mode solves for the effect
with right:
    st.markdown("##### Test and traffic")
    t1, t2, t3 = st.columns(3)
    alpha = t1.number_input("Alpha", min_value=0.001, max_value=0.2, value=0.05, step=0.01,
                            format="%g", key="plan_alpha")
    power = t2.number_input("Power", min_value=0.51, max_value=0.99, value=0.8, step=0.05,
                            format="%g", key="plan_power")
    alternative = SIDES[t3.selectbox("Test", list(SIDES), key="plan_sides")]
    v1, v2 = st.columns(2)
    n_variants = int(v1.number_input("Variants (incl. control)", min_value=2, max_value=8,
                                      value=2, step=1, key="plan_variants"))
    equal = ", ".join([f"{100 / n_variants:.4g}"] * n_variants)
    split_text = v2.text_input("Traffic split (%), control first", value=equal,
                               key=f"plan_split_{n_variants}")
    d1, d2 = st.columns(2)
    daily = d1.number_input("Daily eligible users", min_value=1.0, step=100.0, format="%.0f",
                            value=float(round(observed.daily_traffic)) if observed else 4200.0,
                            key=f"plan_daily_{seed}")
    exposure = d2.slider("Exposure (%)", min_value=1, max_value=100, value=100,
                         key="plan_exposure") / 100
    days = n_given = None
    if mode == "duration":
        days = int(st.number_input("Run for (days)", min_value=1, max_value=planning.MAX_DAYS,
                                   value=14, key="plan_days"))
    elif mode == "power":
        n_given = int(st.number_input("Users per variant", min_value=2, value=10_000, step=500,
                                      key="plan_n"))

try:
    weights = tuple(float(part) / 100 for part in split_text.split(",") if part.strip())
except ValueError:
    weights = ()
try:
    inputs = planning.make_inputs(
        kind=kind, baseline=baseline, sd=sd, mde=mde, relative=relative, alpha=alpha,
        power=power, alternative=alternative, weights=weights, daily_traffic=daily,
        exposure=exposure,
    )
    if len(inputs.weights) != n_variants:
        raise InvalidInput(
            f"weights: give {n_variants} shares (one per variant), e.g. {equal}")
    if mode == "duration":
        plan = planning.plan_for_duration(inputs, days=days or 1)
    elif mode == "power":
        plan = planning.plan_for_sample(inputs, n_per_variant=n_given or 2)
    else:
        plan = planning.plan_sample_size(inputs)
except DomainError as exc:
    st.error("No plan for these inputs yet. Please fix:\n"
             + "\n".join(f"- {plain(p)}" for p in exc.problems))
    st.stop()

# ---------------------------------------------------------------- the answer
st.divider()
m1, m2, m3, m4 = st.columns(4)
m1.metric("Users per variant", fmt.count(plan.n_per_variant))
m2.metric("Total users", fmt.count(plan.total))
m3.metric("Duration", fmt.plural(plan.days, "day"))
if mode == "duration":
    m4.metric("Detectable effect", plan.effect_text)
else:
    m4.metric("Power", fmt.percent(plan.power, 1, trim=True))
st.success(plan.summary)
if n_variants > 2 or len(set(inputs.weights)) > 1:
    st.dataframe(pd.DataFrame([{"Variant": v.name, "Share": fmt.percent(v.weight, 4, trim=True),
                                "Users": fmt.count(v.units)} for v in plan.variants]),
                 hide_index=True)

c1, c2 = st.columns(2)
c1.plotly_chart(charts.planner_curve(planning.power_curve(plan), title="Power against sample size",
                                     percent_y=True, marker_label="this plan"),
                key="plan_power_curve")
c2.plotly_chart(charts.planner_curve(planning.mde_curve(plan),
                                     title="Detectable effect against duration",
                                     percent_y=relative, marker_label="this plan"),
                key="plan_mde_curve")

# ---------------------------------------------------------------- save onto an experiment
st.divider()
st.subheader("Save the plan")
if not can_write:
    st.caption("You have read-only access: ask an admin for the editor role to save plans.")
else:
    proposed = load_proposed()
    if not proposed:
        st.info("No proposed experiment to save a plan onto: create one on the Registry page.")
    else:
        by_id = {e.id: e for e in proposed}
        chosen = url_selectbox("Proposed experiment", list(by_id), key="plan_target",
                               format_func=lambda i: by_id[i].name,
                               placeholder="Choose a proposed experiment")
        if chosen is None:  # the URL names no proposed experiment: say so, save onto no other
            linked = linked_experiment()
            st.warning(linked if isinstance(linked, str) else
                       f"'{linked.name}' is {linked.status}: a plan can only be saved onto a "
                       "proposed experiment. Choose one above.")
            st.stop()
        target = by_id[chosen]
        seen = as_shown("plan_target", target)  # the save carries the version shown
        if (flash := st.session_state.pop(SAVED, None)) is not None:
            st.success(flash)
        mismatch = planning.split_mismatch(plan, target)
        with st.form("save_plan"):
            analysis_mode = st.selectbox("Analysis mode", ["fixed", "sequential"],
                                         key="plan_analysis_mode")
            typed = mode != "duration" and relative  # as the user typed it, else as computed
            mde_text = (fmt.percent(plan.mde_relative, 6, trim=True) if typed
                        else fmt.percent(plan.mde_relative, sig=3))
            st.caption(f"Saves onto '{target.name}': {fmt.count(plan.n_per_variant)} users per "
                       f"variant, MDE {mde_text} relative, alpha {alpha:g}, power "
                       f"{fmt.percent(plan.power, 1, trim=True)}, "
                       f"{'two-sided' if alternative == 'two-sided' else 'one-sided'} test of "
                       "the primary metric (as sized).")
            if mismatch is not None:
                st.warning(mismatch, icon=":material/call_split:")
            b1, b2 = st.columns([1, 3])
            save = b1.form_submit_button(
                "Save plan", type="secondary" if mismatch else "primary",
                disabled=mismatch is not None,
                help="Sized for another split than the experiment's" if mismatch else None)
            resplit = mismatch is not None and b2.form_submit_button(
                f"Set the experiment's split to {planning.split_text(inputs.weights)} and save",
                type="primary")
        if save or resplit:
            with db_session() as session:
                saved = run_action(lambda: planning.save_plan(
                    session, experiment_id=seen.id, plan=plan, analysis_mode=analysis_mode,
                    expected_version=seen.version, actor=actor, set_split=bool(resplit)),
                    "Plan saved")
            if saved is not None:
                clear_reads()
                st.session_state[SAVED] = (
                    f"Saved onto '{saved.name}' (version {saved.version})"
                    + (f"; its split is now {planning.split_text(inputs.weights)}." if resplit
                       else "."))
                st.rerun()  # the form shows the experiment as saved
