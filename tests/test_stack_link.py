"""A link to a stack (fmnist.stack_link): every Build & Train setting to query parameters and back,
and a link's bad parameters named while the rest is applied."""

from dataclasses import replace

import pytest

from fmnist.coach import Finding, changed_spec
from fmnist.models import PRESETS, ConvBlock, DenseLayer, ModelSpec, dense_spec
from fmnist.stack_link import PARAMS, LinkError, Stack, link_params, problems_message, read_link

BASE = Stack(dense_spec([128, 64]))
CNN = PRESETS["Small CNN"]
MIXED = ModelSpec(  # per-layer settings that differ, conv blocks that differ, an activation for the blocks of their own
    layers=(DenseLayer(48, "gelu", 0.2, True), DenseLayer(1024, "tanh", 0.0, False), DenseLayer(8, "swish", 0.5, True)),
    conv=(ConvBlock(8, 5, "elu", False, 0.1, True), ConvBlock(128, 3, "elu", True, 0.0, False), ConvBlock(16, 3, "elu", True, 0.3, True)),
    augment=True, lr_schedule="plateau", mixed_precision=True, learning_rate=0.0001, epochs=50, batch_size=1024, val_split=0.3,
    seed=2**31 - 1, early_stopping=True, patience=20, checkpoint=True)
# One stack per setting, each differing from BASE in that setting (or a few of a kind), and stacks with everything set.
STACKS = {
    "widths": Stack(dense_spec([512, 8, 1024])),
    "one layer": Stack(dense_spec([8])),
    "six layers": Stack(dense_spec([16, 32, 64, 128, 256, 512])),
    "activation": Stack(dense_spec([128, 64], activation="sigmoid")),
    "dropout": Stack(dense_spec([128, 64], dropout=0.45)),
    "batch-norm": Stack(dense_spec([128, 64], batch_norm=True)),
    "per-layer toggle, same values": replace(BASE, per_layer=True),
    "per-layer values": Stack(replace(BASE.spec, layers=(DenseLayer(128, "selu", 0.1, True), DenseLayer(64, "relu", 0.35, False))), per_layer=True),
    "conv blocks": Stack(replace(BASE.spec, conv=(ConvBlock(64),))),
    "conv kernel, pool, batch-norm, dropout": Stack(replace(BASE.spec, conv=(ConvBlock(16, 5, pool=False, dropout=0.5, batch_norm=True),))),
    "conv activation with the dense layers'": Stack(dense_spec([32], activation="elu", conv=(ConvBlock(8, activation="elu"),))),
    "conv activation of its own": Stack(replace(BASE.spec, conv=(ConvBlock(32, activation="tanh"),)), per_layer=True),
    "epochs": Stack(replace(BASE.spec, epochs=1)),
    "batch size": Stack(replace(BASE.spec, batch_size=16)),
    "learning rate": Stack(replace(BASE.spec, learning_rate=0.0003)),
    "schedule": Stack(replace(BASE.spec, lr_schedule="cosine")),
    "validation split": Stack(replace(BASE.spec, val_split=0.05)),
    "no validation": Stack(replace(BASE.spec, val_split=0.0)),
    "augmentation": Stack(replace(BASE.spec, augment=True)),
    "bfloat16": Stack(replace(BASE.spec, mixed_precision=True)),
    "float32": Stack(replace(BASE.spec, mixed_precision=False)),
    "seed": Stack(replace(BASE.spec, seed=12345)),
    "early stopping and patience": Stack(replace(BASE.spec, early_stopping=True, patience=7)),
    "checkpoint": Stack(replace(BASE.spec, checkpoint=True)),
    "training images": Stack(BASE.spec, train_limit=2000),
    "engine": Stack(BASE.spec, backend="tensorflow"),
    "everything": Stack(MIXED, train_limit=30000, backend="jax", per_layer=True),
    **{f"preset {name}": Stack(spec) for name, spec in PRESETS.items()},
}
# What the link is opened over: a page that differs from each stack, so every setting must come from the link.
OPENED_OVER = (BASE, Stack(MIXED, train_limit=1000, backend="jax", per_layer=True), Stack(CNN, train_limit=5000, backend="tensorflow"))


@pytest.mark.parametrize("name", STACKS)
def test_every_setting_goes_through_a_link_and_back(name):
    stack = STACKS[name]
    params = link_params(stack)
    assert all(isinstance(value, str) for value in params.values()), "query parameters are text"
    for page in OPENED_OVER:
        back, problems = read_link(params, page)
        assert problems == []
        assert back == stack, (name, params)


def test_the_links_name_every_parameter_and_every_setting_differs_somewhere():
    assert set(link_params(STACKS["everything"])) == set(PARAMS)
    fields = {field for field in ModelSpec.__dataclass_fields__} - {"optimizer", "loss"}  # one choice each: nothing to link
    differing = {field for stack in STACKS.values() for field in fields if getattr(stack.spec, field) != getattr(BASE.spec, field)}
    assert differing == fields
    assert {"train_limit", "backend", "per_layer"} <= {extra for stack in STACKS.values() for extra in ("train_limit", "backend", "per_layer")
                                                       if getattr(stack, extra) != getattr(BASE, extra)}


def test_a_link_reads_as_people_write_it():
    params = {"layers": "256, 128", "drop": "0.20", "bn": "true", "epochs": "12", "lr": "3e-4", "prec": "bfloat16", "images": "all",
              "conv": "NONE"}
    back, problems = read_link(params, STACKS["conv blocks"])
    assert problems == []
    assert back.spec.layers == (DenseLayer(256, "relu", 0.2, True), DenseLayer(128, "relu", 0.2, True))
    assert (back.spec.conv, back.spec.epochs, back.spec.learning_rate, back.spec.mixed_precision, back.train_limit) == ((), 12, 0.0003, True, None)


def test_bad_parameters_are_named_and_the_rest_is_applied():
    params = {"layers": "256,32", "epochs": "900", "lr": "fast", "batch": "48", "zoom": "2", "act": "relu,gelu,tanh", "val": "0.12",
              "bn": "maybe", "seed": "7", "conv": "32,64,64,128", "sched": "cosine", "patience": "2.5"}
    back, problems = read_link(params, BASE)
    assert problems == [
        "zoom (not a setting this version knows)",
        "epochs=900 (epochs): a whole number from 1 to 50",
        "lr=fast (learning rate): not a number",
        "batch=48 (batch size): one of 16, 32, 64, 128, 256, 512, 1024",
        "val=0.12 (validation split): from 0 to 0.3 in steps of 0.05",
        "bn=maybe (batch-norm): 1 or 0",
        "patience=2.5 (patience): a whole number from 1 to 20",
        "act: one value, or one for each of the 2, got 3",
        "conv=32,64,64,128 (conv blocks' filters): at most 3 blocks",
    ]
    spec = back.spec
    assert [layer.units for layer in spec.layers] == [256, 32] and spec.seed == 7 and spec.lr_schedule == "cosine", "the good ones applied"
    assert (spec.epochs, spec.learning_rate, spec.batch_size, spec.val_split, spec.patience, spec.conv) == (10, 0.001, 32, 0.1, 3, ()), \
        "the bad ones left as the page had them"
    assert [layer.activation for layer in spec.layers] == ["relu", "relu"] and not spec.layers[1].batch_norm
    message = problems_message(problems)
    assert all(problem in message for problem in problems) and message.count("The rest of the link is applied") == 1


def test_snapped_values_move_to_the_nearest_the_controls_offer():
    params = {"lr": "0.000333", "epochs": "75", "drop": "0.33", "conv": "48", "act": "relu"}
    back, notes = read_link(params, BASE, snap=True)
    assert (back.spec.learning_rate, back.spec.epochs, back.spec.layers[0].dropout, back.spec.conv[0].filters) == (0.0003, 50, 0.35, 64)
    assert notes == ["learning rate: 0.000333 → 0.0003, the nearest the page offers", "epochs: 75 → 50, the nearest the page offers",
                     "dropout: 0.33 → 0.35, the nearest the page offers", "conv blocks' filters: 48 → 64, the nearest the page offers"]


def test_a_coach_change_fills_a_stack_the_page_can_hold():
    run_spec = dense_spec([1024, 64], epochs=40, learning_rate=0.001)
    lower = Finding("learning_rate", "t", "e", "s", {"learning_rate": 0.000333})
    more = Finding("too_few_epochs", "t", "e", "s", {"epochs": 60, "early_stopping": True})
    for finding, expected in ((lower, {"learning_rate": 0.0003}), (more, {"epochs": 50, "early_stopping": True})):
        stack = Stack(changed_spec(run_spec, finding.change))
        back, notes = read_link(link_params(stack), BASE, snap=True)
        assert back.spec == replace(run_spec, **expected) and len(notes) == 1


def test_a_stack_the_page_cannot_draw_says_why():
    two_activations = replace(BASE.spec, conv=(ConvBlock(8, activation="relu"), ConvBlock(8, activation="tanh")))
    with pytest.raises(LinkError, match="every conv block the same activation"):
        link_params(Stack(two_activations))
