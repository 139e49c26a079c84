"""Training from the command line: `train` and `seed-table`, and how a run this process made gets trained,
here or as a Ray job (cv, seeds and search train through it too)."""

import argparse
import json
import os
import sys
import time
from dataclasses import replace

from fmnist import cluster
from fmnist.backends import SETTING_ENV, SETTINGS, default_setting, resolve
from fmnist.cli.args import add_spec_flags, positive_int, spec_from_args
from fmnist.cli.terminal import ProgressBar, format_table, print_queued, print_trial
from fmnist.models import SEED_STACKS, SEED_TEST_ACCURACY, SEED_TEST_LOSS, ConvBlock, dense_spec
from fmnist.runs import RunKind, RunStatus
from fmnist.store import RunStore, open_store
from fmnist.worker import reap_dead_runs, submit, this_process, wait_for_slot


def backend_for(run) -> str:
    """The backend a run's setting picks for its spec. A search's trials train in its own processes,
    so for a search auto goes by what it may try: TensorFlow when its space allows conv blocks."""
    spec = run.spec
    if run.kind == RunKind.SEARCH and run.space and run.space.get("conv_blocks", (0, 0))[1] > 0:
        spec = replace(spec, conv=(ConvBlock(16),))
    return resolve(spec, run.backend_setting)


def missing_gpu(backend: str) -> str | None:
    """In a run's Ray job that asked for a GPU: why it cannot have one, when Keras finds none on its node."""
    from fmnist.backends import LABELS
    from fmnist.keras_start import device_name
    from fmnist.machine import cpu_name

    asked = cluster.in_cluster_job() and cluster.resource_setting(cluster.GPUS_ENV, 0.0) > 0
    if not asked or device_name(backend) != cpu_name():
        return None
    import socket

    return (f"the run asked the cluster for a GPU ({cluster.GPUS_ENV}), but {LABELS[backend]} finds none on its node "
            f"{socket.gethostname()} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): install the "
            f"CUDA builds there (./setup.sh --gpu), or set {cluster.GPUS_ENV}=0 to train on CPUs")


def train_in_this_process(store: RunStore, run_id: int) -> dict:
    if not wait_for_slot(store, run_id, on_wait=print_queued):
        return store.get(run_id).summary()
    # Keras loads here, once the run may start (`runs`, `stop` and a queued wait stay light), on the
    # backend the run's setting picks: Keras fixes its backend when it is first imported.
    from fmnist.keras_start import start_keras

    run = store.get(run_id)
    kind = run.kind
    backend = start_keras(backend_for(run))
    missing = missing_gpu(backend)
    if missing:
        store.finish(run_id, RunStatus.FAILED, error=missing)
        return store.get(run_id).summary()
    if kind == RunKind.SEARCH:
        from fmnist.search import run_search

        return run_search(store, run_id, on_trial=print_trial)
    if kind == RunKind.TRIAL:  # a search's trial, as its own Ray job (fmnist.search.run_on_cluster)
        from fmnist.search import train_submitted_trial

        return train_submitted_trial(store, run_id)
    from fmnist.training import run_job, train_run

    run = train_run if kind == RunKind.TRAIN else run_job
    progress = ProgressBar()
    try:
        return run(store, run_id, progress=progress)
    finally:
        progress.close()


def train_here_or_on_cluster(store: RunStore, run_id: int) -> dict:
    """Train a run this command created: in this process, or with FMNIST_RAY_ADDRESS set as a Ray job
    whose progress this process shows until it ends (a search runs here either way; its trials go
    to the cluster)."""
    head = cluster.current()
    if head is None or store.get(run_id).kind == RunKind.SEARCH:
        return train_in_this_process(store, run_id)
    submit(store, head, run_id)
    progress, said_queued = ProgressBar(), False
    try:
        while (run := store.get(run_id)).active:
            if run.status == RunStatus.QUEUED and not said_queued:
                print(f"run {run_id}: queued on the cluster ({head.address}, Ray job {run.cluster_job})", file=sys.stderr)
                said_queued = True
            elif run.status == RunStatus.RUNNING and run.steps_per_epoch:
                progress(run.epoch, run.total_epochs, run.step, run.steps_per_epoch, run.samples_per_s or 0.0)
            reap_dead_runs(store)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print(f"\nrun {run_id} goes on on the cluster: `python -m fmnist stop {run_id}` stops it", file=sys.stderr)
        raise
    finally:
        progress.close()
    return store.get(run_id).summary()


def add_train(sub) -> None:
    train = sub.add_parser("train", help="train a dense stack (waits its turn if another run is training)")
    add_spec_flags(train)
    train.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    train.add_argument("--name", help="a name for the leaderboard")
    train.add_argument("--backend", choices=SETTINGS,
                       help=f"the Keras backend that trains it; auto: JAX for dense stacks, TensorFlow with conv blocks or "
                            f"augmentation (default: ${SETTING_ENV}, else auto)")
    train.add_argument("--run-id", type=int, help=argparse.SUPPRESS)  # the app's own training processes
    train.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    store = open_store()
    if args.run_id is None:
        cluster.ready_for_runs()  # a cluster that cannot be reached refuses before anything is written
    if args.run_id is not None:
        run = store.get(args.run_id)
        if run is None or run.status != RunStatus.QUEUED:
            print(f"run {args.run_id} is not queued", file=sys.stderr)
            return 2
        run_id = args.run_id
        summary = train_in_this_process(store, run_id)  # the app's training process, or a run's Ray job
    else:
        pid, started = this_process()
        run_id = store.create_run(spec_from_args(args), name=args.name or args.preset, train_limit=args.limit, pid=pid, pid_started=started,
                                  backend_setting=args.backend or default_setting())
        summary = train_here_or_on_cluster(store, run_id)
    if summary["status"] == RunStatus.FAILED:
        print(f"run {run_id} failed: {store.get(run_id).error}", file=sys.stderr)
    print(json.dumps(summary))
    if "search_id" in summary:
        return 0 if summary["status"] in (RunStatus.FINISHED, RunStatus.STOPPED) else 1
    return 0 if RunStatus(summary["status"]).has_model else 1


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
        pid, started = this_process()
        run_id = store.create_run(spec, name=name, train_limit=args.limit, pid=pid, pid_started=started, backend_setting=default_setting())
        print(f"{name}: run {run_id}", file=sys.stderr)
        summary = train_here_or_on_cluster(store, run_id)
        rows.append({
            "stack": "-".join(map(str, widths)), "params": summary["params"],
            "test_loss": summary["test_loss"], "test_acc": summary["test_acc"],
            "seed_test_loss": SEED_TEST_LOSS[widths], "seed_test_acc": SEED_TEST_ACCURACY[widths],
            "diff_points": None if summary["test_acc"] is None else round(100 * (summary["test_acc"] - SEED_TEST_ACCURACY[widths]), 2),
            "run_id": run_id, "status": summary["status"],
        })
    print(format_table(rows, list(rows[0])))
    return 0 if all(r["status"] == RunStatus.FINISHED for r in rows) else 1
