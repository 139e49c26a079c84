"""Sharing with a class: sign-in, owners, per-person limits, and a safe default."""

import hashlib
import json
import os
import time
import tomllib

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from fmnist import access
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


def quick_hash(code: str, n: int = 2**10) -> str:
    """A stored hash in today's format at a low cost, for tests that check codes many times."""
    salt = os.urandom(16)
    return f"scrypt$n={n},r=8,p=1${salt.hex()}${hashlib.scrypt(code.encode(), salt=salt, n=n, r=8, p=1).hex()}"


CLASS = {"sharing": {"mode": "class", "class_code_hash": quick_hash(CLASS_CODE), "teacher_code_hash": quick_hash(TEACHER_CODE),
                     "max_runs_per_person": 1}}


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    """Passwords hashed at a low scrypt cost in these tests (N=2^17 takes a second each on a shared CPU);
    the cost of new hashes and the older hashes' are checked in test_new_hashes_*. And a fresh throttle per test."""
    monkeypatch.setattr(access, "SCRYPT", dict(n=2**10, r=8, p=1))
    monkeypatch.setattr(access, "THROTTLE", access.SignInThrottle())


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
    # A forgotten password frees the name (the CLI's forget-person), for a new person: see test_forget_person_*.
    assert store.people.forget_person("ada lovelace")
    assert sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Ada Lovelace", "newpass").id != ada.id


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
    before = config.get_option("server.address"), config.get_option("client.showErrorDetails")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", before[0])
    config.set_option("client.showErrorDetails", before[1])  # a shared app turns the details off (fmnist.app.session.gate)


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
    assert RunStore().people.person("ada")[:2] == ("class:ada", "Ada")


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


# --- issue 26: what a hostile student tried ---

def test_new_hashes_use_owasps_scrypt_cost_and_older_hashes_still_match(home, monkeypatch):
    monkeypatch.setattr(access, "SCRYPT", dict(n=2**17, r=8, p=1))  # the module's own value, which quick_hashes lowered
    stored = hash_code("a class code")
    assert stored.startswith("scrypt$n=131072,r=8,p=1$") and code_matches("a class code", stored)
    # As hashes were written before: scrypt$salt$digest, made with N=2^14.
    salt = os.urandom(16)
    older = f"scrypt${salt.hex()}${hashlib.scrypt(b'secret1', salt=salt, n=2**14, r=8, p=1).hex()}"
    assert code_matches("secret1", older) and not code_matches("secret2", older)
    assert not code_matches("x", "scrypt$n=1073741824,r=8,p=1$00$00"), "a stored cost beyond the limits is refused, not run"
    # A class member with an older hash keeps signing in, and their hash is made again at today's cost.
    store = RunStore()
    store.people.add_person("ada", "Ada", older)
    sharing = sharing_from(CLASS, "0.0.0.0")
    assert sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Ada", "secret1").id == "class:ada"
    assert store.people.person("ada")[2].startswith("scrypt$n=131072,")


def test_the_same_code_for_class_and_teacher_is_refused(home):
    same = quick_hash("one code for all")
    with pytest.raises(SharingConfigError, match="same code"):
        sharing_from({"sharing": {"mode": "class", "class_code_hash": same, "teacher_code_hash": same}}, "0.0.0.0")
    # Two hashes of one code (each salted differently) cannot be told apart until someone signs in with it.
    sharing = sharing_from({"sharing": {"mode": "class", "class_code_hash": quick_hash("one code for all"),
                                        "teacher_code_hash": same}}, "0.0.0.0")
    with pytest.raises(AccessError, match="class code and the teacher code are the same"):
        sign_in_with_class_code(sharing, RunStore(), "one code for all", "Ada", "secret1")
    assert RunStore().people.person("ada") is None, "nobody was let in"


def test_sharing_written_as_a_setting_not_a_section_gets_a_clear_message(home, tmp_path, served_to_others):
    for secrets in ({"sharing": "class"}, {"sharing": ["class"]}):
        with pytest.raises(SharingConfigError, match=r"not a section: write a \[sharing\] section"):
            sharing_from(secrets, "0.0.0.0")
    with pytest.raises(SharingConfigError, match=r"\[auth\] section"):
        sharing_from({"sharing": {"mode": "oidc"}, "auth": "google"}, "0.0.0.0")
    at = shared_app({"sharing": "class"})
    at.run()
    assert not at.exception
    assert "not a section" in at.error[0].value and not at.text_input, "no page and no sign-in behind it"
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('sharing = "class"\n')
    result = run_cli("serve", "--share", env={"HOME": str(tmp_path)})
    assert result.returncode == 2 and "not a section" in result.stderr and "Traceback" not in result.stderr, result.stderr


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_wrong_guesses_wait_longer_and_longer_from_the_fifth_and_are_logged(home, caplog):
    store, sharing, clock = RunStore(), sharing_from(CLASS, "0.0.0.0"), Clock()
    throttle = access.SignInThrottle(clock)
    sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Ada", "secret1", address="10.0.0.7", throttle=throttle)

    def guess(password, address="10.0.0.66"):
        return sign_in_with_class_code(sharing, store.people, CLASS_CODE, "ada", password, address=address, throttle=throttle)

    for attempt in range(4):
        with pytest.raises(AccessError, match="not its password"):
            guess(f"guess{attempt}")
    with caplog.at_level("WARNING", logger="fmnist.sign_in"):
        with pytest.raises(AccessError, match="not its password"):
            guess("guess4")
    line = caplog.records[-1].getMessage()
    assert "wrong password" in line and "'ada'" in line and "10.0.0.66" in line and "5 failures in a row, next try in 1 s" in line
    # While it waits, even the right password is refused unchecked, from any address: waiting tells nothing.
    with pytest.raises(AccessError, match=r"Too many wrong sign-ins for this name: try again in 1 s"):
        guess("secret1", address="10.0.0.7")
    clock.now += 1.1
    with pytest.raises(AccessError, match="not its password"):
        guess("guess5")
    with pytest.raises(AccessError, match=r"try again in 2 s"):
        guess("guess6")
    for _ in range(12):  # the wait doubles up to its cap
        clock.now += access.MAX_WAIT_S
        with pytest.raises(AccessError, match="not its password"):
            guess("again1")
    with pytest.raises(AccessError, match=rf"try again in {access.MAX_WAIT_S:.0f} s"):
        guess("again1")
    clock.now += access.MAX_WAIT_S + 1
    assert guess("secret1").id == "class:ada", "the owner gets in once the wait is over, and that clears the name's failures"
    with pytest.raises(AccessError, match="not its password"):
        guess("guess7")


def test_wrong_class_codes_from_one_address_wait_too(home):
    store, sharing, clock = RunStore(), sharing_from(CLASS, "0.0.0.0"), Clock()
    throttle = access.SignInThrottle(clock)
    for attempt in range(access.FREE_ADDRESS_FAILURES + 1):  # a new name each time: only the address counts them all
        with pytest.raises(AccessError, match="class code is not right"):
            sign_in_with_class_code(sharing, store.people, f"code {attempt}", f"Name {attempt}", "secret1", address="203.0.113.5", throttle=throttle)
    with pytest.raises(AccessError, match="Too many wrong sign-ins for your address"):
        sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Bob", "secret1", address="203.0.113.5", throttle=throttle)
    assert sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Bob", "secret1", address="203.0.113.6", throttle=throttle).name == "Bob"


def test_the_sign_in_form_throttles_by_the_address_a_trusted_proxy_names(home, served_to_others, monkeypatch):
    monkeypatch.setattr("fmnist.app.session.request_headers", lambda: {"X-Forwarded-For": "198.51.100.9, 127.0.0.1"})
    at = shared_app({"sharing": {**CLASS["sharing"], "trusted_proxies": ["127.0.0.1"]}})
    at.run()
    for attempt in range(access.FREE_ADDRESS_FAILURES + 1):
        sign_in(at, "wrong code", f"Name {attempt}", "secret1")
    sign_in(at, CLASS_CODE, "Ada", "secret1")
    assert "Too many wrong sign-ins for your address" in at.error[0].value
    seconds, what = access.THROTTLE.wait_left("ada", "198.51.100.9")
    assert seconds > 0 and what == "address"


@pytest.mark.parametrize("name, why", [
    ("Ada\u200b", "do not show"),  # a zero-width space
    ("\u0410da", "one alphabet"),  # a Cyrillic A
    ("\u202erehcaet", "do not show"),  # a right-to-left override: shows as "teacher"
    ("this machine", "kept for the app"),
    ("TEACHER", "kept for the app"),
    ("\u0442\u0435\u0430\u0441\u04bb\u0435\u0433", "kept for the app"),  # "teacher" in Cyrillic letters alone
    ("Admin", "kept for the app"),
])
def test_look_alike_invisible_and_reserved_names_are_refused(home, name, why):
    store, sharing = RunStore(), sharing_from(CLASS, "0.0.0.0")
    with pytest.raises(AccessError, match=why):
        sign_in_with_class_code(sharing, store.people, CLASS_CODE, name, "secret1")
    assert store.people.people_names() == []


def test_a_fullwidth_or_whole_script_look_alike_of_a_taken_name_is_not_a_new_person(home):
    store, sharing = RunStore(), sharing_from(CLASS, "0.0.0.0")
    ada = sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Ada", "secret1")
    with pytest.raises(AccessError, match="taken"):
        sign_in_with_class_code(sharing, store.people, CLASS_CODE, "\uff21da", "guessed")  # fullwidth: NFKC makes it "Ada"
    with pytest.raises(AccessError, match="looks like 'Ada'"):
        sign_in_with_class_code(sharing, store.people, CLASS_CODE, "\u0410\u0501\u0430", "secret2")  # all Cyrillic
    for name in ("José", "李小龙", "山田たろう", "O'Brien", "Ada Lovelace"):  # real names stay possible
        assert sign_in_with_class_code(sharing, store.people, CLASS_CODE, name, "secret1").name == name
    assert sign_in_with_class_code(sharing, store.people, CLASS_CODE, "\uff21da", "secret1") == ada


def test_forget_person_does_not_hand_the_runs_over(home):
    store, sharing = RunStore(), sharing_from(CLASS, "0.0.0.0")
    ada = sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Ada", "secret1")
    adas_run = store.create_run(SPEC, owner=ada.id, owner_name=ada.name)
    store.people.add_sign_in("adas-tab", ada.id, ada.name, False)
    result = run_cli("forget-person", "Ada")
    assert result.returncode == 0 and "new person" in result.stdout, result.stderr
    assert store.people.signed_in("adas-tab") is None, "signed out everywhere"
    newcomer = sign_in_with_class_code(sharing, store.people, CLASS_CODE, "ADA", "takeover")
    assert newcomer.id != ada.id and not may_manage(newcomer, store.get(adas_run))
    with pytest.raises(AccessError, match="belongs to Ada"):
        check_may_manage(newcomer, store.get(adas_run), "delete")
    assert may_manage(Person("class:hopper", "Ms Hopper", admin=True), store.get(adas_run)), "a teacher still may"
    # Forgotten again: a third person, owning neither one's runs.
    assert store.people.forget_person("ada")
    third = sign_in_with_class_code(sharing, store.people, CLASS_CODE, "Ada", "another")
    assert len({ada.id, newcomer.id, third.id}) == 3
    assert run_cli("forget-person", "Nobody").returncode == 2


def test_without_sign_in_a_request_through_a_proxy_is_refused(home, monkeypatch):
    """nginx on this machine in front of an app on 127.0.0.1 with no [sharing]: the request carries X-Forwarded-For."""
    monkeypatch.setattr("fmnist.app.session.request_headers", lambda: {"Host": "studio.school.org", "X-Forwarded-For": "198.51.100.9"})
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert "came through a proxy" in at.error[0].value and "x-forwarded-for" in at.error[0].value
    assert not at.metric and not at.slider, "no page behind it"
    monkeypatch.setattr("fmnist.app.session.request_headers", lambda: {"Host": "localhost:8501"})
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.error and at.metric, "this machine's own browser is served as before"


def test_the_client_address_comes_from_a_trusted_proxy_only():
    headers = {"X-Forwarded-For": "6.6.6.6, 198.51.100.9"}  # the first hop is what the client wrote itself
    trusting = sharing_from({"sharing": {**CLASS["sharing"], "trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}}, "0.0.0.0")
    assert access.client_address(None, headers, trusting) == "198.51.100.9"
    assert access.client_address("10.1.2.3", {"x-forwarded-for": "198.51.100.9, 10.0.0.2"}, trusting) == "198.51.100.9"
    assert access.client_address("203.0.113.5", headers, trusting) == "203.0.113.5", "not a trusted proxy: its own address"
    assert access.client_address(None, headers, sharing_from(CLASS, "0.0.0.0")) == "127.0.0.1", "no proxy is trusted by default"
    with pytest.raises(SharingConfigError, match="trusted_proxies"):
        sharing_from({"sharing": {**CLASS["sharing"], "trusted_proxies": "127.0.0.1"}}, "0.0.0.0")


def test_the_store_and_its_folder_are_created_readable_by_their_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv("FMNIST_DB", raising=False)
    store = RunStore(tmp_path / "new-home")
    store.people.add_person("ada", "Ada", quick_hash("secret1"))
    assert (tmp_path / "new-home").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "new-home" / "runs.sqlite").stat().st_mode & 0o777 == 0o600


def test_serve_share_keeps_secrets_private_and_asks_nobody_for_the_public_address(home, tmp_path):
    import socket
    import subprocess
    import sys

    from helpers import wait_until

    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text(f'[sharing]\nmode = "class"\nclass_code_hash = "{quick_hash(CLASS_CODE)}"\n'
                       f'teacher_code_hash = "{quick_hash(TEACHER_CODE)}"\n')
    secrets.chmod(0o644)  # as a text editor leaves it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "fmnist", "serve", "--share", "--port", str(port)], cwd=ROOT,
                                  stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(tmp_path)})
    try:
        wait_until(lambda: "URL:" in log.read_text() or server.poll() is not None, timeout=120, message="the server's URL")
        time.sleep(2)  # anything Streamlit logs just after
    finally:
        server.terminate()
        server.wait(30)
    printed = log.read_text()
    assert f"URL: http://{socket.gethostname()}:{port}" in printed, printed
    assert "External URL" not in printed and "external IP" not in printed, printed
    assert secrets.stat().st_mode & 0o777 == 0o600 and "readable by its owner only" in printed


def test_a_hash_once_matched_is_checked_again_without_scrypt(monkeypatch):
    stored = quick_hash("a class code")
    calls = []
    scrypt = access.scrypt
    monkeypatch.setattr(access, "scrypt", lambda *args, **kwargs: calls.append(1) or scrypt(*args, **kwargs))
    assert not code_matches("a wrong code", stored) and len(calls) == 1, "a wrong code before any right one costs its scrypt"
    assert code_matches("a class code", stored) and len(calls) == 2
    assert code_matches("a class code", stored) and not code_matches("another wrong one", stored)
    assert len(calls) == 2, "only one code matches a hash: once known, neither answer needs scrypt"
