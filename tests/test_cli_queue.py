"""`python -m fmnist queue` (fmnist/cli/queue_commands.py): a paused queue holds two command-line
trainings in their places, `queue` shows each with its place and why it waits, `queue resume` lets
them train in that order; the waiting command says where its run stands."""

import json
import subprocess
import sys

import pytest

from fmnist.cli import main
from fmnist.runs import RunStatus
from fmnist.store import RunStore

from helpers import ROOT, wait_until


def fmnist(capsys, *args) -> str:
    """`python -m fmnist ARGS` in this process (the trainings run as processes of their own): its output."""
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


TINY = ["train", "--layers", "16", "--epochs", "1", "--limit", "1000", "--backend", "jax"]


def test_a_paused_queue_holds_trainings_in_their_places_and_resume_trains_them_in_order(home, capsys):
    store = RunStore(home)
    fmnist(capsys, "queue", "pause")
    assert store.queue_paused()["by"] == "this machine"
    first = subprocess.Popen([sys.executable, "-m", "fmnist", *TINY, "--name", "first"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_until(lambda: [run.name for run in store.list_runs()] == ["first"], timeout=60, message="the first run queued")
    second = subprocess.Popen([sys.executable, "-m", "fmnist", *TINY, "--name", "second"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(store.list_runs()) == 2 and all(run.pid for run in store.list_runs()), timeout=60,
                   message="both runs waiting in their processes")
        assert "The queue is paused (by this machine)" in fmnist(capsys, "queue")
        rows = [json.loads(line) for line in fmnist(capsys, "queue", "--json").splitlines()]
        assert [(row["name"], row["status"]) for row in rows] == [("first", "queued"), ("second", "queued")]
        assert rows[0]["where"].startswith("next in line; the queue is paused (by this machine)")
        assert rows[1]["where"].startswith("2nd in line; the queue is paused")

        fmnist(capsys, "queue", "resume")
        assert store.queue_paused() is None
        said = {}
        for name, process in (("first", first), ("second", second)):
            out, said[name] = process.communicate(timeout=180)
            assert process.returncode == 0, said[name][-2000:]
            assert json.loads(out.strip().splitlines()[-1])["status"] == "finished"
        assert "queued: next in line; the queue is paused (by this machine)" in said["first"], said["first"][-2000:]
        assert "queued: 2nd in line; the queue is paused" in said["second"], said["second"][-2000:]
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
    runs = {run.name: run for run in store.list_runs()}
    assert runs["first"].status == runs["second"].status == RunStatus.FINISHED
    assert runs["first"].started_at < runs["second"].started_at, "first queued, first started"
    assert fmnist(capsys, "queue").strip() == "Nothing running or queued."


def test_pause_and_resume_change_nothing_twice_and_a_wrong_action_is_refused(home, capsys):
    store = RunStore(home)
    fmnist(capsys, "queue", "pause")
    since = store.queue_paused()["since"]
    fmnist(capsys, "queue", "pause")
    assert store.queue_paused()["since"] == since, "pausing a paused queue changes nothing"
    fmnist(capsys, "queue", "resume")
    fmnist(capsys, "queue", "resume")
    assert store.queue_paused() is None
    with pytest.raises(SystemExit) as refused:
        main(["queue", "stop"])
    assert refused.value.code == 2 and "invalid choice: 'stop'" in capsys.readouterr().err
