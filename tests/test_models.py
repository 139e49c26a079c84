"""fmnist.models: specs, their validation, exact sizes without Keras, and the Keras model."""

import json

import numpy as np
import pytest

from fmnist.models import (
    PRESETS,
    SEED_STACKS,
    DenseLayer,
    ModelSpec,
    SpecError,
    count_params,
    dense_spec,
    stack_name,
    summary_rows,
    with_training,
)
from fmnist.network import build_model

SEED_PARAMS = {
    (64, 128, 64, 32): 69_226,
    (64, 128, 32): 63_018,
    (64, 32): 52_650,
    (128, 64): 109_386,
}

VARIANTS = {
    "bn": dense_spec([32, 16], batch_norm=True),
    "dropout-gelu": dense_spec([48, 24, 12], activation="gelu", dropout=0.25),
    "mixed": ModelSpec(layers=(
        DenseLayer(40, "tanh", 0.1, True),
        DenseLayer(8, "selu"),
        DenseLayer(20, "swish", 0.5, False),
        DenseLayer(16, "sigmoid", 0.0, True),
    )),
}
ALL_SPECS = {**{name: PRESETS[name] for name in SEED_STACKS}, **VARIANTS}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


@pytest.fixture(scope="module")
def built():
    """Each spec of ALL_SPECS built once: a handful of small Keras models."""
    return {name: build_model(spec) for name, spec in ALL_SPECS.items()}


# --- sizes ----------------------------------------------------------------------------------


def test_presets_are_the_four_seed_stacks_and_two_stronger_models():
    assert set(PRESETS) == set(SEED_STACKS) | {"Best MLP", "Fast MLP", "Small CNN"}
    assert not PRESETS["Best MLP"].conv and PRESETS["Small CNN"].conv
    for name, widths in SEED_STACKS.items():
        assert tuple(layer.units for layer in PRESETS[name].layers) == widths
    assert {widths for widths in SEED_STACKS.values()} == set(SEED_PARAMS)


@pytest.mark.parametrize("name", list(SEED_STACKS))
def test_seed_preset_param_counts(name):
    assert count_params(PRESETS[name]) == SEED_PARAMS[SEED_STACKS[name]]


def test_param_count_by_hand_for_batch_norm_and_dropout():
    # Dense 784->32, BN(32) = 4*32 (gamma, beta, moving mean, moving variance), dropout adds none.
    spec = dense_spec([32], batch_norm=True, dropout=0.3)
    assert count_params(spec) == (784 * 32 + 32) + 4 * 32 + (32 * 10 + 10)


@pytest.mark.parametrize("name", list(ALL_SPECS))
def test_count_params_equals_keras(built, name):
    assert count_params(ALL_SPECS[name]) == built[name].count_params()


@pytest.mark.parametrize("name", list(ALL_SPECS))
def test_summary_rows_match_the_keras_layers_in_order(built, name):
    model, rows = built[name], summary_rows(ALL_SPECS[name])
    assert [(row["layer"], row["type"]) for row in rows] == [(layer.name, type(layer).__name__) for layer in model.layers]
    assert [row["params"] for row in rows] == [layer.count_params() for layer in model.layers]
    assert [row["output_shape"] for row in rows] == [str(tuple(layer.output.shape)) for layer in model.layers]


def test_summary_rows_only_add_batch_norm_and_dropout_rows_when_asked():
    plain = [row["type"] for row in summary_rows(dense_spec([64, 32]))]
    assert plain == ["Flatten", "Dense", "Dense", "Dense"]
    extras = [row["layer"] for row in summary_rows(VARIANTS["mixed"])]
    assert extras == [
        "flatten", "dense_1", "batch_norm_1", "activation_1", "dropout_1", "dense_2",
        "dense_3", "dropout_3", "dense_4", "batch_norm_4", "activation_4", "output",
    ]


# --- the Keras model ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Seed D: 128-64", "mixed"])
def test_build_model_shapes_and_softmax_output(built, name):
    model = built[name]
    assert tuple(model.input_shape) == (None, 28, 28, 1)
    assert tuple(model.output_shape) == (None, 10)
    x = np.random.default_rng(0).random((7, 28, 28, 1), dtype=np.float32)
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (7, 10)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_hidden_layers_use_the_spec_activation_and_dropout(built):
    model = built["dropout-gelu"]
    dense = [layer for layer in model.layers if layer.name.startswith("dense_")]
    assert [layer.units for layer in dense] == [48, 24, 12]
    assert {layer.get_config()["activation"] for layer in dense} == {"gelu"}
    assert [layer.rate for layer in model.layers if type(layer).__name__ == "Dropout"] == [0.25] * 3
    assert model.get_layer("output").get_config()["activation"] == "softmax"
    assert model.name == "48_24_12"


# --- validation -----------------------------------------------------------------------------


BASE = {"layers": [64, 32]}
BAD_FIELDS = [
    ("no layers", {"layers": []}, "layers"),
    ("seven layers", {"layers": [16] * 7}, "layers"),
    ("width 7", {"layers": [64, 7]}, "layers[1].units"),
    ("width 1025", {"layers": [1025]}, "layers[0].units"),
    ("width not int", {"layers": [64.0]}, "layers[0].units"),
    ("unknown activation", {"layers": [{"units": 64, "activation": "sin"}]}, "layers[0].activation"),
    ("dropout 1.0", {"layers": [{"units": 64, "dropout": 1.0}]}, "layers[0].dropout"),
    ("negative dropout", {"layers": [32, {"units": 64, "dropout": -0.1}]}, "layers[1].dropout"),
    ("unknown layer field", {"layers": [{"units": 64, "colour": "red"}]}, "layers[0]"),
    ("negative lr", {"learning_rate": -0.01}, "learning_rate"),
    ("zero lr", {"learning_rate": 0}, "learning_rate"),
    ("epochs 0", {"epochs": 0}, "epochs"),
    ("batch 0", {"batch_size": 0}, "batch_size"),
    ("val_split 1.0", {"val_split": 1.0}, "val_split"),
    ("early stopping without validation", {"early_stopping": True, "val_split": 0.0}, "early_stopping"),
    ("unknown field", {"colour": "red"}, "colour"),
    ("layers not a list", {"layers": "64-32"}, "layers"),
    ("layers missing", {"layers": None}, "layers"),
]


@pytest.mark.parametrize("changes, field", [case[1:] for case in BAD_FIELDS], ids=[case[0] for case in BAD_FIELDS])
def test_from_dict_rejects_bad_fields_naming_them(changes, field):
    with pytest.raises(SpecError) as err:
        ModelSpec.from_dict({**BASE, **changes})
    assert field in str(err.value)


def test_the_base_of_the_bad_cases_is_itself_valid():
    spec = ModelSpec.from_dict(BASE)
    assert spec == dense_spec([64, 32])


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


@pytest.mark.parametrize("widths, field", [([], "layers"), ([16] * 7, "layers"), ([7], "layers[0].units"),
                                            ([8, 1025], "layers[1].units")])
def test_dense_spec_validates_widths(widths, field):
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        dense_spec(widths)


def test_limits_are_inclusive():
    assert len(dense_spec([8] * 6).layers) == 6
    assert dense_spec([8, 1024]).layers[1].units == 1024
    spec = with_training(PRESETS["Seed C: 64-32"], learning_rate=1, epochs=1, batch_size=1, val_split=0.0)
    assert (spec.learning_rate, spec.epochs, spec.batch_size, spec.val_split) == (1, 1, 1, 0.0)


@pytest.mark.parametrize("changes, field", [
    ({"dropout": 1.0}, "dropout"), ({"activation": "softmax"}, "activation"),
])
def test_dense_spec_validates_shared_layer_options(changes, field):
    with pytest.raises(SpecError, match=rf"layers\[0\]\.{field}"):
        dense_spec([32, 16], **changes)


@pytest.mark.parametrize("changes, field", [
    ({"learning_rate": -1e-3}, "learning_rate"), ({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"),
    ({"val_split": 1.0}, "val_split"), ({"early_stopping": True, "val_split": 0}, "early_stopping"),
    ({"checkpoint": True, "val_split": 0}, "checkpoint"), ({"patience": 0}, "patience"), ({"seed": -1}, "seed"),
])
def test_with_training_validates(changes, field):
    with pytest.raises(SpecError, match=field):
        with_training(PRESETS["Seed D: 128-64"], **changes)


# --- JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [
    PRESETS["Seed A: 64-128-64-32"],
    VARIANTS["mixed"],
    with_training(VARIANTS["dropout-gelu"], learning_rate=0.003, epochs=25, batch_size=128, val_split=0.2,
                  seed=7, early_stopping=True, patience=5, checkpoint=True),
], ids=["preset", "mixed-layers", "training-options"])
def test_json_round_trip(spec):
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert isinstance(again.layers, tuple) and all(isinstance(layer, DenseLayer) for layer in again.layers)


def test_from_dict_accepts_plain_widths():
    spec = ModelSpec.from_dict({"layers": [128, 64], "epochs": 3})
    assert spec == with_training(dense_spec([128, 64]), epochs=3)
    assert spec.layers == (DenseLayer(128), DenseLayer(64))


def test_stack_name():
    assert stack_name(PRESETS["Seed D: 128-64"]) == "128-64"
    assert stack_name(dense_spec([64, 128, 64, 32])) == "64-128-64-32"
