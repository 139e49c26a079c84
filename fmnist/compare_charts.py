"""Plotly figures for judging and comparing trained runs: confusion matrices and size against accuracy.

Plain functions of arrays and tables, no Streamlit: the Evaluate and Leaderboard pages redraw them on
every click.
"""

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from fmnist.charts import RUN_COLORS, TRANSPARENT
from fmnist.dataset import FASHION_MNIST
from fmnist.text import in_chart

OTHER_RUNS_COLOR = "#B8BEC8"


def row_shares(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its total: the share of a true class that went to each prediction."""
    return cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)


def class_axes(fig: go.Figure, num_classes: int) -> go.Figure:
    """Predicted classes across, true classes down with the first class on top, as confusion matrices are read."""
    edges = [-0.5, num_classes - 0.5]
    fig.update_xaxes(title_text="predicted class", side="top", tickangle=-30, range=edges, showgrid=False, fixedrange=True)
    fig.update_yaxes(title_text="true class", range=edges[::-1], showgrid=False, fixedrange=True)
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=10, b=10), **TRANSPARENT)
    return fig


def confusion_heatmap(cm: np.ndarray, normalise: bool = False, chosen: tuple[int, int] | None = None,
                      class_names: tuple[str, ...] = FASHION_MNIST.class_names) -> go.Figure:
    """Counts (or shares of each true class) per (true, predicted) cell; `chosen` is outlined."""
    shares = row_shares(cm)
    z = shares if normalise else cm
    text = [[f"{100 * v:.1f}%" for v in row] for row in shares] if normalise else cm.astype(str)
    mistakes = z - np.diag(np.diag(z))
    fig = go.Figure(go.Heatmap(
        z=z, x=class_names, y=class_names, text=text, texttemplate="%{text}", hoverinfo="skip",
        # The diagonal (hundreds) would wash out the mistakes (tens): the scale tops out at the
        # biggest mistake, so every diagonal cell is dark and the confusions spread over the shades.
        colorscale="Blues", zmin=0, zmax=max(mistakes.max(), np.finfo(float).eps), showscale=False, xgap=2, ygap=2,
    ))
    # Plotly cannot select a heatmap cell, only points: an invisible square point on every cell
    # makes a click a point selection the page can read, and carries the hover text.
    true_class, predicted_class = np.indices(cm.shape).reshape(2, -1)
    fig.add_trace(go.Scatter(
        x=np.array(class_names)[predicted_class], y=np.array(class_names)[true_class], mode="markers",
        marker=dict(symbol="square", size=40, opacity=0), selected=dict(marker_opacity=0), unselected=dict(marker_opacity=0),
        customdata=np.stack([cm.ravel(), 100 * shares.ravel()], axis=1), showlegend=False, name="cells",
        hovertemplate="true <b>%{y}</b>, predicted <b>%{x}</b><br>"
                      "%{customdata[0]} images, %{customdata[1]:.1f}% of the %{y} images<extra></extra>",
    ))
    if chosen:
        t, p = chosen
        fig.add_shape(type="rect", x0=p - 0.5, x1=p + 0.5, y0=t - 0.5, y1=t + 0.5, line=dict(color="#6C4AB6", width=3))
    return class_axes(fig, len(class_names))


def difference_heatmap(cm_a: np.ndarray, cm_b: np.ndarray, class_names: tuple[str, ...] = FASHION_MNIST.class_names) -> go.Figure:
    """B − A per cell. The numbers are B − A; the colour says better (blue) or worse (red):
    more images on the diagonal is better, more off it is worse."""
    diff = cm_b.astype(np.int64) - cm_a
    better = np.where(np.eye(len(diff), dtype=bool), diff, -diff)
    reach = max(np.abs(better).max(), 1)
    fig = go.Figure(go.Heatmap(
        z=better, x=class_names, y=class_names, text=[[f"{v:+d}" if v else "" for v in row] for row in diff],
        texttemplate="%{text}", colorscale="RdBu", zmid=0, zmin=-reach, zmax=reach, showscale=False,
        customdata=np.dstack([cm_a, cm_b, diff]), xgap=2, ygap=2,
        hovertemplate="true <b>%{y}</b>, predicted <b>%{x}</b><br>"
                      "A %{customdata[0]}, B %{customdata[1]} (B − A = %{customdata[2]:+d})<extra></extra>",
    ))
    return class_axes(fig, len(class_names))


def size_vs_accuracy(table: pd.DataFrame, selected: list[int]) -> go.Figure:
    """Parameters (log scale) against test accuracy for every scored run in a leaderboard
    table; the selected runs stand out in the colours their curves have."""
    scored = table[table["test accuracy"].notna()]
    scored = scored.assign(name=scored["name"].map(in_chart))  # a run's name is its text, not Plotly's HTML
    fig = go.Figure()
    hover = "<b>%{customdata[0]}</b><br>stack %{customdata[1]}<br>%{x:,} params<br>test accuracy %{y:.4f}<extra></extra>"
    others = scored[~scored["run"].isin(selected)]
    fig.add_trace(go.Scatter(
        x=others["params"], y=others["test accuracy"], mode="markers", name="other runs",
        marker=dict(size=10, color=OTHER_RUNS_COLOR, line=dict(width=1, color="white")),
        customdata=np.stack([others["name"], others["stack"]], axis=1) if len(others) else None, hovertemplate=hover,
    ))
    for i, run_id in enumerate(selected):
        row = scored[scored["run"] == run_id]
        if row.empty:
            continue
        fig.add_trace(go.Scatter(
            x=row["params"], y=row["test accuracy"], mode="markers+text", name=f"#{run_id} {row['name'].iloc[0]}",
            text=[f"#{run_id}"], textposition="top center",
            marker=dict(size=16, color=RUN_COLORS[i % len(RUN_COLORS)], line=dict(width=2, color="white")),
            customdata=np.stack([row["name"], row["stack"]], axis=1), hovertemplate=hover,
        ))
    fig.update_xaxes(type="log", title_text="parameters (log scale)")
    fig.update_yaxes(title_text="test accuracy", tickformat=".3f")
    fig.update_layout(
        height=380, margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0), **TRANSPARENT,
    )
    return fig
