"""The home page after login: where every experiment stands (its verdict, first), the portfolio
counts, and what needs someone's attention. Each experiment links to its Results."""

from __future__ import annotations

import streamlit as st

from core import registry
from core.analysis import portfolio
from ui.state import EXPERIMENT_PARAM, db_session, page_path

VERDICT_BADGES = {"ship": "green", "dont_ship": "red", "investigate": "orange",
                  "keep_running": "gray", "none": "gray"}
"""Green = ship (good), red = don't ship (bad), orange = investigate, grey = not decided yet."""


@st.cache_data(ttl=30, show_spinner=False)
def _load() -> tuple[list[portfolio.Standing], dict[str, int], list[portfolio.Attention]]:
    with db_session() as session:
        return (portfolio.standings(session), registry.status_counts(session),
                portfolio.needs_attention(session))


def render() -> None:
    st.title("ExperimentOS")
    st.caption("Every A/B test registered, planned, analysed, prioritised and reported.")
    standings, counts, attention = _load()

    st.subheader("Verdicts")
    if not standings:
        st.info("No running or completed experiment yet: launch one on the Registry page.")
    for s in standings:
        left, right = st.columns([1, 3], vertical_alignment="center")
        left.page_link(page_path("results"), label=s.name, icon=":material/monitoring:",
                       query_params={EXPERIMENT_PARAM: str(s.experiment_id)})
        badge = VERDICT_BADGES.get(s.verdict.recommendation, "gray")
        right.markdown(f":{badge}-badge[{s.verdict.label}] · {s.status} · {s.owner}  \n"
                       f"{s.verdict.reason}")

    cols = st.columns(4)
    for col, status in zip(cols, ("proposed", "running", "completed", "abandoned"), strict=True):
        col.metric(status.capitalize(), counts.get(status, 0))
    st.subheader("Needs attention")
    if not attention:
        st.success("Nothing needs attention right now.")
    else:
        st.markdown("\n".join(f"- **{a.name}** ({a.status}, {a.owner}): {a.reason}"
                              for a in attention))
