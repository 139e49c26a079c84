"""Inside a trained model (library and page): activations, first-layer weights, saliency and the
projections, on real models trained on subsets; and the Inside page through AppTest, bad input included."""

import dataclasses
import os
import shutil

import keras
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_evaluation import train_tiny

from fmnist import services
from fmnist.access import Actor, Person
from fmnist.inside import Inside, first_layer_weights, hidden_outputs, run_pca
from fmnist.inside_charts import InsideError, feature_maps, mosaic, unit_strip, weight_grid
from fmnist.jobs.process import run_in_this_process
from fmnist.models import PRESETS, layer_plan, with_training
from fmnist.prediction import load_model
from fmnist.projection import (
    PCA,
    TSNE,
    latest_projection,
    model_version,
    pca_2d,
    pixels_projection_path,
    read_projection,
    run_projection_path,
    save_projection,
)
from fmnist.runs import RunKind, RunStatus
from fmnist.store import RunStore
from fmnist.training import train_run
from fmnist.worker import reap_dead_runs, this_process, try_start

from helpers import APP

PAGE = "pages/inside.py"


def train_cnn(store: RunStore, dataset) -> int:
    """The Small CNN preset, one epoch on 2,000 images: its layers, in a few seconds."""
    run_id = store.create_run(with_training(PRESETS["Small CNN"], epochs=1), name="cnn", train_limit=2000)
    assert try_start(store, run_id, max_parallel=1)
    assert train_run(store, run_id, dataset)["status"] == "finished", store.get(run_id).error
    return run_id


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory, dataset):
    """An MLP that learnt something (2 epochs on 3,000 images) and the Small CNN, trained once for the module."""
    home = tmp_path_factory.mktemp("inside") / "home"
    store = RunStore(home)
    mlp = train_tiny(store, dataset, (64, 32), "mlp", epochs=2)
    cnn = train_cnn(store, dataset)
    return home, mlp, cnn


@pytest.fixture
def trained(trained_home, home):
    source, mlp, cnn = trained_home
    shutil.copytree(source, home)
    return RunStore(home), mlp, cnn


@pytest.fixture(scope="module")
def models(trained_home):
    home, mlp, cnn = trained_home
    store = RunStore(home)
    return store, {"mlp": (mlp, load_model(store, mlp)), "cnn": (cnn, load_model(store, cnn))}


# --- the library ---


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_activations_have_the_layer_shapes_of_the_model(models, dataset, which):
    store, by_name = models
    run_id, model = by_name[which]
    look = Inside(model).look(dataset.x_test[0] / 255.0)
    # What runs when predicting, in the model's order: every planned layer but the training-only ones and Flatten.
    planned = {layer.name: layer for layer in layer_plan(store.get(run_id).spec)}
    expected = [name for name, layer in planned.items() if layer.type not in ("Dropout", "Flatten") and name != "output"]
    assert [output.name for output in look.outputs] == expected
    for output in look.outputs:
        assert output.values.shape == planned[output.name].output_shape == tuple(model.get_layer(output.name).output.shape[1:])
        assert output.type == planned[output.name].type
    assert {layer.name for layer in look.skipped} == {name for name, layer in planned.items() if layer.type in ("Dropout", "Flatten")}
    # The probabilities are the model's own, and the first layer's output is that layer applied to the image.
    x = dataset.x_test[:1, :, :, None] / np.float32(255)
    np.testing.assert_allclose(look.probs, model.predict_on_batch(x)[0], atol=1e-5)
    first = model.get_layer(look.outputs[0].name)
    if which == "mlp":
        np.testing.assert_allclose(look.outputs[0].values, np.asarray(first(x.reshape(1, -1)))[0], rtol=1e-4, atol=1e-5)
    assert look.target == int(np.argmax(look.probs))


def test_first_layer_weight_images_are_the_kernel_reshaped(models):
    _, by_name = models
    mlp = by_name["mlp"][1]
    weights = first_layer_weights(mlp)
    kernel = mlp.get_layer("dense_1").get_weights()[0]  # (784, 64)
    assert weights.layer == "dense_1" and weights.kind == "units" and weights.images.shape == (64, 28, 28)
    assert sorted(weights.units.tolist()) == list(range(64))
    for image, unit in zip(weights.images, weights.units):
        np.testing.assert_array_equal(image, kernel[:, unit].reshape(28, 28))
        assert image[3, 5] == kernel[3 * 28 + 5, unit], "row by row, as Flatten lays the pixels out"
    np.testing.assert_allclose(weights.norms, np.linalg.norm(kernel[:, weights.units], axis=0), rtol=1e-5)
    assert np.all(np.diff(weights.norms) <= 0), "the largest norm first"

    cnn = by_name["cnn"][1]
    filters = first_layer_weights(cnn)
    kernel = cnn.get_layer("conv_1").get_weights()[0]  # (3, 3, 1, 32)
    assert filters.kind == "filters" and filters.images.shape == (32, 3, 3)
    for image, number in zip(filters.images, filters.units):
        np.testing.assert_array_equal(image, kernel[:, :, 0, number])
    # The figure shows each image scaled to itself, and hover tells the real weights.
    figure = weight_grid(weights, 16)
    shown = mosaic(weights.images[:16], 8)[0]
    np.testing.assert_allclose(np.asarray(figure.data[0].customdata)[..., 1], shown, equal_nan=True)


def test_saliency_is_larger_on_the_item_than_on_the_background_and_points_at_what_matters(models, dataset):
    """Integrated gradients of a real model on real test images: about the whole change in probability
    from a black image, on the item and not around it, and blacking out the pixels it ranks highest
    costs the predicted class more than blacking out as many other pixels of the item."""
    _, by_name = models
    model = by_name["mlp"][1]
    inside = Inside(model)
    rng = np.random.default_rng(0)
    drop_top, drop_random = [], []
    for index in range(40):
        image = dataset.x_test[index] / 255.0
        look = inside.look(image)
        black = model.predict_on_batch(np.zeros((1, 28, 28, 1), np.float32))[0, look.target]
        assert look.saliency.sum() == pytest.approx(look.probs[look.target] - black, abs=0.05), "completeness"
        item, background = image > 0.1, image == 0
        assert np.abs(look.saliency[item]).mean() > 10 * np.abs(look.saliency[background]).mean()
        k = max(int(item.sum() * 0.15), 1)
        top = np.argsort(-look.saliency, axis=None)[:k]
        other = rng.choice(np.flatnonzero(item), k, replace=False)
        for pixels, drops in ((top, drop_top), (other, drop_random)):
            masked = image.copy().reshape(-1)
            masked[pixels] = 0
            p = model.predict_on_batch(masked.reshape(1, 28, 28, 1).astype(np.float32))[0, look.target]
            drops.append(look.probs[look.target] - p)
    assert np.mean(drop_top) > 2 * np.mean(drop_random), (np.mean(drop_top), np.mean(drop_random))


def test_the_cnn_has_a_saliency_map_too(models, dataset):
    _, by_name = models
    look = Inside(by_name["cnn"][1]).look(dataset.x_test[1] / 255.0, target=3)
    assert look.saliency.shape == (28, 28) and look.target == 3 and np.isfinite(look.saliency).all()


def test_pca_has_one_point_per_test_image_and_is_kept_with_the_run(trained, dataset):
    store, mlp, _ = trained
    model = load_model(store, mlp)
    path = run_projection_path(store, mlp, PCA)
    assert not path.exists(), "a run saved before this page existed has none"
    projection = run_pca(store, mlp, model, dataset)
    assert projection.points.shape == (10000, 2) and path.is_file()
    np.testing.assert_allclose(projection.points, pca_2d(hidden_outputs(model, dataset.x_test)), rtol=1e-3, atol=1e-3)
    modified = path.stat().st_mtime_ns
    again = run_pca(store, mlp, model, dataset)
    assert path.stat().st_mtime_ns == modified, "read, not computed again"
    np.testing.assert_array_equal(again.points, projection.points)
    assert read_projection(path, 10000, version=model_version(store, mlp) + 1) is None, "another model version's is stale"


def test_pca_2d_finds_the_directions_of_largest_spread():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 5)) * np.array([10.0, 0.1, 3.0, 0.1, 0.1])
    points = pca_2d(x)
    assert np.std(points[:, 0]) == pytest.approx(10, rel=0.05) and np.std(points[:, 1]) == pytest.approx(3, rel=0.05)
    np.testing.assert_array_equal(points, pca_2d(x)), "the same data, the same picture"


class Stages:
    """What the command line's progress bar hears of a run that works in stages."""

    def __init__(self):
        self.seen = []

    def stage(self, stage: str, fraction: float) -> None:
        self.seen.append((stage, fraction))


def test_tsne_is_a_queued_run_with_one_point_per_test_image_computed_once(trained, dataset):
    """A projection run (fmnist.jobs.projection) made in this process, as the command line's `project`
    makes it, on the first 1,000 test images to stay within seconds (the page's does all 10,000)."""
    store, mlp, _ = trained
    teacher = Person("class:hopper", "Ms Hopper", admin=True)
    subset = dataclasses.replace(dataset, x_test=dataset.x_test[:1000], y_test=dataset.y_test[:1000])
    projection_id = services.start_projection(store, Actor(teacher), mlp, process=this_process())
    queued = store.get(projection_id)
    assert (queued.kind, queued.status, queued.parent_id, queued.owner, queued.name) == \
        (RunKind.PROJECTION, RunStatus.QUEUED, mlp, teacher.id, f"t-SNE of #{mlp}")
    stages = Stages()
    assert run_in_this_process(store, projection_id, progress=stages, dataset=subset)["status"] == RunStatus.FINISHED
    run = store.get(projection_id)
    assert (run.status, run.pid, run.fraction_done(), run.stage) == (RunStatus.FINISHED, os.getpid(), 1.0, {"stage": "done", "fraction": 1.0})
    assert set(run.result["seconds"]) == {"run", "pixels"} and run.train_s >= sum(run.result["seconds"].values())
    fractions = [fraction for _, fraction in stages.seen]
    assert stages.seen[0] == ("starting", 0.0) and fractions == sorted(fractions) and fractions[-1] > 0.9
    assert {"t-SNE: layout", "the raw pixels' t-SNE (once for all runs): layout"} <= {stage for stage, _ in stages.seen}
    projection = read_projection(run_projection_path(store, mlp, TSNE), 1000, model_version(store, mlp))
    assert projection.points.shape == (1000, 2) and projection.meta["layer"] == "dense_2"
    assert read_projection(pixels_projection_path(store, TSNE), 1000).points.shape == (1000, 2)
    assert latest_projection(store, mlp).id == projection_id
    # The classes separate: most images' nearest neighbour in the layout has the same class.
    points, labels = projection.points, subset.y_test
    distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(distances, np.inf)
    assert np.mean(labels[np.argmin(distances, axis=1)] == labels) > 0.6
    again = services.start_projection(store, Actor.local(), mlp, process=this_process())
    run_in_this_process(store, again, dataset=subset)
    assert store.get(again).result["seconds"] == {}, "both kept: nothing computed again"


def test_figures_of_maps_and_units():
    from fmnist.inside_charts import LayerOutput

    maps = LayerOutput("conv_1", "Conv2D", np.arange(4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3))
    z = np.asarray(feature_maps(maps).data[0].z)
    assert z.shape == (4, 4 * 3 + 2) and np.isnan(z[:, 4]).all(), "three maps side by side, a gap between"
    np.testing.assert_array_equal(z[:, 5:9], maps.values[:, :, 1])
    units = LayerOutput("dense_1", "Dense", np.array([0.5, 2.0, 0.0, 1.0], np.float32))
    strip = unit_strip(units).data[0]
    assert np.asarray(strip.z)[0].tolist() == [2.0, 1.0, 0.5, 0.0] and np.asarray(strip.customdata)[0].tolist() == [1, 3, 0, 2]
    assert np.asarray(unit_strip(units, in_order=True).data[0].z)[0].tolist() == [0.5, 2.0, 0.0, 1.0]


# --- the page ---


def open_inside(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def headings(at) -> list[str]:
    return [m.value.split(" · ")[0].strip("*") for m in at.markdown if " · " in m.value and m.value.startswith("**")]


def test_the_page_follows_an_image_through_the_best_run_then_the_cnn(trained, dataset):
    store, mlp, cnn = trained
    at = open_inside()
    best = max(store.list_runs(), key=lambda r: r.test_acc)
    assert at.selectbox(key="inside_run").value == best.id
    at.selectbox(key="inside_run").select(mlp).run()
    at.number_input(key="inside_index").set_value(7).run()
    assert not at.exception, at.exception
    assert headings(at) == ["dense_1", "dense_2", "output"]
    look = Inside(load_model(store, mlp)).look(dataset.x_test[7] / 255.0)
    from fmnist.dataset import FASHION_MNIST

    prediction = next(m for m in at.metric if m.label == "Prediction")
    assert prediction.value == FASHION_MNIST.class_names[look.target]
    assert next(m for m in at.metric if m.label == "True class").value == FASHION_MNIST.class_names[dataset.y_test[7]]

    at.selectbox(key="inside_run").select(cnn).run()
    assert not at.exception, at.exception
    assert headings(at) == ["conv_1", "pool_1", "conv_2", "pool_2", "dense_1", "output"]
    assert any("Not drawn" in c.value and "conv_dropout_1" in c.value for c in at.caption)


def test_the_weights_and_projection_views(trained, dataset):
    store, mlp, cnn = trained
    at = open_inside(inside_run=mlp, inside_view="weights")
    assert any("each square is one of its 64 units" in m.value for m in at.markdown)
    at.session_state["inside_run"] = cnn
    at.run()
    assert any("its 32 filters, 3×3" in m.value for m in at.markdown)

    at.session_state["inside_run"] = mlp
    at.session_state["inside_view"] = "projection"
    at.run()
    assert not at.exception and not at.error, at.exception or [e.value for e in at.error]
    assert run_projection_path(store, mlp, PCA).is_file(), "the run's PCA is kept with it"
    mistakes = int((np.argmax(np.load(store.probs_path(mlp)), axis=1) != dataset.y_test).sum())
    assert any(f"× marks the {mistakes:,}" in c.value for c in at.caption)


def test_tsne_shows_its_runs_progress_then_the_kept_projection(trained, dataset):
    store, mlp, _ = trained
    # As if the page's process had started: this test's own process, alive, holds the run.
    projection_id = services.start_projection(store, Actor.local(), mlp, process=this_process())
    at = open_inside(inside_run=mlp, inside_view="projection", inside_method="tsne")
    assert [p.proto.text for p in at.get("progress")] == [f"Run #{mlp}'s t-SNE: queued, next in line, starts any moment."]
    assert try_start(store, projection_id, max_parallel=1)
    store.record_stage(projection_id, "t-SNE: layout", 0.4)
    at.run()
    assert [p.proto.text for p in at.get("progress")] == [f"Run #{mlp}'s t-SNE: t-SNE: layout, 40%."]
    assert any("in the queue like a training" in c.value for c in at.caption) and at.button(key="inside_stop")
    rng = np.random.default_rng(0)
    save_projection(run_projection_path(store, mlp, TSNE), rng.normal(size=(10000, 2)), model_version(store, mlp), layer="dense_2")
    save_projection(pixels_projection_path(store, TSNE), rng.normal(size=(10000, 2)))
    store.finish(projection_id, RunStatus.FINISHED)
    at.run()
    assert not at.exception and not at.get("progress"), at.exception
    assert any(f"Run #{mlp}'s last hidden layer (dense_2): t-SNE" in str(chart.proto.spec) for chart in at.get("plotly_chart"))
    assert [run.id for run in store.children(mlp)] == [projection_id], "none queued again"


def test_stop_on_the_page_stops_the_tsne_and_it_says_so(trained):
    store, mlp, _ = trained
    projection_id = services.start_projection(store, Actor.local(), mlp, process=this_process())
    at = open_inside(inside_run=mlp, inside_view="projection", inside_method="tsne")
    at.button(key="inside_stop").click().run()
    assert store.get(projection_id).status == RunStatus.CANCELLED  # queued: at once
    at.run()
    assert any(f"The t-SNE of run #{mlp} was cancelled" in i.value for i in at.info) and at.button(key="inside_retry")
    assert not at.get("progress")


def test_a_failed_tsne_says_why_and_offers_to_try_again(trained):
    store, mlp, _ = trained
    projection_id = services.start_projection(store, Actor.local(), mlp, process=this_process())
    store.finish(projection_id, RunStatus.FAILED, error="MemoryError: out of memory")
    at = open_inside(inside_run=mlp, inside_view="projection", inside_method="tsne")
    assert any("t-SNE of run" in e.value and "out of memory" in e.value for e in at.error)
    assert at.button(key="inside_retry")


def test_a_tsne_whose_process_died_says_so(trained):
    store, mlp, _ = trained
    projection_id = services.start_projection(store, Actor.local(), mlp, process=(999_999_999, None))  # no such process
    assert reap_dead_runs(store) == [projection_id]
    at = open_inside(inside_run=mlp, inside_view="projection", inside_method="tsne")
    assert any(f"The t-SNE of run #{mlp} was interrupted" in e.value and "its process ended" in e.value for e in at.error)
    assert at.button(key="inside_retry")


def test_a_store_from_before_projections_were_runs_shows_its_tsne_as_it_is(trained):
    """Its files in the run's folder (and the old job file beside them): shown, nothing queued."""
    store, mlp, _ = trained
    rng = np.random.default_rng(1)
    save_projection(run_projection_path(store, mlp, TSNE), rng.normal(size=(10000, 2)), model_version(store, mlp), layer="dense_2")
    save_projection(pixels_projection_path(store, TSNE), rng.normal(size=(10000, 2)))
    (store.run_dir(mlp) / "projection-job.json").write_text('{"pid": 1, "stage": "done", "fraction": 1.0, "done": true}')
    at = open_inside(inside_run=mlp, inside_view="projection", inside_method="tsne")
    assert not at.error and not at.get("progress")
    assert any(f"Run #{mlp}'s last hidden layer (dense_2): t-SNE" in str(chart.proto.spec) for chart in at.get("plotly_chart"))
    assert store.children(mlp) == []


def test_a_missing_or_corrupt_model_file_is_a_clear_message(trained):
    store, mlp, cnn = trained
    store.model_path(mlp).unlink()
    at = open_inside(inside_run=mlp)
    assert any("cannot be opened" in e.value and "missing" in e.value for e in at.error), [e.value for e in at.error]
    store.model_path(cnn).write_bytes(b"not a keras file")
    at.selectbox(key="inside_run").select(cnn).run()
    assert not at.exception, at.exception
    assert any("cannot be opened" in e.value and "unreadable" in e.value for e in at.error)


def test_a_run_still_training_is_a_clear_message(trained):
    store, _, _ = trained
    from fmnist.models import dense_spec

    running = store.create_run(dense_spec([32]), name="busy")
    assert try_start(store, running, max_parallel=1)
    at = open_inside(inside_run=running)
    assert any(f"Run #{running} is still training" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def saved_run(store: RunStore, model, name: str) -> int:
    """A run whose model was made by hand (not by this app's layer plan), as a finished run."""
    from fmnist.models import dense_spec

    run_id = store.create_run(dense_spec([32]), name=name)
    try_start(store, run_id, max_parallel=1)
    model.save(store.model_path(run_id))
    store.finish(run_id, "finished", test_loss=1.0, test_acc=0.99, train_s=1.0)
    return run_id


def test_unknown_layers_are_named_and_the_rest_is_shown(home, dataset):
    store = RunStore()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Reshape((784,), name="as_vector"), keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.UnitNormalization(name="unit_norm"), keras.layers.Dense(10, activation="softmax", name="output"),
    ])
    run_id = saved_run(store, model, "hand-made")
    at = open_inside(inside_run=run_id)
    assert headings(at) == ["hidden", "output"]
    [warning] = at.warning
    assert "as_vector** (Reshape)" in warning.value and "unit_norm** (UnitNormalization)" in warning.value
    at.session_state["inside_view"] = "weights"
    at.run()
    assert any("neither a dense layer" in i.value for i in at.info), "its first layer is a Reshape"
    at.session_state["inside_view"] = "projection"
    at.run()
    assert not at.exception, at.exception


def test_a_model_of_another_shape_is_a_clear_message(home):
    store = RunStore()
    flat = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    run_id = saved_run(store, flat, "flat input")
    at = open_inside(inside_run=run_id)
    assert any("cannot be shown here" in e.value and "(784,)" in e.value for e in at.error), [e.value for e in at.error]
    with pytest.raises(InsideError):
        Inside(flat)


def test_evaluate_and_classify_open_an_image_here(trained, dataset):
    store, mlp, _ = trained
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="eval_run").select(mlp).run()
    index = at.selectbox(key="eval_follow").options[2]
    at.selectbox(key="eval_follow").select(int(index.lstrip("#"))).run()
    at.button(key="eval_inside").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="inside_index").value == int(index.lstrip("#")) and at.selectbox(key="inside_run").value == mlp

    at.switch_page("pages/classify.py").run()
    at.button(key="classify_pick").click().run()
    assert any(c.value.startswith("Why: red pixels") for c in at.caption), "the saliency map beside the prediction"
    picked = at.session_state["classify_test_index"]
    at.button(key="test_inside").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="inside_index").value == picked


def test_a_run_trained_on_jax_opens_up_under_the_apps_tensorflow(home, dataset):
    """MLPs train on JAX by default, in their own process; the app opens their saved model on TensorFlow."""
    from helpers import run_cli

    result = run_cli("train", "--layers", "32", "--epochs", "1", "--limit", "2000", "--backend", "jax")
    assert result.returncode == 0, result.stderr
    [run] = RunStore().list_runs()
    assert run.backend == "jax"
    at = open_inside(inside_run=run.id)
    assert not at.error and headings(at) == ["dense_1", "output"]
    at.session_state["inside_view"] = "weights"
    at.run()
    assert any("each square is one of its 32 units" in m.value for m in at.markdown)
