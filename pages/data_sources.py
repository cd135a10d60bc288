"""Data sources: the warehouse as the team described it once — connections (admins), assignment
and fact sources (editors), the metrics defined on them and the experiments using them. Editors
test a connection, preview and check a source's first rows, define a fact source and a metric
on it, and use warehouse metrics in an experiment; viewers read."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import catalogue, registry
from core import format as fmt
from core.errors import DomainError
from core.types import AGGREGATIONS
from core.warehouse import catalog, sources
from ui.auth import current_actor
from ui.messages import plain
from ui.state import clear_reads, db_session, experiment_link
from ui.widgets import empty_form, metric_formula, run_action, split_list

AGGREGATION_LABELS = {
    "any": "any — 1 if the user has a row (a conversion)",
    "sum": "sum — the column's total per user",
    "count": "count — rows per user",
    "mean": "mean — the column's average over rows",
    "ratio": "ratio — sum of the column / sum of another",
}
PREVIEW = "ds_preview"  # session key: (source, SourcePreview | list of problems)
SHOW_NEXT = "ds_source_next"  # session key: a source just defined, to look at next
FLASH = "ds_flash"  # session key: what the last change did, shown once after its rerun

actor = current_actor()
can_edit = actor.can("editor")
is_admin = actor.can("admin")


@st.cache_data(ttl=30, show_spinner=False)
def load_definitions() -> tuple[list[catalog.ConnectionView], list[catalog.AssignmentSourceView],
                                list[catalog.FactSourceView], dict[str, sources.SourceUsage],
                                list[catalogue.MetricView]]:
    with db_session() as session:
        return (catalog.list_connections(session), catalog.list_assignment_sources(session),
                catalog.list_fact_sources(session), sources.usage(session),
                [m for m in catalogue.list_metrics(session) if m.fact_source is not None])


@st.cache_data(ttl=30, show_spinner=False)
def load_open_experiments() -> list[registry.ExperimentView]:
    with db_session() as session:
        open_ = [e for e in registry.all_experiments(session)
                 if e.status in ("proposed", "running")]
    # those already fed from the warehouse first, then by name
    return sorted(open_, key=lambda e: (e.assignment_source is None, e.name.lower()))


def call(fn, success: str, where: str):  # type: ignore[no-untyped-def]
    """Run a service call; on success forget cached reads and keep ``success`` to show at
    ``where`` after the rerun (a toast can be lost in it)."""
    with db_session() as session:
        result = run_action(lambda: fn(session))
    if result is not None:
        clear_reads()
        st.session_state[FLASH] = (where, success)
    return result


def flash(where: str) -> None:
    """The message of the last change made at ``where``, once."""
    held = st.session_state.get(FLASH)
    if held is not None and held[0] == where:
        del st.session_state[FLASH]
        st.success(held[1], icon=":material/check:")


def names(items: Any) -> str:
    return ", ".join(items) or "—"


def days(value: int) -> int | None:
    """A number of days typed in a form; 0 means none."""
    return int(value) or None


connections, assignments, facts, usage, warehouse_metrics = load_definitions()

st.title("Data sources")
st.caption("Describe the warehouse once: a connection, the assignment source saying who saw which "
           "variant, fact sources of what users did, and metrics on them. ExperimentOS writes "
           "the SQL, runs it inside the warehouse and keeps only per-variant sums; the Results "
           "page shows the exact SQL that ran.")

# ---------------------------------------------------------------- connections
st.subheader("Connections")
if connections:
    st.dataframe(pd.DataFrame([
        {"Name": c.name, "URL": c.url, "Sources": names(c.sources),
         "App database": "allowed" if c.allow_app_database else "refused",
         "Changed": f"{fmt.timestamp(c.updated_at)} by {c.updated_by}"}
        for c in connections
    ]), hide_index=True, width="stretch", column_config={
        "Name": st.column_config.TextColumn(width=130),
        "URL": st.column_config.TextColumn(width=330),
        "Sources": st.column_config.TextColumn(width=190),
        "App database": st.column_config.TextColumn(width=100),
        "Changed": st.column_config.TextColumn(width=170),
    })
    st.caption("Credentials are never stored: a URL names environment variables as ${NAME}, "
               "read where ExperimentOS runs.")
else:
    st.info("No warehouse connection yet." + (" Add one below." if is_admin else
                                              " An admin adds one."))

if connections and can_edit:
    t1, t2 = st.columns([3, 1], vertical_alignment="bottom")
    tested = t1.selectbox("Connection", [c.name for c in connections], key="ds_test_name")
    if t2.button("Test connection", key="ds_test"):
        with st.spinner("Connecting…"), db_session() as session:
            try:
                answer = catalog.check_connection(session, name=tested, actor=actor)
            except DomainError as exc:
                st.error(f"**Connection '{tested}' does not work.** "
                         + " ".join(plain(p) for p in exc.problems))
            else:
                st.success(answer)

flash("connections")
if is_admin:
    with st.expander("New connection (admin)"), st.form("ds_new_connection"):
        c_name = st.text_input("Name (lower_snake_case, e.g. analytics)", key="ds_conn_name")
        c_url = st.text_input("URL, credentials as ${ENV_VAR}: duckdb:///path/file.duckdb, "
                              "postgresql://reader:${PGPASSWORD}@host:5432/db, "
                              "spark://local[2], …", key="ds_conn_url")
        c_app = st.checkbox("Allow it to be the app's own database (its tables become a "
                            "source)", key="ds_conn_app")
        if st.form_submit_button("Add connection", type="primary") and call(
                lambda s: catalog.create_connection(s, actor=actor, data={
                    "name": c_name, "url": c_url, "allow_app_database": c_app}),
                f"Connection '{c_name.strip()}' added.", "connections"):
            empty_form("ds_conn_name", "ds_conn_url", "ds_conn_app")
            st.rerun()
    if connections:
        with st.expander("Change a connection's URL (admin)"), st.form("ds_edit_connection"):
            e_name = st.selectbox("Connection", [c.name for c in connections],
                                  key="ds_conn_edit_name")
            e_url = st.text_input("New URL", key="ds_conn_edit_url")
            if st.form_submit_button("Save URL") and call(
                    lambda s: catalog.update_connection(s, name=e_name, actor=actor,
                                                        changes={"url": e_url}),
                    f"Connection '{e_name}' saved.", "connections"):
                empty_form("ds_conn_edit_url")
                st.rerun()

# ---------------------------------------------------------------- sources
st.subheader("Sources")
if assignments or facts:
    rows = [{"Name": a.name, "Kind": "assignment", "Connection": a.connection,
             "Metrics": "—", "Experiments": names(usage[a.name].experiments)}
            for a in assignments]
    rows += [{"Name": f.name, "Kind": "fact", "Connection": f.connection,
              "Metrics": names(usage[f.name].metrics),
              "Experiments": names(usage[f.name].experiments)}
             for f in facts]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "Name": st.column_config.TextColumn(width=100),
        "Kind": st.column_config.TextColumn(width=90),
        "Connection": st.column_config.TextColumn(width=140),
        "Metrics": st.column_config.TextColumn(width=280),
        "Experiments": st.column_config.TextColumn(width=320),
    })
else:
    st.info("No source yet." + (" Define one below." if can_edit else ""))

by_source: dict[str, Any] = {a.name: a for a in assignments} | {f.name: f for f in facts}
if st.session_state.get(SHOW_NEXT) in by_source:
    st.session_state["ds_source"] = st.session_state.pop(SHOW_NEXT)
if by_source:
    shown = st.selectbox("Look at a source", list(by_source), key="ds_source")
    source = by_source[shown]
    used = usage[shown]
    if used.role == "assignment":
        kind, returns = "Assignment source", ["unit_id", "timestamp", "experiment_key",
                                              "variant", *source.dimensions,
                                              *source.covariates]
    else:
        kind, returns = "Fact source", ["unit_id", "timestamp", *source.columns]
    adjusted = (f"  \nCovariates (every mean, proportion and ratio metric is regression-"
                f"adjusted on them; a quantile metric never): {names(source.covariates)}"
                if used.role == "assignment"
                and source.covariates else "")
    st.markdown(f"**{kind} `{shown}`** on connection `{source.connection}`, returning "
                f"{names(returns)}  \nMetrics: {names(used.metrics)} · experiments: "
                f"{names(used.experiments)}{adjusted}")
    st.code(source.sql, language="sql")
    if not can_edit:
        st.caption("Editors preview a source's rows and test connections.")
    elif st.button(f"Preview {catalog.PREVIEW_ROWS} rows and check the columns",
                   key="ds_preview_button"):
        with st.spinner("Running the source's SQL in the warehouse…"), db_session() as session:
            try:
                st.session_state[PREVIEW] = (shown, catalog.preview_source(
                    session, name=shown, actor=actor))
            except DomainError as exc:
                st.session_state[PREVIEW] = (shown, [plain(p) for p in exc.problems])
    held = st.session_state.get(PREVIEW)
    if held is not None and held[0] == shown:
        result = held[1]
        if isinstance(result, list):
            st.error(f"**The preview of '{shown}' failed.**\n"
                     + "\n".join(f"- {p}" for p in result))
        else:
            if result.problems:
                st.warning("**A refresh would refuse this source:**\n"
                           + "\n".join(f"- {p}" for p in result.problems))
            else:
                st.success(f"The columns of '{shown}' are as declared "
                           f"({fmt.plural(len(result.rows), 'row')} in "
                           f"{fmt.number(result.seconds, 2)} s).")
            st.dataframe(pd.DataFrame(result.rows, columns=list(result.columns)),
                         hide_index=True, width="stretch", key="ds_preview_rows")
            st.caption("Types: " + ", ".join(f"{c} {t}" for c, t in result.columns.items()))
            with st.expander("The SQL that ran"):
                st.code(result.sql, language="sql")

if warehouse_metrics:
    st.subheader("Metrics on fact sources")
    st.dataframe(pd.DataFrame([
        {"Metric": m.name, "Fact source": m.fact_source,
         "Per user": metric_formula(m),
         "Window": (f"{fmt.plural(m.window_days, 'day')} after first exposure"
                    if m.window_days else "to the analysis day"),
         "CUPED": (f"{fmt.plural(m.cuped_days, 'day')} before" if m.cuped_days else "—"),
         "Kind": m.kind if m.quantile_p is None else f"quantile (p = {m.quantile_p:g})"}
        for m in warehouse_metrics
    ]), hide_index=True, width="stretch")

if not can_edit:
    st.caption("You have read-only access: ask an admin for the editor role to define sources "
               "and metrics.")
    st.stop()

# ---------------------------------------------------------------- define (editors)
st.subheader("Define")
flash("define")
connection_names = [c.name for c in connections]
with st.expander("New fact source"):
    if not connection_names:
        st.info("Add a connection first (an admin does).")
    else:
        with st.form("ds_new_fact"):
            f1, f2 = st.columns(2)
            f_name = f1.text_input("Name (lower_snake_case, e.g. refunds)", key="ds_fact_name")
            f_conn = f2.selectbox("Connection", connection_names, key="ds_fact_connection")
            f_sql = st.text_area("SQL in the warehouse's dialect, returning unit_id, timestamp "
                                 "and numeric columns", key="ds_fact_sql", height=120)
            f_cols = st.text_input("Numeric columns, comma-separated (e.g. amount, items)",
                                   key="ds_fact_columns")
            if st.form_submit_button("Add fact source", type="primary") and call(
                    lambda s: catalog.create_fact_source(s, actor=actor, data={
                        "name": f_name, "connection": f_conn, "sql": f_sql,
                        "columns": split_list(f_cols)}),
                    f"Fact source '{f_name.strip()}' added: look at it above.", "define"):
                st.session_state[SHOW_NEXT] = f_name.strip()
                empty_form("ds_fact_name", "ds_fact_sql", "ds_fact_columns")
                st.rerun()

with st.expander("New assignment source"):
    if not connection_names:
        st.info("Add a connection first (an admin does).")
    else:
        with st.form("ds_new_assignment"):
            a1, a2 = st.columns(2)
            a_name = a1.text_input("Name (lower_snake_case)", key="ds_assign_name")
            a_conn = a2.selectbox("Connection", connection_names, key="ds_assign_connection")
            a_sql = st.text_area("SQL returning unit_id, timestamp, experiment_key, variant "
                                 "(and the dimension columns)", key="ds_assign_sql",
                                 height=120)
            a_dims = st.text_input("Dimension columns, comma-separated (optional, e.g. "
                                   "platform, country)", key="ds_assign_dimensions")
            a_covs = st.text_input("Covariate columns: numeric unit attributes to "
                                   "regression-adjust every metric on, comma-separated "
                                   "(optional, e.g. tenure_days)", key="ds_assign_covariates",
                                   help=catalog.COVARIATES_HELP)
            if st.form_submit_button("Add assignment source") and call(
                    lambda s: catalog.create_assignment_source(s, actor=actor, data={
                        "name": a_name, "connection": a_conn, "sql": a_sql,
                        "dimensions": split_list(a_dims), "covariates": split_list(a_covs)}),
                    f"Assignment source '{a_name.strip()}' added: look at it above.", "define"):
                st.session_state[SHOW_NEXT] = a_name.strip()
                empty_form("ds_assign_name", "ds_assign_sql", "ds_assign_dimensions",
                           "ds_assign_covariates")
                st.rerun()

with st.expander("New metric on a fact source"):
    if not facts:
        st.info("Define a fact source first.")
    else:
        fact_by_name = {f.name: f for f in facts}
        m_fact = st.selectbox("Fact source", list(fact_by_name), key="ds_metric_fact")
        columns = list(fact_by_name[m_fact].columns)
        with st.form("ds_new_metric"):
            m1, m2 = st.columns(2)
            m_name = m1.text_input("Name (lower_snake_case, e.g. refund_rate_14d)",
                                   key="ds_metric_name")
            m_agg = m2.selectbox("Per user", AGGREGATIONS, index=None,
                                 format_func=AGGREGATION_LABELS.get,
                                 placeholder="Choose how the facts add up per user",
                                 key="ds_metric_aggregation")
            m_value = m1.selectbox("Column (sum, mean, ratio; optional for any and count)",
                                   columns, index=None, key="ds_metric_value")
            m_den = m2.selectbox("Denominator column (ratio only)", columns, index=None,
                                 key="ds_metric_denominator")
            m_window = m1.number_input("Window: days after first exposure (0 = up to the "
                                       "analysis day)", min_value=0, max_value=365, value=7,
                                       key="ds_metric_window")
            m_cuped = m2.number_input("CUPED: days before first exposure (0 = no CUPED; mean "
                                      "and ratio: the column's sum)", min_value=0,
                                      max_value=365, value=0,
                                      key="ds_metric_cuped")
            m_quantile = m1.number_input(
                "Quantile metric: the level p of the per-user value's quantile (0 = not one; "
                "0.9 = p90; sum and count)", min_value=0.0, max_value=0.999, value=0.0,
                step=0.05, format="%.3f", key="ds_metric_quantile")
            m_unit = m2.text_input("Unit (optional, e.g. USD, %)", key="ds_metric_unit")
            m_higher = m2.radio("Direction", [True, False], horizontal=True,
                                format_func=lambda h: "Higher is better" if h else
                                "Lower is better", key="ds_metric_direction")
            m_description = st.text_area("Description", key="ds_metric_description")
            if st.form_submit_button("Add metric", type="primary"):
                if m_agg is None:
                    st.error("Nothing was saved: choose how the facts add up per user.")
                elif call(lambda s: catalogue.create_metric(s, actor=actor, data={
                        "name": m_name, "fact_source": m_fact, "aggregation": m_agg,
                        "value_column": m_value, "denominator_column": m_den,
                        "window_days": days(m_window), "cuped_days": days(m_cuped),
                        "quantile_p": m_quantile or None, "unit": m_unit,
                        "higher_is_better": m_higher,
                        "description": m_description}),
                        f"Metric '{m_name.strip()}' added: use it in an experiment "
                        "below.", "define"):
                    st.session_state["ds_use_metrics"] = [m_name.strip()]
                    empty_form("ds_metric_name", "ds_metric_aggregation", "ds_metric_value",
                               "ds_metric_denominator", "ds_metric_window", "ds_metric_cuped",
                               "ds_metric_quantile", "ds_metric_unit", "ds_metric_direction",
                               "ds_metric_description")
                    st.rerun()

# ---------------------------------------------------------------- use in an experiment
st.subheader("Use in an experiment")
experiments = load_open_experiments()
if not warehouse_metrics or not experiments:
    st.info("Define a metric on a fact source, and have a proposed or running experiment.")
    st.stop()
by_id = {e.id: e for e in experiments}
u_exp = st.selectbox("Experiment", list(by_id), key="ds_use_experiment",
                     format_func=lambda i: f"{by_id[i].name} ({by_id[i].status})")
exp = by_id[u_exp]
its_metrics = [m for m in (exp.primary_metric, *exp.guardrail_metrics, *exp.secondary_metrics)
               if m]
if exp.assignment_source:
    st.caption(f"'{exp.name}' reads its exposures from `{exp.assignment_source}` under the key "
               f"`{exp.experiment_key}`; its metrics: {names(its_metrics)}.")
else:
    st.caption(f"'{exp.name}' reads no exposures from the warehouse yet: choose its assignment "
               "source and key.")
with st.form(f"ds_use_{exp.id}"):
    u_metrics = st.multiselect("Warehouse metrics to add (as secondary metrics)",
                               [m.name for m in warehouse_metrics], key="ds_use_metrics")
    u1, u2 = st.columns(2)
    change = u1.selectbox("Assignment source",
                          ["(unchanged)", *(a.name for a in assignments)]
                          if exp.assignment_source else [a.name for a in assignments],
                          key=f"ds_use_assignment_{exp.id}")
    u_key = u2.text_input("Its experiment key there", exp.experiment_key or "",
                          key=f"ds_use_key_{exp.id}")
    u_reason = st.text_input("Reason (needed to change the assignment of a launched "
                             "experiment: a plan deviation)", key=f"ds_use_reason_{exp.id}")
    if st.form_submit_button("Use in the experiment", type="primary"):
        keep = change == "(unchanged)" or (change == exp.assignment_source
                                            and u_key.strip() == exp.experiment_key)
        if call(lambda s: sources.use_in_experiment(
                s, experiment_id=exp.id, metrics=u_metrics, expected_version=exp.version,
                actor=actor, assignment_source=None if keep else change,
                experiment_key=None if keep else u_key.strip(),
                reason=u_reason or None),
                f"'{exp.name}' uses its warehouse metrics: refresh it on the Results page.",
                "use"):
            st.session_state["ds_used"] = exp.id
            del st.session_state["ds_use_metrics"]  # used: the next choice starts empty
            st.rerun()
flash("use")
if st.session_state.get("ds_used") == exp.id:
    experiment_link("results", exp.id, f"Open the results of '{exp.name}'",
                    icon=":material/monitoring:")
