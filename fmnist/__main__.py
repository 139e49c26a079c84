"""Command line: python -m fmnist {train,runs,stop,cv,seeds,seed-table,bench} --help"""

import argparse
import json
import os
import sys
from dataclasses import replace

# TensorFlow's start-up chatter drowns the progress bar; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fmnist.data import DatasetError  # noqa: E402
from fmnist.models import (  # noqa: E402
    ACTIVATIONS, LR_SCHEDULES, PRESETS, SEED_STACKS, SEED_TEST_ACCURACY, SEED_TEST_LOSS, ConvBlock, DenseLayer, ModelSpec, dense_spec, validate,
)
from fmnist.store import RunStore  # noqa: E402


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
    switches = {"augment": args.augment, "mixed_precision": args.mixed_precision, "early_stopping": args.early_stopping, "checkpoint": args.checkpoint}
    changes = {name: value for name, value in values.items() if value is not None} | {name: True for name, on in switches.items() if on}
    return validate(replace(spec, **changes))


def print_progress(epoch, epochs, step, steps, samples_per_s):
    fraction = step / steps if steps else 0
    bar = "#" * int(fraction * 30)
    sys.stderr.write(f"\repoch {epoch}/{epochs} [{bar:<30}] {step}/{steps}  {samples_per_s:,.0f} samples/s ")
    sys.stderr.flush()


def print_queued(position):
    sys.stderr.write(f"\rqueued: {position} in line (one training at a time; FMNIST_MAX_PARALLEL raises that) ")
    sys.stderr.flush()


def train_in_this_process(store: RunStore, run_id: int) -> dict:
    from fmnist.training import run_job, train_run
    from fmnist.worker import wait_for_slot

    if not wait_for_slot(store, run_id, on_wait=print_queued):
        return store.get(run_id).summary()
    run = train_run if store.get(run_id).kind == "train" else run_job
    summary = run(store, run_id, progress=print_progress)
    sys.stderr.write("\n")
    return summary


def cmd_train(args) -> int:
    store = RunStore()
    if args.run_id is not None:
        run = store.get(args.run_id)
        if run is None or run.status != "queued":
            print(f"run {args.run_id} is not queued", file=sys.stderr)
            return 2
        run_id = args.run_id
    else:
        run_id = store.create_run(spec_from_args(args), name=args.name or args.preset, train_limit=args.limit, pid=os.getpid())
    summary = train_in_this_process(store, run_id)
    if summary["status"] == "failed":
        print(f"run {run_id} failed: {store.get(run_id).error}", file=sys.stderr)
    print(json.dumps(summary))
    return 0 if summary["status"] in ("finished", "stopped") else 1


def format_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value):
        if value is None:
            return "-"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    cells = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def cmd_runs(args) -> int:
    from fmnist.leaderboard import mean_and_spread
    from fmnist.models import stack_name

    runs = [run for run in RunStore().list_runs() if run.kind == "train"]
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
    print(format_table(rows, ["run_id", "name", "stack", "params", "epochs", "status", "test_loss", "test_acc", "cv", "seeds", "train_s", "samples_per_s"]))
    return 0


def cmd_job(args) -> int:
    from fmnist.worker import create_job

    kind, repeats = ("cv", args.folds) if args.command == "cv" else ("seeds", args.n)
    store = RunStore()
    job_id = create_job(store, args.run_id, kind, repeats, pid=os.getpid())
    summary = train_in_this_process(store, job_id)
    print(json.dumps(summary))
    return 0 if summary["status"] in ("finished", "stopped") else 1


def cmd_stop(args) -> int:
    try:
        status = RunStore().request_stop(args.run_id)
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    messages = {
        "cancelled": f"run {args.run_id} was queued: cancelled",
        "running": f"run {args.run_id} will stop at its next batch and keep what it learnt",
    }
    print(messages.get(status, f"run {args.run_id} is already {status}"))
    return 0


def cmd_seed_table(args) -> int:
    store = RunStore()
    rows = []
    for name, widths in SEED_STACKS.items():
        spec = dense_spec(widths, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
        run_id = store.create_run(spec, name=name, train_limit=args.limit, pid=os.getpid())
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
    return 0 if all(r["status"] == "finished" for r in rows) else 1


def cmd_bench(args) -> int:
    if args.watch:
        from fmnist.watch_bench import main as watch_bench

        return watch_bench([])
    from fmnist.bench import run_bench

    return run_bench(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmnist", description="Fashion-MNIST Studio from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a dense stack (waits its turn if another run is training)")
    add_spec_flags(train)
    train.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    train.add_argument("--name", help="a name for the leaderboard")
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

    bench = sub.add_parser("bench", help="samples/s of a bare model.fit against the engine, and load/eval times")
    bench.add_argument("--json", action="store_true", help="one JSON object per batch size")
    bench.add_argument("--repeats", type=positive_int, default=3, help="timed epochs per side and batch size")
    bench.add_argument("--watch", action="store_true",
                       help="instead: training alone against watched in Chromium, idle CPU, page times (python -m fmnist.watch_bench)")
    bench.set_defaults(func=cmd_bench)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DatasetError, ValueError) as e:  # SpecError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
