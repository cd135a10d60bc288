"""ExperimentOS — the Streamlit entrypoint: page config, login gate, role-aware navigation."""

import streamlit as st

from ui import navigation, overview
from ui.auth import require_login, resume_deep_link
from ui.state import require_current_schema

st.set_page_config(page_title="ExperimentOS", page_icon=":material/science:", layout="wide")
home = st.Page(overview.render, title="Overview", icon=":material/dashboard:", default=True)
require_current_schema(navigation.build(None, home))
actor = require_login(navigation.build(None, home))
st.session_state["actor"] = actor
pages = navigation.build(actor, home)
page = st.navigation(pages)
resume_deep_link(page, pages)
page.run()
