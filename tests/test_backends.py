"""The engine on each Keras backend: auto's choice, the setting, training on JAX in its own process,
a JAX-trained model under TensorFlow, and the fallback when JAX cannot start.

Keras fixes its backend per process, and this test process runs TensorFlow (the app's backend): a
JAX training runs in a process of its own, through the command line as people run it.
"""

import json
import sqlite3
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import sqlalchemy as sa

from fmnist import jobs, migrations
from fmnist.backends import (
    auto_backend,
    auto_mixed_precision,
    bfloat16_slower_here,
    default_setting,
    engine_label,
    mixed_precision_for,
    precision_label,
    resolve,
    setting_label,
    with_precision_resolved,
)
from fmnist.data import to_model_input
from fmnist.migrations import legacy
from fmnist.models import PRESETS, ConvBlock, DenseLayer, ModelSpec, dense_spec
from fmnist.prediction import load_model
from fmnist.services import Actor, start_training
from fmnist.store import RunStore

from helpers import ROOT, run_cli, wait_until

TINY = ("--layers", "64", "--epochs", "2", "--limit", "2000", "--seed", "3")


def train_json(*args, env=None) -> tuple[dict, str]:
    result = run_cli("train", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_auto_picks_jax_for_dense_stacks_and_tensorflow_for_convolutions_and_augmentation():
    assert auto_backend(dense_spec([128, 64])) == "jax"
    assert auto_backend(PRESETS["Best MLP"]) == "jax"
    assert auto_backend(PRESETS["Small CNN"]) == "tensorflow"
    assert auto_backend(ModelSpec(layers=(DenseLayer(32),), conv=(ConvBlock(8),))) == "tensorflow"
    assert auto_backend(dense_spec([128], augment=True)) == "tensorflow"
    assert resolve(dense_spec([32]), "tensorflow") == "tensorflow" and resolve(PRESETS["Small CNN"], "jax") == "jax"
    assert resolve(dense_spec([32]), None) == "jax"
    assert setting_label("auto", PRESETS["Small CNN"]) == "auto (TensorFlow for this stack)"
    with pytest.raises(ValueError, match="one of auto, tensorflow, jax, got 'torch'"):
        resolve(dense_spec([32]), "torch")


CNN = ModelSpec(layers=(DenseLayer(32),), conv=(ConvBlock(8),))
MLP = dense_spec([128, 64])


@pytest.mark.parametrize("cpu_bfloat16, gpu, cnn, mlp", [
    (True, False, True, False),  # AMX or AVX512-BF16: bfloat16 halves a conv epoch, gains nothing for a dense stack
    (False, False, False, False),  # AVX2 only: bfloat16 is emulated, several times slower
    (None, False, False, False),  # flags unknown (not Linux): float32, the safe side
    (False, True, True, True),  # a GPU: bfloat16 whatever the CPU
    (None, True, True, True),
])
def test_auto_precision_follows_the_cpu_flags_the_stack_and_a_gpu(cpu_bfloat16, gpu, cnn, mlp):
    assert auto_mixed_precision(CNN, cpu_bfloat16, gpu) is cnn
    assert auto_mixed_precision(MLP, cpu_bfloat16, gpu) is mlp


@pytest.mark.parametrize("flags, words", [
    ("fpu avx2 fma amx_bf16 amx_tile", True),
    ("fpu avx2 avx512f avx512_bf16", True),
    ("fpu avx2 fma sse4_2", False),
])
def test_auto_precision_reads_this_machines_cpu_flags(monkeypatch, tmp_path, flags, words):
    import builtins

    import fmnist.machine
    import fmnist.models

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo" else path, *a, **k))
    fmnist.models.cpu_has_bfloat16.cache_clear()
    fmnist.machine.cpuinfo.cache_clear()  # read once a process: read again from the file above
    try:
        assert fmnist.models.cpu_has_bfloat16() is words
        assert mixed_precision_for(CNN) is words and mixed_precision_for(MLP) is False
        assert precision_label("auto", CNN) == f"auto ({'bfloat16' if words else 'float32'} here)"
        assert bfloat16_slower_here(replace(CNN, mixed_precision=True)) is not words
    finally:
        fmnist.models.cpu_has_bfloat16.cache_clear()
        fmnist.machine.cpuinfo.cache_clear()


@pytest.mark.parametrize("cpu_bfloat16", [True, False, None])
def test_a_precision_set_by_hand_is_honoured_on_any_machine(monkeypatch, cpu_bfloat16):
    import fmnist.models

    monkeypatch.setattr(fmnist.models, "cpu_has_bfloat16", lambda: cpu_bfloat16)
    for setting in (True, False):
        for spec in (CNN, MLP):
            assert mixed_precision_for(replace(spec, mixed_precision=setting), gpu=True) is setting
            assert mixed_precision_for(replace(spec, mixed_precision=setting), gpu=False) is setting
    assert with_precision_resolved(CNN, gpu=True).mixed_precision is True
    assert with_precision_resolved(CNN).mixed_precision is (cpu_bfloat16 is True)
    assert (precision_label(True), precision_label(False)) == ("bfloat16", "float32")


def test_the_default_setting_comes_from_fmnist_backend(monkeypatch):
    monkeypatch.delenv("FMNIST_BACKEND", raising=False)
    assert default_setting() == "auto"
    monkeypatch.setenv("FMNIST_BACKEND", " TensorFlow ")
    assert default_setting() == "tensorflow"
    monkeypatch.setenv("FMNIST_BACKEND", "tpu")
    with pytest.raises(ValueError, match="FMNIST_BACKEND: one of auto, tensorflow, jax, got 'tpu'"):
        default_setting()


def test_a_bad_backend_setting_is_one_clear_line_and_creates_no_run(home):
    bad_env = run_cli("train", "--layers", "32", "--limit", "100", env={"FMNIST_BACKEND": "bogus"})
    assert bad_env.returncode == 2 and "FMNIST_BACKEND: one of auto, tensorflow, jax, got 'bogus'" in bad_env.stderr
    bad_flag = run_cli("train", "--layers", "32", "--limit", "100", "--backend", "bogus")
    assert bad_flag.returncode == 2 and "invalid choice: 'bogus'" in bad_flag.stderr
    assert "Traceback" not in bad_env.stderr + bad_flag.stderr
    assert RunStore().list_runs() == []


def test_an_older_store_gains_the_backend_columns_empty(home):
    home.mkdir(parents=True)
    engine = sa.create_engine(f"sqlite:///{home / 'runs.sqlite'}")  # as the version before backends were recorded left it
    with engine.begin() as db:
        legacy.migrate(db, to_version=legacy.MIGRATIONS.index(legacy.to_version_4))
        db.execute(sa.text("INSERT INTO runs (name, spec_json, status, created_at, params) VALUES ('old', :spec, 'finished', 0, 1)"),
                   {"spec": json.dumps(dense_spec([32]).to_dict())})
    engine.dispose()
    [run] = RunStore().list_runs()
    assert (run.name, run.backend_setting, run.backend, run.device) == ("old", None, None, None)
    assert sqlite3.connect(home / "runs.sqlite").execute("PRAGMA user_version").fetchone()[0] == migrations.LEGACY_FENCE


def test_a_job_trains_on_the_backend_that_trained_its_run(home):
    store = RunStore()
    run_id = store.create_run(dense_spec([32]), backend_setting="auto")
    store.record_engine(run_id, "tensorflow", "some CPU")
    job_id = jobs.SEEDS.create(store, run_id, 2)
    assert store.get(job_id).backend_setting == "tensorflow"
    assert engine_label(store.get(run_id)) == "TensorFlow" and engine_label(store.get(job_id)) == "tensorflow (asked)"


def test_the_same_spec_learns_alike_on_both_backends_and_repeats_exactly_on_jax(home):
    on_tf, _ = train_json(*TINY, "--backend", "tensorflow")
    on_jax, _ = train_json(*TINY)  # auto: a dense stack trains on JAX
    again, _ = train_json(*TINY, "--backend", "jax")
    assert (on_tf["backend"], on_jax["backend"], again["backend"]) == ("tensorflow", "jax", "jax")
    assert on_jax["device"] and on_jax["device"] == on_tf["device"]
    # 2,000 images, 2 epochs: both land in the same band (different random initial weights per backend).
    assert 0.70 < on_tf["test_acc"] < 0.86 and 0.70 < on_jax["test_acc"] < 0.86
    assert abs(on_tf["test_acc"] - on_jax["test_acc"]) < 0.04
    store = RunStore()
    curve = lambda run_id: [(e["loss"], e["val_loss"]) for e in store.epochs(run_id)]  # noqa: E731
    assert curve(on_jax["run_id"]) == curve(again["run_id"]), "same seed, same backend: the same curves"
    assert again["test_acc"] == on_jax["test_acc"]


def test_a_jax_trained_model_loads_and_predicts_the_same_under_tensorflow(home, dataset):
    summary, _ = train_json(*TINY, "--backend", "jax")
    assert summary["backend"] == "jax"
    store = RunStore()
    model = load_model(store, summary["run_id"])  # safe_mode on, in this TensorFlow process
    probs = model.predict(to_model_input(dataset.x_test[:1000]), batch_size=1000, verbose=0)
    computed_by_jax = np.load(store.probs_path(summary["run_id"]))[:1000]
    # float32 through different matmul kernels: the probabilities agree to 1e-5 (they differ around 1e-7).
    np.testing.assert_allclose(probs, computed_by_jax, atol=1e-5)
    assert (probs.argmax(1) == computed_by_jax.argmax(1)).all()


def test_jax_streams_writes_tensorboard_logs_and_stops_keeping_what_it_learnt(home):
    store = RunStore()
    run_id = start_training(store, Actor.local(), dense_spec([256, 128], epochs=50), train_limit=20000, backend_setting="jax")
    wait_until(lambda: len(store.epochs(run_id)) >= 1 and len(store.batches(run_id)) >= 3, timeout=120, message="live points")
    store.request_stop(run_id)
    run = wait_until(lambda: (r := store.get(run_id)).status not in ("running", "queued") and r, timeout=60, message="the run to end")
    assert run.status == "stopped", run.error
    assert run.backend == "jax" and run.epoch < 50 and run.test_acc > 0.5
    assert store.model_path(run_id).is_file()
    steps = [p["step"] for p in store.batches(run_id) if p["epoch"] == 1]
    assert steps == sorted(set(steps)) and steps[-1] <= 563, "epoch 1's points in order, within its 563 batches (18,000 / 32)"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for part, tags in (("train", {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}), ("validation", {"epoch_loss", "epoch_accuracy"})):
        events = EventAccumulator(str(store.run_dir(run_id) / "tensorboard" / part))
        events.Reload()
        assert set(events.Tags()["scalars"]) == tags
        assert events.Scalars("epoch_loss")[0].step == 0
    epoch_one = store.epochs(run_id)[0]
    events = EventAccumulator(str(store.run_dir(run_id) / "tensorboard" / "validation"))
    events.Reload()
    assert events.Scalars("epoch_loss")[0].value == pytest.approx(epoch_one["val_loss"])


JAX_PROCESS = """
import json, sys
from fmnist.keras_start import start_keras
assert start_keras("jax") == "jax"
import fmnist.training
from fmnist.models import dense_spec
from fmnist.store import RunStore
from fmnist.worker import try_start
fmnist.training.UPDATE_EVERY_S = 0.0  # a point after every call into the compiled steps
store = RunStore()
run_id = store.create_run(dense_spec([32], epochs=2, batch_size=100, val_split=0.0, checkpoint=False), train_limit=2500)
assert try_start(store, run_id, 1)
reports = []
summary = fmnist.training.train_run(store, run_id, progress=lambda **r: reports.append((r["epoch"], r["step"])))
loaded = {name: name in sys.modules for name in ("tensorflow", "sklearn", "pandas", "plotly")}
import sklearn.manifold  # what a t-SNE imports after Keras started: there as usual
print(json.dumps({"summary": summary, "reports": reports, **loaded}))
"""


def test_on_jax_live_progress_never_passes_the_epochs_last_batch_and_tensorflow_and_sklearn_never_load(home):
    result = subprocess.run([sys.executable, "-c", JAX_PROCESS], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["summary"]["status"] == "finished" and out["summary"]["backend"] == "jax"
    # 25 batches an epoch, 16 per call: callbacks run on worker threads, so a point may be skipped, never reversed.
    for epoch in (1, 2):
        steps = [step for e, step in out["reports"] if e == epoch]
        assert steps == sorted(set(steps)) and steps[-1] == 25, out["reports"]
    assert out["tensorflow"] is False, "a JAX training starts (and saves) without loading TensorFlow"
    assert out["sklearn"] is False, "nor scikit-learn, which Keras imports for wrappers the app does not use"
    assert out["pandas"] is False and out["plotly"] is False, "nor the tables and charts of the pages and other run kinds"


def test_a_backend_that_cannot_start_falls_back_to_tensorflow_and_says_so(home, tmp_path):
    hidden = tmp_path / "no-jax" / "jax"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('jax is hidden by the test')\n")
    summary, log = train_json("--layers", "32", "--epochs", "1", "--limit", "500", "--backend", "jax",
                              env={"PYTHONPATH": f"{hidden.parent}:{ROOT}"})
    assert summary["status"] == "finished" and summary["backend"] == "tensorflow"
    assert "The JAX backend cannot start (ImportError: jax is hidden by the test); this run trains on TensorFlow instead" in log
