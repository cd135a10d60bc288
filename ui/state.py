"""Cached database access for pages: one engine per process, a fresh session per call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.config import get_settings
from db.migrate import upgrade
from db.session import make_engine, session_factory


@st.cache_resource(show_spinner=False)
def engine() -> Engine:
    """The app's engine; the schema is brought to the latest migration on first use."""
    settings = get_settings()
    upgrade(settings.database_url)
    return make_engine(settings.database_url)


@contextmanager
def db_session() -> Iterator[Session]:
    with session_factory(engine())() as session:
        yield session


def clear_reads() -> None:
    """Forget cached reads after a write so every page shows the new state."""
    st.cache_data.clear()
