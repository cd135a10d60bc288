"""Helpers for Streamlit AppTests: a seeded demo database and logging in through Home.py."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from core.config import PROJECT_ROOT, get_settings

HOME = str(PROJECT_ROOT / "Home.py")


def use_database(monkeypatch, url: str, **env: str) -> None:  # type: ignore[no-untyped-def]
    """Point the app at `url` (and any other settings) and forget every cached resource."""
    monkeypatch.setenv("DATABASE_URL", url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()


def login(username: str, password: str | None = None, timeout: float = 60) -> AppTest:
    """Run Home.py, submit the login form, and return the logged-in AppTest."""
    at = AppTest.from_file(HOME, default_timeout=timeout).run()
    fields = {t.label: t for t in at.text_input}
    fields["Username"].input(username)
    fields["Password"].input(password if password is not None else username)
    next(b for b in at.button if b.label == "Login").click().run()
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    """Switch a logged-in AppTest to `pages/<page>.py` and run it."""
    return at.switch_page(str(Path("pages") / f"{page}.py")).run()
