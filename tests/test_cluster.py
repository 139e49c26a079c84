"""Runs on a real Ray cluster: a local head (token authentication, 2 CPUs, 127.0.0.1, a temporary
folder) and a real PostgreSQL run store, both started by the tests (tests/servers.py). The app's
own launch path sends runs there as Ray jobs; the Train page shows their curves from PostgreSQL;
stop, `ray job stop` and a search's trials behave as docs/cluster.md, "Faults", says."""

import json

from streamlit.testing.v1 import AppTest

from fmnist import cluster
from fmnist.runs import RunKind, RunStatus
from fmnist.search_space import SearchSpace
from fmnist.services import Actor, start_search
from fmnist.store import RunStore
from fmnist.studies import load_study
from fmnist.worker import reap_dead_runs, stop_run

from helpers import APP, run_cli, wait_until
from servers import free_port


def ray_state(head, run) -> str:
    return cluster.current().job_state(run.cluster_job)[0]


def start_from_the_page(at: AppTest, epochs: int, name: str, images: int = 20000) -> None:
    at.select_slider(key="build_limit").set_value(images).run()
    at.slider(key="build_layers").set_value(1).run()
    at.slider(key="build_epochs").set_value(epochs).run()
    at.text_input(key="build_run_name").input(name).run()
    at.button(key="start").click().run()
    assert not at.exception, at.exception


def test_runs_from_the_train_page_train_as_ray_jobs_at_once_stop_and_die_as_the_cluster_says(on_cluster, ray_head):
    store = on_cluster
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert any(c.value.startswith(f"Runs train on: Ray cluster at {ray_head.address}: 1 node, 2 CPUs, 1 GPU, ")
               for c in at.sidebar.caption), [c.value for c in at.sidebar.caption]
    assert any(ray_head.address in m.value and "Ray dashboard" in m.value for m in at.sidebar.markdown)

    start_from_the_page(at, 50, "first on ray", images=60000)  # minutes of work: both are stopped long before
    start_from_the_page(at, 50, "second on ray", images=60000)
    first, second = store.list_runs()
    assert first.on_cluster and second.on_cluster and first.cluster_job != second.cluster_job
    both_training = wait_until(lambda: all(run.status == RunStatus.RUNNING and run.step > 0 for run in store.list_runs()) and store.list_runs(),
                               timeout=150, every=0.5, message="both runs to train at the same time")
    assert [ray_state(ray_head, run) for run in both_training] == ["RUNNING", "RUNNING"]

    # A third waits in Ray's queue (both CPUs are taken), says so, and a stop cancels it with its job
    # (Ray ends a stopped job that waits once it would have started it: checked below).
    start_from_the_page(at, 1, "third waits", images=1000)
    third = store.list_runs()[2]
    assert any("Queued on the cluster" in i.value for i in at.info), [i.value for i in at.info]
    assert stop_run(store, third.id) == RunStatus.CANCELLED

    # Stop: at its next batch, keeping what it learnt; `ray job stop`: the run is interrupted.
    assert stop_run(store, first.id) == RunStatus.RUNNING
    result = ray_head.ray_cli("job", "stop", "--address", ray_head.address, second.cluster_job)
    assert result.returncode == 0, result.stderr
    wait_until(lambda: (reap_dead_runs(store), not store.get(second.id).active)[1], timeout=60, message="the killed run to be reaped")
    killed = store.get(second.id)
    assert killed.status == RunStatus.INTERRUPTED and f"its Ray job {second.cluster_job} stopped" in killed.error, killed.error
    stopped = wait_until(lambda: (run := store.get(first.id)).status != RunStatus.RUNNING and run, timeout=120, message="the stop")
    assert stopped.status == RunStatus.STOPPED and store.model_path(first.id).is_file() and stopped.test_acc > 0.5, stopped.error
    wait_until(lambda: ray_state(ray_head, third) not in cluster.ALIVE, timeout=60, message="the third run's Ray job to end")
    assert ray_state(ray_head, third) == "STOPPED" and store.get(third.id).status == RunStatus.CANCELLED

    # The page shows a cluster run's curves, streamed into PostgreSQL by its job.
    at.session_state["watch_run"] = second.id
    at.run()
    assert any("second on ray" in m.value for m in at.markdown)
    [chart] = [c for c in at.get("bidi_component") if c.proto.component_name == "fmnist.live_chart"]
    assert json.loads(chart.proto.json)["loss"]["data"][0]["x"], "the curves, with their per-batch points"
    assert store.batches(second.id) and store.get(second.id).step > 0


def test_a_search_runs_its_trials_as_ray_jobs(on_cluster):
    store = on_cluster
    space = SearchSpace(trials=3, minutes=None, epochs=1, images=2000, layers=(1, 1), width=(16, 64), seed=1)
    search_id = start_search(store, Actor.local(), space)
    done = wait_until(lambda: not (run := store.get(search_id)).active and run, timeout=170, every=1, message="the search")
    trials = [run for run in store.children(search_id) if run.kind == RunKind.TRIAL]
    assert done.status == RunStatus.FINISHED, (done.error, [(t.status, t.error) for t in trials])
    assert len(trials) == 3 and all(trial.on_cluster for trial in trials)
    assert all(trial.status == RunStatus.FINISHED and trial.best_val_acc is not None for trial in trials), [(t.status, t.error) for t in trials]
    study = load_study(store, search_id)
    assert sorted(t.user_attrs["run_id"] for t in study.trials) == [t.id for t in trials]
    assert all(t.state.name == "COMPLETE" and t.intermediate_values for t in study.trials), "each job reported its epochs to the study"


def test_the_cli_follows_a_cluster_run_that_asked_for_a_gpu_its_node_lacks(on_cluster, monkeypatch):
    monkeypatch.delenv("FMNIST_RAY_GPUS")  # the default: a GPU, since the cluster says it has one
    assert cluster.current().resources_per_run() == (1.0, 1.0)
    result = run_cli("train", "--layers", "16", "--epochs", "1", "--limit", "1000", timeout=180)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "queued on the cluster" in result.stderr
    [run] = on_cluster.list_runs()
    assert run.on_cluster and run.status == RunStatus.FAILED and run.spec.layers[0].units == 16
    assert "asked the cluster for a GPU (FMNIST_RAY_GPUS), but JAX finds none on its node" in run.error, run.error
    assert f"run {run.id} failed: " in result.stderr and json.loads(result.stdout.splitlines()[-1])["status"] == "failed"


def test_an_unreachable_ray_address_is_one_message_and_queues_nothing(home, monkeypatch):
    monkeypatch.setenv("FMNIST_RAY_ADDRESS", f"http://127.0.0.1:{free_port()}")
    result = run_cli("train", "--layers", "16", "--epochs", "1", "--limit", "500")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "FMNIST_RAY_ADDRESS=http://127.0.0.1:" in result.stderr and "cannot be reached" in result.stderr
    assert RunStore().list_runs() == [], "nothing queued that no cluster will train"
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert any("FMNIST_RAY_ADDRESS" in w.value for w in at.sidebar.warning)


def test_without_a_cluster_the_sidebar_says_runs_train_here(home, monkeypatch):
    monkeypatch.delenv("FMNIST_RAY_ADDRESS", raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    cores = cluster.local_cores()
    assert f"Runs train on: local, {cores} core{'s' * (cores != 1)}" in [c.value for c in at.sidebar.caption]
    assert not any("Ray dashboard" in m.value for m in at.sidebar.markdown)
