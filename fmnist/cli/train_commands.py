"""Training from the command line: `train` and `seed-table`. A run this command creates trains in this
process (or as a Ray job this process follows): fmnist.jobs.process, as every run's own process."""

import json
import sys

from fmnist import services
from fmnist.backends import SETTING_ENV, SETTINGS
from fmnist.cli.args import add_spec_flags, positive_int, spec_from_args
from fmnist.cli.terminal import format_table, queue_printer
from fmnist.console import ProgressBar, print_trial
from fmnist.jobs.process import exit_code, run_here_or_on_cluster, say
from fmnist.models import SEED_STACKS, SEED_TEST_ACCURACY, SEED_TEST_LOSS, dense_spec
from fmnist.runs import RunStatus
from fmnist.services import Actor
from fmnist.store import open_store
from fmnist.worker import this_process


def add_train(sub) -> None:
    train = sub.add_parser("train", help="train a dense stack (waits its turn if another run is training)")
    add_spec_flags(train)
    train.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    train.add_argument("--name", help="a name for the leaderboard")
    train.add_argument("--backend", choices=SETTINGS,
                       help=f"the Keras backend that trains it; auto: JAX for dense stacks, TensorFlow with conv blocks or "
                            f"augmentation (default: ${SETTING_ENV}, else auto)")
    train.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    store = open_store()
    run_id = services.start_training(store, Actor.local(), spec_from_args(args), name=args.name or args.preset, train_limit=args.limit,
                                     backend_setting=args.backend, process=this_process())
    summary = train_here(store, run_id)
    if summary["status"] == RunStatus.FAILED:
        print(f"run {run_id} failed: {store.get(run_id).error}", file=sys.stderr)
    print(json.dumps(summary))
    return exit_code(summary)


def train_here(store, run_id: int) -> dict:
    """Train a run this command created, here or as a Ray job, with its progress on stderr."""
    progress = ProgressBar()
    try:
        return run_here_or_on_cluster(store, run_id, progress=progress, on_wait=queue_printer(store, run_id), on_trial=print_trial, say=say)
    finally:
        progress.close()


def add_seed_table(sub) -> None:
    seed = sub.add_parser("seed-table", help="train the seed notebook's four stacks and compare with its figures")
    seed.add_argument("--epochs", type=positive_int, default=10)
    seed.add_argument("--batch-size", type=positive_int, default=32)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    seed.set_defaults(func=cmd_seed_table)


def cmd_seed_table(args) -> int:
    store = open_store()
    rows = []
    for name, widths in SEED_STACKS.items():
        spec = dense_spec(widths, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
        run_id = services.start_training(store, Actor.local(), spec, name=name, train_limit=args.limit, process=this_process())
        print(f"{name}: run {run_id}", file=sys.stderr)
        summary = train_here(store, run_id)
        rows.append({
            "stack": "-".join(map(str, widths)), "params": summary["params"],
            "test_loss": summary["test_loss"], "test_acc": summary["test_acc"],
            "seed_test_loss": SEED_TEST_LOSS[widths], "seed_test_acc": SEED_TEST_ACCURACY[widths],
            "diff_points": None if summary["test_acc"] is None else round(100 * (summary["test_acc"] - SEED_TEST_ACCURACY[widths]), 2),
            "run_id": run_id, "status": summary["status"],
        })
    print(format_table(rows, list(rows[0])))
    return 0 if all(r["status"] == RunStatus.FINISHED for r in rows) else 1
