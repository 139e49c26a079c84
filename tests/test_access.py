"""Sharing with a class: sign-in, owners, per-person limits, and a safe default."""

import json
import tomllib

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from fmnist.access import (
    LOCAL_ADMIN,
    AccessError,
    Person,
    Sharing,
    SharingConfigError,
    check_may_manage,
    code_matches,
    hash_code,
    is_loopback,
    may_manage,
    sharing_from,
    sign_in_with_class_code,
)
from fmnist.models import dense_spec
from fmnist.runs import LimitError, RunStatus
from fmnist.services import Actor, start_training
from fmnist.store import RunStore
from fmnist.worker import try_start

from helpers import APP, ROOT, run_cli

SPEC = dense_spec([16], epochs=1)
CLASS_CODE, TEACHER_CODE = "blue-giraffe-42", "teacher-code-99"
CLASS = {"sharing": {"mode": "class", "class_code_hash": hash_code(CLASS_CODE), "teacher_code_hash": hash_code(TEACHER_CODE),
                     "max_runs_per_person": 1}}


def test_the_server_listens_on_this_machine_only_and_keeps_streamlits_protections():
    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["address"] == "127.0.0.1"
    assert settings["server"].get("enableXsrfProtection", True) and settings["server"].get("enableCORS", True)
    assert settings["client"]["toolbarMode"] == "viewer", "no Deploy button or developer menu for people who use the app"


def test_loopback_addresses():
    assert all(is_loopback(a) for a in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert not any(is_loopback(a) for a in (None, "", "0.0.0.0", "192.168.1.10", "::", "my-laptop"))


def test_codes_are_stored_hashed_and_checked():
    stored = hash_code(CLASS_CODE)
    assert CLASS_CODE not in stored and stored.startswith("scrypt$")
    assert hash_code(CLASS_CODE) != stored, "salted"
    assert code_matches(CLASS_CODE, stored) and not code_matches("blue-giraffe-43", stored)
    assert not code_matches(CLASS_CODE, "garbage") and not code_matches(CLASS_CODE, None or "")


def test_sharing_without_sign_in_is_refused_with_what_is_missing():
    assert sharing_from({}, "127.0.0.1") == Sharing()
    with pytest.raises(SharingConfigError, match=r"reachable from other machines.*\[sharing\]"):
        sharing_from({}, "0.0.0.0")
    with pytest.raises(SharingConfigError, match="teacher_code_hash"):
        sharing_from({"sharing": {"mode": "class", "class_code_hash": hash_code(CLASS_CODE)}}, "0.0.0.0")
    with pytest.raises(SharingConfigError, match="class_code_hash"):
        sharing_from({"sharing": {"mode": "class", "class_code_hash": CLASS_CODE, "teacher_code_hash": hash_code("x")}}, None)
    with pytest.raises(SharingConfigError, match=r"needs an \[auth\] section"):
        sharing_from({"sharing": {"mode": "oidc"}}, "0.0.0.0")
    with pytest.raises(SharingConfigError, match="max_runs_per_person"):
        sharing_from({"sharing": {**CLASS["sharing"], "max_runs_per_person": 0}}, "0.0.0.0")
    oidc = {"sharing": {"mode": "oidc", "admins": ["Teacher@School.org"]},
            "auth": {"redirect_uri": "https://studio.school.org/oauth2callback", "cookie_secret": "s", "client_id": "c",
                     "client_secret": "x", "server_metadata_url": "https://id.school.org/.well-known/openid-configuration"}}
    assert sharing_from(oidc, "0.0.0.0").admins == {"teacher@school.org"}
    assert sharing_from(CLASS, "0.0.0.0").max_runs_per_person == 1


def test_class_sign_in_codes_names_and_passwords(home):
    store, sharing = RunStore(), sharing_from(CLASS, "0.0.0.0")
    with pytest.raises(AccessError, match="class code is not right"):
        sign_in_with_class_code(sharing, store.people, "wrong", "Ada", "secret1")
    ada = sign_in_with_class_code(sharing, store.people, CLASS_CODE, "  Ada   Lovelace ", "secret1")
    assert (ada.name, ada.admin) == ("Ada Lovelace", False)
    assert sign_in_with_class_code(sharing, store.people, CLASS_CODE, "ada lovelace", "secret1") == ada, "the same person again"
    with pytest.raises(AccessError, match="taken"):
        sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Ada Lovelace", "guessed")
    with pytest.raises(AccessError, match="at least 6"):
        sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Bob", "123")
    teacher = sign_in_with_class_code(sharing, store.people, TEACHER_CODE, "Ms Hopper", "teach1")
    assert teacher.admin
    assert "secret1" not in (home / "runs.sqlite").read_bytes().decode("latin-1"), "only the password's hash is stored"
    # A forgotten password frees the name (the CLI's forget-person); the runs stay the person's.
    assert store.people.forget_person(ada.id)
    assert sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Ada Lovelace", "newpass") == ada


def test_owners_and_the_teacher(home):
    store = RunStore()
    ada, bob = Person("class:ada", "Ada"), Person("class:bob", "Bob")
    teacher = Person("class:hopper", "Ms Hopper", admin=True)
    ada_run = store.get(store.create_run(SPEC, owner=ada.id, owner_name=ada.name))
    cli_run = store.get(store.create_run(SPEC))
    assert may_manage(ada, ada_run) and not may_manage(bob, ada_run) and may_manage(teacher, ada_run)
    assert may_manage(LOCAL_ADMIN, ada_run) and not may_manage(ada, cli_run)
    with pytest.raises(AccessError, match="Run #1 belongs to Ada: only they or a teacher may delete it"):
        check_may_manage(bob, ada_run, "delete")


def test_the_per_person_limit_counts_queued_and_running_runs(home, monkeypatch):
    monkeypatch.setattr("fmnist.services.start", lambda store, run_id: None)  # no training process needed here
    store = RunStore()
    ada, teacher = Person("class:ada", "Ada"), Person("class:hopper", "Ms Hopper", admin=True)
    first = start_training(store, Actor(ada, 2), SPEC)
    try_start(store, first, max_parallel=1)
    start_training(store, Actor(ada, 2), SPEC)
    with pytest.raises(LimitError, match=r"You have 2 trainings queued or running.*\(2\)"):
        start_training(store, Actor(ada, 2), SPEC)
    assert len(store.list_runs()) == 2, "the refused run was never created"
    store.finish(first, RunStatus.STOPPED)
    start_training(store, Actor(ada, 2), SPEC)
    for _ in range(3):
        start_training(store, Actor(teacher, 2), SPEC)  # a teacher has no limit
    assert {run.owner_name for run in store.list_runs()} == {"Ada", "Ms Hopper"}


def test_signing_out_ends_every_sign_in_of_that_person(home):
    store = RunStore()
    store.people.add_sign_in("tab-1", "class:ada", "Ada", False)
    store.people.add_sign_in("tab-2", "class:ada", "Ada", False)
    store.people.add_sign_in("tab-3", "class:bob", "Bob", False)
    assert store.people.signed_in("tab-2") == ("class:ada", "Ada", False)
    store.people.sign_out("class:ada")
    assert store.people.signed_in("tab-1") is None and store.people.signed_in("tab-2") is None
    assert store.people.signed_in("tab-3") == ("class:bob", "Bob", False)


# --- the app, through AppTest ---

@pytest.fixture
def served_to_others():
    """As `--server.address 0.0.0.0` would: the app is reachable from other machines."""
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", before)


def shared_app(secrets: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for section, values in secrets.items():
        at.secrets[section] = values
    return at


def test_the_app_refuses_to_serve_others_without_sign_in(home, served_to_others):
    at = shared_app({})
    at.run()
    assert not at.exception
    assert "will not serve this page without sign-in" in at.error[0].value and "[sharing]" in at.error[0].value
    assert not at.metric and not at.slider, "no page behind it"


def sign_in(at: AppTest, code: str, name: str, password: str) -> AppTest:
    at.run()  # AppTest's first run goes through Streamlit's pages/ mode, with other widget ids
    at.text_input[0].input(code)
    at.text_input[1].input(name)
    at.text_input[2].input(password)
    return at.button[0].click().run()


def test_class_members_sign_in_and_see_pages(home, served_to_others):
    at = shared_app(CLASS)
    at.run()
    assert [t.label for t in at.text_input] == ["Class code", "Your name", "Your password"]
    assert not at.slider, "nothing but the sign-in before signing in"
    sign_in(at, "wrong code", "Ada", "secret1")
    assert "class code is not right" in at.error[0].value
    sign_in(at, CLASS_CODE, "Ada", "secret1")
    assert not at.exception, at.exception
    assert at.metric, "the pages, once signed in"
    assert RunStore().people.person("class:ada")[0] == "Ada"


def test_a_forged_run_id_cannot_stop_someone_elses_run(home, served_to_others):
    store = RunStore()
    bobs = store.create_run(SPEC, owner="class:bob", owner_name="Bob")
    try_start(store, bobs, max_parallel=1)  # this test process stands in for Bob's training
    at = shared_app(CLASS)
    at.run()
    sign_in(at, CLASS_CODE, "Ada", "secret1")
    at.session_state["watch_run"] = bobs  # a forged value: the page now shows Bob's run
    at.run()
    stop = at.button(key="stop_run")
    assert stop.disabled and stop.help == "started by Bob"
    stop.proto.disabled = False  # a hand-made click on it all the same
    stop.click().run()
    assert not at.exception and not store.stop_requested(bobs)


def test_a_tab_whose_person_signed_out_elsewhere_can_do_nothing(home, served_to_others):
    store = RunStore()
    at = shared_app(CLASS)
    at.run()
    sign_in(at, CLASS_CODE, "Ada", "secret1")
    adas = store.create_run(SPEC, owner="class:ada", owner_name="Ada")
    try_start(store, adas, max_parallel=1)
    at.session_state["watch_run"] = adas
    at.run()
    assert not at.button(key="stop_run").disabled, "her own run"

    store.people.sign_out("class:ada")  # in another tab
    at.button(key="stop_run").click().run()
    # A browser reruns only the live panel for its button (the click's own check says "signed out");
    # a whole rerun meets the sign-in first. Either way the run goes on.
    signed_out = "You are signed out" in " ".join(e.value for e in at.error)
    assert signed_out or [t.label for t in at.text_input][:1] == ["Class code"]
    assert not store.stop_requested(adas)
    at.switch_page("pages/leaderboard.py").run()
    assert [t.label for t in at.text_input][:1] == ["Class code"], "the next page view asks to sign in again"


def test_cli_serve_refuses_to_share_without_sign_in(home, tmp_path):
    result = run_cli("serve", "--share", env={"HOME": str(tmp_path)})
    assert result.returncode == 2 and "no sign-in is configured" in result.stderr, result.stderr
    code = run_cli("hash-code", "--stdin", input_text="a long class code\n")
    stored = json.loads(code.stdout)
    assert code_matches("a long class code", stored) and "a long class code" not in code.stdout


def test_a_training_process_listens_on_no_port(home):
    import psutil

    from helpers import wait_until

    store = RunStore()
    run_id = start_training(store, Actor.local(), dense_spec([16], epochs=30), train_limit=2000)
    try:
        run = wait_until(lambda: (r := store.get(run_id)).status == RunStatus.RUNNING and r.step > 0 and r, timeout=120,
                         message="the training to run")
        listening = [c for c in psutil.Process(run.pid).net_connections("all") if c.status == psutil.CONN_LISTEN]
        assert listening == [], listening
    finally:
        store.request_stop(run_id)
