"""Safe by default, ready for a class, in a real browser against `streamlit run`:
the default server is reachable from this machine only; served with a class code, two people
and a teacher sign in, see every run, and may stop or delete only what they may."""

import os
import socket

import psutil
import pytest
from playwright.sync_api import expect
from test_browser_leaderboard import tick_row

from fmnist.access import hash_code
from fmnist.models import dense_spec
from fmnist.runs import RunStatus
from fmnist.store import RunStore
from fmnist.worker import try_start

from browser import CHROMIUM, free_port, screenshot, start_streamlit
from helpers import wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (./setup.sh --test)")

CLASS_CODE, TEACHER_CODE = "blue-giraffe-42", "teacher-code-99"
SPEC = dense_spec([32], epochs=1)


def other_addresses() -> list[str]:
    """This machine's IPv4 addresses that other machines could reach."""
    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def test_run_as_the_readme_says_the_app_is_reachable_from_this_machine_only(tmp_path):
    home, port = tmp_path / "home", free_port()
    process = start_streamlit(home, port, address=None)  # no flag: the project's .streamlit/config.toml decides
    try:
        listening = {c.laddr.ip for c in psutil.Process(process.pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}, listening
        for address in other_addresses():
            with socket.socket() as s, pytest.raises(ConnectionRefusedError):
                s.settimeout(5)
                s.connect((address, port))
        assert "Network URL" not in (tmp_path / "streamlit.log").read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """A server with class sign-in (one run per person), and runs that Ada and Bob started."""
    folder = tmp_path_factory.mktemp("classroom")
    secrets = folder / "secrets.toml"
    secrets.write_text(f'[sharing]\nmode = "class"\nclass_code_hash = "{hash_code(CLASS_CODE)}"\n'
                       f'teacher_code_hash = "{hash_code(TEACHER_CODE)}"\nmax_runs_per_person = 1\n')
    store = RunStore(folder / "home")
    runs = {}
    for key, owner, name in (("ada_done", "class:ada", "Ada"), ("bob_done", "class:bob", "Bob"), ("bob_old", "class:bob", "Bob")):
        runs[key] = store.create_run(SPEC, name=key, owner=owner, owner_name=name)
        store.finish(runs[key], RunStatus.FINISHED, test_loss=0.5, test_acc=0.8 + len(runs) / 100)
    runs["ada_training"] = store.create_run(SPEC, name="ada_training", owner="class:ada", owner_name="Ada")
    try_start(store, runs["ada_training"], max_parallel=1)  # this test process stands in for Ada's training
    port = free_port()
    process = start_streamlit(folder / "home", port, extra_args=["--secrets.files", str(secrets)])
    yield f"http://127.0.0.1:{port}", store, runs
    process.terminate()
    process.wait(timeout=20)


def signed_in(browser, url: str, code: str, name: str, password: str):
    page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
    page.goto(url)
    page.get_by_label("Class code", exact=True).fill(code)
    page.get_by_label("Your name", exact=True).fill(name)
    page.get_by_label("Your password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Build & Train").wait_for(timeout=60000)
    return page


def go_to_leaderboard(page) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Leaderboard").click()
    page.get_by_role("heading", name="Leaderboard", exact=True).wait_for(timeout=30000)


def stop_button(page):
    return page.locator(".st-key-stop_run").get_by_role("button", name="Stop", exact=True)


def delete_button(page, run_id: int):
    return page.locator(f".st-key-lb_delete_{run_id} button")


def delete(page, store, run_id: int) -> None:
    delete_button(page, run_id).click()
    page.get_by_role("button", name="Yes, delete").click()
    wait_until(lambda: store.get(run_id) is None, timeout=30, message=f"run {run_id} deleted")


def test_two_people_and_a_teacher(classroom, browser):
    url, store, runs = classroom
    page = browser.new_context().new_page()
    page.goto(url)
    page.get_by_label("Class code", exact=True).wait_for(timeout=60000)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # nothing but the sign-in
    page.get_by_label("Class code", exact=True).fill("a wrong code")
    page.get_by_label("Your name", exact=True).fill("Eve")
    page.get_by_label("Your password", exact=True).fill("secret1")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("That class code is not right").wait_for(timeout=30000)

    ada = signed_in(browser, url, CLASS_CODE, "Ada", "ada-secret")
    bob = signed_in(browser, url, CLASS_CODE, "Bob", "bob-secret")

    # Bob watches Ada's training: he may not stop it, nor start a run past nothing (his limit is free).
    bob.get_by_text("#4 ada_training (32) · running").wait_for(timeout=30000)
    expect(stop_button(bob)).to_be_disabled()
    # Ada has one run going, her limit: a second is refused with the reason; she may stop hers.
    ada.get_by_role("button", name="Start training", exact=True).click()
    ada.get_by_text("the most one person may have (1)").wait_for(timeout=30000)
    assert len(store.list_runs()) == 4, "the refused run was never created"
    stop_button(ada).click()
    wait_until(lambda: store.stop_requested(runs["ada_training"]), timeout=30, message="Ada's stop")
    store.finish(runs["ada_training"], RunStatus.STOPPED)  # as her training process would

    # Everyone sees every run; Bob deletes his own, never Ada's.
    go_to_leaderboard(bob)
    for name in ("ada_done", "bob_done", "bob_old", "ada_training"):
        bob.locator(".st-key-lb_table").get_by_text(name, exact=True).wait_for(state="attached", timeout=30000)  # the grid's hidden copy
    tick_row(bob, "ada_done")
    expect(delete_button(bob, runs["ada_done"])).to_be_disabled()
    bob.get_by_text("Started by Ada: only they or a teacher may rename or delete it.").wait_for()
    tick_row(bob, "bob_done")
    delete(bob, store, runs["bob_done"])
    screenshot(bob, "sharing-bob-leaderboard")

    # The teacher deletes anyone's.
    teacher = signed_in(browser, url, TEACHER_CODE, "Ms Hopper", "teach-secret")
    teacher.get_by_text("Signed in as Ms Hopper (teacher)").wait_for()
    go_to_leaderboard(teacher)
    tick_row(teacher, "ada_done")
    delete(teacher, store, runs["ada_done"])
    tick_row(teacher, "bob_old")
    delete(teacher, store, runs["bob_old"])
    assert [run.id for run in store.list_runs()] == [runs["ada_training"]]

    # Signing out ends the session: the sign-in again.
    ada.get_by_role("button", name="Sign out").click()
    ada.get_by_label("Class code", exact=True).wait_for(timeout=30000)
