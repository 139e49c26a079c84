"""A search as people look at it: its trials as a table, the best so far, every validation curve,
what each setting did, and size against accuracy.

Plain functions of trial runs and their epoch rows (and Optuna's importances as a dict); no
Streamlit and no Optuna, so the Search page can redraw them every second.
"""

import pandas as pd
import plotly.graph_objects as go

from fmnist.charts import TRANSPARENT
from fmnist.models import stack_name
from fmnist.runs import Run, RunStatus

STATUS_COLORS = {
    RunStatus.FINISHED: "#636EFA", RunStatus.PRUNED: "#EF553B", RunStatus.RUNNING: "#00CC96", RunStatus.QUEUED: "#B8BEC8",
    RunStatus.FAILED: "#7F7F7F", RunStatus.STOPPED: "#FFA15A", RunStatus.INTERRUPTED: "#7F7F7F", RunStatus.CANCELLED: "#B8BEC8",
}
NO_TOOLBAR_LAYOUT = dict(margin=dict(l=10, r=10, t=30, b=10), **TRANSPARENT)


def trial_number(run: Run) -> int:
    """Trials are named 'trial N of #S' by their search."""
    try:
        return int(run.name.split()[1])
    except (IndexError, ValueError):
        return run.id


def trials_table(trials: list[Run]) -> pd.DataFrame:
    """One row per trial, newest first: its settings, how far it got and its best validation accuracy."""
    rows = [{
        "trial": trial_number(run),
        "stack": stack_name(run.spec),
        "activation": run.spec.layers[0].activation if run.spec.layers else "",
        "dropout": run.spec.layers[0].dropout if run.spec.layers else 0.0,
        "batch-norm": bool(run.spec.layers and run.spec.layers[0].batch_norm),
        "learning rate": run.spec.learning_rate,
        "batch": run.spec.batch_size,
        "params": run.params,
        "epochs": f"{run.epoch}/{run.spec.epochs}",
        "best val accuracy": run.best_val_acc,
        "status": str(run.status),
        "time (s)": run.train_s,
        "run": run.id,
    } for run in trials]
    columns = ["trial", "stack", "activation", "dropout", "batch-norm", "learning rate", "batch", "params", "epochs",
               "best val accuracy", "status", "time (s)", "run"]
    return pd.DataFrame(rows, columns=columns).sort_values("trial", ascending=False).reset_index(drop=True)


def best_so_far(trials: list[Run]) -> go.Figure:
    """Each ended trial's best validation accuracy, in the order they ended, and the best so far as a step line."""
    ended = sorted((run for run in trials if run.best_val_acc is not None and not run.active), key=lambda run: run.ended_at or 0)
    x = list(range(1, len(ended) + 1))
    scores = [run.best_val_acc for run in ended]
    best = pd.Series(scores, dtype=float).cummax().tolist()
    fig = go.Figure([
        go.Scatter(x=x, y=scores, mode="markers", name="trial", marker=dict(color=[STATUS_COLORS[r.status] for r in ended], size=8),
                   text=[f"trial {trial_number(r)} · {stack_name(r.spec)} · {r.status}" for r in ended],
                   hovertemplate="%{text}<br>best val accuracy %{y:.4f}<extra></extra>"),
        go.Scatter(x=x, y=best, mode="lines", name="best so far", line=dict(shape="hv", color="#6C4AB6", width=3)),
    ])
    fig.update_layout(height=300, title="Best validation accuracy so far", xaxis_title="trials ended", yaxis_title="validation accuracy",
                      legend=dict(orientation="h", y=-0.25), **NO_TOOLBAR_LAYOUT)
    return fig


def validation_curves(trials: list[Run], epochs_by_run: dict[int, list[dict]]) -> go.Figure:
    """Every trial's validation accuracy per epoch on one chart; a pruned trial's line stops where
    it was cut, dashed and marked with a cross."""
    fig = go.Figure()
    for run in sorted(trials, key=trial_number):
        rows = [row for row in epochs_by_run.get(run.id, []) if row.get("val_accuracy") is not None]
        if not rows:
            continue
        pruned = run.status == RunStatus.PRUNED
        fig.add_trace(go.Scatter(
            x=[row["epoch"] for row in rows], y=[row["val_accuracy"] for row in rows], mode="lines+markers",
            name=f"trial {trial_number(run)}", legendgroup=str(run.status),
            line=dict(color=STATUS_COLORS[run.status], dash="dot" if pruned else "solid", width=1.5),
            marker=dict(size=[4] * (len(rows) - 1) + [10 if pruned else 4], symbol=["circle"] * (len(rows) - 1) + ["x" if pruned else "circle"]),
            hovertemplate=f"trial {trial_number(run)} ({run.status}) · {stack_name(run.spec)}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
        ))
    fig.update_layout(height=340, title="Every trial's validation accuracy", showlegend=False,
                      xaxis=dict(title="epoch", dtick=1), yaxis_title="validation accuracy", **NO_TOOLBAR_LAYOUT)
    return fig


def accuracy_vs_size(trials: list[Run]) -> go.Figure:
    """Best validation accuracy against parameter count (log scale), one point per ended trial."""
    fig = go.Figure()
    for status in (RunStatus.FINISHED, RunStatus.PRUNED):
        runs = [run for run in trials if run.status == status and run.best_val_acc is not None]
        fig.add_trace(go.Scatter(
            x=[run.params for run in runs], y=[run.best_val_acc for run in runs], mode="markers", name=str(status),
            marker=dict(color=STATUS_COLORS[status], size=9, symbol="x" if status == RunStatus.PRUNED else "circle"),
            text=[f"trial {trial_number(r)} · {stack_name(r.spec)}" for r in runs],
            hovertemplate="%{text}<br>%{x:,} params · %{y:.4f}<extra></extra>",
        ))
    fig.update_layout(height=300, title="Size against validation accuracy", xaxis=dict(title="parameters (log scale)", type="log"),
                      yaxis_title="best validation accuracy", legend=dict(orientation="h", y=-0.3), **NO_TOOLBAR_LAYOUT)
    return fig


def importance_bars(importances: dict[str, float]) -> go.Figure:
    """Which settings mattered: Optuna's importance of each parameter, the largest on top."""
    names = sorted(importances, key=importances.get)
    fig = go.Figure(go.Bar(x=[importances[n] for n in names], y=names, orientation="h", marker_color="#6C4AB6",
                           hovertemplate="%{y}: %{x:.2f}<extra></extra>"))
    fig.update_layout(height=60 + 26 * len(names), title="Which settings mattered", xaxis_title="importance (share of the variation)",
                      **NO_TOOLBAR_LAYOUT)
    return fig
