"""Results: an experiment's verdict first, then its trustworthiness, progress and per-metric
decisions, with charts, CSV download, and (for editors) loading data from a file or the
experiment's SQL source. ``?experiment=<id>`` opens (and keeps) one experiment.

A flagged sample-ratio-mismatch check blocks the results: no lift, difference, p-value, forest
plot or cumulative chart is shown, only the reason and the assignment counts behind it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import format as fmt
from core.analysis import results, views
from core.analysis.segments import SegmentBreakdown, SegmentScan, segment_results, segment_scan
from core.analysis.snapshot import MetricComparison, ResultsSnapshot
from core.analysis.verdict import STATE_LABELS, plan_notes, readout_note, tone, variance_notes
from core.errors import DomainError
from core.warehouse.refresh import WarehouseRunView, latest_runs
from core.workflows import loads
from ui import charts
from ui.auth import current_actor
from ui.segment_scan import scan_rows, srm_caption, srm_value
from ui.state import (
    clear_reads,
    db_session,
    experiment_link,
    linked_experiment,
    linked_fresh,
    url_selectbox,
)
from ui.widgets import loaded_text

actor = current_actor()
can_write = actor.can("editor")
VERDICT_BOXES = {"ship": st.success, "dont_ship": st.error, "investigate": st.warning,
                 "keep_running": st.info, "none": st.info}
FLASH = "res_flash"  # session key: (experiment id, what the last data load brought)
TOAST = "res_toast"  # session key: the same message, to pop up once after the rerun


@st.cache_data(ttl=60, show_spinner=False)
def load_choices() -> list[views.ExperimentChoice]:
    with db_session() as session:
        return views.experiments_with_results(session)


@st.cache_data(ttl=60, show_spinner="Computing results…")
def load_results(experiment_id: int):  # type: ignore[no-untyped-def]
    with db_session() as session:
        return (
            results.compute_results(session, experiment_id=experiment_id),
            views.daily_units(session, experiment_id=experiment_id),
        )


@st.cache_data(ttl=60, show_spinner=False)
def load_series(experiment_id: int, metric: str):  # type: ignore[no-untyped-def]
    """The cumulative series of the one metric the chart shows (a test per day and treatment:
    computing every metric's made the first render of a 20-metric experiment wait ~1 s)."""
    with db_session() as session:
        return results.cumulative_series(session, experiment_id=experiment_id, metric=metric)


@st.cache_data(ttl=60, show_spinner=False)
def load_warehouse_runs(experiment_id: int) -> list[WarehouseRunView]:
    with db_session() as session:
        return latest_runs(session, experiment_id)


@st.cache_data(ttl=60, show_spinner="Computing segments…")
def load_segments(experiment_id: int) -> list[SegmentBreakdown]:
    with db_session() as session:
        return segment_results(session, experiment_id=experiment_id)


@st.cache_data(ttl=60, show_spinner="Scanning segments…")
def load_scan(experiment_id: int) -> SegmentScan:
    with db_session() as session:
        return segment_scan(session, experiment_id=experiment_id)


def _segment_rows(seg: SegmentBreakdown) -> list[dict[str, Any]]:
    """One row per slice x metric x treatment: the difference first (what a slice decides on),
    the lift beside it, the p-value corrected across the dimension's slices."""
    ci = fmt.ci_label(seg.alpha)
    rows = []
    for c in seg.comparisons:
        points = c.kind == "binomial"

        decimals = fmt.shared_decimals(c.diff, c.diff_ci_low, c.diff_ci_high)

        def diff_fmt(x: float | None, points: bool = points, decimals: int = decimals) -> str:
            return (fmt.signed_percent(x, 2).replace("%", " pp") if points
                    else fmt.signed_fixed(x, decimals))  # one precision for it and its CI

        rows.append({
            "Slice": c.value, "Metric": c.metric, "Treatment": c.treatment,
            "Users": f"{fmt.count(c.control_n)} / {fmt.count(c.treatment_n)}",
            "Control → treatment": (f"{fmt.metric_value(c.kind, c.control_mean)} → "
                                    f"{fmt.metric_value(c.kind, c.treatment_mean)}"),
            "Difference": "withheld (SRM)" if c.blocked else diff_fmt(c.diff),
            ci: "" if c.blocked else fmt.interval(c.diff_ci_low, c.diff_ci_high, diff_fmt),
            "Lift": "" if c.blocked else fmt.signed_percent(c.lift),
            f"p ({seg.correction.upper() if seg.correction == 'bh' else 'Holm'})":
                "" if c.blocked else fmt.pvalue(c.adjusted_p_value),
            "Reads as": ("blocked: slice SRM" if c.blocked else
                         "cannot be tested: no variation" if c.untestable else
                         "significant" if c.significant else "not significant"),
        })
    return rows


def _blocked(snapshot: ResultsSnapshot) -> bool:
    return (snapshot.srm is not None and snapshot.srm.flagged) or any(
        c.blocked for c in snapshot.comparisons)


def _effect_rows(snapshot: ResultsSnapshot) -> list[dict[str, Any]]:
    """The results table for people: labels, formatted numbers, no raw column names. The
    p-value is the one of the quantity shown (the lift, else the difference), the test its
    interval inverts; a one-sided interval shows its open end as ∞."""
    ci = fmt.ci_label(snapshot.alpha, snapshot.analysis_mode == "sequential")
    rows = []
    for c in snapshot.comparisons:
        row: dict[str, Any] = {
            "Metric": c.metric, "Treatment": c.treatment,
            "Users": f"{fmt.count(c.control_n)} / {fmt.count(c.treatment_n)}",
        }
        if not _blocked(snapshot):
            # a comparison without variation has no effect at all: "—" in the lift column
            on_lift = c.decision_on == "lift" and (c.lift is not None or bool(c.untestable))
            one_sided = c.alternative != "two-sided"
            decimals = fmt.shared_decimals(c.diff, c.diff_ci_low, c.diff_ci_high)

            def diff_fmt(x: float | None, decimals: int = decimals) -> str:
                return fmt.signed_fixed(x, decimals)  # one precision for it and its interval

            estimate = fmt.signed_percent(c.lift) if on_lift else diff_fmt(c.diff)
            bounds = (fmt.interval(c.lift_ci_low, c.lift_ci_high, fmt.signed_percent,
                                   open_ends=one_sided) if on_lift else
                      fmt.interval(c.diff_ci_low, c.diff_ci_high, diff_fmt,
                                   open_ends=one_sided))
            p_value = fmt.pvalue(c.lift_p_value if on_lift else c.p_value)
            adjusted = fmt.pvalue(c.adjusted_p_value)
            # the estimate with its interval, and the p-value with its adjusted one, each in
            # one cell: the table fits beside the sidebar at 1,024 px (issue 23)
            row |= {
                "Control → treatment": (f"{fmt.metric_value(c.kind, c.control_mean)} → "
                                        f"{fmt.metric_value(c.kind, c.treatment_mean)}"),
                "Lift" if on_lift else "Difference": (
                    estimate if bounds == fmt.MISSING else f"{estimate} {bounds}"),
                P_COLUMN: (p_value if p_value == adjusted == fmt.MISSING
                           else f"{p_value} ({adjusted})"),
            }
        row["Decision"] = STATE_LABELS.get(c.decision_state, fmt.label(c.decision_state))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "Lift" in frame and "Difference" in frame:  # mixed: one column, named for both
        frame["Lift"] = frame["Lift"].fillna(frame.pop("Difference"))
        frame = frame.rename(columns={"Lift": "Lift / difference"})
    frame = frame.rename(columns={name: f"{name} ({ci})" for name in
                                  ("Lift", "Difference", "Lift / difference")})
    return frame.fillna(fmt.MISSING).to_dict("records")


# The results table is a static table (its cells wrap to the page's width); with one
# treatment the Treatment column says nothing (each decision line names it) and is left out.
# (Comments, not docstrings: Streamlit writes a page's bare string literals onto the page.)
P_COLUMN = "p-value (adjusted)"


# Pixel widths of a segment table's columns (the grid's own sizing cut values off at 1,400 px).
SEGMENT_WIDTHS = {"Slice": 70, "Metric": 130, "Treatment": 90, "Users": 105,
                  "Control → treatment": 125, "Difference": 85, "Lift": 60, "p (Holm)": 70,
                  "p (BH)": 70, "Reads as": 200, "95% CI": 130}
# "Reads as" holds "cannot be tested: no variation" (it was cut at 115 px, issue 23).


def _widths(columns: list[str], widths: dict[str, int]) -> dict[str, Any]:
    return {name: st.column_config.Column(width=widths.get(
        name, 140 if "always-valid" in name else 120)) for name in columns}


def _bayesian_rows(snapshot: ResultsSnapshot) -> list[dict[str, Any]]:
    """The Bayesian readout of each comparison that has one (posterior of the relative lift)."""
    rows = []
    for c in snapshot.comparisons:
        b = c.bayesian
        if b is None:
            continue
        rows.append({
            "Metric": c.metric, "Treatment": c.treatment,
            "Chance to beat control": fmt.percent(b.chance_to_beat_control, 1),
            "Expected loss if shipped": fmt.percent(b.expected_loss_ship, 2),
            f"{fmt.percent(1 - b.alpha, 4, trim=True)} credible interval":
                fmt.interval(b.ci_low, b.ci_high, fmt.signed_percent),
            "Prior": "flat" if b.prior == "flat" else (
                f"normal({fmt.signed_percent(b.prior_mean)}, sd {fmt.percent(b.prior_sd)})"),
        })
    return rows


def _decision_line(c: MetricComparison) -> str:
    colour = "red" if c.blocked or c.decision_state == "srm_untrustworthy" else \
        charts.TONE_BADGES[tone(c)]
    badge = f":{colour}-badge[{STATE_LABELS.get(c.decision_state, c.decision_state)}]"
    capped = f" · {c.capping}" if c.capping else ""
    return (f"**{c.metric}** ({c.role}{capped}) · {c.treatment} vs {c.control} {badge}  \n"
            f"{c.reason}")


st.title("Results")
choices = linked_fresh(load_choices, lambda listed: (c.id for c in listed))
if not choices:
    st.info("No running or completed experiment yet: launch one on the Registry page.")
    st.stop()
by_id = {c.id: c for c in choices}
chosen = url_selectbox("Experiment", list(by_id), key="res_experiment",
                       format_func=lambda i: f"{by_id[i].name} ({by_id[i].status})",
                       placeholder="Choose an experiment")
if chosen is None:  # the URL names an experiment without results, or none: say so, show no other
    linked = linked_experiment()
    if isinstance(linked, str):
        st.warning(linked)
    else:
        st.info({
            "proposed": f"'{linked.name}' is proposed: no results yet. They appear here once "
                        "it is launched (Registry) and its data is loaded.",
            "abandoned": f"'{linked.name}' was abandoned before it was launched: it has no "
                         "results." if linked.actual_start is None else
                         f"'{linked.name}' was abandoned: results are shown for running and "
                         "completed experiments only.",
        }.get(linked.status, f"'{linked.name}' is {linked.status}: reload the page to see its "
                             "results."))
        experiment_link("registry", linked.id, f"Open '{linked.name}' in the Registry",
                        icon=":material/science:")
    st.stop()
choice = by_id[chosen]
snapshot, units = load_results(choice.id)
blocked = _blocked(snapshot)

flash = st.session_state.get(FLASH)
flash_slot = st.empty()  # a later rejected load takes the message away
if flash is not None and flash[0] == choice.id:
    flash_slot.success(flash[1])  # until the next load, or another experiment is opened
if (toast := st.session_state.pop(TOAST, None)) is not None:
    st.toast(toast, icon=":material/check_circle:", duration="long")
elif flash is not None:
    del st.session_state[FLASH]

# ---------------------------------------------------------------- the verdict, first
verdict = snapshot.verdict
if verdict is not None:
    VERDICT_BOXES.get(verdict.recommendation, st.info)(
        f"**Verdict: {verdict.label}**  \n{verdict.reason}")

# ---------------------------------------------------------------- freshness, SRM, progress
if snapshot.data_through is None:
    st.info(f"No data for '{choice.name}' yet." + (
        "" if not can_write else " Refresh it from the warehouse below."
        if choice.assignment_source else " Load a file or refresh from its SQL source below."))
else:
    st.caption(
        f"Data {fmt.day(snapshot.first_day)} → **{fmt.day(snapshot.data_through)}** · "
        f"computed {fmt.timestamp(snapshot.computed_at)} · {snapshot.analysis_mode} analysis · "
        f"{snapshot.correction} correction · alpha {snapshot.alpha:g}"
    )
if blocked:
    srm = snapshot.srm
    assert srm is not None
    split = ", ".join(f"{v} {fmt.count(n)}" for v, n in zip(srm.variants, srm.observed,
                                                            strict=True))
    st.error(
        f"**Sample ratio mismatch — results blocked.** Assignments ({split}) do not match the "
        f"planned split ({srm_value(srm)}). Randomisation "
        "or logging is broken; no metric below can be trusted until the cause is fixed, so "
        "every effect is hidden.",
        icon=":material/block:",
    )
if snapshot.srm is not None and snapshot.data_through is not None:
    st.caption(srm_caption(snapshot.srm))
if snapshot.progress is not None:
    st.progress(min(snapshot.progress, 1.0),
                text=f"Progress toward the planned sample: {fmt.percent(snapshot.progress, 0)} "
                     f"(planned {fmt.count(snapshot.planned_sample_size)} users per variant)")
if snapshot.variants:
    for col, v in zip(st.columns(len(snapshot.variants)), snapshot.variants, strict=True):
        col.metric(f"{v.name} ({fmt.percent(v.weight, 1, trim=True)})", fmt.count(v.units))

# ---------------------------------------------------------------- decisions per metric
st.subheader("Decisions")
notes = plan_notes(snapshot)
if notes:
    st.caption("  \n".join(f"**Plan:** {note}" for note in notes))
for c in snapshot.comparisons:
    st.markdown(_decision_line(c))

table = pd.DataFrame(_effect_rows(snapshot))
if not table.empty:
    if blocked:
        st.caption("Lifts, differences and p-values hidden: sample ratio mismatch (see above).")
    if table["Treatment"].nunique() == 1:
        table = table.drop(columns="Treatment")
    # a static table wraps its cells to the page's width, so no column is ever off screen
    # (issue 23: at 1,024 px the grid hid the interval, p-values and the decision)
    st.table(table, hide_index=True)
    reductions = variance_notes(snapshot)
    if reductions:
        st.caption("**Variance reduction:** " + " · ".join(reductions))
    st.download_button("Download results (CSV)", views.results_csv(snapshot),
                       f"results_{choice.id}.csv", "text/csv")
    bayes = _bayesian_rows(snapshot)
    if bayes and not blocked:
        st.markdown("##### Bayesian readout")
        st.caption("Beside the frequentist test: the posterior of the relative lift. Chance to "
                   "beat control is the probability the treatment is better (in the metric's "
                   "direction); expected loss is the lift you give up on average by shipping "
                   "if it is in fact worse. It reads the data as one look, unadjusted, so it "
                   "can disagree with the decision above, which follows the plan; where it "
                   "does, the reason is given under the table.")
        st.table(pd.DataFrame(bayes), hide_index=True)  # wraps: fits at 1,024 px
        differ = [(c, readout_note(c, snapshot)) for c in snapshot.comparisons]
        lines = [f"**{c.metric} · {c.treatment}:** {note}" for c, note in differ if note]
        if lines:
            st.caption("  \n".join(lines))

# ---------------------------------------------------------------- charts
if snapshot.comparisons and snapshot.data_through is not None:
    if blocked:
        st.info("Forest plot and cumulative lift hidden: sample ratio mismatch. The daily "
                "assignments below show where the split goes wrong.",
                icon=":material/visibility_off:")
    else:
        st.plotly_chart(charts.forest_plot(snapshot.comparisons), key="res_forest")
        metrics = list(dict.fromkeys(c.metric for c in snapshot.comparisons))
        shown = st.selectbox("Cumulative lift of", metrics, key=f"res_metric_{choice.id}")
        one_sided = any(c.alternative != "two-sided" for c in snapshot.comparisons
                        if c.metric == shown)
        st.plotly_chart(charts.cumulative_lift(load_series(choice.id, shown), shown,
                                               alpha=snapshot.alpha,
                                               one_sided=one_sided), key="res_cumulative")
    st.plotly_chart(charts.daily_units(units), key="res_units")

# ---------------------------------------------------------------- segments (exploratory)
segments = [] if blocked or snapshot.data_through is None else load_segments(choice.id)
if segments:
    st.subheader("Segments (exploratory)")
    st.caption(segments[0].exploratory + f" Up to {segments[0].top_n} values per dimension; "
               "the rest are pooled as “(other)”. Each slice has its own SRM check: the "
               "sequential test, Holm-adjusted over the dimension's values.")
    scan = load_scan(choice.id)
    st.markdown("##### Worth a look (automatic segment scan)")
    st.caption(scan.note + f" Each slice's effect is tested against the effect in the rest of "
               f"the experiment; {scan.tested} comparisons, Holm-corrected together.")
    look = scan_rows(scan)
    if look:
        st.dataframe(pd.DataFrame(look), hide_index=True, width="stretch")
    else:
        st.caption("No slice's effect differs from the rest's after the correction.")
    tabs = st.tabs([f"By {s.dimension}" for s in segments])
    for tab, seg in zip(tabs, segments, strict=True):
        with tab:
            flagged = [s.value for s in seg.slices if s.srm_flagged]
            if flagged:
                st.warning(f"Sample ratio mismatch within {', '.join(flagged)} (sequential "
                           "test, Holm-adjusted over the dimension's values): those slices' "
                           "effects are withheld.")
            frame = pd.DataFrame(_segment_rows(seg))
            if "Treatment" in frame and frame["Treatment"].nunique() == 1:  # says nothing
                frame = frame.drop(columns="Treatment")
            st.dataframe(frame, hide_index=True, width="stretch",
                         column_config=_widths(list(frame.columns), SEGMENT_WIDTHS))

# ---------------------------------------------------------------- from the warehouse


def _loaded(message: str) -> None:
    """Forget every cached read, leave the message for the rerun, and rerun to show the data."""
    clear_reads()
    st.session_state[FLASH] = (choice.id, message)
    st.session_state[TOAST] = message  # shown once, in view, whatever the scroll position
    st.session_state["res_upload_round"] = st.session_state.get("res_upload_round", 0) + 1
    st.rerun()


def _run_rows(runs: list[WarehouseRunView]) -> list[dict[str, Any]]:
    """One row per source of the latest refresh: what ran, what came back, how long."""
    return [{
        "Source": f"{r.source} ({r.role})",
        "Rows returned": fmt.count(r.rows_returned),
        "Rows scanned": "not reported" if r.rows_scanned is None else fmt.count(r.rows_scanned),
        "Seconds": fmt.number(r.seconds, 2),
        "Exposure days recomputed": (fmt.MISSING if r.role == "assignment" else
                                     "none: all final" if not r.sql else
                                     f"from {fmt.day(r.open_from)}"),
        "Final through": fmt.MISSING if r.final_through is None else fmt.day(r.final_through),
        "Ran": f"{fmt.timestamp(r.ran_at)} by {r.ran_by}",
    } for r in runs]


def _exposure_text(runs: list[WarehouseRunView]) -> str | None:
    """The exposure check in words: units kept, units in two variants excluded."""
    found = next((r for r in runs if r.role == "assignment" and r.units is not None), None)
    if found is None:
        return None
    text = (f"**Exposure check:** {fmt.count(found.units)} units kept, each counted once in "
            "one variant; ")
    if found.multi_variant_units:
        return text + (f"{fmt.count(found.multi_variant_units)} units seen in more than one "
                       "variant were excluded.")
    return text + "no unit was seen in more than one variant."


if choice.assignment_source:
    st.subheader("From the warehouse")
    st.caption(f"Exposures from the assignment source **{choice.assignment_source}** under the "
               f"key `{choice.experiment_key}`; its metrics on fact sources are computed inside "
               "the warehouse (Data sources page). A refresh recomputes the exposure days still "
               "open and keeps the final ones.")
    if can_write:
        w1, w2 = st.columns([1, 2], vertical_alignment="center")
        full = w2.checkbox("Recompute every exposure day", key=f"res_full_{choice.id}")
        if w1.button("Refresh from warehouse", type="primary", key="res_warehouse"):
            try:
                with st.spinner("Running the queries in the warehouse…"), db_session() as s:
                    done, _ = loads.refresh_from_warehouse(
                        s, experiment_id=choice.id, actor=actor, full=full)
            except DomainError as exc:
                flash_slot.empty()
                st.session_state.pop(FLASH, None)
                st.error("**The refresh from the warehouse failed; nothing was written.**\n"
                         + "\n".join(f"- {p}" for p in exc.problems))
            else:
                _what = (f"{fmt.plural(done.stats_rows_written, 'daily statistics row')} "
                         "written" if done.changed else "nothing changed")
                _loaded(f"Refreshed from the warehouse in {fmt.number(done.seconds, 2)} s: "
                        f"{fmt.plural(done.rows_read, 'aggregate row')} read, {_what}."
                        + "".join(f" {note}" for note in done.notes))
    runs = load_warehouse_runs(choice.id)
    if not runs:
        st.info("Not refreshed from the warehouse yet.")
    else:
        exposure = _exposure_text(runs)
        if exposure:
            st.markdown(exposure)
        st.dataframe(pd.DataFrame(_run_rows(runs)), hide_index=True, width="stretch")
        st.caption("The exact SQL of the latest refresh, per source (copy it with the icon at "
                   "its top right):")
        for r in runs:
            with st.expander(f"SQL that ran for {r.source} ({r.role} source)"):
                if r.sql:
                    st.code(r.sql, language="sql")
                else:
                    st.caption("No query ran: every exposure day was final.")

# ---------------------------------------------------------------- loading data (editors)
if not can_write:
    st.caption("You have read-only access: ask an admin for the editor role to load data.")
    st.stop()


st.subheader("Load data")
u1, u2 = st.columns(2)
with u1:
    upload = st.file_uploader(
        "Upload a user-level or pre-aggregated file (CSV or Parquet)",
        type=["csv", "parquet", "gz"],
        key=f"res_upload_{choice.id}_{st.session_state.get('res_upload_round', 0)}")
    if upload is not None and st.button("Load file", type="primary"):
        bar = st.progress(0.0, text="Starting")
        try:
            with db_session() as session:
                report, _ = loads.load_upload(
                    session, experiment_id=choice.id, filename=upload.name,
                    data=upload.getvalue(), actor=actor,
                    progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
        except DomainError as exc:
            bar.empty()
            flash_slot.empty()  # the earlier load's "Loaded ..." would read as this file's
            st.session_state.pop(FLASH, None)
            st.error(f"**{upload.name} was rejected; nothing was loaded.**\n"
                     + "\n".join(f"- {p}" for p in exc.problems))
            # the list is under the button, maybe below the fold: say so where the eye is
            st.toast(f"**{upload.name} was rejected; nothing was loaded.** "
                     f"{fmt.plural(len(exc.problems), 'problem')} listed under *Load data*, "
                     "below the file.", icon=":material/error:", duration="infinite")
        else:
            _loaded(loaded_text(report, source=upload.name))
with u2:
    if not choice.has_sql_source:
        st.caption("This experiment has no SQL metric source (define one with the CLI or API).")
    elif st.button("Refresh from the SQL source"):
        bar = st.progress(0.0, text="Starting")
        try:
            with db_session() as session:
                report, _ = loads.refresh_from_source(
                    session, experiment_id=choice.id, actor=actor,
                    progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
        except DomainError as exc:
            bar.empty()
            st.error("**The refresh failed; nothing was loaded.**\n"
                     + "\n".join(f"- {p}" for p in exc.problems))
        else:
            _loaded("Refreshed: " + loaded_text(report, source="the SQL source"))
