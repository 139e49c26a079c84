"""The Build & Train page through Streamlit's AppTest."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from fmnist.app.caches import get_dataset
from fmnist.models import dense_spec
from fmnist.store import RunStore
from fmnist.worker import try_start

from helpers import APP, ml_modules_after, wait_until

SEED_PARAMS = {
    "Seed A: 64-128-64-32": "69,226",
    "Seed B: 64-128-32": "63,018",
    "Seed C: 64-32": "52,650",
    "Seed D: 128-64": "109,386",
}


@pytest.fixture
def app(home):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def params_shown(at) -> str:
    return next(m.value for m in at.metric if m.label == "Parameters")


def test_presets_fill_the_sliders_and_give_the_seed_parameter_counts(app):
    assert params_shown(app) == "109,386", "the default preset is the seed's 128-64"
    for preset, params in SEED_PARAMS.items():
        app.selectbox(key="build_preset").select(preset).run()
        widths = [int(w) for w in preset.split(": ")[1].split("-")]
        assert app.slider(key="build_layers").value == len(widths)
        assert [app.slider(key=f"build_width_{i}").value for i in range(len(widths))] == widths
        assert params_shown(app) == params


def test_every_preset_reaches_every_control(app):
    """A preset's training settings must be among the widgets' choices, or selecting it would fail."""
    from fmnist.models import PRESETS, count_params

    for name, spec in PRESETS.items():
        app.selectbox(key="build_preset").select(name).run()
        assert not app.exception, (name, app.exception)
        shown = (app.slider(key="build_epochs").value, app.select_slider(key="build_batch_size").value,
                 app.select_slider(key="build_lr").value, app.slider(key="build_val_split").value,
                 app.selectbox(key="build_lr_schedule").value, app.checkbox(key="build_augment").value,
                 app.selectbox(key="build_mixed_precision").value)
        assert shown == (spec.epochs, spec.batch_size, spec.learning_rate, spec.val_split, spec.lr_schedule,
                         spec.augment, spec.mixed_precision), name
        assert params_shown(app) == f"{count_params(spec):,}", name


def test_moving_sliders_updates_the_count_and_summary(app):
    app.slider(key="build_layers").set_value(2).run()
    app.slider(key="build_width_0").set_value(100).run()
    app.slider(key="build_width_1").set_value(50).run()
    assert params_shown(app) == "84,060"  # 784*100+100 + 100*50+50 + 50*10+10
    app.checkbox(key="build_batch_norm").check().run()
    assert params_shown(app) == "84,660"  # + 4 per unit for batch-norm
    summary = app.dataframe[0].value
    assert list(summary["type"]) == ["Flatten", "Dense", "BatchNormalization", "Activation", "Dense", "BatchNormalization", "Activation", "Dense"]
    assert summary["params"].sum() == 84660
    app.slider(key="build_layers").set_value(3).run()
    assert app.slider(key="build_width_2").value == 64
    assert params_shown(app) == f"{84660 - 510 + 50 * 64 + 64 + 4 * 64 + 64 * 10 + 10:,}"


def test_per_layer_settings(app):
    app.toggle(key="build_per_layer").set_value(True).run()
    app.slider(key="build_dropout_1").set_value(0.3).run()
    app.checkbox(key="build_batch_norm_0").check().run()
    types = list(app.dataframe[0].value["type"])
    assert types == ["Flatten", "Dense", "BatchNormalization", "Activation", "Dense", "Dropout", "Dense"]


def test_start_creates_a_run_that_trains_in_its_own_process(app):
    app.select_slider(key="build_limit").set_value(1000).run()
    app.slider(key="build_epochs").set_value(1).run()
    app.text_input(key="build_run_name").input("from the page").run()
    app.button(key="start").click().run()
    assert not app.exception, app.exception
    store = RunStore()
    [run] = store.list_runs()
    assert run.name == "from the page" and run.train_limit == 1000 and run.spec.epochs == 1
    assert run.status in ("queued", "running")
    assert any(run.name in m.value for m in app.markdown), "the live panel shows the new run"
    done = wait_until(lambda: (r := store.get(run.id)).status in ("finished", "failed") and r, timeout=120, message="the run to end")
    assert done.status == "finished", done.error
    assert (done.backend_setting, done.backend) == ("auto", "jax"), "auto trains a dense stack on JAX"
    app.run()
    assert any(m.label == "Test accuracy" for m in app.metric)
    assert any(m.value.endswith("· finished · JAX") for m in app.markdown), "the run's header names its backend"
    assert any(done.device in c.value for c in app.caption)


def test_the_engine_setting_says_what_auto_picks_and_goes_with_the_run(app):
    engine = app.selectbox(key="build_backend")
    assert engine.value == "auto" and engine.format_func("auto") == "auto (JAX for this stack)"
    app.selectbox(key="build_preset").set_value("Small CNN").run()
    assert app.selectbox(key="build_backend").format_func("auto") == "auto (TensorFlow for this stack)"
    app.selectbox(key="build_preset").set_value("Seed C: 64-32").run()
    app.selectbox(key="build_backend").set_value("tensorflow").run()
    app.select_slider(key="build_limit").set_value(1000).run()
    app.slider(key="build_epochs").set_value(1).run()
    app.button(key="start").click().run()
    assert not app.exception, app.exception
    store = RunStore()
    [run] = store.list_runs()
    assert run.backend_setting == "tensorflow"
    done = wait_until(lambda: (r := store.get(run.id)).status in ("finished", "failed") and r, timeout=120, message="the run to end")
    assert done.status == "finished" and done.backend == "tensorflow", done.error


def test_a_bad_fmnist_backend_is_said_and_the_page_starts_from_auto(home, monkeypatch):
    monkeypatch.setenv("FMNIST_BACKEND", "cuda")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="build_backend").value == "auto"
    assert any("FMNIST_BACKEND: one of auto, tensorflow, jax, got 'cuda'" in w.value for w in at.warning)


def test_a_second_start_while_one_trains_is_queued_and_says_so(app):
    app.select_slider(key="build_limit").set_value(20000).run()
    app.slider(key="build_epochs").set_value(30).run()
    app.button(key="start").click().run()
    store = RunStore()
    first = store.list_runs()[0]
    wait_until(lambda: store.get(first.id).status == "running", timeout=60, message="the first run to start")
    app.slider(key="build_epochs").set_value(1).run()
    app.button(key="start").click().run()
    assert any("queued behind" in i.value for i in app.info)
    second = store.list_runs()[1]
    assert second.status == "queued"
    for run in (second, first):
        store.request_stop(run.id)
    wait_until(lambda: not store.list_runs(statuses=("queued", "running")), timeout=60, message="both runs to end")
    assert store.get(second.id).status == "cancelled" and store.get(first.id).status == "stopped"


def test_invalid_spec_shows_an_error_and_disables_start(home, monkeypatch):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.checkbox(key="build_early_stopping").check().run()
    at.slider(key="build_val_split").set_value(0.0).run()
    assert any("cannot be built" in e.value for e in at.error)
    assert at.button(key="start").disabled


def test_missing_dataset_is_a_message_not_a_traceback(home, monkeypatch):
    monkeypatch.setenv("FMNIST_DATA", str(home / "nowhere"))
    get_dataset.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.button(key="start").click().run()
    assert not at.exception
    assert any("dataset-fashion-mnist" in e.value for e in at.error)
    assert RunStore().list_runs() == []


def test_the_train_page_does_not_import_tensorflow(home):
    """Slider moves and the live panel must stay instant: TensorFlow loads only in training processes."""
    steps = "at.run()\nat.slider(key='build_layers').set_value(3).run()\nassert not at.exception, at.exception"
    assert ml_modules_after(steps) == []


def test_conv_controls_and_the_small_cnn_preset(app):
    from fmnist.models import PRESETS, ConvBlock, DenseLayer, ModelSpec, count_params

    app.selectbox(key="build_preset").select("Small CNN").run()
    cnn = PRESETS["Small CNN"]
    assert app.slider(key="build_conv_blocks").value == 2
    assert [app.select_slider(key=f"build_filters_{i}").value for i in range(2)] == [32, 64]
    assert app.slider(key="build_conv_dropout_1").value == 0.25
    assert app.slider(key="build_epochs").value == cnn.epochs and app.selectbox(key="build_lr_schedule").value == "cosine"
    assert params_shown(app) == f"{count_params(cnn):,}"
    assert list(app.dataframe[0].value["type"][:6]) == ["Conv2D", "MaxPooling2D", "Dropout", "Conv2D", "MaxPooling2D", "Dropout"]

    app.slider(key="build_conv_blocks").set_value(1).run()
    app.selectbox(key="build_kernel_0").select(5).run()
    app.checkbox(key="build_conv_norm_0").check().run()
    expected = ModelSpec(conv=(ConvBlock(32, 5, dropout=0.25, batch_norm=True),), layers=(DenseLayer(128, dropout=0.3),))
    assert params_shown(app) == f"{count_params(expected):,}"  # 5*5*32+32 + 4*32 + 14*14*32*128+128 + 1290

    app.checkbox(key="build_augment").check().run()
    assert list(app.dataframe[0].value["type"][:2]) == ["RandomTranslation", "RandomFlip"]
    app.slider(key="build_conv_blocks").set_value(0).run()
    assert params_shown(app) == f"{784 * 128 + 128 + 1290:,}", "back to a dense-only stack"


@pytest.mark.parametrize("has_bfloat16, warned", [(True, False), (False, True), (None, False)])
def test_bfloat16_warns_only_on_a_cpu_without_bfloat16(app, monkeypatch, has_bfloat16, warned):
    import fmnist.models

    monkeypatch.setattr(fmnist.models, "cpu_has_bfloat16", lambda: has_bfloat16)
    app.selectbox(key="build_mixed_precision").select(True).run()
    assert any("no bfloat16 instructions" in w.value and "slower here" in w.value for w in app.warning) == warned
    for setting in (False, "auto"):
        app.selectbox(key="build_mixed_precision").select(setting).run()
        assert not any("bfloat16" in w.value for w in app.warning)


@pytest.mark.parametrize("has_bfloat16, cnn_here", [(True, "bfloat16"), (False, "float32"), (None, "float32")])
def test_auto_precision_says_what_it_picks_on_this_machine(app, monkeypatch, has_bfloat16, cnn_here):
    import fmnist.models

    monkeypatch.setattr(fmnist.models, "cpu_has_bfloat16", lambda: has_bfloat16)
    app.selectbox(key="build_preset").select("Small CNN").run()
    precision = app.selectbox(key="build_mixed_precision")
    assert precision.value == "auto", "the preset leaves the precision to the machine"
    assert precision.options[0] == f"auto ({cnn_here} here)"
    app.selectbox(key="build_preset").select("Best MLP").run()
    assert app.selectbox(key="build_mixed_precision").options[0] == "auto (float32 here)", "a dense stack gains nothing from bfloat16"


def finished_here(store: RunStore, spec, backend: str, samples_per_s: float, **fields) -> int:
    """A run of the spec that finished on this machine's CPU at that speed, as the training process records it."""
    from fmnist.machine import cpu_name

    run_id = store.create_run(spec, name="earlier", **fields)
    try_start(store, run_id, 1)
    store.record_engine(run_id, backend, cpu_name())
    samples = round(60000 * (1 - spec.val_split)) * spec.epochs
    store.finish(run_id, "finished", test_acc=0.9, test_loss=0.3, train_s=samples / samples_per_s, samples_per_s=samples_per_s)
    return run_id


def test_preset_labels_show_the_time_measured_on_this_machine(app):
    from dataclasses import replace

    from fmnist.models import PRESETS

    def label(name: str) -> str:
        return next(option for option in app.selectbox(key="build_preset").options if option.startswith(name))

    # Nothing trained here yet: no time from another CPU, and no promise.
    assert label("Best MLP") == "Best MLP · 0.899 test accuracy · time not measured on this machine yet"
    assert "This training: time not measured on this machine yet" in [caption.value for caption in app.caption]
    store = RunStore()
    # Best MLP trained here at 12,000 samples/s (another seed: the speed is the same workload's):
    # 20 epochs of 54,000 images take 90 s (its start-up is unknown: the synthetic run ended as it started).
    finished_here(store, replace(PRESETS["Best MLP"], seed=3), "jax", 12000)
    # The same stack in bfloat16 is another workload; another machine's run says nothing of this one.
    finished_here(store, replace(PRESETS["Best MLP"], mixed_precision=True), "jax", 3000)
    other = finished_here(store, PRESETS["Best MLP"], "jax", 50000)
    store.record_engine(other, "jax", "Another CPU")
    app.run()
    assert label("Best MLP") == "Best MLP · 0.899 test accuracy · 1 min 30 s here (1 run)"
    assert label("Small CNN").endswith("time not measured on this machine yet"), "a dense run says nothing of a CNN's speed"
    app.selectbox(key="build_preset").select("Best MLP").run()
    assert "This training: 1 min 30 s here (1 run)" in [caption.value for caption in app.caption]


def test_a_run_whose_process_died_shows_why(app):
    store = RunStore()
    run_id = store.create_run(dense_spec([32]), name="crashed")
    try_start(store, run_id, 1)
    store.set_pid(run_id, 2**22 + 7, None)  # no such process
    app.run()
    assert any("interrupted" in e.value and "ended without finishing" in e.value for e in app.error)
    assert store.get(run_id).status == "interrupted"


# --- the live panel: refreshing while a run trains, still once it has ended (issue 13) ---

LIVE_EVERY_S = 1.0  # pages/train.py: the curves refresh at least once a second while a run trains


def refresh_intervals(monkeypatch) -> list[float]:
    """The refresh intervals the app asks the browser for (Streamlit's auto_rerun messages: the
    browser reruns a fragment every `interval` seconds), as they are sent."""
    from streamlit.runtime.forward_msg_queue import ForwardMsgQueue

    sent, enqueue = [], ForwardMsgQueue.enqueue

    def recording(self, msg):
        if msg.WhichOneof("type") == "auto_rerun":
            sent.append(msg.auto_rerun.interval)
        return enqueue(self, msg)

    monkeypatch.setattr(ForwardMsgQueue, "enqueue", recording)
    return sent


def write_epoch(store: RunStore, run_id: int, epoch: int, steps: int = 10) -> None:
    """An epoch's per-batch points and its end, as the engine's callback writes them."""
    for step in range(1, steps + 1):
        store.record_progress(run_id, epoch, step, steps, 1000.0, [(epoch, step, 1.0 / (epoch + step), 0.5 + 0.01 * step)])
    store.record_epoch(run_id, epoch, {"loss": 0.5 / epoch, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.78}, 1.0)


def training_run(store: RunStore) -> int:
    """A run in its training process (this one: alive, so it is not taken for interrupted)."""
    run_id = store.create_run(dense_spec([32], epochs=5), name="watched")
    assert try_start(store, run_id, max_parallel=1)
    return run_id


def live_data(at) -> dict:
    """What the panel sent its live chart (fmnist.live_chart: one component, its data as JSON)."""
    [chart] = [c for c in at.get("bidi_component") if c.proto.component_name == "fmnist.live_chart"]
    return json.loads(chart.proto.json)


def live_line(at, metric: str, name: str) -> list[list]:
    """[xs, ys] of the line called `name` in the live chart of `metric` (a Plotly figure's trace)."""
    [trace] = [trace for trace in live_data(at)[metric]["data"] if trace["name"] == name]
    assert len(trace["x"]) == len(trace["y"])
    return [trace["x"], trace["y"]]


def live_points(at, metric: str = "loss") -> int:
    """The per-batch points the live chart of `metric` was sent."""
    return len(live_line(at, metric, "train (per batch)")[0])


def test_a_training_runs_panel_refreshes_every_second_and_shows_new_points(home, monkeypatch):
    store = RunStore()
    run_id = training_run(store)
    write_epoch(store, run_id, 1)
    sent = refresh_intervals(monkeypatch)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert LIVE_EVERY_S in sent, "the browser refreshes the panel every second"
    assert any("watched" in m.value and "running" in m.value for m in at.markdown)
    assert live_points(at) == 10
    write_epoch(store, run_id, 2)
    at.run()
    assert live_points(at) == live_points(at, "accuracy") == 20, "the panel picks up the new points"


def test_the_panel_passes_the_runs_points_and_progress_to_its_live_chart(home):
    store = RunStore()
    run_id = training_run(store)
    write_epoch(store, run_id, 1)
    store.record_progress(run_id, 2, 4, 10, 2500.0, [(2, 4, 0.25, 0.9)])
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    data = live_data(at)
    low, high = data["loss"]["layout"]["xaxis"]["range"]
    assert low < 0 and 5 < high < 5.2, "the x axis spans the run's epochs"
    xs, ys = live_line(at, "loss", "train (per batch)")
    assert xs[:2] == [0.1, 0.2] and xs[-2:] == [1.0, 1.4], "batch k of epoch e at e - 1 + k/steps"
    assert ys[0] == 0.5 and ys[-1] == 0.25 and live_line(at, "accuracy", "train (per batch)")[1][-1] == 0.9
    assert live_line(at, "loss", "train") == [[1], [0.5]] and live_line(at, "loss", "validation") == [[1], [0.6]]
    assert live_line(at, "accuracy", "train") == [[1], [0.8]] and live_line(at, "accuracy", "validation") == [[1], [0.78]]
    assert "template" not in data["loss"]["layout"], "the browser styles the figure from the theme"
    assert data["files"]["plotly"].endswith("/plotly.min.js"), "plotly.js is fetched as a file, not sent with the data"
    assert data["progress"]["text"].startswith("Epoch 2/5 · batch 4/10 · 2,500 samples/s")
    assert 0.2 < data["progress"]["fraction"] < 0.4
    assert not at.get("vega_lite_chart") and not at.get("progress"), "one element, not Streamlit's charts and bar"

    store.finish(run_id, "stopped", test_loss=0.4, test_acc=0.85, train_s=2.0)
    at.run()
    assert live_data(at)["progress"] is None, "no progress line once the run has ended"
    assert live_points(at) == 11, "its curves stay"


def test_an_ended_runs_panel_stands_still_and_is_built_once(home, monkeypatch):
    import streamlit as st

    import fmnist.charts

    store = RunStore()
    run_id = training_run(store)
    write_epoch(store, run_id, 1)
    store.finish(run_id, "finished", test_loss=0.4, test_acc=0.85, train_s=2.0)
    built, live_curves = [], fmnist.charts.live_curves
    monkeypatch.setattr(fmnist.charts, "live_curves", lambda *args: built.append(args[0]) or live_curves(*args))
    st.cache_data.clear()
    sent = refresh_intervals(monkeypatch)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert any(m.label == "Test accuracy" for m in at.metric)
    assert LIVE_EVERY_S not in sent, "no refresh of an ended run's panel"
    for width in (100, 101, 100):  # page runs that redraw the panel: a person moving a slider
        at.slider(key="build_width_0").set_value(width).run()
    assert live_points(at) == 10
    assert len(built) == 1, "the curves' data was built once, not on every page run"
    assert LIVE_EVERY_S not in sent
