"""Metrics: the shared catalogue — one definition per metric, listed for everyone, created and
edited by editors (name and kind are fixed once experiments refer to them; a ratio metric's
numerator and denominator columns until data is stored for it)."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import streamlit as st

from core import catalogue, registry
from core import format as fmt
from core.types import METRIC_KINDS
from ui.auth import current_actor
from ui.state import clear_reads, db_session, query_value, set_query, url_selectbox
from ui.widgets import metric_formula, run_action

KIND_LABELS = {"binomial": "Conversion rate (yes/no per user)", "mean": "Mean per user",
               "ratio": "Ratio of two sums", "quantile": "Quantile per user (p50, p90, p99)"}
DIRECTION = {True: "Higher is better", False: "Lower is better"}

actor = current_actor()
can_write = actor.can("editor")


@st.cache_data(ttl=30, show_spinner=False)
def load_catalogue() -> tuple[list[catalogue.MetricView], dict[str, int]]:
    """The metrics, and how many experiments use each (as primary, guardrail or secondary)."""
    with db_session() as session:
        used: Counter[str] = Counter()
        for exp in registry.all_experiments(session):
            names = {exp.primary_metric, *exp.guardrail_metrics, *exp.secondary_metrics}
            used.update(n for n in names if n)
        return catalogue.list_metrics(session), dict(used)


def call(fn, success: str):  # type: ignore[no-untyped-def]
    with db_session() as session:
        result = run_action(lambda: fn(session), success)
    if result is not None:
        clear_reads()
    return result


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, fmt.label(kind))


def definition(m: catalogue.MetricView) -> str:
    """The kind, and for a ratio metric its columns: "Ratio: revenue / sessions"; a metric
    computed in the warehouse by its formula: "Warehouse: sum(revenue) on orders, 7 days"."""
    if m.fact_source is not None:
        window = f", {fmt.plural(m.window_days, 'day')}" if m.window_days else ""
        return f"Warehouse: {metric_formula(m)} on {m.fact_source}{window}"
    if m.kind == "ratio":
        return f"Ratio: {m.numerator} / {m.denominator}"
    if m.kind == "quantile" and m.quantile_p is not None:
        return f"Quantile: p{m.quantile_p * 100:g} per user"
    return kind_label(m.kind)


def column(text: str) -> str | None:
    """A column name typed in a form; blank means none."""
    return text.strip() or None


metrics, used = load_catalogue()

st.title("Metrics")
st.caption("The metric catalogue: one shared definition per metric, so every team's experiments "
           "measure the same thing the same way. Experiments pick their primary, guardrail and "
           "secondary metrics from here.")

search = st.text_input("Search name or description", key="met_search").strip().lower()
shown = [m for m in metrics
         if not search or search in m.name.lower() or search in m.description.lower()]
if shown:
    st.dataframe(pd.DataFrame([
        {"Name": m.name, "Kind": definition(m), "Unit": m.unit or "—",
         "Direction": DIRECTION[m.higher_is_better], "Used by": fmt.plural(used.get(m.name, 0),
                                                                          "experiment"),
         "Description": m.description or "—"}
        for m in shown
    ]), hide_index=True, width="stretch", column_config={
        "Name": st.column_config.TextColumn("Name", width=170),
        "Kind": st.column_config.TextColumn("Kind", width=210),
        "Unit": st.column_config.TextColumn("Unit", width=60),
        "Direction": st.column_config.TextColumn("Direction", width=120),
        "Used by": st.column_config.TextColumn("Used by", width=100),
        "Description": st.column_config.TextColumn("Description", width=260),
    })
    st.caption(f"{fmt.plural(len(shown), 'metric')} of {len(metrics)}.")
else:
    st.info("No metric matches." if metrics else "The catalogue is empty: add the first metric.")

if not can_write:
    st.caption("You have read-only access: ask an admin for the editor role to add or edit "
               "metrics.")
    st.stop()

# ---------------------------------------------------------------- create
with st.expander("New metric"), st.form("create_metric", clear_on_submit=False):
    c1, c2 = st.columns(2)
    name = c1.text_input("Name (lower_snake_case, e.g. checkout_conversion)", key="met_new_name")
    kind = c2.selectbox("Kind", METRIC_KINDS, index=None, format_func=kind_label,
                        placeholder="Choose how the metric is measured", key="met_new_kind")
    unit = c1.text_input("Unit (optional, e.g. EUR, ms)", key="met_new_unit")
    higher = c2.radio("Direction", [True, False], format_func=DIRECTION.get, horizontal=True,
                      key="met_new_direction")
    numerator = c1.text_input("Numerator column (ratio only, e.g. revenue)",
                              key="met_new_numerator")
    denominator = c2.text_input("Denominator column (ratio only, e.g. sessions)",
                                key="met_new_denominator")
    level = c1.number_input("Quantile level p (quantile only, e.g. 0.9 for p90)", 0.01, 0.99,
                            0.9, 0.01, key="met_new_quantile_p")
    st.caption("A ratio metric is the sum of its numerator column over an arm's units divided "
               "by the sum of its denominator column (revenue per session = revenue / "
               "sessions); a data file carries both columns under these names. A quantile "
               "metric compares the p-quantile of each user's value between the arms (p90 "
               "page load time); a user-level file carries the value under the metric's name.")
    description = st.text_area("Description: what is counted, for whom, over which window",
                               key="met_new_description")
    if st.form_submit_button("Add metric", type="primary"):
        if kind is None:
            st.error("Nothing was saved: choose the metric's kind.")
        elif call(lambda s: catalogue.create_metric(s, actor=actor, data={
                "name": name, "kind": kind, "unit": unit, "higher_is_better": higher,
                "description": description, "numerator": column(numerator),
                "denominator": column(denominator),
                "quantile_p": level if kind == "quantile" else None}),
                f"Metric '{name.strip()}' added"):
            st.session_state["met_open"] = name.strip()
            set_query(metric=name.strip())
            for key in [k for k in st.session_state if str(k).startswith("met_new_")]:
                del st.session_state[key]  # added: the next metric starts from an empty form
            st.rerun()

# ---------------------------------------------------------------- edit
if metrics:
    st.markdown("#### Edit a metric")
    names = [m.name for m in metrics]
    by_name = {m.name: m for m in metrics}
    chosen = url_selectbox("Metric", names, key="met_open", param="metric",
                           placeholder="Choose a metric")
    if chosen is None:  # the URL names no metric of the catalogue: say so, open no other
        st.warning(f"The catalogue has no metric named “{query_value('metric')}”: choose a "
                   "metric above.")
        st.stop()
    metric = by_name[chosen]
    ratio = metric.kind == "ratio" and metric.fact_source is None  # a file's columns
    st.caption(f"Kind: {definition(metric)} · used by "
               f"{fmt.plural(used.get(metric.name, 0), 'experiment')}. The name and kind are "
               "fixed: experiments and stored results refer to them."
               + (" The columns can change until data is stored for the metric." if ratio
                  else ""))
    with st.form(f"edit_metric_{metric.id}"):
        e1, e2 = st.columns(2)
        new_unit = e1.text_input("Unit", metric.unit)
        new_higher = e2.radio("Direction", [True, False], format_func=DIRECTION.get,
                              index=0 if metric.higher_is_better else 1, horizontal=True)
        columns: dict[str, str] = {}
        if ratio:  # a blank column is refused by the service, in words
            columns["numerator"] = e1.text_input("Numerator column", metric.numerator or "")
            columns["denominator"] = e2.text_input("Denominator column",
                                                   metric.denominator or "")
        new_description = st.text_area("Description", metric.description)
        if st.form_submit_button("Save metric", type="primary") and call(
            lambda s: catalogue.update_metric(s, name=metric.name, actor=actor, changes={
                "unit": new_unit, "higher_is_better": new_higher,
                "description": new_description, **columns}),
            f"Metric '{metric.name}' saved",
        ):
            st.rerun()
