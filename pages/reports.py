"""Reports: generate PDF reports, list and download past ones, export the portfolio."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import format as fmt
from core import registry, reports
from core.analysis import portfolio
from core.errors import DomainError
from ui.auth import current_actor
from ui.state import clear_reads, db_session, linked_experiment, linked_fresh, url_selectbox
from ui.widgets import run_action

actor = current_actor()
can_write = actor.can("editor")


@st.cache_data(ttl=30, show_spinner=False)
def load_experiments() -> dict[int, str]:
    with db_session() as session:
        return {e.id: f"{e.name} ({e.status})" for e in registry.all_experiments(session)}


@st.cache_data(ttl=30, show_spinner=False)
def load_reports(experiment_id: int) -> list[reports.ReportArtifactView]:
    with db_session() as session:
        return reports.list_reports(session, experiment_id=experiment_id)


@st.cache_data(ttl=60, show_spinner=False)
def load_portfolio_csv() -> str:
    with db_session() as session:
        return portfolio.portfolio_csv(session)


def load_pdf(report_id: int) -> reports.ReportDownload | None:
    with db_session() as session:
        try:
            return reports.download_report(session, report_id=report_id)
        except DomainError as exc:
            st.error(f"This report cannot be downloaded: {exc.message}")
            return None


st.title("Reports")
st.caption("One PDF per experiment: what happened, what to do, and what could be wrong with the "
           "evidence — written from the numbers, stored immutably.")

experiments = linked_fresh(load_experiments, lambda listed: listed)
if not experiments:
    st.info("No experiments yet: register one in the Registry first.")
    st.stop()
chosen = url_selectbox("Experiment", list(experiments), key="rep_experiment",
                       format_func=experiments.get, placeholder="Choose an experiment")

if chosen is None:  # the URL names no experiment: say so, show no other one's reports
    st.warning(str(linked_experiment()))
else:
    if can_write:
        if st.button("Generate report", type="primary", key="rep_generate"):
            with st.spinner("Writing the report…"), db_session() as session:
                created = run_action(
                    lambda: reports.generate_report(session, experiment_id=chosen, actor=actor),
                    "Report generated",
                )
            if created is not None:
                clear_reads()
                st.success(f"Report generated: {created.filename} "
                           f"({fmt.number(created.size_bytes / 1024, 3)} KB), stored as "
                           f"`{created.key}`.")
    else:
        st.caption("You have read-only access: editors generate reports; you can download them.")

    st.subheader("Past reports")
    past = load_reports(chosen)
    if not past:
        st.info("No report has been generated for this experiment yet.")
    else:
        st.dataframe(
            pd.DataFrame([
                {"Generated": fmt.timestamp(r.created_at), "By": r.created_by, "File": r.filename,
                 "Size": f"{fmt.number(r.size_bytes / 1024, 3)} KB",
                 "SHA-256": r.sha256[:16] + "…"}
                for r in past
            ]),
            hide_index=True, width="stretch",
        )
        labels = {r.id: f"{r.filename} — {fmt.timestamp(r.created_at)}, {r.created_by}"
                  for r in past}
        report_id = st.selectbox("Report to download", list(labels), format_func=labels.get,
                                 key="rep_report")
        download = load_pdf(report_id)
        if download is not None:
            st.download_button("Download PDF", download.content, download.report.filename,
                               "application/pdf", key="rep_download")

st.subheader("Portfolio export")
st.download_button("Export portfolio (CSV)", load_portfolio_csv(), "portfolio.csv", "text/csv",
                   key="rep_portfolio")
