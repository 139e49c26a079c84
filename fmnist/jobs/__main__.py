"""A run's own process: `python -m fmnist.jobs RUN_ID` (the worker spawns it for the app, and a Ray job
runs it on a cluster's node); `--help-search` makes it another trial process of a running search;
`--warm BACKEND` a warm trainer waiting for the next run (fmnist.warm).
It prints the run's progress on stderr (the run's train.log) and its summary as one JSON line."""

import argparse
import json
import os
import sys

# TensorFlow's start-up chatter drowns the log's progress lines; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fmnist.console import ProgressBar, print_queued, print_trial  # noqa: E402
from fmnist.jobs.process import exit_code, help_in_this_process, run_in_this_process, wait_warm  # noqa: E402
from fmnist.runs import RunStatus  # noqa: E402
from fmnist.store import open_store  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmnist.jobs", description="Train a queued run in this process.")
    parser.add_argument("run_id", type=int, nargs="?")
    parser.add_argument("--help-search", action="store_true", help="be another trial process of this running search")
    parser.add_argument("--warm", choices=("jax", "tensorflow"), help="a warm trainer: load Keras and the dataset, then wait "
                                                                     "for a run's id on stdin (fmnist.warm)")
    args = parser.parse_args(argv)
    if args.warm:
        return wait_warm(args.warm)
    if args.run_id is None:
        parser.error("a run id is required")
    store = open_store()
    run = store.get(args.run_id)
    if args.help_search:
        if run is None or run.status != RunStatus.RUNNING:
            print(f"run {args.run_id} is not a running search", file=sys.stderr)
            return 2
        help_in_this_process(store, args.run_id)
        return 0
    if run is None or run.status != RunStatus.QUEUED:
        print(f"run {args.run_id} is not queued", file=sys.stderr)
        return 2
    progress = ProgressBar()
    try:
        summary = run_in_this_process(store, args.run_id, progress=progress, on_wait=print_queued, on_trial=print_trial)
    finally:
        progress.close()
    print(json.dumps(summary), flush=True)
    return exit_code(summary)


if __name__ == "__main__":
    sys.exit(main())
