"""Cached database access for pages, and the URL's query parameters (deep links).

Deep links: every page has its own path (``/results``), and the open experiment lives in the
URL as ``?experiment=<id>``. A page keeps its picker and the URL in step with
:func:`url_selectbox` (or :func:`query_int` / :func:`set_query` by hand), and links to another
page's view of an experiment with :func:`experiment_link` (a button) or :func:`experiment_url`
(a relative URL, e.g. for a dataframe ``LinkColumn``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.config import get_settings
from db.migrate import SchemaNotCurrent, schema_problem
from db.session import make_engine, session_factory

EXPERIMENT_PARAM = "experiment"
"""The query parameter naming the open experiment on every page that shows one."""


@st.cache_resource(show_spinner=False)
def engine() -> Engine:
    """The app's engine, once its database is at the latest migration (the app never migrates:
    ``python -m core.cli migrate`` does). Raises :class:`SchemaNotCurrent` otherwise, and is
    not cached then, so the next run checks again."""
    created = make_engine(get_settings().database_url)
    problem = schema_problem(created)
    if problem is not None:
        created.dispose()
        raise SchemaNotCurrent(problem)
    return created


def require_current_schema(pages: list[st.Page]) -> None:  # type: ignore[valid-type]
    """Stop the script with the command to run when the database is not at the latest
    migration (Home.py calls this before the login); `pages` are registered hidden, so no page
    is offered and a deep link shows the message, not "page not found"."""
    try:
        engine()
    except SchemaNotCurrent as exc:
        st.navigation(pages, position="hidden")
        st.error(f"**ExperimentOS cannot start.** {exc}", icon=":material/database:")
        st.stop()


@contextmanager
def db_session() -> Iterator[Session]:
    with session_factory(engine())() as session:
        yield session


def clear_reads() -> None:
    """Forget cached reads after a write so every page shows the new state."""
    st.cache_data.clear()


# ---------------------------------------------------------------- query parameters


def query_value(name: str) -> str | None:
    """The URL's value for `name` (the last one if repeated), or None."""
    value = st.query_params.get(name)
    return value if value else None


def query_int(name: str = EXPERIMENT_PARAM) -> int | None:
    """The URL's value for `name` as an int (an experiment id); None if absent or not a number."""
    value = query_value(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def set_query(**values: int | str | None) -> None:
    """Write these parameters into the URL (None removes one); others stay. No rerun."""
    for name, value in values.items():
        current = st.query_params.get(name)
        if value is None:
            if current is not None:
                del st.query_params[name]
        elif current != str(value):
            st.query_params[name] = str(value)


def url_selectbox(
    label: str,
    options: Sequence[Any],
    *,
    key: str,
    param: str = EXPERIMENT_PARAM,
    format_func: Callable[[Any], str] = str,
    container: Any = None,
    **kwargs: Any,
) -> Any:
    """A selectbox whose choice lives in the URL as ``?<param>=<option>``.

    A valid value in the URL (a deep link, a reload) wins over the remembered choice; choosing
    another option rewrites the URL at once; the shown choice is always written back, so a
    reload keeps the user where they were. Options are compared as strings, so ids work.
    """
    by_text = {str(o): o for o in options}
    wanted = query_value(param)
    if wanted in by_text:  # always: a widget skipped by an earlier run (st.stop) lost its state
        st.session_state[key] = by_text[wanted]
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]  # an option that is gone (filtered out, deleted)

    def _to_url() -> None:
        set_query(**{param: st.session_state.get(key)})

    chosen = (container or st).selectbox(
        label, list(options), format_func=format_func, key=key, on_change=_to_url, **kwargs
    )
    set_query(**{param: chosen})
    return chosen


def page_path(page: str) -> str:
    """The source file of a page by its short name: ``"results"`` → ``pages/results.py``."""
    return f"pages/{page}.py"


def experiment_url(page: str, experiment_id: int) -> str:
    """A relative URL opening `page` on one experiment, e.g. ``./results?experiment=3``."""
    return f"./{page}?{EXPERIMENT_PARAM}={experiment_id}"


def experiment_link(page: str, experiment_id: int, label: str, container: Any = None,
                    **kwargs: Any) -> None:
    """A link button to `page` (short name, e.g. ``"reports"``) open on one experiment."""
    (container or st).page_link(page_path(page), label=label,
                                query_params={EXPERIMENT_PARAM: str(experiment_id)}, **kwargs)
