"""Streamlit-only helpers: cached engine/session, auth glue, shared widgets and charts."""
