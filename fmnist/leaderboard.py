"""The leaderboard as a table: one row per run, best test accuracy first; and what the page does with runs."""

import zipfile
from datetime import datetime
from typing import TYPE_CHECKING

from fmnist.access import LOCAL_ADMIN
from fmnist.backends import engine_label
from fmnist.models import SEED_STACKS, SEED_TEST_ACCURACY, SEED_TEST_LOSS, ModelSpec, dense_spec, stack_name
from fmnist.runs import Run, RunKind, RunStatus
from fmnist.store import RunStore

if TYPE_CHECKING:
    import pandas as pd
# pandas is imported by the functions that make tables: the services read this module for the seed
# stacks, and every command and training process loads the services (half a second of pandas each).


def training_runs(runs: list[Run]) -> list[Run]:
    """The runs that trained a model, without the cv and seeds jobs that repeat one (their scores show on it)."""
    return [run for run in runs if run.kind == RunKind.TRAIN]


def mean_and_spread(mean: float | None, std: float | None) -> str | None:
    """A cross-validation or seed score as people write it: 0.8812 ± 0.0031."""
    return None if mean is None else f"{mean:.4f} ± {std:.4f}"


def leaderboard_table(runs: list[Run], with_owner: bool = False) -> "pd.DataFrame":
    """One row per run, best test accuracy first; with_owner adds who started each (a shared app)."""
    import pandas as pd

    rows = [{
        "run": run.id,
        "name": run.name,
        "stack": stack_name(run.spec),
        "params": run.params,
        "epochs": f"{run.epoch}/{run.spec.epochs}",
        "batch": run.spec.batch_size,
        "test loss": run.test_loss,
        "test accuracy": run.test_acc,
        "best val accuracy": run.best_val_acc,
        "CV score": mean_and_spread(run.cv_mean, run.cv_std),
        "seed spread": mean_and_spread(run.seeds_mean, run.seeds_std),
        "train time (s)": run.train_s,
        "samples/s": run.samples_per_s,
        "backend": engine_label(run),
        "status": str(run.status),
        "created": datetime.fromtimestamp(run.created_at),
    } for run in runs]
    table = pd.DataFrame(rows, columns=[
        "run", "name", "stack", "params", "epochs", "batch", "test loss", "test accuracy", "best val accuracy",
        "CV score", "seed spread", "train time (s)", "samples/s", "backend", "status", "created",
    ])
    table = table.sort_values("test accuracy", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    table.insert(0, "best", [""] * len(table))
    if with_owner:
        owners = {run.id: run.owner_name or LOCAL_ADMIN.name for run in runs}
        table.insert(3, "by", [owners[run_id] for run_id in table["run"]])
    if len(table) and pd.notna(table.loc[0, "test accuracy"]):
        table.loc[0, "best"] = "★"  # in every text font; an emoji needs an emoji font
    return table


def best_run(runs: list[Run]) -> Run | None:
    """The run with the highest test accuracy (the default model of the Evaluate and Classify pages)."""
    scored = [run for run in runs if run.test_acc is not None]
    return max(scored, key=lambda run: run.test_acc, default=None)


def curves_csv(store: RunStore, run_id: int) -> str:
    """The run's curves as one CSV: per epoch (train and validation) and the per-batch training points.

    Rows go in training order: an epoch's batch points, then that epoch's row.
    """
    import pandas as pd

    epochs = pd.DataFrame(store.epochs(run_id), columns=["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"])
    batches = pd.DataFrame(store.batches(run_id), columns=["epoch", "step", "loss", "accuracy"])
    table = pd.concat([batches.assign(point="batch"), epochs.assign(point="epoch")], ignore_index=True)
    table = table.sort_values(["epoch", "step"], na_position="last", kind="stable").astype({"epoch": "Int64", "step": "Int64"})
    return table[["point", "epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]].to_csv(index=False)


def model_file_problem(store: RunStore, run_id: int) -> str | None:
    """Why the run's model file cannot be used, or None if it looks whole.

    A .keras file is a zip: checking its entries' CRCs finds a missing, truncated or
    damaged file without loading TensorFlow.
    """
    path = store.model_path(run_id)
    if not path.is_file():
        return f"Run #{run_id} has no model file ({path.name} is missing)."
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as e:
        return f"Run #{run_id}'s model file is unreadable ({e})."
    if bad:
        return f"Run #{run_id}'s model file is damaged ({bad} fails its checksum)."
    return None


def seed_spec(widths) -> ModelSpec:
    """What the seed notebook trained: ten epochs, the default settings (and all 60,000 images)."""
    return dense_spec(widths, epochs=10)


def seed_comparison(runs: list[Run]) -> "pd.DataFrame":
    """For each of the seed notebook's stacks: its figures beside the best finished run of exactly
    that spec (default settings, all 60,000 training images), and the difference in accuracy points."""
    import pandas as pd

    rows = []
    for name, widths in SEED_STACKS.items():
        spec = seed_spec(widths)
        same = [run for run in training_runs(runs) if run.spec == spec and run.train_limit is None]
        done = [run for run in same if run.status == RunStatus.FINISHED and run.test_acc is not None]
        best = max(done, key=lambda run: run.test_acc, default=None)
        shown = best or (same[-1] if same else None)
        rows.append({
            "seed stack": name,
            "seed test loss": SEED_TEST_LOSS[widths],
            "seed test accuracy": SEED_TEST_ACCURACY[widths],
            "run": f"#{shown.id}" if shown else None,
            "status": str(shown.status) if shown else "not trained",
            "test loss": best.test_loss if best else None,
            "test accuracy": best.test_acc if best else None,
            "difference (points)": 100 * (best.test_acc - SEED_TEST_ACCURACY[widths]) if best else None,
        })
    return pd.DataFrame(rows)
