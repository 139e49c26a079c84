"""Charts (Plotly): the network as a picture, a run's curves live or ended, runs side by side.

Plain functions of specs and store rows. No Streamlit or Keras here: the Build page
redraws the diagram on every slider move and the Train page redraws the curves on
every refresh, so these have to be instant.
"""

import math

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from fmnist.dataset import FASHION_MNIST
from fmnist.evaluation import percent
from fmnist.models import MAX_LAYERS, WIDTH_RANGE, ConvBlock, DenseLayer, ModelSpec, summary_rows

TRAIN_COLOR = "#636EFA"
VAL_COLOR = "#EF553B"
RUN_COLORS = qualitative.Plotly
IO_COLOR = "#8C96A5"  # grey: input and flatten hold no weights
HIDDEN_COLOR = TRAIN_COLOR
OUTPUT_COLOR = "#00CC96"
CONV_COLOR = "#AB63FA"
# Transparent so the figures sit on Streamlit's light and dark themes alike.
TRANSPARENT = dict(paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
FLAT = FASHION_MNIST.pixels  # the network picture is of a model for the app's dataset


# --- the network as a picture ---


def box_height(units: int) -> float:
    """sqrt, so a width of 8 is still a visible box next to 1024 (log would flatten real differences).
    Capped at the widest dense layer's: a conv block's thousands of outputs would dwarf the rest."""
    return math.sqrt(min(units, max(WIDTH_RANGE[1], FLAT)))


def compact(params: int) -> str:
    """'50.2k', '402k', '1.2M': three figures keep the labels narrow enough for boxes side by side;
    hover has the exact count."""
    if params >= 999_500:
        return f"{params / 1e6:.1f}M"
    if params >= 99_950:
        return f"{params / 1e3:.0f}k"
    return f"{params / 1e3:.1f}k" if params >= 1000 else str(params)


def layer_boxes(spec: ModelSpec) -> list[dict]:
    """One box per layer as drawn: title above it, detail lines below, params on hover."""
    rows = {row["layer"]: row for row in summary_rows(spec)}
    params = {name: row["params"] for name, row in rows.items()}
    shape = "×".join(str(n) for n in FASHION_MNIST.input_shape)
    boxes = [dict(title="Input", units=FLAT, params=0, color=IO_COLOR, detail=[shape, "augmented" if spec.augment else ""],
                  hover=f"Input: one {shape} grayscale image" + ("<br>+ random shifts and flips while training" if spec.augment else ""))]
    for i, block in enumerate(spec.conv, start=1):
        boxes.append(conv_box(i, block, rows))
    flat = int(rows["flatten"]["output_shape"].strip("()").split(", ")[1])
    boxes.append(dict(title="Flatten", units=flat, params=0, color=IO_COLOR, detail=[f"{flat}"],
                      hover=f"Flatten: → a vector of {flat}<br>0 params"))
    width = flat
    for i, layer in enumerate(spec.layers, start=1):
        boxes.append(dense_box(i, layer, width, params))
        width = layer.units
    output, classes = params["output"], FASHION_MNIST.num_classes
    boxes.append(dict(
        title=f"Dense<br>{classes}", units=classes, params=output, color=OUTPUT_COLOR,
        detail=["softmax", f"{compact(output)} params"],
        hover=f"output: Dense {classes}, softmax (one probability per class)<br>"
              f"{output:,} params = {width}×{classes} weights + {classes} biases",
    ))
    return boxes


def conv_box(i: int, block: ConvBlock, rows: dict) -> dict:
    """A conv block drawn by its output size (height × width × filters) so pooling shows as shrinking."""
    last = next(rows[name] for name in (f"conv_dropout_{i}", f"pool_{i}", f"conv_{i}") if name in rows)
    side = int(last["output_shape"].strip("()").split(", ")[1])
    total = rows[f"conv_{i}"]["params"] + rows.get(f"conv_batch_norm_{i}", {"params": 0})["params"]
    markers = [m for m, on in (("BN", block.batch_norm), ("pool", block.pool)) if on]
    return dict(
        title=f"Conv<br>{block.filters}", units=side * side * block.filters, params=total, color=CONV_COLOR,
        detail=[f"{block.kernel_size}×{block.kernel_size} {block.activation}", f"{compact(total)} params", " · ".join(markers),
                f"drop {block.dropout:g}" if block.dropout > 0 else ""],
        hover=f"conv_{i}: {block.filters} filters {block.kernel_size}×{block.kernel_size}, {block.activation}"
              f"<br>output {side}×{side}×{block.filters}<br>{total:,} params", dropout=block.dropout > 0,
    )


def dense_box(i: int, layer: DenseLayer, fan_in: int, params: dict) -> dict:
    dense = params[f"dense_{i}"]
    norm = params.get(f"batch_norm_{i}", 0)
    # A box's params include its batch-norm, so the boxes add up to count_params(spec).
    total = dense + norm
    markers = []
    hover = [f"dense_{i}: Dense {layer.units}, {layer.activation}",
             f"{dense:,} params = {fan_in}×{layer.units} weights + {layer.units} biases"]
    if layer.batch_norm:
        markers.append("BN")
        hover.append(f"+ batch-norm before the activation: {norm:,} params (4 per unit) = <b>{total:,} params</b>")
    if layer.dropout > 0:
        markers.append(f"drop {layer.dropout:g}")
        hover.append(f"+ dropout {layer.dropout:g} after it (training only, no params)")
    return dict(
        title=f"Dense<br>{layer.units}", units=layer.units, params=total, color=HIDDEN_COLOR,
        detail=[layer.activation, f"{compact(total)} params", *markers],
        hover="<br>".join(hover), dropout=layer.dropout > 0,
    )


def stack_diagram(spec: ModelSpec) -> go.Figure:
    """Boxes left to right, height ~ sqrt(width), joined by bands showing how the width changes."""
    boxes = layer_boxes(spec)
    heights = [box_height(box["units"]) for box in boxes]
    halves = [h / 2 for h in heights]
    x = list(range(len(boxes)))
    half_bar = 0.25
    fig = go.Figure(go.Bar(
        x=x, y=heights, base=[-h for h in halves], width=2 * half_bar,
        marker=dict(
            color=[box["color"] for box in boxes], line_width=0,
            # Dots on a box whose outputs are randomly dropped while training.
            pattern=dict(shape=["." if box.get("dropout") else "" for box in boxes], fgcolor="white", solidity=0.3),
        ),
        customdata=[box["params"] for box in boxes],
        hovertext=[box["hover"] for box in boxes],
        hovertemplate="%{hovertext}<extra></extra>",
    ))
    # Shapes and labels go in as one list each: adding them one by one makes every draw several times slower.
    bands = [
        dict(type="path", xref="x", yref="y", layer="below", line_width=0, fillcolor="rgba(128,128,128,0.18)",
             path=f"M {i + half_bar} {-halves[i]} L {i + half_bar} {halves[i]} "
                  f"L {i + 1 - half_bar} {halves[i + 1]} L {i + 1 - half_bar} {-halves[i + 1]} Z")
        for i in x[:-1]
    ]
    # Titles and details sit in fixed rows above and below the boxes so they line up.
    label = dict(xref="x", yref="paper", yanchor="top", showarrow=False)
    titles = [dict(label, x=i, y=1, text=f"<b>{box['title']}</b>", font_size=12) for i, box in zip(x, boxes)]
    details = [dict(label, x=i, y=0.22, text="<br>".join(line for line in box["detail"] if line), font_size=10)
               for i, box in zip(x, boxes)]
    # Fixed scale, room for the deepest stack, centred: boxes keep their size while sliders change the stack.
    tallest = box_height(max(WIDTH_RANGE[1], FLAT)) / 2
    spare = max(MAX_LAYERS + 3 - len(boxes), 0) / 2
    fig.update_xaxes(visible=False, fixedrange=True, range=[-0.5 - spare, len(boxes) - 0.5 + spare])
    fig.update_yaxes(visible=False, fixedrange=True, range=[-tallest, tallest], domain=[0.24, 0.8])
    fig.update_layout(height=260, margin=dict(l=0, r=0, t=8, b=8), showlegend=False, shapes=bands,
                      annotations=titles + details, **TRANSPARENT)
    return fig


# --- training curves ---


def epoch_points(epochs: list[dict], key: str) -> tuple[list, list]:
    """(epoch, value) for the rows that have the value; val_* is None without a validation split."""
    rows = [row for row in epochs if row.get(key) is not None]
    return [row["epoch"] for row in rows], [row[key] for row in rows]


def curves_summary(name: str, epochs: list[dict], metric: str) -> str:
    """One run's curve of `metric` in a sentence, for who cannot see the chart: its last and best values."""
    parts = []
    best = min if metric == "loss" else max
    for key, what in ((metric, "training"), (f"val_{metric}", "validation")):
        x, y = epoch_points(epochs, key)
        if x:
            at = y.index(best(y))
            parts.append(f"{what} {metric} {y[-1]:.4f} at the last epoch ({x[-1]}), best {y[at]:.4f} at epoch {x[at]}")
    return f"{name}: " + ("; ".join(parts) if parts else "no epoch yet") + "."


def batch_points(batches: list[dict], key: str, steps_per_epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch k of epoch e sits at x = e - 1 + k/steps, so epoch e's last batch meets its epoch point at x = e."""
    rows = [row for row in batches if row.get(key) is not None]
    x = np.array([row["epoch"] - 1 + row["step"] / steps_per_epoch for row in rows], dtype=float)
    return x, np.array([row[key] for row in rows], dtype=float)


def epoch_ticks(span: float) -> dict:
    """Whole-epoch ticks; plotly's own would put 0.5 between epochs on a short run."""
    step = next((s for s in (1, 2, 5, 10, 20, 50) if span / s <= 10), 100)
    return dict(tick0=0, dtick=step, title_text="epoch")


def focus_range(values: list[float], pad: float = 0.3) -> list[float]:
    """A y range around the epoch values: the first batches' loss (about 2.3) would otherwise squash them."""
    low, high = min(values), max(values)
    span = max(high - low, 0.02)
    return [round(low - pad * span, 6), round(high + pad * span, 6)]


LIVE_METRICS = ("loss", "accuracy")
# The per-batch line's most points on the live charts. A long run streams thousands; every
# refresh sends them all to each tab watching and the browser draws them again (docs/performance.md, "The live panel in the browser").
LIVE_BATCH_POINTS = 400


def thinned(x: np.ndarray, y: np.ndarray, most: int = LIVE_BATCH_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `most` points: the means of runs of 2, 4, 8… consecutive points (the line's shape,
    less of its noise). The runs start at the first point and keep their length as points arrive,
    so a live line does not shift between refreshes, only when the run length doubles."""
    size = 1
    while len(x) > most * size:
        size *= 2
    if size == 1:
        return x, y
    starts = np.arange(0, len(x), size)
    counts = np.diff(np.append(starts, len(x)))
    return np.add.reduceat(x, starts) / counts, np.add.reduceat(y, starts) / counts


def number_lists(x, y) -> list[list[float]]:
    """[xs, ys] as short JSON numbers: x to 1/10,000 of an epoch, values to 5 significant figures."""
    return [[round(float(v), 4) for v in x], [float(f"{v:.5g}") for v in y]]


def live_curves(epochs: list[dict], batches: list[dict], steps_per_epoch: int | None, total_epochs: int | None) -> dict:
    """What the live chart draws (live_figure): per metric, the thinned per-batch training line and
    the train and validation values per epoch, each [xs, ys] with x in epochs (batch k of epoch e at
    e - 1 + k/steps, so an epoch's last batch meets its epoch point); `focus`, the y range around the
    epoch values once there are two (the first batches' loss, about 2.3, would squash them), else None;
    `epochs`, the x axis' span (the run's epochs, fixed so the axes do not jump as points arrive);
    `colors`, train's and validation's. Plain number lists, rounded: they go to the browser a refresh."""
    seen = max([row["epoch"] for row in epochs], default=1)
    curves = {"epochs": total_epochs or seen, "colors": [TRAIN_COLOR, VAL_COLOR]}
    for metric in LIVE_METRICS:
        batch = thinned(*batch_points(batches, metric, steps_per_epoch)) if steps_per_epoch else ([], [])
        train, val = epoch_points(epochs, metric), epoch_points(epochs, f"val_{metric}")
        curves[metric] = {
            "batch": number_lists(*batch), "train": number_lists(*train), "val": number_lists(*val),
            "focus": focus_range(train[1] + val[1]) if len(epochs) >= 2 and train[1] else None,
        }
    return curves


def run_traces(metric: str, train, val, batch=None, name: str | None = None, colors: tuple[str, str] = (TRAIN_COLOR, VAL_COLOR)) -> list[go.Scatter]:
    """One run's curves of `metric`, each [xs, ys] with x in epochs: the per-batch training line (thin
    and pale, when given), then train per epoch solid and validation per epoch dashed, with their points.
    Dash as well as colour tells train from validation: colours alone fail a person who cannot tell
    them apart. `name` labels the lines when runs share a chart (else train / validation)."""
    labels = {"per batch": f"{name} (per batch)" if name else "train (per batch)",
              "train": name or "train", "validation": f"{name} (val)" if name else "validation"}
    traces = []
    if batch is not None:
        traces.append(go.Scatter(
            x=batch[0], y=batch[1], name=labels["per batch"], mode="lines", line=dict(color=colors[0], width=1), opacity=0.5,
            legendgroup=name, hovertemplate=f"{labels['per batch']} {metric} %{{y:.4~f}}<extra></extra>",
        ))
    for xy, kind, color, dash in ((train, "train", colors[0], "solid"), (val, "validation", colors[1], "dash")):
        traces.append(go.Scatter(
            x=xy[0], y=xy[1], name=labels[kind], mode="lines+markers", line=dict(color=color, dash=dash, width=2),
            marker_size=6, legendgroup=name, hovertemplate=f"{labels[kind]} {metric} %{{y:.4~f}}<extra></extra>",
        ))
    return traces


def curves_figure(metric: str, traces: list[go.Scatter], span: float, focus: list[float] | None = None,
                  title: str | None = None, height: int = 360) -> go.Figure:
    """Curves of `metric` against epochs: the figure of a run, live or ended (fmnist.live_chart),
    and of the Leaderboard's runs side by side, so they all read alike. `span`: the x axis' epochs,
    padded so the first and last points show whole; `focus`: the y range, else Plotly's own. The
    pointer reads every line at the epoch under it."""
    pad = 0.02 * span
    fig = go.Figure(traces)
    fig.update_xaxes(**epoch_ticks(span), range=[-pad, span + pad], unifiedhovertitle_text="epoch %{x}", automargin=True)
    fig.update_yaxes(title_text=metric, automargin=True, **({"range": focus} if focus else {}))
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=70 if title else 40, b=10), hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
        title=dict(text=title, x=0, xanchor="left", y=0.98, yanchor="top", font_size=14) if title else None,
        uirevision=metric, **TRANSPARENT,
    )
    return fig


def overlay_curves(curves: dict[str, list[dict]], metric: str) -> go.Figure:
    """One colour per run: train `metric` solid, validation dashed."""
    traces = []
    for i, (name, epochs) in enumerate(curves.items()):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        train, val = epoch_points(epochs, metric), epoch_points(epochs, f"val_{metric}")
        traces += [trace for trace in run_traces(metric, train, val, name=name, colors=(color, color)) if len(trace.x)]
    seen = max([row["epoch"] for epochs in curves.values() for row in epochs], default=1)
    return curves_figure(metric, traces, seen)


def live_figure(curves: dict, metric: str) -> go.Figure:
    """The live panel's chart of `metric` from live_curves' data: the run's per-batch line, its epochs."""
    line = curves[metric]
    traces = run_traces(metric, line["train"], line["val"], batch=line["batch"], colors=tuple(curves["colors"]))
    return curves_figure(metric, traces, curves["epochs"], line["focus"], title=metric.capitalize(), height=320)


def probability_bars(probs: np.ndarray, class_names: tuple[str, ...] = FASHION_MNIST.class_names) -> go.Figure:
    """One horizontal bar per class in the dataset's order, the predicted class in colour."""
    top = int(np.argmax(probs))
    fig = go.Figure(go.Bar(
        x=probs, y=list(class_names), orientation="h",
        marker_color=[OUTPUT_COLOR if i == top else IO_COLOR for i in range(len(class_names))],
        text=[percent(p) for p in probs], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    fig.update_layout(
        height=320, margin=dict(l=0, r=40, t=10, b=10), showlegend=False, **TRANSPARENT,
        xaxis=dict(range=[0, 1], tickformat=".0%", title="probability"),
        yaxis=dict(autorange="reversed"),
    )
    return fig
