"""The home page after login: the portfolio at a glance."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import registry
from core.analysis import portfolio
from ui.state import db_session


@st.cache_data(ttl=30, show_spinner=False)
def _load() -> tuple[dict[str, int], list[portfolio.Attention]]:
    with db_session() as session:
        return registry.status_counts(session), portfolio.needs_attention(session)


def render() -> None:
    st.title("ExperimentOS")
    st.caption("Every A/B test registered, planned, analysed, prioritised and reported.")
    counts, attention = _load()
    cols = st.columns(4)
    for col, status in zip(cols, ("proposed", "running", "completed", "abandoned"), strict=True):
        col.metric(status.capitalize(), counts.get(status, 0))
    st.subheader("Needs attention")
    if not attention:
        st.success("Nothing needs attention right now.")
    else:
        st.dataframe(
            pd.DataFrame(
                [{"Experiment": a.name, "Owner": a.owner, "Status": a.status, "Why": a.reason}
                 for a in attention]
            ),
            hide_index=True,
            width="stretch",
        )
