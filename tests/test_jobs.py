"""Cross-validation and seed-spread jobs: the spec of a run trained again on other splits or seeds."""

import numpy as np
import pytest

from fmnist import jobs
from fmnist.data import stratified_folds
from fmnist.models import dense_spec
from fmnist.services import Actor, start_repeat
from fmnist.store import RunStore
from fmnist.training import run_job, train_run
from fmnist.worker import try_start

from helpers import run_cli, wait_until


def test_stratified_folds_are_disjoint_complete_and_balanced():
    labels = np.repeat(np.arange(10), 53)  # 53 of each class: folds of 10 or 11 per class
    folds = stratified_folds(labels, 5, seed=1)
    joined = np.concatenate(folds)
    assert len(joined) == len(labels) and len(np.unique(joined)) == len(labels)
    for fold in folds:
        counts = np.bincount(labels[fold], minlength=10)
        assert counts.min() >= 10 and counts.max() <= 11
    assert not np.array_equal(folds[0], stratified_folds(labels, 5, seed=2)[0]), "the seed shuffles"
    with pytest.raises(ValueError, match="folds"):
        stratified_folds(labels, 1)


@pytest.fixture
def trained_run(home, dataset):
    store = RunStore()
    run_id = store.create_run(dense_spec([64], epochs=1), train_limit=1500)
    try_start(store, run_id, 1)
    assert train_run(store, run_id, dataset)["status"] == "finished"
    return store, run_id


def test_cross_validation_scores_each_fold_and_puts_mean_and_std_on_the_run(trained_run, dataset):
    store, run_id = trained_run
    job_id = jobs.CV.create(store, run_id, 3)
    assert try_start(store, job_id, 1)
    summary = run_job(store, job_id, dataset)
    assert summary["status"] == "finished", store.get(job_id).error
    scores = summary["scores"]
    assert len(scores) == 3 and all(0.5 < s <= 1 for s in scores)
    run = store.get(run_id)
    assert run.cv_mean == pytest.approx(np.mean(scores)) and run.cv_std == pytest.approx(np.std(scores))
    assert [e["epoch"] for e in store.epochs(job_id)] == [1, 2, 3], "the folds' epochs follow each other"
    assert store.get(job_id).fraction_done() == 1.0


def test_seed_spread(trained_run, dataset):
    store, run_id = trained_run
    job_id = jobs.SEEDS.create(store, run_id, 2)
    try_start(store, job_id, 1)
    summary = run_job(store, job_id, dataset)
    assert summary["status"] == "finished", store.get(job_id).error
    run = store.get(run_id)
    assert len(summary["scores"]) == 2
    assert run.seeds_mean == pytest.approx(np.mean(summary["scores"])) and run.seeds_std == pytest.approx(np.std(summary["scores"]))
    assert run.cv_mean is None


def test_jobs_reject_bad_counts_and_unknown_runs(trained_run):
    store, run_id = trained_run
    for kind, repeats in (("cv", 1), ("cv", 21), ("seeds", 0)):
        with pytest.raises(ValueError):
            jobs.kind_of(kind).create(store, run_id, repeats)
    with pytest.raises(ValueError, match="no run 99"):
        jobs.CV.create(store, 99, 5)
    assert run_cli("cv", "99").returncode == 2


def test_stopping_a_job_keeps_the_folds_already_scored(home):
    store = RunStore()
    run_id = store.create_run(dense_spec([128], epochs=15), train_limit=6000)
    store.finish(run_id, "finished")
    job_id = start_repeat(store, Actor.local(), run_id, "cv", 4)
    wait_until(lambda: store.get(job_id).scores, timeout=180, message="the first fold's score")
    store.request_stop(job_id)
    job = wait_until(lambda: (j := store.get(job_id)).status not in ("queued", "running") and j, timeout=60, message="the job to stop")
    assert job.status == "stopped"
    assert 1 <= len(job.scores) < 4
    assert store.get(run_id).cv_mean == pytest.approx(np.mean(job.scores))
