"""Inside a trained model, as pictures: what each layer outputs for one image, what the first
layer's weights learnt, which pixels drove a prediction, and where the test images land in 2-D.

Pure side: the records the Keras side (fmnist.inside) fills in, and Plotly figures of them. Maps
and weights are drawn as one heatmap per layer (a mosaic with gaps), not one figure per map:
sixty-four small figures would make every rerun of the page slow.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from fmnist.charts import TRANSPARENT
from fmnist.dataset import FASHION_MNIST

# Diverging: blue below zero, white at zero, red above (weights and attributions have a sign).
DIVERGING = [[0.0, "#2166AC"], [0.25, "#92C5DE"], [0.5, "#F7F7F7"], [0.75, "#F4A582"], [1.0, "#B2182B"]]
# The same, see-through near zero, to lay over the image.
OVERLAY = [[0.0, "rgba(33,102,172,0.95)"], [0.35, "rgba(146,197,222,0.55)"], [0.5, "rgba(247,247,247,0)"],
           [0.65, "rgba(244,165,130,0.55)"], [1.0, "rgba(178,24,43,0.95)"]]
CLASS_COLORS = qualitative.T10  # ten colours that stay apart, one per class
NO_AXES = dict(visible=False, fixedrange=True)
MAX_MAPS = 64
WIDTH = 860  # px: about what the wide layout gives a chart beside the sidebar


class InsideError(ValueError):
    """A model this page cannot open up (another input shape or number of classes); the message says why."""


@dataclass(frozen=True)
class LayerOutput:
    name: str
    type: str  # the Keras layer class
    values: np.ndarray  # one image's output: (h, w, channels) maps or (units,)

    @property
    def is_maps(self) -> bool:
        return self.values.ndim == 3


@dataclass(frozen=True)
class SkippedLayer:
    name: str
    type: str
    why: str


@dataclass(frozen=True)
class WeightImages:
    """The first layer's weights, one small image per unit or filter, the largest norm first."""
    layer: str
    kind: str  # "units" (a dense layer on the 28×28 pixels) or "filters" (a conv layer's kernels)
    images: np.ndarray  # (n, h, w)
    units: np.ndarray  # (n,) each image's unit or filter number in the layer
    norms: np.ndarray  # (n,) each image's L2 norm


@dataclass(frozen=True)
class Look:
    """One image through the model."""
    outputs: list[LayerOutput]
    probs: np.ndarray  # (10,)
    saliency: np.ndarray  # (28, 28) the predicted (or asked) class' integrated gradients
    target: int
    skipped: list[SkippedLayer] = field(default_factory=list)


def by_norm(layer: str, kind: str, images: np.ndarray) -> WeightImages:
    """Images (n, h, w) ordered by their L2 norm, largest first; ties keep the layer's order."""
    norms = np.sqrt((images.astype(np.float64) ** 2).reshape(len(images), -1).sum(axis=1))
    order = np.argsort(-norms, kind="stable")
    return WeightImages(layer, kind, images[order], order, norms[order])


def mosaic(images: np.ndarray, columns: int, gap: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, h, w) tiled in rows of `columns` with `gap` empty cells between them:
    (values, which image each cell shows), NaN and -1 in the gaps."""
    n, h, w = images.shape
    rows = math.ceil(n / columns)
    values = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan, dtype=np.float32)
    which = np.full(values.shape, -1, dtype=np.int32)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = r * (h + gap), c * (w + gap)
        values[top:top + h, left:left + w] = images[i]
        which[top:top + h, left:left + w] = i
    return values, which


def columns_for(n: int) -> int:
    return n if n <= 8 else 8 if n <= 32 else 16


def mosaic_figure(images: np.ndarray, labels: np.ndarray, what: str, colorscale, zmid: float | None,
                  values_shown: np.ndarray | None = None) -> go.Figure:
    """A heatmap mosaic; hover tells the `what` number (labels[i]) and the value (values_shown, else the image's).
    Compact types (int16, float32): a rerun sends these arrays to the browser every time."""
    columns = columns_for(len(images))
    z, which = mosaic(images.astype(np.float32), columns)
    number = np.where(which >= 0, np.asarray(labels)[np.maximum(which, 0)], -1).astype(np.int16)
    if values_shown is None:
        customdata, value = number, "%{z:.3f}"
    else:
        customdata, value = np.dstack([number.astype(np.float32), mosaic(values_shown.astype(np.float32), columns)[0]]), "%{customdata[1]:.3f}"
    label = "%{customdata}" if values_shown is None else "%{customdata[0]}"
    fig = go.Figure(go.Heatmap(
        z=z, customdata=customdata, colorscale=colorscale, zmid=zmid, showscale=False, hoverongaps=False,
        hovertemplate=f"{what} {label}<br>value {value}<extra></extra>",
    ))
    # As tall as the mosaic is at the page's usual width, so the maps fill it without bands above and below.
    fig.update_xaxes(NO_AXES)
    fig.update_yaxes(NO_AXES, autorange="reversed", scaleanchor="x")
    fig.update_layout(height=int(min(20 + WIDTH * z.shape[0] / z.shape[1], 900)), margin=dict(l=0, r=0, t=4, b=4), **TRANSPARENT)
    return fig


def feature_maps(output: LayerOutput) -> go.Figure:
    """A conv or pooling layer's output: one small map per channel (the first MAX_MAPS), hover: map and value."""
    maps = np.moveaxis(output.values, -1, 0)[:MAX_MAPS]
    negative = float(maps.min()) < 0
    return mosaic_figure(maps, np.arange(len(maps)), "map", DIVERGING if negative else "Viridis", 0.0 if negative else None)


def unit_strip(output: LayerOutput, in_order: bool = False) -> go.Figure:
    """A dense layer's output as one strip of cells, the most active unit first (or in the layer's order); hover: unit and value."""
    values = output.values.astype(np.float32)
    order = np.arange(len(values)) if in_order else np.argsort(-values, kind="stable")
    negative = float(values.min()) < 0
    fig = go.Figure(go.Heatmap(
        z=values[order][np.newaxis, :], customdata=order[np.newaxis, :], colorscale=DIVERGING if negative else "Viridis",
        zmid=0.0 if negative else None, showscale=False, xgap=1 if len(values) <= 128 else 0,
        hovertemplate="unit %{customdata}<br>value %{z:.3f}<extra></extra>",
    ))
    fig.update_xaxes(NO_AXES)
    fig.update_yaxes(NO_AXES)
    fig.update_layout(height=70, margin=dict(l=0, r=0, t=4, b=4), **TRANSPARENT)
    return fig


def saliency_overlay(image01: np.ndarray, saliency: np.ndarray, height: int = 300) -> go.Figure:
    """The image in grey with the attribution over it: red pushed towards the class, blue away from it."""
    # The colour scale ends at the 99th percentile of the item's attributions, not at the largest:
    # one strong pixel (often at an edge) would otherwise leave the rest of the map see-through.
    strength = np.abs(saliency[saliency != 0])
    limit = float(np.percentile(strength, 99)) if strength.size else 1.0
    fig = go.Figure([
        go.Heatmap(z=image01, colorscale="Greys", reversescale=True, zmin=0, zmax=1, showscale=False, hoverinfo="skip"),
        go.Heatmap(z=saliency, customdata=image01, colorscale=OVERLAY, zmin=-limit, zmax=limit, showscale=False,
                   hovertemplate="row %{y}, column %{x}<br>pixel %{customdata:.2f}<br>attribution %{z:.4f}<extra></extra>"),
    ])
    fig.update_xaxes(NO_AXES)
    fig.update_yaxes(NO_AXES, autorange="reversed", scaleanchor="x")
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), **TRANSPARENT)
    return fig


def weight_grid(weights: WeightImages, count: int) -> go.Figure:
    """The first `count` weight images, each scaled to its own largest |weight| (a weak unit's pattern
    stays visible; the order already tells their strength), on a red/blue scale; hover: the real weight."""
    images = weights.images[:count].astype(np.float32)
    peaks = np.abs(images).reshape(len(images), -1).max(axis=1)
    scaled = images / np.where(peaks > 0, peaks, 1)[:, None, None]
    what = "unit" if weights.kind == "units" else "filter"
    return mosaic_figure(scaled, weights.units[:count], what, DIVERGING, 0.0, values_shown=images)


def projection_scatter(points: np.ndarray, labels: np.ndarray, predicted: np.ndarray | None, title: str,
                       chosen: int | None = None, height: int = 520) -> go.Figure:
    """Two traces per true class, its right answers as dots and its mistakes as ×; customdata is each
    point's test-image number, which a click on the page reads. Per-point text only for the mistakes:
    ten thousand strings or symbols make plotly's checks take a third of a second."""
    fig = go.Figure()
    wrong = np.zeros(len(points), bool) if predicted is None else predicted != labels
    for c, name in enumerate(FASHION_MNIST.class_names):
        right, mistaken = np.flatnonzero((labels == c) & ~wrong), np.flatnonzero((labels == c) & wrong)
        fig.add_trace(go.Scatter(
            x=points[right, 0], y=points[right, 1], mode="markers", name=name, legendgroup=name, customdata=right,
            marker=dict(color=CLASS_COLORS[c], size=4),
            hovertemplate=f"test image #%{{customdata}}<br>{name}" + (", right" if predicted is not None else "") + "<extra></extra>",
        ))
        if len(mistaken):
            said = [f"said {FASHION_MNIST.class_names[p]}" for p in predicted[mistaken]]
            fig.add_trace(go.Scatter(
                x=points[mistaken, 0], y=points[mistaken, 1], mode="markers", name=f"{name}, wrong", legendgroup=name,
                showlegend=False, customdata=mistaken, hovertext=said,
                marker=dict(color=CLASS_COLORS[c], size=7, symbol="x-thin-open", line=dict(width=1.5, color=CLASS_COLORS[c])),
                hovertemplate=f"test image #%{{customdata}}<br>{name}, %{{hovertext}}<extra></extra>",
            ))
    if chosen is not None:
        fig.add_trace(go.Scatter(
            x=points[[chosen], 0], y=points[[chosen], 1], mode="markers", name="this image", customdata=[chosen],
            marker=dict(symbol="star", size=16, color="#FFD400", line=dict(width=1.5, color="black")),
            hovertemplate="test image #%{customdata} (the first view's)<extra></extra>",
        ))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(title=dict(text=title, font_size=14), height=height, margin=dict(l=0, r=0, t=36, b=0),
                      legend=dict(itemsizing="constant"), dragmode="pan", **TRANSPARENT)
    return fig
