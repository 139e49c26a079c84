"""Command line: python -m fmnist {train,runs,stop,cv,seeds,seed-table,bench} --help"""

import argparse
import json
import os
import sys
from dataclasses import replace

# TensorFlow's start-up chatter drowns the progress bar; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402

from fmnist.backends import BACKENDS, SETTING_ENV, SETTINGS, default_setting, resolve  # noqa: E402
from fmnist.bench import CASES, run_bench  # noqa: E402
from fmnist.data import DatasetError  # noqa: E402
from fmnist.home import StoreError  # noqa: E402
from fmnist.models import (  # noqa: E402
    ACTIVATIONS,
    LR_SCHEDULES,
    PRESETS,
    SEED_STACKS,
    SEED_TEST_ACCURACY,
    SEED_TEST_LOSS,
    ConvBlock,
    DenseLayer,
    ModelSpec,
    dense_spec,
    validate,
)
from fmnist.runs import RunKind, RunStatus  # noqa: E402
from fmnist.store import RunStore, open_store  # noqa: E402
from fmnist.worker import create_job, reap_dead_runs, this_process, wait_for_slot  # noqa: E402


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def layer_widths(text: str) -> list[int]:
    try:
        return [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"layers are comma-separated widths like 128,64, got {text!r}") from None


def add_spec_flags(parser: argparse.ArgumentParser) -> None:
    """Every spec field; a flag left out keeps the preset's value (or the default stack 128,64's)."""
    defaults = ModelSpec(layers=())
    parser.add_argument("--preset", choices=list(PRESETS), help="start from a preset; the flags you give change it")
    parser.add_argument("--layers", type=layer_widths, help="hidden layer widths, e.g. 128,64 (default 128,64)")
    parser.add_argument("--activation", choices=ACTIVATIONS, help="activation of every hidden layer (default relu)")
    parser.add_argument("--dropout", type=float, help="dropout after every hidden layer, 0 to <1 (default 0)")
    parser.add_argument("--batch-norm", action="store_true", help="batch normalisation in every hidden layer")
    parser.add_argument("--conv", type=layer_widths, help="conv blocks' filters before the dense stack, e.g. 32,64 (3×3, 2×2 max-pooling)")
    parser.add_argument("--conv-dropout", type=float, default=0.0, help="dropout after every conv block (default 0)")
    parser.add_argument("--conv-batch-norm", action="store_true", help="batch normalisation in every conv block")
    parser.add_argument("--augment", action="store_true", help="random shifts and left-right flips while training")
    parser.add_argument("--mixed-precision", action="store_true", help="compute in bfloat16 (fast on CPUs with AVX512-BF16 or AMX)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, help=f"default {defaults.lr_schedule}")
    parser.add_argument("--epochs", type=int, help=f"default {defaults.epochs}")
    parser.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    parser.add_argument("--lr", type=float, help=f"Adam learning rate (default {defaults.learning_rate})")
    parser.add_argument("--val-split", type=float, help=f"fraction held out for validation (default {defaults.val_split})")
    parser.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    parser.add_argument("--early-stopping", action="store_true", help="stop when validation loss stops improving")
    parser.add_argument("--patience", type=int, help=f"epochs without improvement before early stopping (default {defaults.patience})")
    parser.add_argument("--checkpoint", action="store_true", help="keep and use the weights of the best validation epoch")


def spec_from_args(args) -> ModelSpec:
    spec = PRESETS[args.preset] if args.preset else dense_spec([128, 64])
    if args.layers or args.activation or args.dropout is not None or args.batch_norm:
        like = spec.layers[0] if spec.layers else DenseLayer(128)
        layers = tuple(
            DenseLayer(width, args.activation or like.activation, like.dropout if args.dropout is None else args.dropout,
                       args.batch_norm or like.batch_norm)
            for width in args.layers or [layer.units for layer in spec.layers]
        )
        spec = replace(spec, layers=layers)
    if args.conv is not None:
        spec = replace(spec, conv=tuple(ConvBlock(filters, dropout=args.conv_dropout, batch_norm=args.conv_batch_norm) for filters in args.conv))
    values = {"lr_schedule": args.lr_schedule, "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
              "val_split": args.val_split, "seed": args.seed, "patience": args.patience}
    switches = {"augment": args.augment, "mixed_precision": args.mixed_precision,
                "early_stopping": args.early_stopping, "checkpoint": args.checkpoint}
    changes = {name: value for name, value in values.items() if value is not None} | {name: True for name, on in switches.items() if on}
    return validate(replace(spec, **changes))


class ProgressBar:
    """The training's progress on stderr (stdout keeps the final JSON line): a bar per epoch with the live samples/s."""

    def __init__(self):
        self.epoch, self.bar = None, None

    def __call__(self, epoch, epochs, step, steps, samples_per_s):
        if epoch != self.epoch:
            self.close()
            self.epoch = epoch
            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit=" batches", leave=True, dynamic_ncols=True)
        self.bar.set_postfix_str(f"{samples_per_s:,.0f} samples/s", refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def print_queued(position):
    sys.stderr.write(f"\rqueued: {position} in line (one training at a time; FMNIST_MAX_PARALLEL raises that) ")
    sys.stderr.flush()


def train_in_this_process(store: RunStore, run_id: int) -> dict:
    if not wait_for_slot(store, run_id, on_wait=print_queued):
        return store.get(run_id).summary()
    # Keras loads here, once the run may start (`runs`, `stop` and a queued wait stay light), on the
    # backend the run's setting picks for its spec: Keras fixes its backend when it is first imported.
    from fmnist.keras_start import start_keras

    run = store.get(run_id)
    start_keras(resolve(run.spec, run.backend_setting))
    from fmnist.training import run_job, train_run

    run = train_run if store.get(run_id).kind == RunKind.TRAIN else run_job
    progress = ProgressBar()
    try:
        return run(store, run_id, progress=progress)
    finally:
        progress.close()


def cmd_train(args) -> int:
    store = open_store()
    if args.run_id is not None:
        run = store.get(args.run_id)
        if run is None or run.status != RunStatus.QUEUED:
            print(f"run {args.run_id} is not queued", file=sys.stderr)
            return 2
        run_id = args.run_id
    else:
        pid, started = this_process()
        run_id = store.create_run(spec_from_args(args), name=args.name or args.preset, train_limit=args.limit, pid=pid, pid_started=started,
                                  backend_setting=args.backend or default_setting())
    summary = train_in_this_process(store, run_id)
    if summary["status"] == RunStatus.FAILED:
        print(f"run {run_id} failed: {store.get(run_id).error}", file=sys.stderr)
    print(json.dumps(summary))
    return 0 if RunStatus(summary["status"]).has_model else 1


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table: four decimals for scores, '-' where there is no value."""
    table = pd.DataFrame(rows, columns=columns).astype(object)
    return table.to_string(index=False, na_rep="-", justify="left",
                           formatters={c: lambda v: "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)) for c in columns})


def cmd_runs(args) -> int:
    from fmnist.leaderboard import mean_and_spread
    from fmnist.models import stack_name

    store = open_store()
    reap_dead_runs(store)
    runs = [run for run in store.list_runs() if run.kind == RunKind.TRAIN]
    if args.json:
        for run in runs:
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


def cmd_job(args) -> int:
    kind, repeats = (RunKind.CV, args.folds) if args.command == "cv" else (RunKind.SEEDS, args.n)
    store = open_store()
    pid, started = this_process()
    job_id = create_job(store, args.run_id, kind, repeats, pid=pid, pid_started=started)
    summary = train_in_this_process(store, job_id)
    print(json.dumps(summary))
    return 0 if RunStatus(summary["status"]).has_model else 1


def cmd_stop(args) -> int:
    try:
        status = open_store().request_stop(args.run_id)
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    messages = {
        RunStatus.CANCELLED: f"run {args.run_id} was queued: cancelled",
        RunStatus.RUNNING: f"run {args.run_id} will stop at its next batch and keep what it learnt",
    }
    print(messages.get(status, f"run {args.run_id} is already {status}"))
    return 0


def cmd_seed_table(args) -> int:
    store = open_store()
    rows = []
    for name, widths in SEED_STACKS.items():
        spec = dense_spec(widths, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
        pid, started = this_process()
        run_id = store.create_run(spec, name=name, train_limit=args.limit, pid=pid, pid_started=started, backend_setting=default_setting())
        print(f"{name}: run {run_id}", file=sys.stderr)
        summary = train_in_this_process(store, run_id)
        rows.append({
            "stack": "-".join(map(str, widths)), "params": summary["params"],
            "test_loss": summary["test_loss"], "test_acc": summary["test_acc"],
            "seed_test_loss": SEED_TEST_LOSS[widths], "seed_test_acc": SEED_TEST_ACCURACY[widths],
            "diff_points": None if summary["test_acc"] is None else round(100 * (summary["test_acc"] - SEED_TEST_ACCURACY[widths]), 2),
            "run_id": run_id, "status": summary["status"],
        })
    print(format_table(rows, list(rows[0])))
    return 0 if all(r["status"] == RunStatus.FINISHED for r in rows) else 1


def cmd_bench(args) -> int:
    if args.side:  # one side of the bench, in a process of its own (fmnist.bench starts them)
        from fmnist.keras_start import start_keras

        start_keras(args.backend)
        from fmnist.bench_fit import run_side

        return run_side(args.side, list(range(len(CASES))))
    return run_bench(args.repeats, args.json)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmnist", description="Fashion-MNIST Studio from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a dense stack (waits its turn if another run is training)")
    add_spec_flags(train)
    train.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    train.add_argument("--name", help="a name for the leaderboard")
    train.add_argument("--backend", choices=SETTINGS,
                       help=f"the Keras backend that trains it; auto: JAX for dense stacks, TensorFlow with conv blocks or "
                            f"augmentation (default: ${SETTING_ENV}, else auto)")
    train.add_argument("--run-id", type=int, help=argparse.SUPPRESS)  # the app's own training processes
    train.set_defaults(func=cmd_train)

    runs = sub.add_parser("runs", help="the leaderboard")
    runs.add_argument("--json", action="store_true", help="one JSON object per run")
    runs.set_defaults(func=cmd_runs)

    stop = sub.add_parser("stop", help="stop a running run (it keeps what it learnt) or cancel a queued one")
    stop.add_argument("run_id", type=int)
    stop.set_defaults(func=cmd_stop)

    cv = sub.add_parser("cv", help="stratified k-fold cross-validation of a run's spec on the training images")
    cv.add_argument("run_id", type=int)
    cv.add_argument("--folds", type=int, default=5)
    cv.set_defaults(func=cmd_job)

    seeds = sub.add_parser("seeds", help="train a run's spec again with N seeds: its test accuracy's spread")
    seeds.add_argument("run_id", type=int)
    seeds.add_argument("--n", type=positive_int, default=3)
    seeds.set_defaults(func=cmd_job)

    seed = sub.add_parser("seed-table", help="train the seed notebook's four stacks and compare with its figures")
    seed.add_argument("--epochs", type=positive_int, default=10)
    seed.add_argument("--batch-size", type=positive_int, default=32)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    seed.set_defaults(func=cmd_seed_table)

    bench = sub.add_parser("bench", help="samples/s of a bare model.fit against the engine on each backend, and the time to the first batch")
    bench.add_argument("--json", action="store_true", help="one JSON object per case and per backend's start")
    bench.add_argument("--repeats", type=positive_int, default=3, help="rounds: each side trains each case once a round")
    bench.add_argument("--side", choices=("bare", "engine"), help=argparse.SUPPRESS)  # one side, in its own process
    bench.add_argument("--backend", choices=BACKENDS, default="tensorflow", help=argparse.SUPPRESS)
    bench.set_defaults(func=cmd_bench)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DatasetError, StoreError, ValueError) as e:  # SpecError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
