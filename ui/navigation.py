"""The app's pages and who may open them (role-aware navigation)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.auth import Actor
from core.types import Role


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    min_role: Role = "viewer"


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/registry.py", "Registry", ":material/science:"),
    PageSpec("pages/metrics.py", "Metrics", ":material/straighten:"),
    PageSpec("pages/data_sources.py", "Data sources", ":material/database:"),
    PageSpec("pages/backlog.py", "Backlog", ":material/format_list_numbered:"),
    PageSpec("pages/planner.py", "Planner", ":material/calculate:"),
    PageSpec("pages/results.py", "Results", ":material/monitoring:"),
    PageSpec("pages/reports.py", "Reports", ":material/picture_as_pdf:"),
)


def build(actor: Actor | None, overview: st.Page) -> list[st.Page]:  # type: ignore[valid-type]
    """The pages `actor` may open; every page for None (signed out: registered, hidden)."""
    pages = [overview]
    for spec in PAGES:
        if actor is None or actor.can(spec.min_role):
            pages.append(st.Page(spec.path, title=spec.title, icon=spec.icon))
    return pages
