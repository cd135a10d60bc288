"""Results: an experiment's trustworthiness, progress and per-metric decisions, with charts,
CSV download, and (for editors) loading data from a file or the experiment's SQL source."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.analysis import results, views
from core.errors import DomainError
from ui import charts
from ui.auth import current_actor
from ui.state import clear_reads, db_session

actor = current_actor()
can_write = actor.can("editor")
BADGES = {
    "significant": "green", "not_significant": "gray", "too_early": "orange",
    "srm_untrustworthy": "red", "guardrail_breach": "red",
}


@st.cache_data(ttl=60, show_spinner=False)
def load_choices() -> list[views.ExperimentChoice]:
    with db_session() as session:
        return views.experiments_with_results(session)


@st.cache_data(ttl=60, show_spinner="Computing results…")
def load_results(experiment_id: int):  # type: ignore[no-untyped-def]
    with db_session() as session:
        return (
            results.compute_results(session, experiment_id=experiment_id),
            results.cumulative_series(session, experiment_id=experiment_id),
            views.daily_units(session, experiment_id=experiment_id),
        )


st.title("Results")
choices = load_choices()
if not choices:
    st.info("No running or completed experiment yet: launch one on the Registry page.")
    st.stop()
choice = st.selectbox("Experiment", choices, key="res_experiment",
                      format_func=lambda c: f"{c.name} ({c.status})")
snapshot, series, units = load_results(choice.id)

# ---------------------------------------------------------------- freshness, SRM, progress
if snapshot.data_through is None:
    st.info(f"No data for '{choice.name}' yet."
            + (" Load a file or refresh from its SQL source below." if can_write else ""))
else:
    st.caption(
        f"Data {snapshot.first_day} → **{snapshot.data_through}** · computed "
        f"{snapshot.computed_at:%Y-%m-%d %H:%M} UTC · {snapshot.analysis_mode} analysis · "
        f"{snapshot.correction} correction · alpha {snapshot.alpha:g}"
    )
if snapshot.srm is not None and snapshot.srm.flagged:
    srm = snapshot.srm
    split = ", ".join(f"{v} {n:,}" for v, n in zip(srm.variants, srm.observed, strict=True))
    st.error(
        f"**Sample ratio mismatch — results blocked.** Assignments ({split}) do not match the "
        f"planned split (chi-square p = {srm.p_value:.2g} < {srm.threshold:g}). Randomisation "
        "or logging is broken; no metric below can be trusted until the cause is fixed.",
        icon=":material/block:",
    )
if snapshot.progress is not None:
    st.progress(min(snapshot.progress, 1.0),
                text=f"Progress toward the planned sample: {snapshot.progress:.0%} "
                     f"(planned {snapshot.planned_sample_size:,} users per variant)")
if snapshot.variants:
    for col, v in zip(st.columns(len(snapshot.variants)), snapshot.variants, strict=True):
        col.metric(f"{v.name} ({v.weight:.0%})", f"{v.units:,}")

# ---------------------------------------------------------------- decisions per metric
st.subheader("Decisions")
for c in snapshot.comparisons:
    st.markdown(f"**{c.metric}** ({c.role}) · {c.treatment} vs {c.control} "
                f":{BADGES[c.decision_state]}-badge[{c.decision_state}]  \n{c.reason}")

table = pd.DataFrame(views.results_table(snapshot))
if not table.empty:
    st.dataframe(
        table.drop(columns=["reason", "kind"]), hide_index=True, width="stretch",
        column_config={
            "lift": st.column_config.NumberColumn("lift", format="percent"),
            "lift_ci_low": st.column_config.NumberColumn("lift CI low", format="percent"),
            "lift_ci_high": st.column_config.NumberColumn("lift CI high", format="percent"),
            "p_value": st.column_config.NumberColumn("p", format="%.4f"),
            "adjusted_p_value": st.column_config.NumberColumn("adjusted p", format="%.4f"),
            "control_value": st.column_config.NumberColumn("control", format="%.4g"),
            "treatment_value": st.column_config.NumberColumn("treatment", format="%.4g"),
        },
    )
    st.download_button("Download results (CSV)", views.results_csv(snapshot),
                       f"results_{choice.id}.csv", "text/csv")

# ---------------------------------------------------------------- charts
if snapshot.comparisons and snapshot.data_through is not None:
    st.plotly_chart(charts.forest_plot(snapshot.comparisons), key="res_forest")
    metrics = list(dict.fromkeys(c.metric for c in snapshot.comparisons))
    shown = st.selectbox("Cumulative lift of", metrics, key=f"res_metric_{choice.id}")
    st.plotly_chart(charts.cumulative_lift(series, shown), key="res_cumulative")
    st.plotly_chart(charts.daily_units(units), key="res_units")

# ---------------------------------------------------------------- loading data (editors)
if not can_write:
    st.caption("You have read-only access: ask an admin for the editor role to load data.")
    st.stop()

st.subheader("Load data")
u1, u2 = st.columns(2)
with u1:
    upload = st.file_uploader("Upload a user-level or pre-aggregated file (CSV or Parquet)",
                              type=["csv", "parquet", "gz"], key=f"res_upload_{choice.id}")
    if upload is not None and st.button("Load file", type="primary"):
        bar = st.progress(0.0, text="Starting")
        try:
            with db_session() as session:
                report, _ = views.load_upload(
                    session, experiment_id=choice.id, filename=upload.name,
                    data=upload.getvalue(), actor=actor,
                    progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
        except DomainError as exc:
            bar.empty()
            st.error(f"**{upload.name} was rejected; nothing was loaded.**\n"
                     + "\n".join(f"- {p}" for p in exc.problems))
        else:
            clear_reads()
            st.success(f"Loaded {report.stats_rows_written:,} daily rows from {upload.name} "
                       f"({report.first_day} → {report.last_day}).")
with u2:
    if not choice.has_sql_source:
        st.caption("This experiment has no SQL metric source (define one with the CLI or API).")
    elif st.button("Refresh from the SQL source"):
        bar = st.progress(0.0, text="Starting")
        try:
            with db_session() as session:
                report, _ = views.refresh_from_source(
                    session, experiment_id=choice.id, actor=actor,
                    progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
        except DomainError as exc:
            bar.empty()
            st.error("**The refresh failed; nothing was loaded.**\n"
                     + "\n".join(f"- {p}" for p in exc.problems))
        else:
            clear_reads()
            st.success(f"Refreshed: {report.stats_rows_written:,} daily rows, data through "
                       f"{report.last_day}.")
