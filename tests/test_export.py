"""Exports of a run's model (ONNX, LiteRT in float32, float16 and int8, SavedModel): each loads in
its own runtime and agrees with the Keras model on 1,000 test images; the model card; `predict`;
bad input; the Leaderboard's export control; the example of docs/exports.md, "Classify a PNG with onnxruntime alone".

One small CNN (one conv block, one epoch on 2,000 images) is trained and exported to every format
once for the module. Stated tolerances, against the Keras model on the first 1,000 test images:
float exports pick the same class for at least 99.5 % of them; float32 exports' probabilities are
within 1e-4 of Keras' and float16's within 5e-3; int8 loses at most 2 accuracy points.
"""

import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from fmnist.cli import main
from fmnist.dataset import FASHION_MNIST
from fmnist.export import Exporter, convert, inference_copy, run_onnx
from fmnist.export_formats import (
    VARIANTS,
    ExportError,
    Variant,
    card_paths,
    check_out_path,
    export_zip,
    exports_dir,
    exports_table,
    kept_exports,
    kept_path,
    variant_by_key,
    variant_for,
)
from fmnist.imaging import open_image, prepare
from fmnist.model_card import CHECK_IMAGES, read_card
from fmnist.models import PRESETS, ConvBlock, DenseLayer, ModelSpec, dense_spec, validate
from fmnist.network import build_model
from fmnist.prediction import predict_image
from fmnist.runs import ModelFileError, RunStatus
from fmnist.store import RunStore
from fmnist.training import train_run
from fmnist.worker import try_start

from helpers import APP, ROOT, wait_until

SAME_CLASS = 0.995
PROB_TOLERANCE = {"onnx": 1e-4, "litert": 1e-4, "litert-float16": 5e-3, "saved_model": 1e-4}
INT8_DROP = 0.02
TINY_CNN = validate(ModelSpec(conv=(ConvBlock(8),), layers=(DenseLayer(32),), epochs=1))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, dataset):
    """(store, run id, its Exporter, variant key -> card): the tiny CNN exported to every format."""
    store = RunStore(tmp_path_factory.mktemp("export") / "home")
    run_id = store.create_run(TINY_CNN, name="tiny cnn", train_limit=2000)
    assert try_start(store, run_id, max_parallel=1)
    assert train_run(store, run_id, dataset)["status"] == "finished", store.get(run_id).error
    exporter = Exporter(store, run_id, dataset)
    return store, run_id, exporter, {variant.key: exporter.export(variant) for variant in VARIANTS}


def run_in_own_runtime(variant: Variant, path, images: np.ndarray) -> np.ndarray:
    """The export run by the test itself in its runtime, all images in one batch (the check runs
    them one at a time, through its own code)."""
    if variant.format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: images})[0]
    if variant.format == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        given = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(given["index"], images.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(given["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    import tensorflow as tf

    return tf.saved_model.load(str(path)).signatures["serving_default"](image=tf.constant(images))["output_0"].numpy()


def size_of(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


# --- every format agrees with Keras ---


@pytest.mark.parametrize("key", ["onnx", "litert", "litert-float16", "saved_model"])
def test_a_float_export_gives_the_keras_models_answers_in_its_own_runtime(exported, key):
    store, run_id, exporter, cards = exported
    variant = variant_by_key(key)
    keras_probs = exporter.model.predict(exporter.images, verbose=0)
    path = kept_path(store, run_id, variant)
    probs = run_in_own_runtime(variant, path, exporter.images)
    assert probs.shape == (CHECK_IMAGES, 10)
    assert (keras_probs.argmax(1) == exporter.labels).mean() > 0.6, "a model that learnt something: agreement is not on noise"
    assert (probs.argmax(1) == keras_probs.argmax(1)).mean() >= SAME_CLASS
    assert np.abs(probs - keras_probs).max() <= PROB_TOLERANCE[key]
    check = cards[key]["check"]  # what the page and the CLI show: the check's own figures, from the same file
    assert check["images"] == CHECK_IMAGES and check["size_bytes"] == size_of(path) > 0
    assert check["keras_accuracy"] == pytest.approx((keras_probs.argmax(1) == exporter.labels).mean())
    assert check["accuracy"] == pytest.approx((probs.argmax(1) == exporter.labels).mean(), abs=0.002)
    assert check["argmax_agreement"] >= SAME_CLASS and check["max_prob_diff"] <= PROB_TOLERANCE[key]
    assert check["ms_per_image"] > 0 and check["keras_ms_per_image"] > 0


def test_int8_is_under_a_third_of_the_size_and_loses_at_most_two_accuracy_points(exported):
    store, run_id, exporter, cards = exported
    path = kept_path(store, run_id, Variant("litert", "int8"))
    probs = run_in_own_runtime(Variant("litert", "int8"), path, exporter.images)
    keras_accuracy = (exporter.keras_probs.argmax(1) == exporter.labels).mean()
    assert (probs.argmax(1) == exporter.labels).mean() >= keras_accuracy - INT8_DROP
    check, float32 = cards["litert-int8"]["check"], cards["litert"]["check"]
    assert check["accuracy_drop"] == pytest.approx(check["keras_accuracy"] - check["accuracy"]) and check["accuracy_drop"] <= INT8_DROP
    assert check["size_bytes"] < float32["size_bytes"] / 3 < cards["litert-float16"]["check"]["size_bytes"]


def test_an_export_is_made_from_the_model_as_it_predicts_float32_and_without_augmentation():
    # bfloat16 compute (set, not auto: on any machine), float32 weights, random shifts and flips
    model = build_model(replace(PRESETS["Small CNN"], augment=True, mixed_precision=True))
    copied = inference_copy(model)
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in model.layers}
    assert {layer.dtype_policy.name for layer in copied.layers} == {"float32"}
    kept = [layer for layer in model.layers if type(layer).__name__ not in ("RandomTranslation", "RandomFlip")]
    assert [layer.name for layer in copied.layers] == [layer.name for layer in kept] and len(kept) == len(model.layers) - 2
    for ours, theirs in zip(copied.layers, kept):
        for weight, original in zip(ours.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(weight, original)
    assert inference_copy(copied) is copied, "a float32 model without augmentation is exported as it is"


def test_gelu_converts_to_onnx_though_tf2onnx_has_no_erfc(exported, tmp_path):
    _, _, exporter, _ = exported
    model = build_model(dense_spec([16], activation="gelu", augment=True))
    convert(inference_copy(model), Variant("onnx"), tmp_path / "gelu.onnx", exporter.calibration)
    probs, _, _ = run_onnx(tmp_path / "gelu.onnx", exporter.images[:200])
    np.testing.assert_allclose(probs, model.predict(exporter.images[:200], verbose=0), atol=1e-5)


# --- what is kept: the card, the files, the download ---


def test_the_model_card_says_what_the_export_expects_and_how_it_did(exported):
    store, run_id, _, cards = exported
    run = store.get(run_id)
    assert set(kept_exports(store, run_id)) == {variant.key for variant in VARIANTS}
    for variant in VARIANTS:
        card_json, card_markdown = card_paths(kept_path(store, run_id, variant))
        card = read_card(card_json)
        assert card == json.loads(json.dumps(cards[variant.key]))
        assert card["classes"] == list(FASHION_MNIST.class_names)
        assert card["input"]["shape"] == [None, 28, 28, 1] and card["input"]["dtype"] == "float32"
        assert card["output"]["shape"] == [None, 10] and card["quantization"] == variant.quantize
        assert card["run"]["test_accuracy"] == run.test_acc and ModelSpec.from_dict(card["run"]["spec"]) == run.spec
        text = card_markdown.read_text()
        listed = re.findall(r"^(\d)\. (.+)$", text, re.M)
        assert [name for _, name in listed] == list(FASHION_MNIST.class_names) and [int(i) for i, _ in listed] == list(range(10))
        assert "light on a black background" in text and f"{card['check']['accuracy']:.4f}" in text
    assert exports_table(cards)["format"].tolist() == [variant.label for variant in VARIANTS]


def test_the_download_is_the_export_with_its_card(exported):
    store, run_id, _, _ = exported
    with zipfile.ZipFile(io.BytesIO(export_zip(store, run_id, Variant("onnx")))) as archive:
        assert sorted(archive.namelist()) == sorted([f"run-{run_id}.onnx", f"run-{run_id}.onnx.card.json", f"run-{run_id}.onnx.card.md"])
    with zipfile.ZipFile(io.BytesIO(export_zip(store, run_id, Variant("saved_model")))) as archive:
        assert f"run-{run_id}-saved_model/saved_model.pb" in archive.namelist()


# --- bad input ---


class InverseErf(keras.layers.Layer):
    """erfinv: an op that neither tf2onnx nor LiteRT's built-in ops have."""

    def call(self, x):
        return keras.ops.erfinv(keras.ops.clip(x, -0.5, 0.5))


@pytest.mark.parametrize("key", ["onnx", "litert"])
def test_an_op_the_converter_refuses_is_named_with_its_layer_and_nothing_is_kept(exported, key):
    store, run_id, exporter, _ = exported
    image = keras.Input((28, 28, 1))
    odd = keras.Model(image, keras.layers.Dense(10, activation="softmax")(InverseErf(name="inverse_erf")(keras.layers.Flatten()(image))))
    stand_in = copy.copy(exporter)
    stand_in.predicting = odd
    before = sorted(p.name for p in exports_dir(store, run_id).iterdir())
    with pytest.raises(ExportError, match=r"does not support the op Erfinv in layer inverse_erf.*Nothing was written"):
        stand_in.export(variant_by_key(key))
    assert sorted(p.name for p in exports_dir(store, run_id).iterdir()) == before, "no half-written file, no temporary folder"


def test_formats_and_quantisations_are_checked():
    assert variant_for("litert", "int8") == Variant("litert", "int8")
    with pytest.raises(ValueError, match="unknown format 'coreml'"):
        variant_for("coreml")
    with pytest.raises(ValueError, match="is for LiteRT"):
        variant_for("onnx", "int8")


def test_an_output_path_that_cannot_be_written_is_refused_before_anything_is_made(tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "photos").mkdir()
    with pytest.raises(ValueError, match="does not exist"):
        check_out_path(tmp_path / "missing" / "m.onnx", Variant("onnx"), 1)
    with pytest.raises(ValueError, match="does not exist"):
        check_out_path(tmp_path / "a-file" / "m.onnx", Variant("onnx"), 1)
    with pytest.raises(ValueError, match="it is a folder"):
        check_out_path(tmp_path / "photos", Variant("litert"), 1)
    with pytest.raises(ValueError, match="not a SavedModel folder"):
        check_out_path(tmp_path / "photos", Variant("saved_model"), 1)
    assert check_out_path(tmp_path / "m.onnx", Variant("onnx"), 1) == tmp_path / "m.onnx"


@pytest.mark.skipif(not os.access("/proc", os.W_OK), reason="needs a folder os.access calls writable that is not (/proc, as root)")
def test_a_folder_that_only_looks_writable_is_refused_before_anything_is_made():
    """Issue 26 #10: as root, os.access says yes to /proc and to read-only disks."""
    with pytest.raises(ValueError, match="cannot be written to"):
        check_out_path("/proc/model.onnx", Variant("onnx"), 1)


def test_an_export_whose_out_cannot_be_written_keeps_nothing(exported):
    """Past the pre-check (a disk that turned read-only meanwhile): the run's exports/ stays as it was."""
    store, run_id, exporter, _ = exported
    folder = exports_dir(store, run_id)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
    with pytest.raises(ExportError, match="Nothing was kept"):
        exporter.export(variant_by_key("onnx"), Path("/proc/model.onnx"))
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()} == before


def broken_runs(store: RunStore) -> dict[str, int]:
    """Runs without a usable model: failed, with garbage for a model file, with a .keras that is a
    whole zip holding no model."""
    ids = {}
    for name, status in (("failed", RunStatus.FAILED), ("garbage", RunStatus.FINISHED), ("empty zip", RunStatus.FINISHED)):
        ids[name] = store.create_run(TINY_CNN, name=name)
        try_start(store, ids[name], max_parallel=10)
        store.finish(ids[name], status)
    store.run_dir(ids["garbage"]).mkdir(parents=True, exist_ok=True)
    store.model_path(ids["garbage"]).write_bytes(b"\x00" * 64)
    store.run_dir(ids["empty zip"]).mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(store.model_path(ids["empty zip"]), "w") as archive:
        archive.writestr("config.json", "{}")
    return ids


def test_a_run_without_a_usable_model_gets_one_line_and_exit_2(home, capsys, dataset, tmp_path):
    store = RunStore()
    ids = broken_runs(store)
    Image.fromarray(dataset.x_test[0]).save(tmp_path / "item.png")
    expected = {"failed": "has no model: it failed", "garbage": "is unreadable", "empty zip": "is unreadable"}
    for name, run_id in ids.items():
        for command in (["export", str(run_id), "--format", "onnx"], ["predict", str(run_id), str(tmp_path / "item.png")]):
            assert main(command) == 2
            assert expected[name] in capsys.readouterr().err
    assert main(["export", "999", "--format", "litert"]) == 2 and "there is no run 999" in capsys.readouterr().err
    assert main(["export", str(ids["failed"]), "--format", "onnx", "--quantize", "int8"]) == 2
    assert "is for LiteRT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(ids["failed"]), "--format", "coreml"])
    assert exit_info.value.code == 2 and "invalid choice: 'coreml'" in capsys.readouterr().err
    with pytest.raises(ModelFileError, match="unreadable"):
        Exporter(store, ids["empty zip"], dataset)
    assert not any(exports_dir(store, run_id).exists() for run_id in ids.values())


def test_the_command_line_exports_through_the_queue_and_copies_to_out(exported, home, capsys, tmp_path):
    source, run_id, _, _ = exported
    shutil.copytree(source.home, home)
    out = tmp_path / "shirts.onnx"
    assert main(["export", str(run_id), "--format", "onnx", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    export = RunStore().get(printed["export_run"])
    assert (export.kind, export.status, export.parent_id, export.settings) == ("export", "finished", run_id, {"variant": "onnx", "out": str(out)})
    assert printed["out"] == str(out) and out.read_bytes() == kept_path(RunStore(), run_id, Variant("onnx")).read_bytes()
    assert read_card(card_paths(out)[0])["file"] == "shirts.onnx" and printed["argmax_agreement"] >= SAME_CLASS


def test_export_refuses_an_unwritable_out_path_before_it_starts(exported, monkeypatch, capsys, tmp_path):
    store, run_id, _, _ = exported
    monkeypatch.setenv("FMNIST_HOME", str(store.home))
    assert main(["export", str(run_id), "--format", "onnx", "--out", str(tmp_path / "nowhere" / "m.onnx")]) == 2
    assert "the folder" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()


# --- the command line ---


def test_predict_gives_the_librarys_class_and_each_bad_file_its_message(exported, tmp_path, dataset, monkeypatch, capsys):
    store, run_id, exporter, _ = exported
    monkeypatch.setenv("FMNIST_HOME", str(store.home))
    Image.fromarray(dataset.x_test[0]).save(tmp_path / "ankle-boot.png")
    (tmp_path / "notes.png").write_text("not a picture")
    expected = predict_image(exporter.model, prepare(open_image((tmp_path / "ankle-boot.png").read_bytes())).image01)
    files = [str(tmp_path / name) for name in ("ankle-boot.png", "notes.png", "gone.png")]
    assert main(["predict", str(run_id), *files]) == 0
    good, bad, missing = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert good["file"] == files[0] and good["class"] == FASHION_MNIST.class_names[expected.argmax()]
    assert good["probability"] == pytest.approx(expected.max(), abs=1e-4)
    assert [entry["class"] for entry in good["top3"]] == [FASHION_MNIST.class_names[i] for i in np.argsort(-expected)[:3]]
    assert bad == {"file": files[1], "error": "This file is not an image: upload a PNG, JPEG, WebP, GIF or BMP."}
    assert missing == {"file": files[2], "error": "no such file"}
    assert main(["predict", str(run_id), *files[1:]]) == 1, "every file failed"
    assert [json.loads(line)["file"] for line in capsys.readouterr().out.strip().splitlines()] == files[1:]


# A .keras file as a JAX training writes it: Keras on JAX builds, fits and saves the app's model.
TRAIN_ON_JAX = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import keras
from fmnist.data import load_dataset, to_model_input
from fmnist.models import dense_spec
from fmnist.network import build_model
data = load_dataset()
model = build_model(dense_spec([32]))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(to_model_input(data.x_train[:2000]), data.y_train[:2000], epochs=2, batch_size=64, verbose=0)
model.save(sys.argv[1])
print(keras.backend.backend())
"""


def test_a_model_trained_on_jax_exports_like_any_other(home, tmp_path, dataset):
    store = RunStore()
    run_id = store.create_run(dense_spec([32], epochs=2), name="on jax", train_limit=2000)
    assert try_start(store, run_id, max_parallel=1)
    store.run_dir(run_id).mkdir(parents=True, exist_ok=True)
    trained = subprocess.run([sys.executable, "-c", TRAIN_ON_JAX, str(store.model_path(run_id))], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert trained.returncode == 0 and trained.stdout.split()[-1] == "jax", trained.stderr
    store.record_engine(run_id, "jax", "a CPU")
    store.finish(run_id, RunStatus.FINISHED)
    card = Exporter(store, run_id, dataset).export(Variant("litert"), out=tmp_path / "shirts.tflite")
    assert card["run"]["backend"] == "jax" and card["check"]["keras_accuracy"] > 0.6
    assert card["check"]["argmax_agreement"] >= SAME_CLASS and card["check"]["max_prob_diff"] <= PROB_TOLERANCE["litert"]
    copied = read_card(tmp_path / "shirts.tflite.card.json")
    assert copied["file"] == "shirts.tflite" and copied["check"] == card["check"] and (tmp_path / "shirts.tflite.card.md").is_file()
    assert (tmp_path / "shirts.tflite").read_bytes() == kept_path(store, run_id, Variant("litert")).read_bytes()
    assert set(kept_exports(store, run_id)) == {"litert"}


def test_the_readmes_example_classifies_a_png_with_onnxruntime_alone(exported, tmp_path, dataset):
    store, run_id, exporter, _ = exported
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "exports.md").read_text(), re.S)
    [example] = [block for block in blocks if "onnxruntime" in block]
    assert len(example.strip().splitlines()) <= 12
    (tmp_path / "classify.py").write_text(example)
    index = int(np.argmax(exporter.keras_probs.max(1) > 0.6))  # a test image the model is sure of: no tie to break
    Image.fromarray(dataset.x_test[index]).save(tmp_path / "item.png")
    # Run as a user would, then make sure nothing of TensorFlow, Keras, JAX or this app was loaded.
    wrapper = ("import runpy, sys\nsys.argv = ['classify.py', sys.argv[1], sys.argv[2]]\n"
               "runpy.run_path('classify.py', run_name='__main__')\n"
               "loaded = {m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'jax', 'fmnist'}\n"
               "assert not loaded, loaded\n")
    result = subprocess.run([sys.executable, "-c", wrapper, str(kept_path(store, run_id, Variant("onnx"))), "item.png"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    name, percent = result.stdout.strip().rsplit(" ", 1)
    assert name == FASHION_MNIST.class_names[exporter.keras_probs[index].argmax()]
    assert float(percent.rstrip("%")) == pytest.approx(100 * exporter.keras_probs[index].max(), abs=0.06)


# --- the Leaderboard ---


def test_the_leaderboard_makes_an_export_on_demand_and_offers_it_with_its_check(exported, home):
    source, run_id, _, _ = exported
    shutil.copytree(source.home, home)
    store = RunStore()
    float16 = kept_path(store, run_id, Variant("litert", "float16"))
    for path in (float16, *card_paths(float16)):
        path.unlink()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/leaderboard.py").run()
    at.session_state["lb_table"] = {"selection": {"rows": [0]}}
    at.run()
    assert not at.exception, at.exception
    downloads = [b.label for b in at.download_button]
    assert downloads == ["Model (.keras)", "Curves (.csv)", "ONNX (.zip)", "LiteRT (.zip)", "LiteRT int8 (.zip)", "SavedModel (.zip)",
                         "Code (.py)", "Notebook (.ipynb)"]
    # Queued as a run of its own (kind export), made in its own process; the page follows it, then offers it.
    at.button(key=f"lb_export_{run_id}_litert-float16").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    [export] = store.children(run_id)
    assert (export.kind, export.settings["variant"]) == ("export", "litert-float16")
    assert any(p.proto.text.startswith("The LiteRT float16 export: ") for p in at.get("progress")) or not store.get(export.id).active
    assert at.button(key=f"lb_export_{run_id}_litert-float16").disabled or not store.get(export.id).active, "not queued twice"
    made = wait_until(lambda: not (run := store.get(export.id)).active and run, timeout=180, every=0.5, message="the export run to end")
    assert made.status == RunStatus.FINISHED, made.error
    at.run()
    assert not at.exception and not at.get("progress")
    assert "LiteRT float16 (.zip)" in [b.label for b in at.download_button]
    [checks] = [frame.value for frame in at.dataframe if "same class" in frame.value.columns]
    assert checks["format"].tolist() == [variant.label for variant in VARIANTS]
    assert (checks[checks["format"] != "LiteRT int8"]["same class"] >= SAME_CLASS).all()
    assert read_card(card_paths(float16)[0])["check"]["argmax_agreement"] >= SAME_CLASS
