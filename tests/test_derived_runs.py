"""A run's t-SNE projection and the exports of its model as runs of the queue (fmnist.jobs.projection,
fmnist.jobs.export): queued, made in a process of their own, with the status, progress, owner, Stop
and liveness every run has; what they make kept with the run they work on, and never listed as
models. One tiny MLP (1 epoch on 3,000 images) is trained once for the module. A projection made to
the end, t-SNE and all, is tests/test_inside.py's (a t-SNE takes tens of seconds on two cores)."""

import json
import os
import shutil
import signal
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_evaluation import train_tiny
from test_inside import Stages

from fmnist import class_view, jobs, services
from fmnist.access import Actor, Person
from fmnist.challenges import Constraints
from fmnist.cli import main
from fmnist.estimates import speeds_here
from fmnist.export_formats import Variant, kept_exports, latest_exports
from fmnist.jobs.process import run_in_this_process
from fmnist.leaderboard import training_runs
from fmnist.projection import PCA, TSNE, model_version, pixels_projection_path, run_projection_path, save_projection
from fmnist.runs import RunKind, RunStatus
from fmnist.store import RunStore
from fmnist.worker import process_alive, reap_dead_runs, this_process, try_start

from helpers import APP, wait_until

TEACHER = Person("class:hopper", "Ms Hopper", admin=True)


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory, dataset):
    home = tmp_path_factory.mktemp("derived") / "home"
    return home, train_tiny(RunStore(home), dataset, (32,), "tiny")


@pytest.fixture
def trained(trained_home, home):
    source, run_id = trained_home
    shutil.copytree(source, home)
    return RunStore(home), run_id


def ended(store: RunStore, run_id: int, timeout: float = 120):
    return wait_until(lambda: (run := store.get(run_id)) is not None and not run.active and run, timeout=timeout, every=0.2,
                      message=f"run {run_id} to end")


# --- queued, made, kept ---


def test_an_export_is_a_queued_run_that_keeps_its_file_and_card_with_the_run(trained, dataset):
    store, run_id = trained
    export_id = services.export(store, Actor(TEACHER), run_id, Variant("onnx"), process=this_process())
    assert (store.get(export_id).status, store.get(export_id).name) == (RunStatus.QUEUED, f"ONNX export of #{run_id}")
    stages = Stages()
    run_in_this_process(store, export_id, progress=stages, dataset=dataset)
    run = store.get(export_id)
    assert (run.status, run.owner, run.parent_id, run.pid) == (RunStatus.FINISHED, TEACHER.id, run_id, os.getpid()), run.error
    assert run.fraction_done() == 1.0 and run.stage == {"stage": "done", "fraction": 1.0} and run.started_at <= run.ended_at
    assert [stage for stage, _ in stages.seen] == ["starting", "loading the model and the Keras model's answers", "converting to ONNX",
                                                   "checking it in onnxruntime on 1,000 test images", "keeping it with its model card"]
    card = kept_exports(store, run_id)["onnx"]
    assert run.result["check"] == card["check"] and card["check"]["argmax_agreement"] >= 0.995
    assert latest_exports(store, run_id) == {"onnx": run}


def test_an_export_that_fails_says_why_on_its_run_and_keeps_nothing(trained, dataset):
    store, run_id = trained
    export_id = services.export(store, Actor.local(), run_id, Variant("litert"), process=this_process())
    store.model_path(run_id).write_bytes(b"not a keras file")  # damaged after it was queued
    run_in_this_process(store, export_id, dataset=dataset)
    run = store.get(export_id)
    assert run.status == RunStatus.FAILED and "unreadable" in run.error and not run.error.startswith("ModelFileError")
    assert kept_exports(store, run_id) == {}


def test_the_command_lines_project_is_a_projection_run_too(trained, capsys):
    """`python -m fmnist project RUN_ID` queues it and makes it in its own process; its t-SNEs kept already
    (a real one is tests/test_inside.py's), it computes the rest (the PCA) and says so."""
    store, run_id = trained
    rng = np.random.default_rng(0)
    save_projection(run_projection_path(store, run_id, TSNE), rng.normal(size=(10000, 2)), model_version(store, run_id), layer="dense_1")
    save_projection(pixels_projection_path(store, TSNE), rng.normal(size=(10000, 2)))
    assert main(["project", str(run_id)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = store.get(printed["projection_run"])
    assert (printed["run_id"], printed["seconds"], run.kind, run.status) == (run_id, {}, "projection", "finished")
    assert run_projection_path(store, run_id, PCA).is_file()
    assert main(["project", "999"]) == 2 and "there is no run 999" in capsys.readouterr().err


# --- Stop, and a process that dies ---


def test_stop_cancels_a_queued_one_and_ends_a_running_one_at_its_next_stage_keeping_nothing(trained, dataset):
    store, run_id = trained
    queued = services.export(store, Actor.local(), run_id, Variant("onnx"), process=this_process())
    assert services.stop(store, Actor.local(), queued) == RunStatus.CANCELLED
    running = services.start_projection(store, Actor.local(), run_id, process=this_process())
    assert try_start(store, running, max_parallel=1)
    assert services.stop(store, Actor.local(), running) == RunStatus.RUNNING
    assert jobs.kind_of(RunKind.PROJECTION).execute(store, store.get(running), dataset=dataset)["status"] == RunStatus.STOPPED
    assert store.get(running).error is None and not run_projection_path(store, run_id, TSNE).exists()


def test_the_pages_projection_runs_in_a_process_of_its_own_which_stops_when_asked(trained):
    """As the Inside page starts it: `python -m fmnist.jobs RUN_ID`, spawned by the worker."""
    store, run_id = trained
    projection_id = services.start_projection(store, Actor.local(), run_id)
    running = wait_until(lambda: (run := store.get(projection_id)).status != RunStatus.QUEUED and run, timeout=60, message="its start")
    assert running.status == RunStatus.RUNNING and running.pid != os.getpid() and process_alive(running.pid, running.pid_started)
    services.stop(store, Actor.local(), projection_id)
    stopped = ended(store, projection_id)
    assert stopped.status == RunStatus.STOPPED, stopped.error
    assert "run" not in stopped.result.get("seconds", {}) and not run_projection_path(store, run_id, TSNE).exists()
    assert (store.run_dir(projection_id) / "train.log").is_file(), "its log, in its own folder"


def test_an_export_whose_process_is_killed_is_marked_interrupted(trained):
    store, run_id = trained
    export_id = services.export(store, Actor.local(), run_id, Variant("saved_model"))
    running = wait_until(lambda: (run := store.get(export_id)).status != RunStatus.QUEUED and run, timeout=60, message="its start")
    os.kill(running.pid, signal.SIGKILL)  # the process this test's service call started
    wait_until(lambda: not process_alive(running.pid, running.pid_started), timeout=30, message="the process to die")
    assert reap_dead_runs(store) == [export_id]
    run = store.get(export_id)
    assert run.status == RunStatus.INTERRUPTED and "its process ended without finishing" in run.error
    assert kept_exports(store, run_id) == {}


# --- never a model ---


def test_projections_and_exports_are_never_listed_as_models(trained, monkeypatch, capsys):
    """Every place that lists runs as models: the Leaderboard, Evaluate, Inside, Classify, a challenge's
    submissions, the class leaderboard, the times Build & Train estimates from, the command line's `runs`.
    Each finished here as if it had scored best, so that one let through would show."""
    store, run_id = trained
    for kind, settings in ((RunKind.PROJECTION, {}), (RunKind.EXPORT, {"variant": "onnx"})):
        job_id = jobs.kind_of(kind).create(store, run_id, settings)
        assert try_start(store, job_id, max_parallel=10)
        store.finish(job_id, RunStatus.FINISHED, test_acc=0.999, test_loss=0.001, train_s=0.5)
    runs = store.list_runs()
    assert len(runs) == 3 and [run.id for run in training_runs(runs)] == [run_id]
    assert [row["run"] for row in class_view.leaderboard_rows(runs)] == [run_id]
    assert len(speeds_here(runs)) == len(speeds_here(training_runs(runs)))
    assert main(["runs", "--json"]) == 0
    assert [json.loads(line)["run_id"] for line in capsys.readouterr().out.splitlines()] == [run_id]
    services.open_challenge(store, Actor.local(), "Beat 0.8", Constraints(), time.time() + 3600, 3)

    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/leaderboard.py").run()
    assert not at.exception and at.dataframe[0].value["run"].tolist() == [run_id], at.exception
    for page, key in (("evaluate", "eval_run"), ("inside", "inside_run"), ("classify", "classify_run"), ("challenge", "ch_run")):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        picker = at.selectbox(key=key)
        assert picker.value == run_id and len(picker.options) == 1, (page, picker.options)
