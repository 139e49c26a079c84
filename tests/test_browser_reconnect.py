"""A student's connection drops and comes back (issue 28, item 6), in Chromium against `streamlit run`
with class sign-in: the tab's connection is cut under it, as a Wi-Fi drop cuts it (tests/wire.py),
while a training the student started runs. The tab shows that it is reconnecting, then gets its own
session back: signed in, on the same page, the same settings, the run watched and still theirs, one
run in the store. Then the server restarts under the tab (the same run store): the session is gone, so
the tab asks to sign in again and says why; signed in, the settings and the run are all there."""

import os
import re

import pytest
from playwright.sync_api import expect

from fmnist.access import hash_code
from fmnist.runs import RunStatus
from fmnist.store import RunStore

from browser import CHROMIUM, app_idle, free_port, set_slider, start_streamlit
from helpers import wait_until
from wire import Wire

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (./setup.sh --test)")

CLASS_CODE, TEACHER_CODE = "green-otter-7", "teacher-code-8"
SETTINGS = {"Training images": "1000", "Epochs": "3"}  # a training of a few seconds


def sign_in(page, name: str = "Ada", password: str = "ada-secret") -> None:
    page.get_by_label("Class code", exact=True).fill(CLASS_CODE)
    page.get_by_label("Your name", exact=True).fill(name)
    page.get_by_label("Your password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=60000)


def shows_settings(page, settings: dict) -> None:
    for label, value in settings.items():
        expect(page.get_by_test_id("stSlider").filter(has_text=label).get_by_test_id("stSliderThumbValue")).to_have_text(value)


def drop_and_wait(wire: Wire, page, start) -> None:
    """The connection drops: the tab says it is reconnecting, and nothing can be clicked meanwhile
    (a press that could not reach the server is not lost, nor sent twice later)."""
    wire.cut()
    expect(page.get_by_test_id("stConnectionStatus")).to_have_text(re.compile("connecting", re.I), timeout=10000)
    expect(start).to_be_disabled()


def test_a_dropped_connection_gets_its_session_back_and_a_restart_asks_to_sign_in_again(tmp_path, browser):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[sharing]\nmode = "class"\nclass_code_hash = "{hash_code(CLASS_CODE)}"\nteacher_code_hash = "{hash_code(TEACHER_CODE)}"\n')
    home, log = tmp_path / "home", tmp_path / "streamlit.log"
    server = start_streamlit(home, free_port(), extra_args=["--secrets.files", str(secrets)])
    wire = Wire(server_port=int(server.args[server.args.index("--server.port") + 1]))
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
        page.goto(wire.url)
        sign_in(page)
        for label, value in SETTINGS.items():
            set_slider(page, label, value)
        address = page.url
        assert "epochs=3" in address and "images=1000" in address, address
        start = page.get_by_role("button", name="Start training", exact=True)
        start.click()
        page.get_by_text(re.compile(r"#1 .* · (queued|running)")).wait_for(timeout=30000)

        # The Wi-Fi drops for a few seconds while the run trains; the server hears nothing of it.
        drop_and_wait(wire, page, start)
        page.wait_for_timeout(3000)
        wire.restore()
        page.get_by_test_id("stConnectionStatus").wait_for(state="detached", timeout=30000)
        # The same session (Streamlit: "already connected! Reconnecting to existing session"): its sign-in,
        # page, settings and run, all in its session_state, are back.
        assert "Reconnecting to existing session" in log.read_text()
        assert page.url == address
        page.get_by_text("Signed in as Ada").wait_for()
        shows_settings(page, SETTINGS)
        wire.hang_up()  # the server's end of the lost connection closes at last: the session stays this tab's
        set_slider(page, "Epochs", "4")
        wait_until(lambda: "epochs=4" in page.url, timeout=30, message="the address to follow the slider")
        [run] = RunStore(home).list_runs()
        assert run.status in (RunStatus.RUNNING, RunStatus.FINISHED) and run.owner == "class:ada", run

        # The server restarts while the tab is away (trainings outlive it): the tab's session is gone with it.
        address = page.url
        drop_and_wait(wire, page, start)
        server.terminate()
        server.wait(timeout=20)
        server = start_streamlit(home, port := free_port(), extra_args=["--secrets.files", str(secrets)])
        wire.restore(server_port=port)
        page.get_by_text("The server no longer had this tab's session").wait_for(timeout=30000)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
        assert page.url == address
        sign_in(page)
        shows_settings(page, {**SETTINGS, "Epochs": "4"})  # from the address
        expect(page.get_by_text("The server no longer had this tab's session")).to_have_count(0)
        page.get_by_text(re.compile(r"#1 .* · finished")).wait_for(timeout=90000)  # hers, watched again
        app_idle(page)
        [run] = RunStore(home).list_runs()  # none lost, none doubled
        assert (run.status, run.owner, run.train_limit, run.spec.epochs) == (RunStatus.FINISHED, "class:ada", 1000, 3)
    finally:
        wire.close()
        server.terminate()
        server.wait(timeout=20)
