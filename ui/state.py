"""Cached database access for pages, and the URL's query parameters (deep links).

Deep links: every page has its own path (``/results``), and the open experiment lives in the
URL as ``?experiment=<id>``. A page keeps its picker and the URL in step with
:func:`url_selectbox` (or :func:`query_int` / :func:`set_query` by hand), and links to another
page's view of an experiment with :func:`experiment_link` (a button) or :func:`experiment_url`
(a relative URL, e.g. for a dataframe ``LinkColumn``).

What a page shows is what its writes act on (issue 23):

* the object lives in one place, the URL: :func:`url_selectbox` never swaps in another option
  for one the URL names but the page cannot show (gone, filtered out, not a number); it shows no
  choice and the page says why (:func:`linked_experiment` puts it in words);
* every write carries the id and version the user saw: :func:`as_shown` (buttons: the version
  the previous run drew) and :func:`form_object` (a form: the version it was first drawn from,
  for as long as it stays on screen), so the service refuses a write based on a version that is
  no longer stored (:class:`core.errors.Conflict`) instead of silently acting on another one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core import registry
from core.config import get_settings
from core.errors import NotFound
from core.registry import ExperimentView
from db.migrate import SchemaNotCurrent, schema_problem
from db.session import make_engine, session_factory

EXPERIMENT_PARAM = "experiment"
"""The query parameter naming the open experiment on every page that shows one."""
_Listed = TypeVar("_Listed", covariant=True)


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


def query_value(name: str = EXPERIMENT_PARAM) -> str | None:
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


class CachedRead(Protocol[_Listed]):
    """A function cached by ``st.cache_data``: called for its value, or cleared."""

    def __call__(self) -> _Listed: ...

    def clear(self) -> None: ...


def linked_fresh(load: CachedRead[_Listed], ids: Callable[[_Listed], Any]) -> _Listed:
    """``load()``, read again (its cache cleared) when the URL's experiment is not among
    ``ids(load())``: a link to an experiment created or launched since the list was cached,
    by someone else or in another process, opens it instead of naming none."""
    listed = load()
    linked = query_int()
    if linked is not None and linked not in set(ids(listed)):
        load.clear()
        listed = load()
    return listed


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
    """A selectbox whose choice lives in the URL as ``?<param>=<option>``; the chosen option, or
    None when the URL names none of the options.

    The URL wins over the remembered choice (a deep link, a reload, a link from another page);
    choosing another option rewrites the URL at once. Without the parameter the remembered
    choice (else the first option) opens and the URL is left as it is: each write of the query
    string adds a browser history entry (Streamlit's ``pushState``), so a page that wrote its
    default on arrival took two presses of Back to leave (issue 23).
    A value the options do not hold (an id that is gone, archived, filtered out, or not a
    number), and an option opened by default that is no longer among them, is never replaced
    by another option: the picker shows no choice, the URL keeps what
    it asked for, and the caller says why (e.g. with :func:`linked_experiment`) and shows
    nothing it could act on. Options are compared as strings, so ids work.
    """
    by_text = {str(o): o for o in options}
    wanted = query_value(param)
    if wanted is not None:  # always: a widget skipped by an earlier run (st.stop) lost its state
        st.session_state[key] = by_text.get(wanted)
    elif (gone := st.session_state.get(key)) is not None and gone not in options:
        # the option open by default went (archived, launched out of the filter): no other one
        # opens, and the URL names it now, so the page can say what became of it
        st.session_state[key] = None
        set_query(**{param: gone})
    elif gone is None:  # nothing open yet: the first option
        st.session_state[key] = options[0] if options else None

    def _to_url() -> None:
        chosen = st.session_state.get(key)
        if chosen is not None:  # cleared: the URL keeps its choice, which the next run shows
            set_query(**{param: chosen})

    chosen = (container or st).selectbox(
        label, list(options), index=None, format_func=format_func, key=key,
        on_change=_to_url, **kwargs
    )
    return chosen


def forget_choice(key: str, param: str = EXPERIMENT_PARAM) -> None:
    """A filter's ``on_change``: the user asked for another list, so its first item opens
    (the picker `key` and the URL's `param` forget the open one)."""
    st.session_state.pop(key, None)
    set_query(**{param: None})


@st.cache_data(ttl=30, show_spinner=False)
def experiment_or_none(experiment_id: int) -> ExperimentView | None:
    """The experiment with this id, or None if there is none."""
    with db_session() as session:
        try:
            return registry.get_experiment(session, experiment_id=experiment_id)
        except NotFound:
            return None


def linked_experiment(param: str = EXPERIMENT_PARAM, noun: str = "experiment"
                      ) -> ExperimentView | str:
    """The experiment the URL names, or in words why it names none: "There is no experiment
    #999999." or "“abc” is not an experiment number." (for a page that cannot show it; `noun`
    names what the page opens, e.g. "idea")."""
    raw = query_value(param) or ""
    number = query_int(param)
    a_noun = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
    if number is None or number < 1:
        return f"“{raw}” is not {a_noun} number: choose {a_noun} above."
    found = experiment_or_none(number)
    return found if found is not None else f"There is no {noun} #{number}: choose {a_noun} above."


# ---------------------------------------------------------------- the version a write carries


class Versioned(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Versioned)
_SHOWN = "shown:"


def as_shown(slot: str, current: V) -> V:
    """`current` as the previous run drew it in `slot` (a set of buttons): a click acts on the
    version the user saw, so the service refuses it (Conflict) if someone changed the object
    since. Another object, or none drawn before, is `current`; `current` is kept for the next
    run."""
    before = st.session_state.get(_SHOWN + slot)
    st.session_state[_SHOWN + slot] = current
    return before if before is not None and before.id == current.id else current


def submit_key(form: str) -> str:
    """The key of the submit button of a form whose object :func:`form_object` holds."""
    return f"{form}_submit"


def form_object(form: str, current: V) -> V:
    """The object the form `form` edits, as it was when the form was first drawn: while the
    form stays on screen (its submit button, keyed :func:`submit_key`, was drawn by the
    previous run) it keeps that version, so its fields, the user's input in them and the
    version its save carries all stay put, and a save after someone else's change is refused
    (Conflict) with the input still there. Another object, a form not drawn last run, or
    :func:`reload_form`, takes `current`."""
    held = st.session_state.get(_SHOWN + form)
    if held is None or held.id != current.id or submit_key(form) not in st.session_state:
        st.session_state[_SHOWN + form] = held = current
    return held  # type: ignore[no-any-return]


def reload_form(form: str) -> None:
    """Let the form `form` take the object's current version on the next run (after a save,
    or when the user drops their edits to load someone else's change)."""
    st.session_state.pop(_SHOWN + form, None)


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
