"""`python -m fmnist bench --time-to-accuracy`: seconds from the click to each test accuracy, per stack.

Rows: "notebook", the seed notebook's own stack (64-128-64-32, 10 epochs, batch 32) in a bare
`model.fit` as the notebook ran it; each preset (fmnist.models.PRESETS) trained as the app trains a
run; "search", the best stack a default search found (SEARCH_FIND, or a finished search's best
trial with --search-run). Each training runs in a process of its own
(benchmarks.time_to_accuracy_fit) with a callback that scores the test set after every epoch
(benchmarks.accuracy_probe: for this table only, it never chooses anything), whose scoring time is
taken out of every time reported. From each epoch's (seconds since the click, test accuracy): the
first epoch end at which each of THRESHOLDS was reached (None where none was), one JSON line per
row and seed; with several seeds, then one line per row across them.

The click: for a preset with warm trainers on (the app's default, fmnist.warm), the moment a warm
trainer that has loaded Keras and the dataset is handed the run, the next warm trainer starting
beside it as the app's server starts one; with FMNIST_WARM_TRAINER=0, just before the run's own
process starts, as the app and `python -m fmnist train` start it then. For the notebook: just before
its process starts (imports, data, model, fit: what running its cells costs).

All trainings share one temporary run store whose JAX compilation cache is emptied before each: every
figure is its stack's first training on this machine, as a person's first run of it. This module
starts processes and reads their figures: it never imports Keras.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fmnist import warm
from fmnist.backends import default_setting, resolve
from fmnist.dataset import FASHION_MNIST
from fmnist.machine import cpu_name
from fmnist.models import PRESETS, ModelSpec, dense_spec, stack_name, with_training
from fmnist.runs import RunKind
from fmnist.store import RunStore, open_store
from fmnist.worker import PACKAGE_ROOT

THRESHOLDS = (0.88, 0.90, 0.92, 0.93, 0.94)
NOTEBOOK, SEARCH = "notebook", "search"
ROW_NAMES = (NOTEBOOK, *PRESETS, SEARCH)
# The seed notebook's best stack (docs/performance.md, "The seed's table, reproduced": 10 epochs, batch 32,
# Adam 0.001, 10 % validation).
NOTEBOOK_STACK = "Seed A: 64-128-64-32"
# What the default search found on this project's Intel Xeon, retrained by Train the best for 20 epochs
# on all images: 0.9054 (docs/performance.md, "The search"); its learning rate as the docs round it.
SEARCH_FIND = dense_spec((819, 701, 568, 32), activation="gelu", dropout=0.05, batch_norm=True, learning_rate=0.00038,
                         batch_size=32, lr_schedule="cosine", epochs=20)
# The Search page's "Train the best" default: the best trial's settings on all images for this many epochs.
SEARCH_BEST_EPOCHS = 20
# Settings the bench's trainings must not inherit: they train in its own temporary SQLite store, on this machine.
NOT_INHERITED = ("FMNIST_DB", "FMNIST_RAY_ADDRESS", "FMNIST_CACHE")  # each measured training compiles in its own home


@dataclass(frozen=True)
class Row:
    name: str
    how: str  # "bare" (the notebook's model.fit) or "engine" (a run, as the app trains it)
    spec: ModelSpec
    source: str  # where the stack comes from


def planned_rows(names: list[str] | None, search_run: int | None = None) -> list[Row]:
    """The rows asked for (all, in ROW_NAMES' order, when none are named); ValueError for an unknown name
    or a --search-run that is no finished search."""
    unknown = [name for name in names or () if name not in ROW_NAMES]
    if unknown:
        raise ValueError(f"no row {', '.join(map(repr, unknown))}: the rows are {', '.join(map(repr, ROW_NAMES))}")
    rows = []
    for name in [n for n in ROW_NAMES if not names or n in names]:
        if name == NOTEBOOK:
            rows.append(Row(name, "bare", PRESETS[NOTEBOOK_STACK], "the seed notebook's best stack in its own model.fit"))
        elif name == SEARCH:
            rows.append(search_row(search_run))
        else:
            rows.append(Row(name, "engine", PRESETS[name], "preset"))
    return rows


def search_row(search_run: int | None) -> Row:
    if search_run is None:
        return Row(SEARCH, "engine", SEARCH_FIND, 'the default search\'s find in docs/performance.md, "The search"')
    from fmnist.studies import best_trial_run

    store = open_store()
    search = store.get(search_run)
    if search is None or search.kind != RunKind.SEARCH:
        raise ValueError(f"run {search_run} is no search")
    best = best_trial_run(store, search_run)
    if best is None:
        raise ValueError(f"search #{search_run} has no finished trial yet")
    spec = with_training(best.spec, epochs=SEARCH_BEST_EPOCHS)
    return Row(SEARCH, "engine", spec, f"search #{search_run}'s best trial ({best.name}), {SEARCH_BEST_EPOCHS} epochs on all images")


def seconds_to(curve: list[dict], thresholds=THRESHOLDS) -> dict:
    """For each threshold, 's_to_0.90' and so on: the seconds at the end of the first epoch whose test
    accuracy reached it; None where no epoch did."""
    return {f"s_to_{t:.2f}": next((point["s"] for point in curve if point["test_acc"] >= t), None) for t in thresholds}


def child_env(home: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    python_path = os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
    return {**env, "FMNIST_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": python_path}


def prime_dataset(home: Path) -> None:
    """The dataset's decoded copy in the bench's store, as the app's folder keeps one: no training pays the first decoding."""
    subprocess.run([sys.executable, "-c", "from fmnist.data import load_dataset; load_dataset()"], env=child_env(home),
                   cwd=PACKAGE_ROOT, check=True)


def trained(job: dict, home: Path) -> dict:
    """Run one training (benchmarks.time_to_accuracy_fit) from its click; what it measured."""
    command = [sys.executable, "-m", "benchmarks.time_to_accuracy_fit"]
    spare = None
    with tempfile.TemporaryFile("w+") as errors:
        if job["warm"]:
            process = subprocess.Popen([*command, json.dumps(job)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                       text=True, env=child_env(home), cwd=PACKAGE_ROOT)
            if process.stdout.readline().strip() == "ready":
                click = time.time()
                spare = warm.spawn_warm(RunStore(home), job["backend"])  # as the server does when it hands a run over
                process.stdin.write(f"{click!r}\n")
                process.stdin.close()
            out = process.stdout.read()
        else:
            job = {**job, "click": time.time()}
            process = subprocess.Popen([*command, json.dumps(job)], stdout=subprocess.PIPE, stderr=errors, text=True,
                                       env=child_env(home), cwd=PACKAGE_ROOT)
            out = process.stdout.read()
        process.wait()
        if spare is not None:  # it has competed for the cores as the server's next warm trainer does; it would go on loading
            spare.kill()
            spare.wait()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if process.returncode != 0 or not lines:
            errors.seek(0)
            raise RuntimeError(f"the {job['row']} row's training failed:\n{errors.read()[-3000:]}")
    return json.loads(lines[-1])


def measure(row: Row, seed: int, images: int | None, epochs: int | None, home: Path, warm_on: bool) -> dict:
    """One training of the row with this seed: its JSON line."""
    spec = with_training(row.spec, seed=seed, **({"epochs": epochs} if epochs else {}))
    job = {"row": row.name, "how": row.how, "spec": spec.to_dict(), "images": images, "warm": row.how == "engine" and warm_on,
           "backend": "tensorflow" if row.how == "bare" else resolve(spec, default_setting())}
    shutil.rmtree(home / "cache" / "jax", ignore_errors=True)  # each training compiles, as a stack's first run does
    load = os.getloadavg()[0]
    raw = trained(job, home)
    curve = raw["curve"]
    how = "bare model.fit" if row.how == "bare" else "the app, warm trainer" if job["warm"] else "the app, cold start"
    return {
        "row": row.name, "how": how, "stack": stack_name(spec), "seed": seed, "images": images or FASHION_MNIST.train_size,
        "epochs": len(curve), "cpu": cpu_name(), "backend": raw["backend"], "device": raw["device"], "precision": raw["precision"],
        "first_batch_s": raw["first_batch_s"], **seconds_to(curve),
        "final_test_acc": curve[-1]["test_acc"] if curve else None, "run_test_acc": raw["test_acc"],
        "finished_s": raw["finished_s"], "scoring_s_taken_out": raw["scoring_s"],
        "load_avg_1min": round(load, 2), "nice": os.nice(0), "source": row.source, "curve": curve,
    }


def across_seeds(lines: list[dict]) -> dict:
    """A row over its seeds: the mean final test accuracy (and each), the median time to the first batch,
    and each threshold's median time where every seed reached it (else None; 'reached_0.90' counts them)."""
    accuracies = [line["final_test_acc"] for line in lines]
    summary = {"row": lines[0]["row"], "how": lines[0]["how"], "stack": lines[0]["stack"], "seeds": [line["seed"] for line in lines],
               "cpu": lines[0]["cpu"], "mean_test_acc": round(statistics.mean(accuracies), 4),
               "std_test_acc": round(statistics.stdev(accuracies), 4), "test_accs": accuracies,
               "first_batch_s": statistics.median(line["first_batch_s"] for line in lines)}
    for key in seconds_to([]):
        reached = [line[key] for line in lines if line[key] is not None]
        summary[key] = round(statistics.median(reached), 2) if len(reached) == len(lines) else None
        summary[f"reached_{key[5:]}"] = f"{len(reached)}/{len(lines)}"
    summary["finished_s"] = statistics.median(line["finished_s"] for line in lines)
    return summary


def time_to_accuracy(names: list[str] | None = None, seeds: int = 1, images: int | None = None, epochs: int | None = None,
                     search_run: int | None = None) -> int:
    """Every row with seeds 0 to seeds - 1, the rows in a rotated order each seed; JSON lines on stdout."""
    try:
        rows = planned_rows(names, search_run)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    warm_on = warm.enabled()
    print(f"CPU: {cpu_name()}; {len(rows)} rows × {seeds} seeds; warm trainers {'on' if warm_on else 'off'}; "
          f"the test set scored after each epoch for this table only, its time taken out", file=sys.stderr, flush=True)
    lines: dict[str, list[dict]] = {row.name: [] for row in rows}
    with tempfile.TemporaryDirectory(prefix="fmnist-tta-") as tmp:
        home = Path(tmp)
        prime_dataset(home)
        for seed in range(seeds):
            shift = seed % len(rows)
            for row in rows[shift:] + rows[:shift]:
                line = measure(row, seed, images, epochs, home, warm_on)
                lines[row.name].append(line)
                print(json.dumps(line), flush=True)
    if seeds > 1:
        for row in rows:
            print(json.dumps(across_seeds(lines[row.name])), flush=True)
    return 0
