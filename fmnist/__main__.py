"""Command line: python -m fmnist {train,runs,stop,cv,seeds,seed-table,serve,hash-code,forget-person,bench,project,
inside-bench,photo-bench,export,predict} --help

The command line acts as this machine's admin: whoever has a shell here owns the run store.
"""

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

# TensorFlow's start-up chatter drowns the progress bar; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402

from fmnist import cluster  # noqa: E402
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
    stack_name,  # noqa: E402
    validate,
)
from fmnist.runs import RunKind, RunStatus  # noqa: E402
from fmnist.store import RunStore, open_store  # noqa: E402
from fmnist.worker import create_job, reap_dead_runs, stop_run, submit, this_process, wait_for_slot  # noqa: E402


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


def print_trial(run, value) -> None:
    """A search's trial as it ends: one line."""
    score = f"best validation accuracy {value:.4f}" if value is not None else (run.error or "no score")
    print(f"trial #{run.id} {stack_name(run.spec)}, batch {run.spec.batch_size}, lr {run.spec.learning_rate:.2g}: "
          f"{run.status} after {run.epoch}/{run.spec.epochs} epochs, {score}", flush=True)


def backend_for(run) -> str:
    """The backend a run's setting picks for its spec. A search's trials train in its own processes,
    so for a search auto goes by what it may try: TensorFlow when its space allows conv blocks."""
    spec = run.spec
    if run.kind == RunKind.SEARCH and run.space and run.space.get("conv_blocks", (0, 0))[1] > 0:
        spec = replace(spec, conv=(ConvBlock(16),))
    return resolve(spec, run.backend_setting)


def missing_gpu(backend: str) -> str | None:
    """In a run's Ray job that asked for a GPU: why it cannot have one, when Keras finds none on its node."""
    from fmnist.backends import LABELS, cpu_name
    from fmnist.keras_start import device_name

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


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table: four decimals for scores, '-' where there is no value."""
    table = pd.DataFrame(rows, columns=columns).astype(object)
    return table.to_string(index=False, na_rep="-", justify="left",
                           formatters={c: lambda v: "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)) for c in columns})


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


def cmd_job(args) -> int:
    kind, repeats = (RunKind.CV, args.folds) if args.command == "cv" else (RunKind.SEEDS, args.n)
    store = open_store()
    cluster.ready_for_runs()
    pid, started = this_process()
    job_id = create_job(store, args.run_id, kind, repeats, pid=pid, pid_started=started)
    summary = train_here_or_on_cluster(store, job_id)
    print(json.dumps(summary))
    return 0 if RunStatus(summary["status"]).has_model else 1


def range_of(kind):
    """A command-line range 'low,high' as a (low, high) tuple of `kind`."""
    def parse(text: str):
        try:
            low, high = (kind(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"a range low,high like 1,4, got {text!r}") from None
        return (low, high)
    return parse


def choices_of(kind):
    def parse(text: str):
        try:
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"comma-separated values, got {text!r}") from None
    return parse


def yes_no(text: str) -> bool:
    if text.strip().lower() not in ("yes", "no"):
        raise ValueError(text)
    return text.strip().lower() == "yes"


def cmd_search(args) -> int:
    from fmnist.search_space import SearchSpace, describe_size, validate_space

    if args.bench:
        from fmnist.search_bench import run_search_bench

        return run_search_bench(args)

    store = open_store()
    cluster.ready_for_runs()  # its trials go there: a cluster that cannot take them refuses before the search is written
    pid, started = this_process()
    if args.resume is not None:
        from fmnist.worker import resume_search

        resume_search(store, args.resume, trials=args.trials, minutes=args.minutes, start=False)
        search_id = args.resume
        store.set_pid(search_id, pid, started)
    else:
        defaults = SearchSpace()
        values = {
            "layers": args.layers, "width": args.width, "activations": args.activations, "dropout": args.dropout,
            "batch_norm": args.batch_norm, "learning_rate": args.lr, "batch_sizes": args.batch_sizes, "conv_blocks": args.conv,
            "filters": args.filters, "lr_schedules": args.lr_schedules, "images": args.limit, "epochs": args.epochs,
            "val_split": args.val_split, "seed": args.seed, "trials": args.trials, "minutes": args.minutes,
        }
        space = validate_space(replace(defaults, **{k: v for k, v in values.items() if v is not None}))
        if args.no_minutes:
            space = validate_space(replace(space, minutes=None))
        from fmnist.worker import create_search

        search_id = create_search(store, space, name=args.name, pid=pid, pid_started=started)
        print(f"search #{search_id}: {describe_size(space)}; up to {space.trials or 'any number of'} trials"
              f"{f' or {space.minutes:g} minutes' if space.minutes else ''}, {space.epochs} epochs on {space.images:,} images each; "
              "trials are compared on validation accuracy, never on the test set", file=sys.stderr)
    summary = train_in_this_process(store, search_id)
    print(json.dumps(summary))
    return 0 if summary["status"] in (RunStatus.FINISHED, RunStatus.STOPPED) else 1


def cmd_search_helper(args) -> int:
    from fmnist.keras_start import start_keras

    store = open_store()
    start_keras(backend_for(store.get(args.search_id)))  # the same backend as the search's own process
    from fmnist.search import help_search

    help_search(store, args.search_id)
    return 0


def cmd_stop(args) -> int:
    try:
        status = stop_run(open_store(), args.run_id)
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


def cmd_hash_code(args) -> int:
    """A class or teacher code, hashed for secrets.toml: the code itself is never stored."""
    from getpass import getpass

    from fmnist.access import hash_code

    if args.stdin:
        code = sys.stdin.readline().rstrip("\n")
    else:
        code = getpass("Code: ")
        if getpass("The same again: ") != code:
            print("error: the two did not match", file=sys.stderr)
            return 2
    if len(code) < 8:
        print("error: a code of at least 8 characters, please (it keeps strangers out of the class)", file=sys.stderr)
        return 2
    print(json.dumps(hash_code(code)))
    return 0


def cmd_forget_person(args) -> int:
    from fmnist.access import class_person

    person = class_person(args.name, teacher=False)
    if open_store().forget_person(person.id):
        print(f"{person.name!r} may sign in again with a new password; their runs stay theirs.")
        return 0
    print(f"nobody has signed in as {person.name!r}", file=sys.stderr)
    return 2


def streamlit_secrets(root: Path) -> dict:
    """What Streamlit reads as secrets.toml by default: the user's, then the project's (which wins)."""
    import tomllib

    merged = {}
    for path in (Path.home() / ".streamlit" / "secrets.toml", root / ".streamlit" / "secrets.toml"):
        if path.is_file():
            try:
                merged.update(tomllib.loads(path.read_text()))
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path} is not valid TOML: {e}") from e
    return merged


def cmd_serve(args) -> int:
    """Start the app: on this machine only, or with --share for others, after checking its sign-in."""
    from fmnist.access import sharing_from

    root = Path(__file__).resolve().parent.parent
    address = "0.0.0.0" if args.share else "127.0.0.1"
    sharing = sharing_from(streamlit_secrets(root), address)  # SharingConfigError: refuse to start
    if args.share:
        print(f"Serving to other machines on port {args.port}, sign-in by {'class code' if sharing.mode == 'class' else 'your provider'}.",
              file=sys.stderr)
    os.chdir(root)  # where .streamlit/config.toml is
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address", address, "--server.port", str(args.port)]
    os.execv(sys.executable, command)


def cmd_bench(args) -> int:
    if args.cluster:
        from fmnist.cluster_bench import main as cluster_bench

        return cluster_bench()
    if args.watch:
        from fmnist.watch_bench import main as watch_bench

        return watch_bench(["--rounds", str(args.repeats)])
    if args.side:  # one side of the bench, in a process of its own (fmnist.bench starts them)
        from fmnist.keras_start import start_keras

        start_keras(args.backend)
        from fmnist.bench_fit import run_side

        return run_side(args.side, list(range(len(CASES))))
    return run_bench(args.repeats, args.json)


def cmd_project(args) -> int:
    """A run's test images in 2-D (PCA, t-SNE), kept in its folder; what the Inside page starts in the background."""
    from fmnist.data import load_dataset
    from fmnist.inside_charts import InsideError
    from fmnist.keras_start import start_keras
    from fmnist.projection import write_job
    from fmnist.runs import ModelFileError

    start_keras("tensorflow")  # the saliency and probes are TensorFlow graphs, whatever KERAS_BACKEND says
    from fmnist.inside import project_run

    store = open_store()
    if store.get(args.run_id) is None:
        print(f"error: there is no run {args.run_id}", file=sys.stderr)
        return 2
    # Only on a terminal: started by the page, its output goes to a log file, where a bar is noise.
    bar = tqdm(total=100, unit="%", file=sys.stderr, bar_format="{desc} {bar} {n:.0f}%", disable=not sys.stderr.isatty())

    def report(**fields):
        write_job(store, args.run_id, **fields)
        bar.set_description_str(fields.get("stage", ""))
        bar.update(round(100 * fields.get("fraction", 0.0)) - bar.n)

    try:
        seconds = project_run(store, args.run_id, load_dataset(), report)
    except (ModelFileError, InsideError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(json.dumps({"run_id": args.run_id, "seconds": seconds}))
    return 0


def cmd_inside_bench(args) -> int:
    from fmnist.keras_start import start_keras

    start_keras("tensorflow")
    from fmnist.inside_bench import run_inside_bench

    return run_inside_bench(args)


def cmd_export(args) -> int:
    """A run's model as ONNX, LiteRT or a SavedModel, checked on 1,000 test images in its own runtime and
    kept with the run with its model card (--out: copied there too)."""
    from fmnist.export_formats import ExportError, card_paths, check_out_path, export_problem, kept_path, variant_for
    from fmnist.model_card import check_line
    from fmnist.runs import ModelFileError

    variant = variant_for(args.format, args.quantize)
    store = open_store()
    problem = export_problem(store, store.get(args.run_id), args.run_id)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out = check_out_path(args.out, variant, args.run_id) if args.out else None
    from fmnist.data import load_dataset
    from fmnist.keras_start import start_keras

    start_keras("tensorflow")  # the converters work from TensorFlow graphs, whichever backend trained the run
    from fmnist.export import Exporter

    try:
        card = Exporter(store, args.run_id, load_dataset()).export(variant, out)
    except (ExportError, ModelFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    kept = kept_path(store, args.run_id, variant)
    print(f"{variant.label} export of run {args.run_id}: {out or kept}, its model card beside it. Checked on "
          + check_line(card["check"]) + ".", file=sys.stderr)
    print(json.dumps({"run_id": args.run_id, "format": variant.key, "file": str(kept), "out": str(out) if out else None,
                      "card": str(card_paths(out or kept)[0]), **card["check"]}))
    return 0


def cmd_predict(args) -> int:
    """Image files through a run's model as Classify does it: one JSON line per file."""
    from fmnist.export_formats import export_problem
    from fmnist.predict_files import error_record, prediction_record, prepare_file
    from fmnist.runs import ModelFileError

    store = open_store()
    problem = export_problem(store, store.get(args.run_id), args.run_id)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    prepared = [prepare_file(path) for path in args.images]
    model = None
    if not all(isinstance(item, str) for item in prepared):  # Keras loads only when some file can be classified
        from fmnist.keras_start import start_keras

        start_keras("tensorflow")  # the app's own backend: the same predictions as the Classify page
        from fmnist.prediction import load_model, predict_image

        try:
            model = load_model(store, args.run_id)
        except ModelFileError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    for path, item in zip(args.images, prepared):
        record = error_record(path, item) if isinstance(item, str) else prediction_record(path, predict_image(model, item.image01))
        print(json.dumps(record), flush=True)
    return 0 if model is not None else 1


def cmd_photo_bench(args) -> int:
    from fmnist.keras_start import start_keras

    start_keras("tensorflow")  # the app's own backend, which classifies uploads
    store = open_store()
    missing = [run_id for run_id in args.run_ids if store.get(run_id) is None or not store.model_path(run_id).is_file()]
    if missing:
        print(f"error: no run with a saved model: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    from fmnist.photo_bench import run_photo_bench

    return run_photo_bench(args.run_ids, args.seed)


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

    search = sub.add_parser(
        "search", help="let Optuna search stacks (pruned from their validation curves); a line per trial, then JSON",
        description="Search dense (and optionally conv) stacks with Optuna's TPE sampler and median pruner. Trials train on "
                    "the first --limit training images and are compared on validation accuracy only; train the best one "
                    "with `python -m fmnist train` (its settings are in the final JSON line's best_spec) to score it on the test set.")
    search.add_argument("--trials", type=positive_int, help="at most this many trials (default 40)")
    search.add_argument("--minutes", type=float, help="at most this many minutes (default 10)")
    search.add_argument("--no-minutes", action="store_true", help="no time limit: stop after --trials")
    search.add_argument("--epochs", type=positive_int, help="epochs per trial (default 6)")
    search.add_argument("--limit", type=positive_int, help="training images per trial (default 20000)")
    search.add_argument("--val-split", type=float, help="validation share of those images (default 0.1)")
    search.add_argument("--seed", type=int, help="the sampler's and every trial's seed (default 0)")
    search.add_argument("--layers", type=range_of(int), help="number of dense layers, low,high (default 1,4)")
    search.add_argument("--width", type=range_of(int), help="each layer's width, low,high, log scale (default 32,1024)")
    search.add_argument("--activations", type=choices_of(str), help="default relu,gelu,tanh")
    search.add_argument("--dropout", type=range_of(float), help="low,high in steps of 0.05 (default 0,0.4)")
    search.add_argument("--batch-norm", type=choices_of(yes_no), help="yes, no or yes,no (default)")
    search.add_argument("--lr", type=range_of(float), help="Adam's learning rate, low,high, log scale (default 0.0003,0.003)")
    search.add_argument("--batch-sizes", type=choices_of(int), help="default 32,64,128,256")
    search.add_argument("--lr-schedules", type=choices_of(str), help="constant, cosine or constant,cosine (default cosine)")
    search.add_argument("--conv", type=range_of(int), help="conv blocks before the dense layers, low,high (default 0,0)")
    search.add_argument("--filters", type=choices_of(int), help="each conv block's filters (default 16,32,64)")
    search.add_argument("--name", help="a name for the search")
    search.add_argument("--resume", type=int, metavar="SEARCH_ID", help="go on with an ended search (--trials/--minutes: a new budget)")
    search.add_argument("--bench", action="store_true",
                        help="measure the default search (--minutes to shorten it): its best retrained and tested, pruning's savings, overhead")
    search.set_defaults(func=cmd_search)

    helper = sub.add_parser("search-helper", help="internal: a running search's extra trial process")
    helper.add_argument("search_id", type=int)
    helper.set_defaults(func=cmd_search_helper)

    serve = sub.add_parser("serve", help="start the app (this machine only; --share: to others, with sign-in)")
    serve.add_argument("--share", action="store_true", help="listen on every interface; refuses unless sign-in is configured")
    serve.add_argument("--port", type=positive_int, default=8501)
    serve.set_defaults(func=cmd_serve)

    hash_parser = sub.add_parser("hash-code", help="hash a class or teacher code for .streamlit/secrets.toml")
    hash_parser.add_argument("--stdin", action="store_true", help="read the code from standard input instead of asking")
    hash_parser.set_defaults(func=cmd_hash_code)

    forget = sub.add_parser("forget-person", help="let a class member who forgot their password sign in again under their name")
    forget.add_argument("name")
    forget.set_defaults(func=cmd_forget_person)

    bench = sub.add_parser("bench", help="samples/s of a bare model.fit against the engine on each backend, and the time to the first batch")
    bench.add_argument("--json", action="store_true", help="one JSON object per case and per backend's start")
    bench.add_argument("--repeats", type=positive_int, default=3, help="rounds: each side trains each case once a round")
    bench.add_argument("--watch", action="store_true",
                       help="instead: training alone against watched in Chromium, idle CPU, page times (python -m fmnist.watch_bench)")
    bench.add_argument("--cluster", action="store_true",
                       help="instead: 8 short runs on the local queue, then on the Ray head at FMNIST_RAY_ADDRESS: wall time, time to first batch")
    bench.add_argument("--side", choices=("bare", "engine"), help=argparse.SUPPRESS)  # one side, in its own process
    bench.add_argument("--backend", choices=BACKENDS, default="tensorflow", help=argparse.SUPPRESS)
    bench.set_defaults(func=cmd_bench)

    project = sub.add_parser("project", help="a run's test images in 2-D (PCA and t-SNE of its last hidden layer), kept with the run")
    project.add_argument("run_id", type=int)
    project.set_defaults(func=cmd_project)

    inside_bench = sub.add_parser("inside-bench", help="time the Inside page: one image and its saliency, the projections, a rerun")
    inside_bench.add_argument("run_ids", type=int, nargs="+")
    inside_bench.set_defaults(func=cmd_inside_bench)
    photo_bench = sub.add_parser("photo-bench", help="Classify on photo-like pictures: right per situation, boxes found, the unusual-picture notice")
    photo_bench.add_argument("run_ids", type=int, nargs="+")
    photo_bench.add_argument("--seed", type=int, default=0, help="the seed that makes the pictures (the tests use 0)")
    photo_bench.set_defaults(func=cmd_photo_bench)

    export = sub.add_parser("export", help="a run's model as ONNX, LiteRT or SavedModel, checked against Keras and kept with the run",
                            description="Export a run's model with Keras' model.export, run the export in its own runtime on the first "
                                        "1,000 test images beside the Keras model, and keep it with its model card in the run's folder "
                                        "(exports/), where the Leaderboard offers it too.")
    export.add_argument("run_id", type=int)
    export.add_argument("--format", required=True, choices=("onnx", "litert", "saved_model"))
    export.add_argument("--quantize", choices=("float16", "int8"),
                        help="LiteRT only: float16 weights, or int8 weights and activations calibrated on training images")
    export.add_argument("--out", metavar="PATH", help="also copy the export (a folder for saved_model) and its card to PATH")
    export.set_defaults(func=cmd_export)

    predict = sub.add_parser("predict", help="classify image files with a run's model, as the Classify page does: a JSON line per file")
    predict.add_argument("run_id", type=int)
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.set_defaults(func=cmd_predict)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DatasetError, StoreError, cluster.ClusterError, ValueError, PermissionError) as e:  # SpecError and SharingConfigError are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
