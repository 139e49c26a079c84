"""Convolutional blocks, augmentation and learning-rate schedules in the spec and the engine."""

import json

import pytest

from fmnist.data import to_model_input
from fmnist.models import (
    PRESETS,
    ConvBlock,
    DenseLayer,
    ModelSpec,
    SpecError,
    count_params,
    dense_spec,
    layer_plan,
    stack_name,
    summary_rows,
    validate,
)
from fmnist.network import build_model
from fmnist.prediction import load_model
from fmnist.runs import stored_spec
from fmnist.store import RunStore
from fmnist.training import train_run
from fmnist.worker import try_start

CONV_SPECS = {
    "small cnn": PRESETS["Small CNN"],
    "no pooling, 5x5": ModelSpec(conv=(ConvBlock(8, kernel_size=5, pool=False),), layers=(DenseLayer(16),)),
    "batch-norm, three blocks, augmented": ModelSpec(
        conv=(ConvBlock(16, batch_norm=True), ConvBlock(32, activation="gelu", dropout=0.1), ConvBlock(64, batch_norm=True, dropout=0.2)),
        layers=(DenseLayer(64, batch_norm=True),), augment=True,
    ),
    "conv straight into the output": ModelSpec(conv=(ConvBlock(4),), layers=()),
}


@pytest.mark.parametrize("name", list(CONV_SPECS))
def test_conv_param_counts_and_summary_match_keras(name):
    spec = validate(CONV_SPECS[name])
    model = build_model(spec)
    assert count_params(spec) == model.count_params()
    rows = summary_rows(spec)
    assert [row["layer"] for row in rows] == [layer.name for layer in model.layers]
    for row, layer in zip(rows, model.layers):
        assert row["params"] == layer.count_params()
        assert row["output_shape"] == str(tuple(layer.output.shape))


def test_small_cnn_shapes():
    rows = {row["layer"]: row for row in summary_rows(PRESETS["Small CNN"])}
    assert rows["pool_1"]["output_shape"] == "(None, 14, 14, 32)"
    assert rows["pool_2"]["output_shape"] == "(None, 7, 7, 64)"
    assert rows["flatten"]["output_shape"] == "(None, 3136)"
    assert stack_name(PRESETS["Small CNN"]) == "c32-c64-128"


@pytest.mark.parametrize("change, field", [
    (dict(conv=(ConvBlock(2),)), "conv[0].filters"),
    (dict(conv=(ConvBlock(300),)), "conv[0].filters"),
    (dict(conv=(ConvBlock(8, kernel_size=4),)), "conv[0].kernel_size"),
    (dict(conv=(ConvBlock(8, activation="nope"),)), "conv[0].activation"),
    (dict(conv=(ConvBlock(8, dropout=1.0),)), "conv[0].dropout"),
    (dict(conv=(ConvBlock(8),) * 4), "conv: at most 3"),
    (dict(layers=()), "layers"),
    (dict(lr_schedule="step"), "lr_schedule"),
    (dict(lr_schedule="plateau", val_split=0.0), "lr_schedule plateau"),
    (dict(augment="yes"), "augment"),
    (dict(mixed_precision=1), "mixed_precision"),
])
def test_conv_validation_names_the_field(change, field):
    from dataclasses import replace

    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        validate(replace(dense_spec([32]), **change))


def test_a_spec_saved_before_conv_support_still_loads():
    old = {"layers": [{"units": 64, "activation": "relu", "dropout": 0.0, "batch_norm": False}], "learning_rate": 0.001,
           "epochs": 10, "batch_size": 32, "val_split": 0.1, "seed": 0, "early_stopping": False, "patience": 3,
           "checkpoint": False, "optimizer": "adam", "loss": "sparse_categorical_crossentropy"}
    spec = stored_spec(json.dumps(old))
    assert (spec.conv, spec.augment, spec.lr_schedule, spec.mixed_precision) == ((), False, "constant", False)
    assert count_params(spec) == 784 * 64 + 64 + 650
    assert ModelSpec.from_dict(json.loads(json.dumps(PRESETS["Small CNN"].to_dict()))) == PRESETS["Small CNN"]


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_a_tiny_cnn_trains_on_a_subset(home, dataset, schedule):
    spec = ModelSpec(conv=(ConvBlock(8), ConvBlock(16)), layers=(DenseLayer(32),), epochs=3, batch_size=64,
                     augment=schedule == "cosine", lr_schedule=schedule)
    store = RunStore()
    run_id = store.create_run(validate(spec), train_limit=3000)
    try_start(store, run_id, 1)
    summary = train_run(store, run_id, dataset)
    assert summary["status"] == "finished", store.get(run_id).error
    assert summary["test_acc"] > 0.6
    reloaded = load_model(store, run_id)
    assert [layer.name for layer in reloaded.layers][:2] == (["augment_shift", "augment_flip"] if spec.augment else ["conv_1", "pool_1"])


def test_mixed_precision_trains_in_bfloat16_and_predicts_float32_probabilities(home, dataset):
    import numpy as np

    spec = validate(ModelSpec(conv=(ConvBlock(8),), layers=(DenseLayer(32, dropout=0.1),), epochs=2, batch_size=64, mixed_precision=True))
    store = RunStore()
    run_id = store.create_run(spec, train_limit=3000)
    try_start(store, run_id, 1)
    summary = train_run(store, run_id, dataset)
    assert summary["status"] == "finished", store.get(run_id).error
    assert summary["test_acc"] > 0.6
    reloaded = load_model(store, run_id)
    compute = {layer.name: layer.compute_dtype for layer in reloaded.layers}
    assert (compute["conv_1"], compute["dense_1"], compute["output"]) == ("bfloat16", "bfloat16", "float32")
    assert all(weight.dtype == "float32" for weight in reloaded.weights)
    probabilities = np.asarray(reloaded.predict_on_batch(to_model_input(dataset.x_test[:5])))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("stored, loaded", [(True, True), (False, False), ("auto", "auto"), (None, False)])
def test_stored_precision_loads_as_it_trained(stored, loaded):
    """Specs stored before auto hold True or False (or, older still, no field: float32); each trains as it did."""
    data = PRESETS["Small CNN"].to_dict()
    if stored is None:
        del data["mixed_precision"]
    else:
        data["mixed_precision"] = stored
    spec = stored_spec(json.dumps(data))
    assert spec.mixed_precision == loaded and type(spec.mixed_precision) is type(loaded)
    assert [layer.mixed_precision for layer in layer_plan(spec)][0] is (loaded is True), "only True plans bfloat16 layers"


@pytest.mark.parametrize("bad", [1, 0, "on", "bfloat16", None])
def test_precision_is_auto_true_or_false(bad):
    with pytest.raises(SpecError, match="mixed_precision: auto, true or false"):
        ModelSpec.from_dict({**PRESETS["Small CNN"].to_dict(), "mixed_precision": bad})


def test_presets_leave_the_precision_to_the_machine():
    assert {spec.mixed_precision for spec in PRESETS.values()} == {"auto"}


@pytest.mark.parametrize("cpu_bfloat16, compute", [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_trains_in_what_this_machine_picks(home, dataset, monkeypatch, cpu_bfloat16, compute):
    import fmnist.models

    monkeypatch.setattr(fmnist.models, "cpu_has_bfloat16", lambda: cpu_bfloat16)
    spec = validate(ModelSpec(conv=(ConvBlock(8),), layers=(DenseLayer(16),), epochs=1, batch_size=64))
    assert spec.mixed_precision == "auto"
    store = RunStore()
    run_id = store.create_run(spec, train_limit=1000)
    try_start(store, run_id, 1)
    assert train_run(store, run_id, dataset)["status"] == "finished", store.get(run_id).error
    assert store.get(run_id).spec.mixed_precision == "auto", "the run keeps what was asked"
    assert load_model(store, run_id).get_layer("conv_1").compute_dtype == compute
