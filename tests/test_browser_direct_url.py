"""A new server's first visitor opens a page's URL directly, not the app's root."""

import os

import pytest

from browser import CHROMIUM, free_port, screenshot, start_streamlit

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (./setup.sh --test)")


def test_a_page_url_opened_first_gets_the_apps_navigation(tmp_path, browser):
    port = free_port()
    server = start_streamlit(tmp_path / "home", port)  # a new server: no session has been through st.navigation yet
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/data")
        page.get_by_role("heading", name="The data").wait_for(timeout=30000)
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_text("Build & Train").wait_for(timeout=10000)
        assert not nav.get_by_text("streamlit app").count(), "not Streamlit's automatic list of the pages/ folder"
        page.get_by_text("No run is training.").wait_for(timeout=10000)  # the sidebar of streamlit_app.py
        screenshot(page, "direct-url-data")
    finally:
        server.terminate()
        server.wait(timeout=20)
