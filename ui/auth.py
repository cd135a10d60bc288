"""Login glue around streamlit-authenticator: the gate, the current actor, logout.

streamlit-authenticator keeps its own ``st.session_state`` keys (``logout``, ``name``,
``username``, ``authentication_status`` …), so no widget of ours may use one of them as its key.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any
from urllib.parse import urlsplit

import streamlit as st
import streamlit_authenticator as stauth

from core.auth import Actor
from core.config import get_settings
from core.users import DEMO_USERS, load_credentials, role_of

SIGN_OUT_BUTTON = "eos_sign_out"
_SIGNING_OUT = "_eos_signing_out"
_SIGNED_OUT = "_eos_signed_out"
_WANTED_PAGE = "_eos_wanted_page"
_LANDED = "_eos_landed"
_LANDING_SECONDS = 15.0
"""How long after a visit's first run a rerun that lost its page is sent back to it."""
_AUTHENTICATOR_KEYS = {"_authenticator", "logout", "name", "username", "authentication_status",
                       "email", "roles"}
"""Session keys that survive a log out: the library's own (``logout`` stays True so the cookie
the browser sent when this session opened is not used again)."""


@st.cache_resource(show_spinner=False)
def _credentials() -> dict[str, Any]:
    return load_credentials(get_settings())


def _authenticator() -> stauth.Authenticate:
    settings = get_settings()
    if "_authenticator" not in st.session_state:
        st.session_state["_authenticator"] = stauth.Authenticate(
            copy.deepcopy(_credentials()),
            settings.auth_cookie_name,
            settings.auth_cookie_secret,
            settings.auth_cookie_expiry_days,
            auto_hash=False,
            login_sleep_time=0.1,
        )
    return st.session_state["_authenticator"]


def _request_sign_out() -> None:
    st.session_state[_SIGNING_OUT] = True


def _sign_out(authenticator: stauth.Authenticate) -> None:
    """End the session: forget the user and every page's state, delete the login cookie."""
    cookies = authenticator.cookie_controller.cookie_model.cookie_manager.cookies
    cookies.setdefault(get_settings().auth_cookie_name, "")  # else the library prints a KeyError
    authenticator.logout(location="unrendered")  # draws the component that deletes the cookie
    for key in list(st.session_state):
        if key not in _AUTHENTICATOR_KEYS:
            del st.session_state[key]
    st.session_state[_SIGNED_OUT] = True


def require_login(pages: list[Any] | None = None) -> Actor:
    """Show the login form until a user is authenticated; return the signed-in actor.

    `pages` (the app's ``st.Page`` objects) stay registered but hidden while signed out, so
    the sidebar shows no navigation and the URL's page (a deep link) opens after login.
    """
    settings = get_settings()
    try:
        authenticator = _authenticator()
    except RuntimeError as exc:  # unsafe configuration outside demo mode
        st.error(f"ExperimentOS cannot start: {exc}")
        st.stop()
    if st.session_state.pop(_SIGNING_OUT, False) and st.session_state.get("authentication_status"):
        _sign_out(authenticator)
    if not st.session_state.get("authentication_status"):
        authenticator.login(location="unrendered")  # a valid cookie signs in, drawing nothing
    if not st.session_state.get("authentication_status"):
        if pages:  # remember the page the URL asked for (see resume_deep_link)
            wanted = st.navigation(pages, position="hidden")
            st.session_state[_WANTED_PAGE] = (wanted.url_path, st.query_params.to_dict(),
                                              math.inf)
        st.title("ExperimentOS")
        if st.session_state.get(_SIGNED_OUT):
            st.success("You are signed out.")
        st.caption("Every A/B test registered, planned, analysed, prioritised and reported.")
        authenticator.login(location="main", key="login")
        if st.session_state.get("authentication_status") is False:
            st.error("Username or password is incorrect.")
        if settings.demo_mode:
            accounts = ", ".join(f"`{u}` / `{d['password']}`" for u, d in DEMO_USERS.items())
            st.info(f"**Demo mode — demo-only accounts** (never use them in production): "
                    f"{accounts}.")
        if not st.session_state.get("authentication_status"):
            st.stop()
    st.session_state.pop(_SIGNED_OUT, None)
    username = st.session_state.get("username")
    role = role_of(_credentials(), username) or "viewer"
    name = st.session_state.get("name") or username or "unknown"
    with st.sidebar:
        st.markdown(f"Signed in as **{name}** · `{role}`")
        st.button("Log out", key=SIGN_OUT_BUTTON, on_click=_request_sign_out)
    return Actor(name=str(username), role=role)


def resume_deep_link(current: Any, pages: list[Any]) -> None:
    """Keep a deep link (``/registry?experiment=3``) when a rerun loses its page.

    A visit's first run, the rerun the cookie component answers with and the sign-in from the
    login form can reach Streamlit without their page, and so open the Overview.
    A first run on the Overview follows the page the browser's URL names; otherwise the page
    asked for is remembered — by every signed-out run, and by a session's first signed-in run
    for the next run only (within ``_LANDING_SECONDS``) — and a run that lands on the Overview
    instead switches to it once. The URL's parameters are kept.
    """
    if _LANDED not in st.session_state and current.url_path == pages[0].url_path:
        # the first signed-in run itself may have lost its page: the browser's URL still names it
        opened = _browser_page_path()
        for page in pages[1:]:
            if page.url_path == opened:
                st.switch_page(page, query_params=st.query_params.to_dict())
    wanted = st.session_state.pop(_WANTED_PAGE, None)
    if _LANDED not in st.session_state:  # this session's first signed-in run
        st.session_state[_LANDED] = True
        st.session_state[_WANTED_PAGE] = (current.url_path, st.query_params.to_dict(),
                                          time.monotonic() + _LANDING_SECONDS)
    if not wanted:
        return
    path, params, until = wanted
    if path == current.url_path or current.url_path != pages[0].url_path:
        return  # on the page asked for, or on another page the user chose
    if time.monotonic() > until:
        return
    for page in pages:
        if page.url_path == path:
            st.switch_page(page, query_params=st.query_params.to_dict() or params)


def _browser_page_path() -> str:
    """The last path segment of the URL the browser sent with this run ("" if none).

    ``st.context.url`` cannot tell it (it swaps in the page being run), so this reads the
    browser-supplied field under it (Streamlit 1.67, pinned in requirements.txt).
    """
    from streamlit.runtime.context import _context_info_field

    url = _context_info_field("url")
    return urlsplit(url).path.rstrip("/").rpartition("/")[2] if url else ""


def current_actor() -> Actor:
    """The signed-in actor (pages run after Home.py's gate, so one always exists)."""
    actor = st.session_state.get("actor")
    if not isinstance(actor, Actor) and _run_without_the_gate():
        st.rerun()  # now through Home.py, on the same URL (a deep link stays a deep link)
    if not isinstance(actor, Actor):
        st.error("Please sign in from the home page.")
        st.stop()
    return actor


def _run_without_the_gate() -> bool:
    """True (once per process) when Streamlit ran a page file directly instead of Home.py.

    Until the first ``st.navigation`` call of a process, Streamlit treats ``pages/`` as a legacy
    multipage folder and may run a page file without the login gate; switching that mode off
    makes the rerun go through Home.py's navigation, on the same URL.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        return True
    return False
