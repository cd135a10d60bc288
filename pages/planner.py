"""Planner: sample size, duration, power and detectable effect for an experiment; save the plan."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import format as fmt
from core import planning
from core.analysis import results
from core.errors import DomainError, InvalidInput, NotFound
from ui import charts
from ui.auth import current_actor
from ui.messages import plain
from ui.state import (
    as_shown,
    clear_reads,
    db_session,
    linked_experiment,
    linked_fresh,
    query_int,
    url_selectbox,
)
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


@st.cache_data(ttl=60, show_spinner=False)
def load_achieved(experiment_id: int, metric: str) -> results.AchievedVarianceReduction | None:
    with db_session() as session:
        return results.achieved_variance_reduction(session, experiment_id=experiment_id,
                                                   metric=metric)


@st.cache_data(ttl=30, show_spinner=False)
def load_proposed():  # type: ignore[no-untyped-def]
    with db_session() as session:
        return planning.plannable_experiments(session)


@st.cache_data(ttl=30, show_spinner=False)
def load_draft(experiment_id: int) -> planning.PlanDraft | None:
    with db_session() as session:
        try:
            return planning.plan_draft(session, experiment_id=experiment_id)
        except NotFound:
            return None


# Every input lives in the URL (?plan_mde_binomial_True=10, only what differs from its
# default): a reload, or the link, brings the plan back (Streamlit replaces the URL's query
# string for these, so typing adds no history entries).
BOUND = {"bind": "query-params"}

st.title("Experiment planner")
st.caption("How many users, how many days, and what effect you can hope to see.")

# ---------------------------------------------------------------- the experiment planned for
target_id = query_int()
draft = load_draft(target_id) if target_id is not None else None
start = draft.values if draft is not None else {}
# Inputs keyed per experiment: each opens with its own defaults (its saved plan, else its
# primary metric's baseline and its settings); the URL holds what was typed over them.
plan_seed = f"_e{draft.experiment_id}" if draft is not None else ""
if draft is not None:
    st.info(f"Planning '{draft.experiment_name}'. {draft.source}", icon=":material/science:")

mode = MODES[st.radio("What do you want to find?", list(MODES), horizontal=True,
                      key="plan_mode", **BOUND)]

# ---------------------------------------------------------------- the baseline
observed = None
from_data = st.toggle("Take the baseline from an existing experiment's data",
                      key="plan_from_data", **BOUND)
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

if observed is not None:
    seed = f"{observed.experiment_id}_{observed.metric}"
    base = {"kind": "binomial" if observed.kind == "binomial" else "mean",
            "baseline": observed.mean, "sd": observed.sd,
            "daily_traffic": observed.daily_traffic}
else:
    seed = f"e{draft.experiment_id}" if draft is not None else "typed"
    base = start
left, right = st.columns(2)
with left:
    st.markdown("##### Metric")
    kind_labels = list(KINDS)
    kind_index = 0 if base.get("kind", "binomial") == "binomial" else 1
    kind = KINDS[st.radio("Metric type", kind_labels, index=kind_index, horizontal=True,
                          disabled=observed is not None, key=f"plan_kind_{seed}", **BOUND)]
    sd = None
    r_squared = 0.0
    if kind == "binomial":
        rate = base.get("baseline") if base.get("kind", "binomial") == "binomial" else None
        baseline = st.number_input(
            "Baseline conversion rate (%)", min_value=0.01, max_value=99.99, step=0.5,
            value=round(rate * 100, 3) if rate and 0 < rate < 1 else 10.0, format="%g",
            key=f"plan_rate_{seed}", **BOUND) / 100
    else:
        mean = base.get("baseline") if base.get("kind") == "mean" else None
        baseline = st.number_input("Baseline mean", value=float(mean) if mean is not None
                                   else 12.0, format="%.4g", key=f"plan_mean_{seed}", **BOUND)
        sd = st.number_input("Standard deviation per user", min_value=1e-9,
                             value=float(base["sd"]) if base.get("sd") else 24.0,
                             format="%.4g", key=f"plan_sd_{seed}", **BOUND)
        achieved = (load_achieved(observed.experiment_id, observed.metric)
                    if observed is not None else None)
        if achieved is not None and st.toggle(
                f"Take the variance reduction CUPED achieved there (R² = "
                f"{achieved.r_squared:.3g})", key=f"plan_r2_from_{seed}", **BOUND):
            r_squared = achieved.r_squared
            st.caption(achieved.description)
        else:
            r_squared = st.number_input(
                "Expected variance reduction (R²)", min_value=0.0, max_value=0.99, step=0.05,
                value=float(start.get("r_squared", 0.0)), format="%g", key=f"plan_r2_{seed}",
                help="The share of the metric's variance a pre-experiment covariate explains "
                "(CUPED): the plan sizes the test on SD² × (1 − R²). 0 plans without it.",
                **BOUND)
    relative = st.radio("Effect expressed as", ["Relative (%)", "Absolute"], horizontal=True,
                        index=0 if start.get("relative", True) else 1,
                        key=f"plan_relative{plan_seed}", **BOUND) == "Relative (%)"
    if mode != "duration":
        unit = "%" if relative else ("percentage points" if kind == "binomial" else "units")
        scale = 100 if relative or kind == "binomial" else 1
        given = start.get("mde") if start.get("relative", True) == relative else None
        mde_value = st.number_input(
            f"Minimum detectable effect ({unit})", min_value=1e-6,
            value=float(round(given * scale, 6)) if given else
            (5.0 if relative or kind == "binomial" else 1.0),
            format="%g", key=f"plan_mde_{kind}_{relative}{plan_seed}", **BOUND)
        mde = mde_value / scale
    else:
        mde = 0.05  # not used: the duration mode solves for the effect
with right:
    st.markdown("##### Test and traffic")
    t1, t2, t3 = st.columns(3)
    alpha = t1.number_input("Alpha", min_value=0.001, max_value=0.2, step=0.01, format="%g",
                            value=float(start.get("alpha", 0.05)), key=f"plan_alpha{plan_seed}",
                            **BOUND)
    power = t2.number_input("Power", min_value=0.51, max_value=0.99, step=0.05, format="%g",
                            value=float(start.get("power", 0.8)), key=f"plan_power{plan_seed}",
                            **BOUND)
    sides = list(SIDES.values()).index(start.get("alternative", "two-sided"))
    alternative = SIDES[t3.selectbox("Test", list(SIDES), index=sides,
                                     key=f"plan_sides{plan_seed}", **BOUND)]
    v1, v2 = st.columns(2)
    start_weights = start.get("weights") or ()
    n_variants = int(v1.number_input("Variants (incl. control)", min_value=2, max_value=8,
                                      value=max(2, len(start_weights)), step=1,
                                      key=f"plan_variants{plan_seed}", **BOUND))
    equal = ", ".join([f"{100 / n_variants:.4g}"] * n_variants)
    split_text = v2.text_input(
        "Traffic split (%), control first", key=f"plan_split_{n_variants}{plan_seed}",
        value=", ".join(f"{w * 100:.4g}" for w in start_weights)
        if len(start_weights) == n_variants else equal, **BOUND)
    d1, d2 = st.columns(2)
    daily = d1.number_input("Daily eligible users", min_value=1.0, step=100.0, format="%.0f",
                            value=float(round(base["daily_traffic"]))
                            if base.get("daily_traffic") else 4200.0,
                            key=f"plan_daily_{seed}", **BOUND)
    exposure = d2.slider("Exposure (%)", min_value=1, max_value=100,
                         value=round(start.get("exposure", 1.0) * 100),
                         key=f"plan_exposure{plan_seed}", **BOUND) / 100
    days = n_given = None
    if mode == "duration":
        days = int(st.number_input("Run for (days)", min_value=1, max_value=planning.MAX_DAYS,
                                   value=14, key="plan_days", **BOUND))
    elif mode == "power":
        n_given = int(st.number_input(
            "Users per variant", min_value=2, value=10_000, step=500, key="plan_n",
            help="The smallest arm's users (at an uneven split the others have more)", **BOUND))

try:
    weights = tuple(float(part) / 100 for part in split_text.split(",") if part.strip())
except ValueError:
    weights = ()
try:
    inputs = planning.make_inputs(
        kind=kind, baseline=baseline, sd=sd, mde=mde, relative=relative, alpha=alpha,
        power=power, alternative=alternative, weights=weights, daily_traffic=daily,
        exposure=exposure, r_squared=r_squared,
    )
    if len(inputs.weights) != n_variants:
        raise InvalidInput(
            f"weights: give {n_variants} shares (one per variant), e.g. {equal}")
    if mode == "duration":
        plan = planning.plan_for_duration(inputs, days=days or 1)
    elif mode == "power":
        plan = planning.plan_for_sample(
            inputs, n_per_variant=planning.control_units(inputs, n_given or 2))
    else:
        plan = planning.plan_sample_size(inputs)
    if draft is not None:  # the experiment's own variant names
        plan = planning.name_arms(plan, draft.variant_names)
except DomainError as exc:
    st.error("No plan for these inputs yet. Please fix:\n"
             + "\n".join(f"- {plain(p)}" for p in exc.problems))
    st.stop()

# ---------------------------------------------------------------- the answer
st.divider()
m1, m2, m3, m4 = st.columns(4)
m1.metric("Users per variant", fmt.count(plan.n_per_variant),
          help="Users in each arm; at an uneven split, in the smallest arm (the others have "
          "more: see the table). The power curve counts them the same way.")
m2.metric("Total users", fmt.count(plan.total))
m3.metric("Duration", fmt.plural(plan.days, "day"))
if mode == "duration":
    m4.metric("Detectable effect", plan.effect_text)
else:
    m4.metric("Power", fmt.percent(plan.power, 1, trim=True))
st.success(plan.summary)
if n_variants > 2 or len(set(inputs.weights)) > 1 or draft is not None:
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
    proposed = linked_fresh(load_proposed, lambda listed: (e.id for e in listed))
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
