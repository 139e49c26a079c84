import json
import math

import numpy as np
import pytest

from fmnist.charts import LIVE_BATCH_POINTS, LIVE_METRICS, focus_range, live_curves, live_figure, overlay_curves, stack_diagram, thinned
from fmnist.models import PRESETS, count_params, dense_spec

SEED_A = PRESETS["Seed A: 64-128-64-32"]

EPOCHS = [
    {"epoch": 1, "loss": 0.60, "accuracy": 0.78, "val_loss": 0.45, "val_accuracy": 0.84},
    {"epoch": 2, "loss": 0.42, "accuracy": 0.85, "val_loss": None, "val_accuracy": None},
    {"epoch": 3, "loss": 0.37, "accuracy": 0.87, "val_loss": 0.36, "val_accuracy": 0.87},
]
STEPS = 4
BATCHES = [
    {"epoch": e, "step": s, "loss": 1.0 / (e * s), "accuracy": 0.5 + 0.1 * e} for e in (1, 2, 3) for s in (1, 2, 3, 4)
]


def traces(fig, name, xaxis="x"):
    return [t for t in fig.data if t.name == name and (t.xaxis or "x") == xaxis]


def one_trace(fig, name, xaxis="x"):
    found = traces(fig, name, xaxis)
    assert len(found) == 1, f"{name} on {xaxis}: {[(t.name, t.xaxis) for t in fig.data]}"
    return found[0]


def annotation_texts(fig):
    return [a.text for a in fig.layout.annotations]


# --- stack_diagram ---


def test_stack_diagram_has_one_box_per_layer_with_widths_and_params():
    fig = stack_diagram(SEED_A)
    (bars,) = fig.data
    assert bars.type == "bar"
    assert len(bars.x) == 1 + 1 + 4 + 1, "input, flatten, four hidden layers, output"
    titles = [a.text for a in fig.layout.annotations if a.yanchor == "top" and a.y == 1]
    assert titles == ["<b>Input</b>", "<b>Flatten</b>", "<b>Dense<br>64</b>", "<b>Dense<br>128</b>",
                      "<b>Dense<br>64</b>", "<b>Dense<br>32</b>", "<b>Dense<br>10</b>"]
    texts = " ".join(annotation_texts(fig))
    assert "28×28×1" in texts and "784" in texts and "softmax" in texts
    # Keras' own counts: 784*64+64, 64*128+128, 128*64+64, 64*32+32, 32*10+10.
    assert list(bars.customdata) == [0, 0, 50240, 8320, 8256, 2080, 330]
    assert sum(bars.customdata) == count_params(SEED_A) == 69226
    for params, hover in zip(bars.customdata[2:], bars.hovertext[2:]):
        assert f"{params:,} params" in hover
    for label in ("50.2k params", "8.3k params", "8.3k params", "2.1k params", "330 params"):
        assert label in texts


def test_stack_diagram_detail_lines_stay_narrow_enough_for_neighbours():
    """Side by side in a 60-pixel slot a line of 10-pixel text has room for about 12 characters."""
    fig = stack_diagram(PRESETS["Small CNN"])
    lines = [line for a in fig.layout.annotations if a.y != 1 for line in a.text.split("<br>")]
    for expected in ("320 params", "18.5k params", "402k params", "1.3k params", "pool", "drop 0.25", "drop 0.3"):
        assert expected in lines
    assert max(map(len, lines)) <= 12, max(lines, key=len)


def test_stack_diagram_heights_keep_narrow_and_wide_layers_visible():
    fig = stack_diagram(dense_spec([8, 1024]))
    heights = list(fig.data[0].y)
    assert heights[2:4] == [pytest.approx(math.sqrt(8)), pytest.approx(math.sqrt(1024))]
    assert heights[2] / heights[3] > 0.05
    low, high = fig.layout.yaxis.range
    for height, base in zip(heights, fig.data[0].base):
        assert base == pytest.approx(-height / 2), "boxes are centred on one line"
        assert low <= base and base + height <= high
    assert fig.layout.yaxis.range == stack_diagram(SEED_A).layout.yaxis.range, "same scale whatever the stack"


def test_stack_diagram_marks_batch_norm_and_dropout():
    plain = stack_diagram(SEED_A)
    assert not any("BN" in t or "drop" in t for t in annotation_texts(plain))
    spec = dense_spec([64, 32], dropout=0.25, batch_norm=True)
    fig = stack_diagram(spec)
    details = [t for t in annotation_texts(fig) if "params" in t]
    assert len(details) == 3
    assert all("BN" in t and "drop 0.25" in t for t in details[:2])
    assert "BN" not in details[2], "the output layer has neither"
    bars = fig.data[0]
    assert list(bars.marker.pattern.shape) == ["", "", ".", ".", ""]
    # A box counts its batch-norm too (4 per unit), so the boxes still add up.
    assert list(bars.customdata[2:4]) == [784 * 64 + 64 + 4 * 64, 64 * 32 + 32 + 4 * 32]
    assert sum(bars.customdata) == count_params(spec)
    assert "batch-norm" in bars.hovertext[2] and "dropout 0.25" in bars.hovertext[2]


def test_stack_diagram_is_a_clean_transparent_picture():
    fig = stack_diagram(SEED_A)
    assert fig.layout.height == 260
    assert not fig.layout.xaxis.visible and not fig.layout.yaxis.visible
    assert fig.layout.paper_bgcolor == fig.layout.plot_bgcolor == "rgba(0,0,0,0)"
    assert fig.layout.title.text is None
    assert len(fig.layout.shapes) == 6, "a band joins each pair of neighbouring boxes"


# --- live curves: live_curves, the live chart's data ---


def line(curves, metric, name):
    xs, ys = curves[metric][name]
    return xs, ys


def test_live_curves_epoch_points():
    curves = live_curves(EPOCHS, BATCHES, STEPS, 10)
    for metric in LIVE_METRICS:
        assert line(curves, metric, "train") == ([1, 2, 3], [row[metric] for row in EPOCHS])
        assert line(curves, metric, "val") == ([1, 3], [EPOCHS[0][f"val_{metric}"], EPOCHS[2][f"val_{metric}"]]), \
            "epoch 2 has no validation value"
    assert curves["colors"][0] != curves["colors"][1], "train and validation apart"


def test_live_curves_batch_points_meet_their_epoch_points():
    x, y = line(live_curves(EPOCHS, BATCHES, STEPS, 10), "loss", "batch")
    assert len(x) == len(BATCHES) and all(0 < v <= 3 for v in x)
    assert x[:4] == [0.25, 0.5, 0.75, 1.0], "the last batch of epoch 1 meets its epoch point"
    assert y == pytest.approx([row["loss"] for row in BATCHES], rel=1e-4)
    assert line(live_curves(EPOCHS, BATCHES, STEPS, 10), "accuracy", "batch")[1] == [row["accuracy"] for row in BATCHES]


def test_a_long_runs_per_batch_line_is_thinned_to_means_that_stay_put_as_points_arrive():
    steps = 59  # a 60,000-image epoch at batch 64, a point every 16th batch
    batches = [{"epoch": e, "step": k, "loss": 2.0 / e + 0.01 * (k % 2), "accuracy": 0.5} for e in range(1, 41) for k in range(1, steps + 1)]
    x, y = line(live_curves([], batches, steps, 40), "loss", "batch")
    assert LIVE_BATCH_POINTS / 2 < len(x) <= LIVE_BATCH_POINTS < len(batches)
    assert x == sorted(x) and 0 < x[0] < 0.1 and 39.9 < x[-1] <= 40
    assert abs(sum(y) / len(y) - sum(b["loss"] for b in batches) / len(batches)) < 0.05, "means of the points, not a pick"
    more = batches + [{"epoch": 41, "step": k, "loss": 0.05, "accuracy": 0.5} for k in range(1, 6)]
    assert line(live_curves([], more, steps, 41), "loss", "batch")[0][:100] == x[:100], "the line's start stays put"
    short_x, short_y = thinned(*map(np.asarray, ([0.5, 1.0], [2.0, 1.0])))
    assert list(short_x) == [0.5, 1.0] and list(short_y) == [2.0, 1.0], "a short line is left as it is"


def test_live_curves_without_steps_or_validation_or_anything_yet():
    no_val = [{**row, "val_loss": None, "val_accuracy": None} for row in EPOCHS]
    curves = live_curves(no_val, BATCHES, None, 5)
    assert line(curves, "loss", "batch") == ([], []) and line(curves, "loss", "val") == ([], [])
    assert line(curves, "loss", "train")[0] == [1, 2, 3]
    empty = live_curves([], [], None, None)
    assert empty["epochs"] == 1 and all(line(empty, m, name) == ([], []) for m in LIVE_METRICS for name in ("batch", "train", "val"))
    assert empty["loss"]["focus"] is None


def test_live_curves_are_short_plain_json_numbers():
    """What each refresh sends each tab: lists of numbers, rounded, nothing else."""
    batches = [{"epoch": 1, "step": k, "loss": 1 / 3 + k, "accuracy": 2 / 3} for k in range(1, 8)]
    curves = live_curves(EPOCHS, batches, 7, 10)
    assert json.loads(json.dumps(curves)) == curves
    xs, ys = line(curves, "loss", "batch")
    assert xs[0] == 0.1429 and ys[0] == 1.3333, "x to 1/10,000 of an epoch, values to 5 figures"
    assert all(isinstance(v, float) for v in xs + ys)


def test_live_curves_axes():
    assert live_curves(EPOCHS, BATCHES, STEPS, 20)["epochs"] == 20, "fixed: the axes do not jump as points arrive"
    assert live_curves(EPOCHS, BATCHES, STEPS, None)["epochs"] == 3, "else the epochs seen"
    values = [row["loss"] for row in EPOCHS] + [0.45, 0.36]
    assert live_curves(EPOCHS, BATCHES, STEPS, 20)["loss"]["focus"] == focus_range(values), \
        "around the epoch values, not the first batches' 2.3"
    assert live_curves(EPOCHS[:1], BATCHES, STEPS, 20)["loss"]["focus"] is None, "all points until there are two epochs"


# --- overlay_curves ---


def test_overlay_curves_one_colour_per_run():
    other = [{**row, "loss": row["loss"] + 0.1} for row in EPOCHS]
    fig = overlay_curves({"run 1": EPOCHS, "run 2": other}, "loss")
    assert [t.name for t in fig.data] == ["run 1", "run 1 (val)", "run 2", "run 2 (val)"]
    run1, run1_val, run2, run2_val = fig.data
    assert list(run1.x) == [1, 2, 3] and list(run1.y) == [0.60, 0.42, 0.37]
    assert list(run2.y) == pytest.approx([0.70, 0.52, 0.47])
    assert list(run1_val.x) == [1, 3]
    assert run1.line.color == run1_val.line.color != run2.line.color == run2_val.line.color
    assert run1.line.dash == "solid" and run1_val.line.dash == "dash"
    assert fig.layout.yaxis.title.text == "loss"
    accuracy = overlay_curves({"run 1": EPOCHS}, "accuracy")
    assert list(accuracy.data[0].y) == [0.78, 0.85, 0.87]
    assert len(overlay_curves({}, "loss").data) == 0


def test_live_curves_focus_on_the_epoch_values_once_there_are_two():
    epochs = [
        {"epoch": 1, "loss": 0.6, "accuracy": 0.78, "val_loss": 0.5, "val_accuracy": 0.8},
        {"epoch": 2, "loss": 0.4, "accuracy": 0.85, "val_loss": 0.45, "val_accuracy": 0.84},
    ]
    low, high = live_curves(epochs, [], None, 5)["loss"]["focus"]
    assert low < 0.4 and 0.6 < high < 2.3, "epoch losses fill the plot; a first batch's 2.3 is off the top"
    low, high = live_curves(epochs, [], None, 5)["accuracy"]["focus"]
    assert 0.1 < low < 0.78 and high > 0.85


# --- curves_figure: one figure builder for a run live, ended, and runs side by side ---


def test_live_figure_draws_the_runs_curves_from_live_curves():
    curves = live_curves(EPOCHS, BATCHES, STEPS, 10)
    fig = live_figure(curves, "loss")
    assert [t.name for t in fig.data] == ["train (per batch)", "train", "validation"]
    batch, train, val = fig.data
    assert [list(batch.x), list(batch.y)] == curves["loss"]["batch"]
    assert [list(train.x), list(train.y)] == curves["loss"]["train"] and [list(val.x), list(val.y)] == curves["loss"]["val"]
    assert batch.mode == "lines" and batch.line.width < train.line.width and batch.opacity < 1, "the per-batch line thin and pale"
    assert train.mode == val.mode == "lines+markers"
    assert train.line.dash == "solid" and val.line.dash == "dash", "told apart by dash, not by colour alone"
    assert train.line.color == batch.line.color != val.line.color
    low, high = fig.layout.xaxis.range
    assert low < 0 and 10 < high < 10.5, "the run's epochs, a little wider: the first and last points show whole"
    assert list(fig.layout.yaxis.range) == curves["loss"]["focus"]
    assert fig.layout.title.text == "Loss" and fig.layout.hovermode == "x unified"
    assert live_figure(live_curves(EPOCHS[:1], BATCHES[:4], STEPS, 10), "loss").layout.yaxis.range is None, "Plotly's own range at first"


def test_a_run_live_and_the_leaderboards_runs_read_alike():
    """Issue 30: one figure builder, so a run's chart does not change its look when the run ends and
    shows on the Leaderboard: the same axes, hover and line styles."""
    live = live_figure(live_curves(EPOCHS, BATCHES, STEPS, None), "accuracy")
    overlay = overlay_curves({"run 1": EPOCHS}, "accuracy")
    for fig in (live, overlay):
        assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.title.text == "epoch"
        assert fig.layout.yaxis.title.text == "accuracy" and fig.layout.hovermode == "x unified"
        assert fig.layout.xaxis.unifiedhovertitle.text == "epoch %{x}"
    assert list(live.layout.xaxis.range) == list(overlay.layout.xaxis.range), "the same epochs, the same x axis"
    for kind, index in (("train", 1), ("validation", 2)):
        style = lambda trace: (trace.mode, trace.line.dash, trace.line.width, trace.marker.size)  # noqa: E731
        ours, theirs = live.data[index], overlay.data[index - 1]
        assert style(ours) == style(theirs), kind
        assert list(ours.y) == list(theirs.y)
    assert overlay.data[0].hovertemplate == "run 1 accuracy %{y:.4~f}<extra></extra>"
    assert live.data[2].hovertemplate == "validation accuracy %{y:.4~f}<extra></extra>"


def test_the_live_charts_figures_are_short_json_without_plotlys_template():
    """What a refresh sends each watching tab: the two figures' JSON, without plotly.py's template
    (the browser styles them from the theme), and with a long run's per-batch line thinned."""
    from fmnist.live_chart import figure_json, live_chart_data

    steps = 59
    batches = [{"epoch": e, "step": k, "loss": 2.0 / e + 0.001 * k, "accuracy": 0.5 + 0.001 * k} for e in range(1, 41) for k in range(1, steps + 1)]
    epochs = [{"epoch": e, "loss": 2.0 / e, "accuracy": 0.9, "val_loss": 2.1 / e, "val_accuracy": 0.88} for e in range(1, 41)]
    curves = live_curves(epochs, batches, steps, 40)
    figures = live_chart_data(curves)
    assert set(figures) == set(LIVE_METRICS)
    for metric, figure in figures.items():
        assert figure == json.loads(json.dumps(figure_json(live_figure(curves, metric)))), "live_figure's figure, its points filled in"
        assert "template" not in figure["layout"]
        assert len(figure["data"][0]["x"]) <= LIVE_BATCH_POINTS
    sent = json.dumps(figures, separators=(",", ":"))
    assert json.loads(sent) == figures
    assert len(sent) < 24_000, f"{len(sent):,} bytes a refresh"
