"""Login glue around streamlit-authenticator: the gate, the current actor, logout."""

from __future__ import annotations

import copy
from typing import Any

import streamlit as st
import streamlit_authenticator as stauth

from core.auth import Actor
from core.config import get_settings
from core.users import DEMO_USERS, load_credentials, role_of


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


def require_login() -> Actor:
    """Show the login form until a user is authenticated; return the signed-in actor."""
    settings = get_settings()
    try:
        authenticator = _authenticator()
    except RuntimeError as exc:  # unsafe configuration outside demo mode
        st.error(f"ExperimentOS cannot start: {exc}")
        st.stop()
    if not st.session_state.get("authentication_status"):
        st.title("ExperimentOS")
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
    username = st.session_state.get("username")
    role = role_of(_credentials(), username) or "viewer"
    name = st.session_state.get("name") or username or "unknown"
    with st.sidebar:
        st.markdown(f"Signed in as **{name}** · `{role}`")
        authenticator.logout("Log out", location="sidebar", key="logout")
    return Actor(name=str(username), role=role)


def current_actor() -> Actor:
    """The signed-in actor (pages run after Home.py's gate, so one always exists)."""
    actor = st.session_state.get("actor")
    if not isinstance(actor, Actor):
        st.error("Please sign in from the home page.")
        st.stop()
    return actor
