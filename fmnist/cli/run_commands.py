"""The store's runs: `runs` (the leaderboard), `stop`, `code` (a run as a script), `advise` (the coach),
the jobs on a trained run's spec (`cv`, `seeds`) and its t-SNE (`project`).
`runs` and `stop` never load Keras."""

import json
import sys

from fmnist import services
from fmnist.cli.args import positive_int
from fmnist.cli.terminal import format_table
from fmnist.cli.train_commands import train_here
from fmnist.jobs.process import exit_code
from fmnist.models import stack_name
from fmnist.runs import RunKind, RunStatus
from fmnist.services import Actor
from fmnist.store import open_store
from fmnist.worker import reap_dead_runs, this_process


def add_runs(sub) -> None:
    runs = sub.add_parser("runs", help="the leaderboard")
    runs.add_argument("--json", action="store_true", help="one JSON object per run")
    runs.set_defaults(func=cmd_runs)


def cmd_runs(args) -> int:
    from fmnist.leaderboard import mean_and_spread

    store = open_store()
    reap_dead_runs(store)
    runs = [run for run in store.list_runs() if run.kind == RunKind.TRAIN]
    if args.json:  # the trials of searches too (kind "trial"), for scripts
        for run in [run for run in store.list_runs() if run.kind in (RunKind.TRAIN, RunKind.TRIAL)]:
            print(json.dumps({**run.summary(), "stack": stack_name(run.spec), "created_at": run.created_at}))
        return 0
    if not runs:
        print("No runs yet. Train one: python -m fmnist train --layers 128,64 --epochs 10")
        return 0
    rows = [{
        **run.summary(), "stack": stack_name(run.spec), "epochs": f"{run.epoch}/{run.spec.epochs}",
        "cv": mean_and_spread(run.cv_mean, run.cv_std), "seeds": mean_and_spread(run.seeds_mean, run.seeds_std),
    } for run in runs]
    rows.sort(key=lambda r: -(r["test_acc"] or -1))
    columns = ["run_id", "name", "stack", "params", "epochs", "status", "test_loss", "test_acc", "cv", "seeds", "train_s", "samples_per_s",
               "backend"]
    print(format_table(rows, columns))
    return 0


def add_stop(sub) -> None:
    stop = sub.add_parser("stop", help="stop a running run (it keeps what it learnt) or cancel a queued one")
    stop.add_argument("run_id", type=int)
    stop.set_defaults(func=cmd_stop)


def cmd_stop(args) -> int:
    status = services.stop(open_store(), Actor.local(), args.run_id)  # no such run: an error, exit 2
    messages = {
        RunStatus.CANCELLED: f"run {args.run_id} was queued: cancelled",
        RunStatus.RUNNING: f"run {args.run_id} will stop at its next batch and keep what it learnt",
    }
    print(messages.get(status, f"run {args.run_id} is already {status}"))
    return 0


def add_code(sub) -> None:
    code = sub.add_parser("code", help="a run as a standalone script (or notebook) in plain Keras: train it yourself, anywhere")
    code.add_argument("run_id", type=int)
    code.add_argument("--notebook", action="store_true", help="a Jupyter notebook instead of a script")
    code.add_argument("--out", help="write it to this file (default: print it)")
    code.set_defaults(func=cmd_code)


def cmd_code(args) -> int:
    from fmnist.run_code import code_of

    text = code_of(open_store(), args.run_id, as_notebook=args.notebook)  # CodeError (a ValueError): one line, exit 2
    if args.out:
        with open(args.out, "w") as file:
            file.write(text)
        print(f"run {args.run_id}: written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_advise(sub) -> None:
    advise = sub.add_parser("advise", help="what a run's curves say (overfitting, underfitting, learning rate, epochs, size): one JSON line")
    advise.add_argument("run_id", type=int)
    advise.set_defaults(func=cmd_advise)


def cmd_advise(args) -> int:
    from fmnist.coach import advice_of

    print(json.dumps(advice_of(open_store(), args.run_id)))  # CoachError (a ValueError): one line, exit 2
    return 0


def add_cv(sub) -> None:
    cv = sub.add_parser("cv", help="stratified k-fold cross-validation of a run's spec on the training images")
    cv.add_argument("run_id", type=int)
    cv.add_argument("--folds", type=int, default=5)
    cv.set_defaults(func=cmd_job)


def add_seeds(sub) -> None:
    seeds = sub.add_parser("seeds", help="train a run's spec again with N seeds: its test accuracy's spread")
    seeds.add_argument("run_id", type=int)
    seeds.add_argument("--n", type=positive_int, default=3)
    seeds.set_defaults(func=cmd_job)


def cmd_job(args) -> int:
    kind, repeats = (RunKind.CV, args.folds) if args.command == "cv" else (RunKind.SEEDS, args.n)
    store = open_store()
    job_id = services.start_repeat(store, Actor.local(), args.run_id, kind, repeats, process=this_process())
    summary = train_here(store, job_id)
    print(json.dumps(summary))
    return exit_code(summary)


def add_project(sub) -> None:
    project = sub.add_parser("project", help="a run's test images in 2-D (PCA and t-SNE of its last hidden layer), kept with the run")
    project.add_argument("run_id", type=int)
    project.set_defaults(func=cmd_project)


def cmd_project(args) -> int:
    """A run's test images in 2-D (PCA, t-SNE), kept in its folder where the Inside page shows them: a run
    of kind projection, queued and computed in this process (the page's runs in a process of its own)."""
    store = open_store()
    projection_id = services.start_projection(store, Actor.local(), args.run_id, process=this_process())  # no model: exit 2
    print(f"run {args.run_id}'s t-SNE: run {projection_id}", file=sys.stderr)
    train_here(store, projection_id)
    projection = store.get(projection_id)
    if projection.status != RunStatus.FINISHED:
        print(f"error: the t-SNE {projection.status}" + (f": {projection.error}" if projection.error else ""), file=sys.stderr)
        return 2
    print(json.dumps({"run_id": args.run_id, "projection_run": projection_id, "seconds": projection.result.get("seconds", {})}))
    return 0
