"""A Ray cluster's faults under training runs, on the real servers the cluster tests start
(tests/servers.py): a worker node that dies and the head restarted mid-run, each run ending
interrupted with Ray's reason while finished runs stay as they were; a cross-validation job trained
as a Ray job; and FMNIST_RAY_ADDRESS winning over Ray's own address variables."""

import json
import os

import numpy as np
import pytest

from fmnist import cluster
from fmnist.models import dense_spec
from fmnist.runs import RunKind, RunStatus
from fmnist.services import Actor, start_training
from fmnist.training import train_run
from fmnist.worker import reap_dead_runs, try_start

from helpers import run_cli, wait_until
from servers import RayWorkerNode, free_port

NODE_RESOURCE = "fmnist_test_node"  # offered by the test's worker node only
LONG = dense_spec([64], epochs=50)  # minutes of work on 60,000 images: every fault comes long before its end


def finished_run(store, dataset) -> int:
    """A small run trained in this process, that no fault may touch."""
    run_id = store.create_run(dense_spec([16], epochs=1), name="finished before", train_limit=1000)
    assert try_start(store, run_id, 1)
    assert train_run(store, run_id, dataset)["status"] == RunStatus.FINISHED
    return run_id


def training(store, *run_ids) -> bool:
    return all((run := store.get(run_id)).status == RunStatus.RUNNING and run.step > 0 for run_id in run_ids)


def reaped(store, run_id):
    reap_dead_runs(store)
    return not (run := store.get(run_id)).active and run


def test_a_dead_node_then_a_restarted_head_interrupt_their_runs_saying_why_and_keep_finished_runs(on_cluster, ray_head, dataset,
                                                                                                monkeypatch):
    store = on_cluster
    kept = finished_run(store, dataset)
    finished_before = store.get(kept)
    on_head = start_training(store, Actor.local(), LONG, name="on the head", train_limit=60000)
    monkeypatch.setenv(cluster.RESOURCES_ENV, json.dumps({NODE_RESOURCE: 1}))  # only the worker node has it
    on_node = start_training(store, Actor.local(), LONG, name="on the worker node", train_limit=60000)
    monkeypatch.delenv(cluster.RESOURCES_ENV)
    node = RayWorkerNode(ray_head, NODE_RESOURCE)  # Ray held the run in its queue until a node offers the resource
    try:
        wait_until(lambda: training(store, on_head, on_node), timeout=120, every=0.5, message="both runs to train")
        head = cluster.current()
        [worker_node] = [n["id"] for n in head.nodes() if NODE_RESOURCE in n["resources"]]
        assert head.client.get_job_info(store.get(on_node).cluster_job).driver_node_id == worker_node
        assert head.client.get_job_info(store.get(on_head).cluster_job).driver_node_id != worker_node

        # The worker node dies (its raylet, workers and the run's process, killed at once): Ray notices
        # (its health checks) and fails the job, naming the dead node; the run is interrupted with that.
        node.kill()
        dead = wait_until(lambda: reaped(store, on_node), timeout=90, every=1, message="the dead node's run to be interrupted")
        assert dead.status == RunStatus.INTERRUPTED, dead.error
        assert f"its Ray job {dead.cluster_job} failed" in dead.error and "node has died" in dead.error, dead.error
        assert worker_node in dead.error, "the reason names the node"
        assert training(store, on_head), "the head's run trains on"

        # The head goes down: while it cannot be reached nothing is marked (its runs may be training) ...
        ray_head.stop()
        assert reap_dead_runs(store) == [] and store.get(on_head).status == RunStatus.RUNNING
        # ... and it comes back without its jobs (Ray keeps none across a restart; its processes ended with it).
        ray_head.start()
        restarted = wait_until(lambda: reaped(store, on_head), timeout=60, every=1, message="the head's run to be interrupted")
        assert restarted.status == RunStatus.INTERRUPTED, restarted.error
        assert f"its Ray job {restarted.cluster_job} is unknown" in restarted.error and "head restarted" in restarted.error, restarted.error
    finally:
        node.close()
    assert store.get(kept) == finished_before and store.model_path(kept).is_file(), "a finished run stays as it was"


def test_a_cross_validation_job_trains_as_a_ray_job_and_its_scores_land_in_the_store(on_cluster, dataset):
    store = on_cluster
    run_id = finished_run(store, dataset)
    # Ray's own address variables, pointing elsewhere, change nothing (FMNIST_RAY_ADDRESS wins).
    elsewhere = f"http://127.0.0.1:{free_port()}"
    result = run_cli("cv", str(run_id), "--folds", "2", timeout=180, env={"RAY_ADDRESS": elsewhere, "RAY_API_SERVER_ADDRESS": elsewhere})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    [job] = store.children(run_id)
    assert job.kind == RunKind.CV and job.on_cluster and job.status == RunStatus.FINISHED, job.error
    wait_until(lambda: cluster.current().job_state(job.cluster_job)[0] == "SUCCEEDED", timeout=30, message="its Ray job to end")
    assert len(job.scores) == 2 and all(0.3 < score <= 1 for score in job.scores)
    assert store.get(run_id).cv_mean == pytest.approx(np.mean(job.scores)), "the mean goes on the run it repeats"
    assert [e["epoch"] for e in store.epochs(job.id)] == [1, 2], "each fold's epoch, streamed by the job"
    assert json.loads(result.stdout.splitlines()[-1])["scores"] == job.scores


def test_fmnist_ray_address_wins_over_rays_own_address_variables(on_cluster, ray_head, monkeypatch):
    elsewhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("RAY_ADDRESS", elsewhere)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", elsewhere)
    cluster.cluster_at.cache_clear()  # a client made now, with both set
    assert cluster.where_runs_train().startswith(f"Ray cluster at {ray_head.address}: 1 node, 2 CPUs"), "not the address elsewhere"
    assert cluster.current().runs_at_once() == 2
    assert os.environ["RAY_ADDRESS"] == os.environ["RAY_API_SERVER_ADDRESS"] == elsewhere, "put back for whatever else reads them"


def test_a_wrong_resources_setting_is_one_message_and_writes_no_run(on_cluster):
    for wrong in ("gpu_node", '{"gpu_node": -1}', '{"CPU": 2}', '["gpu_node"]'):
        result = run_cli("train", "--layers", "16", "--epochs", "1", "--limit", "500", env={cluster.RESOURCES_ENV: wrong}, timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert f"{cluster.RESOURCES_ENV}={wrong!r}: a JSON object of custom resource names and amounts" in result.stderr, result.stderr
    assert on_cluster.list_runs() == [], "nothing written"


def test_a_cluster_run_that_writes_nothing_while_the_head_cannot_be_reached_is_lost_after_a_while(home, postgres, monkeypatch):
    monkeypatch.setenv("FMNIST_DB", postgres.new_database())
    monkeypatch.setenv(cluster.ADDRESS_ENV, f"http://127.0.0.1:{free_port()}")  # a head that never comes back
    from fmnist.store import RunStore

    store = RunStore()
    quiet, writing = (store.create_run(dense_spec([16], epochs=1), name=name) for name in ("quiet", "writing"))
    for run_id in (quiet, writing):
        store.set_cluster_job(run_id, cluster.new_submission_id(run_id))
        assert try_start(store, run_id, None)
    assert reap_dead_runs(store) == [], "an outage of a few seconds marks nothing"
    monkeypatch.setenv(cluster.LOST_ENV, "1")

    def writes_and_reaps() -> list[int]:
        store.record_progress(writing, 1, 1, 10, 100.0, [])
        return reap_dead_runs(store)

    assert wait_until(writes_and_reaps, timeout=10, every=0.2, message="the quiet run to be taken for lost") == [quiet]
    lost = store.get(quiet)
    assert lost.status == RunStatus.INTERRUPTED and f"its Ray job {lost.cluster_job} is lost" in lost.error, lost.error
    assert cluster.ADDRESS_ENV in lost.error and cluster.LOST_ENV in lost.error
    assert store.get(writing).status == RunStatus.RUNNING, "a run that still writes its progress may well be training"
