"""Fixtures; what tests share otherwise is in helpers.py (and browser.py for the browser tests)."""

import os
import tempfile
import time

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Runs start cold in tests (each warm trainer is a process with Keras loaded, waiting): the tests of
# warm trainers turn them on (tests/test_warm.py).
os.environ["FMNIST_WARM_TRAINER"] = "0"
# A test's `streamlit run` skips the server's warm-up (TensorFlow, the best model and its checks loaded
# in the background for Classify's first visit): most never visit Classify, and the suite runs on two
# cores. Classify's tests load what they need on the visit; tests/test_app_classify.py tests the warm-up.
os.environ["FMNIST_WARM_UP"] = "0"
# Nothing a test does lands in the repository's ./runs.
os.environ["FMNIST_HOME"] = tempfile.mkdtemp(prefix="fmnist-tests-")
# One cache for the whole suite, as one machine has (the decoded dataset, JAX's compiled steps): each
# test's own FMNIST_HOME would otherwise decode and compile again in every training process.
# The tests of the cache itself use their home's (tests/test_data.py, tests/test_store_faults.py).
os.environ["FMNIST_CACHE"] = tempfile.mkdtemp(prefix="fmnist-tests-cache-")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty FMNIST_HOME for one test; child processes inherit it."""
    monkeypatch.setenv("FMNIST_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def dataset():
    """The real Fashion-MNIST, loaded once for the session."""
    from fmnist.data import load_dataset

    return load_dataset()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (its own browser download does not work offline), one for
    the session: each test opens contexts of its own (a context is a fresh profile: cookies, storage,
    sessions), and Playwright's driver and Chromium start once instead of once a module."""
    from playwright.sync_api import sync_playwright

    from browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def close_the_tests_pages(request):
    """After a browser test, its contexts close: a page left open would go on refreshing (a live run,
    a sidebar) or, once its module's server has gone, reconnecting, on the cores the next tests use."""
    yield
    if "browser" in request.fixturenames:
        for context in request.getfixturevalue("browser").contexts:
            context.close()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL 15 server for the session (tests/servers.py); each test asks it for a database."""
    from servers import PostgresServer

    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, monkeypatch):
    """The run store on each database in turn: FMNIST_DB unset (SQLite in FMNIST_HOME), then a fresh
    PostgreSQL database. Child processes inherit the choice. Returns the URL, or None for SQLite."""
    if request.param == "sqlite":
        monkeypatch.delenv("FMNIST_DB", raising=False)
        return None
    url = request.getfixturevalue("postgres").new_database()
    monkeypatch.setenv("FMNIST_DB", url)
    return url


@pytest.fixture(scope="session")
def ray_head():
    """A real Ray head for the session (tests/servers.py): 2 CPUs, and a GPU the machine does not have."""
    from servers import RayHead

    head = RayHead(num_cpus=2, num_gpus=1)  # a GPU the machine does not have: what a run that asks for one meets
    yield head
    head.close()


@pytest.fixture
def on_cluster(home, ray_head, postgres, monkeypatch):
    """This test's app and CLI send their runs to the head and keep them in a fresh PostgreSQL database."""
    from fmnist.runs import ACTIVE
    from fmnist.store import RunStore
    from fmnist.worker import reap_dead_runs, stop_run

    from helpers import wait_until

    monkeypatch.setenv("FMNIST_DB", postgres.new_database())
    monkeypatch.setenv("FMNIST_RAY_ADDRESS", ray_head.address)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    monkeypatch.setenv("FMNIST_RAY_CPUS", "1")
    monkeypatch.setenv("FMNIST_RAY_GPUS", "0")
    store = RunStore()
    yield store
    for run in store.list_runs(statuses=ACTIVE):
        stop_run(store, run.id)

    def settled() -> bool:
        reap_dead_runs(store)
        return not store.list_runs(statuses=ACTIVE)

    wait_until(settled, timeout=60, every=0.5, message="the test's runs to end")  # the next test has the CPUs


@pytest.fixture(scope="session")
def served_store(tmp_path_factory, dataset):
    """One `streamlit run` server for the browser tests that only read runs (accessibility, Leaderboard,
    Inside): a finished three-trial search, three tiny trained runs, "narrow" (64-32), "wide" (128)
    and "small" (32), and a challenge "small" was submitted to. Yields (url, store). Tests that add runs to it (the keyboard test) leave the
    others as they are; each test finds the runs it means by name or as the pages do."""
    from test_evaluation import train_tiny

    from fmnist import jobs, services
    from fmnist.access import Actor
    from fmnist.challenges import Constraints
    from fmnist.search import run_search
    from fmnist.search_space import SearchSpace
    from fmnist.store import RunStore
    from fmnist.worker import try_start

    from browser import free_port, start_streamlit

    tiny_search = SearchSpace(layers=(1, 1), width=(16, 32), activations=("relu",), dropout=(0.0, 0.0), batch_norm=(False,),
                              learning_rate=(1e-3, 3e-3), batch_sizes=(64,), images=2000, epochs=1, trials=3, minutes=None)
    home = tmp_path_factory.mktemp("served-store") / "home"
    store = RunStore(home)
    search_id = jobs.SEARCH.create(store, tiny_search, name="tiny")
    assert try_start(store, search_id, max_parallel=1)
    assert run_search(store, search_id, dataset)["status"] == "finished"
    train_tiny(store, dataset, (64, 32), "narrow")
    train_tiny(store, dataset, (128,), "wide", epochs=2)
    small = train_tiny(store, dataset, (32,), "small", epochs=2)
    challenge = services.open_challenge(store, Actor.local(), "Under 50,000 parameters", Constraints(max_params=50000),
                                        time.time() + 86400, 3)
    services.submit_to_challenge(store, Actor.local(), challenge, small, dataset.y_test)  # the Challenge page's board
    port = free_port()
    process = start_streamlit(home, port)
    yield f"http://127.0.0.1:{port}", store
    for run in store.list_runs():
        if run.active:
            store.request_stop(run.id)
    process.terminate()
    process.wait(timeout=20)
