"""The leaderboard as a table: one row per run, best test accuracy first."""

from datetime import datetime

import pandas as pd

from fmnist.models import stack_name
from fmnist.store import Run


def leaderboard_table(runs: list[Run]) -> pd.DataFrame:
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
        "CV score": None if run.cv_mean is None else f"{run.cv_mean:.4f} ± {run.cv_std:.4f}",
        "train time (s)": run.train_s,
        "samples/s": run.samples_per_s,
        "status": run.status,
        "created": datetime.fromtimestamp(run.created_at),
    } for run in runs]
    table = pd.DataFrame(rows, columns=[
        "run", "name", "stack", "params", "epochs", "batch", "test loss", "test accuracy", "best val accuracy",
        "CV score", "train time (s)", "samples/s", "status", "created",
    ])
    table = table.sort_values("test accuracy", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    table.insert(0, "best", [""] * len(table))
    if len(table) and pd.notna(table.loc[0, "test accuracy"]):
        table.loc[0, "best"] = "🏆"
    return table


def best_run(runs: list[Run]) -> Run | None:
    """The run with the highest test accuracy (the default model of the Evaluate and Classify pages)."""
    scored = [run for run in runs if run.test_acc is not None]
    return max(scored, key=lambda run: run.test_acc, default=None)
