"""The search: its space, a small real search that prunes a bad trial, resuming after a kill, the CLI and the page."""

import json
import os
import signal

import pytest
from streamlit.testing.v1 import AppTest

from fmnist import jobs, studies
from fmnist.models import SpecError, dense_spec
from fmnist.runs import RunKind, RunStatus
from fmnist.search_space import SearchSpace, configurations, describe_size, suggest, validate_space
from fmnist.services import Actor, resume_search, start_search
from fmnist.store import RunStore
from fmnist.studies import best_trial_run, load_study, open_study
from fmnist.worker import reap_dead_runs, try_start

from helpers import APP, run_cli, wait_until

TINY = SearchSpace(layers=(1, 2), width=(16, 64), activations=("relu",), dropout=(0.0, 0.0), batch_norm=(False,),
                   learning_rate=(1e-5, 3e-3), batch_sizes=(64,), images=2000, epochs=3, trials=3, minutes=None)
GOOD = {"layers": 1, "width_1": 64, "activation": "relu", "batch_norm": False, "learning_rate": 3e-3, "batch_size": 64,
        "lr_schedule": "cosine"}
BAD = {**GOOD, "width_1": 16, "learning_rate": 1e-5}  # learns almost nothing in three epochs


def test_the_space_is_checked_and_counted():
    assert validate_space(SearchSpace()) == SearchSpace()
    for bad, message in (
        (dict(layers=(3, 2)), "layers"), (dict(width=(4, 64)), "width: from 8 to 1024"), (dict(activations=()), "choose at least one"),
        (dict(trials=0), "trials"), (dict(minutes=0), "minutes"), (dict(trials=None, minutes=None), "budget"),
        (dict(batch_sizes=(3,)), "batch_sizes"), (dict(images=50), "images"), (dict(val_split=0.0), "val_split"),
    ):
        with pytest.raises(SpecError, match=message):
            validate_space(SearchSpace(**{**SearchSpace().to_dict(), **bad}))
    small = SearchSpace(layers=(1, 2), width=(16, 17), activations=("relu", "tanh"), dropout=(0.0, 0.1), batch_norm=(False,),
                        batch_sizes=(32,))
    # widths 16 or 17: 2 one-layer + 4 two-layer stacks; × 2 activations × 3 dropouts
    assert configurations(small) == 6 * 2 * 3 == 36 and describe_size(small) == "36 stacks"
    assert describe_size(SearchSpace()).endswith("stacks") and "× 10^" in describe_size(SearchSpace())
    assert SearchSpace.from_dict(json.loads(json.dumps(small.to_dict()))) == small


def test_suggest_turns_an_optuna_trial_into_a_valid_spec(home):
    store = RunStore()
    study = open_study(store, 99, SearchSpace(conv_blocks=(0, 2)))
    for _ in range(20):
        spec = suggest(SearchSpace(conv_blocks=(0, 2)), study.ask())
        assert 1 <= len(spec.layers) <= 4 and all(32 <= layer.units <= 1024 for layer in spec.layers)
        assert len(spec.conv) <= 2 and spec.epochs == 6 and spec.val_split == 0.1


def test_a_small_search_prunes_a_bad_trial_and_never_scores_the_test_set(home, dataset, monkeypatch):
    from fmnist.search import run_search

    monkeypatch.setattr(studies, "STARTUP_TRIALS", 2)  # compare from the third trial on
    store = RunStore()
    search_id = jobs.SEARCH.create(store, TINY, name="tiny")
    assert try_start(store, search_id, max_parallel=1)
    study = open_study(store, search_id, TINY)
    for params in (GOOD, GOOD, BAD):
        study.enqueue_trial(params)
    ended = []
    summary = run_search(store, search_id, dataset, on_trial=lambda run, value: ended.append((run.id, run.status)))

    trials = store.children(search_id)
    assert [run.kind for run in trials] == [RunKind.TRIAL] * 3 and len(ended) == 3
    assert [run.status for run in trials] == [RunStatus.FINISHED, RunStatus.FINISHED, RunStatus.PRUNED]
    bad = trials[2]
    assert bad.spec.learning_rate == 1e-5 and len(store.epochs(bad.id)) < TINY.epochs, "its curve stops early"
    assert all(run.test_acc is None and run.test_loss is None for run in trials), "no trial scores the test set"
    assert not any(store.model_path(run.id).exists() or store.probs_path(run.id).exists() for run in trials)
    best = best_trial_run(store, search_id)
    assert summary["best_val_acc"] == best.best_val_acc == max(t.best_val_acc for t in trials[:2])
    assert (summary["trials"], summary["pruned"], summary["status"]) == (3, 1, "finished")
    assert store.get(search_id).status == RunStatus.FINISHED and store.get(search_id).best_val_acc == best.best_val_acc
    assert load_study(store, search_id).best_value == pytest.approx(best.best_val_acc)


def test_a_killed_search_is_interrupted_and_resumes_without_losing_a_trial(home):
    store = RunStore()
    space = SearchSpace(**{**TINY.to_dict(), "trials": 3, "epochs": 2})
    search_id = start_search(store, Actor.local(), space, name="killed")
    wait_until(lambda: any(run.status == RunStatus.FINISHED for run in store.children(search_id)), timeout=180,
               message="the first trial to finish")
    os.kill(store.get(search_id).pid, signal.SIGKILL)
    wait_until(lambda: (reap_dead_runs(store), not store.get(search_id).active)[1], timeout=30, message="the search to be reaped")
    assert store.get(search_id).status == RunStatus.INTERRUPTED
    finished_before = [run.id for run in store.children(search_id) if run.status == RunStatus.FINISHED]
    assert finished_before and not any(run.active for run in store.children(search_id))

    resume_search(store, Actor.local(), search_id)
    wait_until(lambda: store.get(search_id).status == RunStatus.FINISHED, timeout=240, message="the resumed search to finish")
    trials = store.children(search_id)
    assert set(finished_before) <= {run.id for run in trials if run.status == RunStatus.FINISHED}, "no finished trial lost"
    study = load_study(store, search_id)
    assert len([t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]) == 3, "the budget counts what it kept"
    with pytest.raises(ValueError, match="not an ended search"):
        store.requeue(finished_before[0])


def test_a_trial_its_search_created_but_never_claimed_goes_with_the_search(home):
    """The search's process was killed between creating a trial's run and claiming it."""
    store = RunStore()
    search_id = jobs.SEARCH.create(store, SearchSpace(**{**TINY.to_dict(), "trials": 3}), name="killed early")
    assert try_start(store, search_id, max_parallel=1)
    store.set_pid(search_id, 2**22 + 7, None)  # no such process
    orphan = store.create_run(dense_spec([32]), name="trial 2", kind=RunKind.TRIAL, parent_id=search_id)
    elsewhere = store.create_run(dense_spec([32]), name="someone's run")
    assert set(reap_dead_runs(store)) == {search_id, orphan}
    assert store.get(orphan).status == RunStatus.INTERRUPTED and store.get(elsewhere).status == RunStatus.QUEUED


def test_the_cli_search_prints_a_line_per_trial_and_a_final_json_line(home):
    result = run_cli("search", "--trials", "2", "--no-minutes", "--epochs", "1", "--limit", "1000", "--layers", "1,1",
                     "--width", "16,32", "--batch-sizes", "128", "--seed", "3", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert sum(line.startswith("trial #") for line in lines) == 2
    summary = json.loads(lines[-1])
    assert set(summary) >= {"search_id", "trials", "pruned", "best_val_acc", "best_spec"} and summary["trials"] == 2
    assert 1 <= len(summary["best_spec"]["layers"]) and summary["best_spec"]["batch_size"] == 128
    listed = [json.loads(line) for line in run_cli("runs", "--json").stdout.splitlines()]
    assert [run["kind"] for run in listed] == ["trial", "trial"]
    bad = run_cli("search", "--width", "4,64")
    assert bad.returncode == 2 and "width: from 8 to 1024" in bad.stderr and "Traceback" not in bad.stderr


def test_the_search_page(home):
    store = RunStore()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/search.py").run()
    assert not at.exception, at.exception
    assert "validation accuracy" in at.caption[0].value and "never on the test set" in at.caption[0].value
    assert at.metric[0].label == "The space holds" and at.metric[0].value == describe_size(SearchSpace())
    at.multiselect(key="search_activations").set_value([]).run()
    assert "This space cannot be searched: activations: choose at least one" in at.error[0].value
    assert at.button(key="search_start").disabled
    # A search with trials to show (as a process would have left them).
    search_id = jobs.SEARCH.create(store, TINY, name="shown")
    for i, (status, best) in enumerate(((RunStatus.FINISHED, 0.8), (RunStatus.PRUNED, 0.5)), start=1):
        trial = store.create_run(suggest_fixed(i), name=f"trial {i} of #{search_id}", kind=RunKind.TRIAL, parent_id=search_id)
        store.record_epoch(trial, 1, {"val_accuracy": best}, 1.0)
        store.finish(trial, status, train_s=1.0)
    store.finish(search_id, RunStatus.STOPPED)
    at.multiselect(key="search_activations").set_value(["relu"]).run()
    at.switch_page("pages/search.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["status"]) == ["pruned", "finished"] and list(table["best val accuracy"]) == [0.5, 0.8]
    assert at.button(key="search_train_best").label.startswith("Train the best (trial 1)")
    at.button(key="search_train_best").click().run()
    best = [run for run in store.list_runs() if run.name == f"best of search #{search_id}"]
    assert len(best) == 1 and best[0].kind == RunKind.TRAIN and best[0].train_limit is None and best[0].spec.epochs == 20
    store.request_stop(best[0].id)

    at.button(key="search_delete").click().run()
    at.button(key="search_delete_yes").click().run()
    assert not at.exception, at.exception
    assert [run.id for run in store.list_runs()] == [best[0].id], "the search and its trials are gone; the trained best stays"
    assert "No searches yet" in at.info[0].value


def suggest_fixed(i: int):
    from fmnist.models import dense_spec

    return dense_spec([16 * i], epochs=3)


def test_trials_train_in_parallel_as_far_as_the_queue_allows(home, monkeypatch):
    monkeypatch.setenv("FMNIST_MAX_PARALLEL", "2")
    store = RunStore()
    space = SearchSpace(**{**TINY.to_dict(), "trials": 4, "epochs": 2, "learning_rate": (1e-3, 3e-3)})
    search_id = start_search(store, Actor.local(), space, name="parallel")
    wait_until(lambda: store.get(search_id).status == RunStatus.FINISHED, timeout=300, message="the search to finish")
    trials = store.children(search_id)
    assert len(trials) == 4 and all(run.status in (RunStatus.FINISHED, RunStatus.PRUNED) for run in trials), "exactly its budget"
    assert len({run.pid for run in trials}) == 2, "two processes trained them"
    spans = sorted((run.started_at, run.ended_at) for run in trials)
    assert any(later_start < end for (_, end), (later_start, _) in zip(spans, spans[1:])), "two trials trained at once"
