"""The coach (fmnist.coach, `python -m fmnist advise`): findings from a run's curves, on synthetic curves
made to show each one, and on real runs trained to overfit and to diverge."""

import json

import pytest

from fmnist.coach import CoachError, advise
from fmnist.models import DenseLayer, ModelSpec, dense_spec
from fmnist.runs import RunKind, RunStatus
from fmnist.store import RunStore

from helpers import run_cli


def curves(loss, val_loss, accuracy=None, val_accuracy=None):
    n = len(loss)
    accuracy = accuracy or [0.8 + 0.01 * i for i in range(n)]
    val_accuracy = val_accuracy or [0.8 + 0.005 * i for i in range(n)]
    return [{"epoch": i + 1, "loss": loss[i], "val_loss": val_loss[i], "accuracy": accuracy[i], "val_accuracy": val_accuracy[i]}
            for i in range(n)]


@pytest.fixture
def store(home):
    return RunStore()


def finished(store, spec, test_acc=0.88, name="run"):
    run_id = store.create_run(spec, name=name)
    store.finish(run_id, RunStatus.FINISHED, test_acc=test_acc)
    return store.get(run_id)


def kinds(findings):
    return [finding.kind for finding in findings]


def test_overfitting_names_the_epoch_early_stopping_would_keep_and_suggests_dropout(store):
    run = finished(store, dense_spec([256], epochs=8))
    epochs = curves(loss=[0.6, 0.45, 0.38, 0.33, 0.29, 0.25, 0.22, 0.2], val_loss=[0.5, 0.42, 0.40, 0.39, 0.41, 0.43, 0.46, 0.5],
                    val_accuracy=[0.82, 0.85, 0.86, 0.889, 0.885, 0.884, 0.88, 0.878])
    [finding] = advise(run, epochs)
    assert finding.kind == "overfitting"
    assert "early stopping would have kept epoch 4, validation accuracy 0.889; try dropout 0.2" in finding.next_step
    assert finding.change["early_stopping"] is True and finding.change["layers"][0]["dropout"] == 0.2
    ModelSpec.from_dict({**run.spec.to_dict(), **finding.change})  # the change is a valid spec
    # two epochs of rising validation loss are noise, not yet a finding
    assert "overfitting" not in kinds(advise(run, epochs[:6]))


def test_underfitting_suggests_more_capacity(store):
    run = finished(store, ModelSpec(layers=(DenseLayer(8),), epochs=6))
    epochs = curves(loss=[1.2, 1.0, 0.95, 0.94, 0.94, 0.93], val_loss=[1.1, 1.0, 0.97, 0.96, 0.96, 0.96],
                    accuracy=[0.6, 0.7, 0.72, 0.722, 0.723, 0.724], val_accuracy=[0.6, 0.7, 0.72, 0.72, 0.72, 0.72])
    [finding] = advise(run, epochs)
    assert finding.kind == "underfitting" and finding.change == {"layers": [{**finding.change["layers"][0], "units": 16}]}


def test_a_learning_rate_too_high_diverges_jumps_or_goes_the_wrong_way(store):
    run = finished(store, dense_spec([32], epochs=4, learning_rate=0.01))
    nan = curves(loss=[0.9, float("nan"), float("nan")], val_loss=[0.8, float("nan"), float("nan")])
    assert [(f.kind, f.title) for f in advise(run, nan)] == [("learning_rate", "The training diverged")]
    assert advise(run, nan)[0].change == {"learning_rate": pytest.approx(0.01 / 3, rel=1e-3)}
    assert advise(run, curves(loss=[0.6, 0.4, 0.9, 0.5], val_loss=[0.5, 0.4, 0.45, 0.45]))[0].title == "The loss jumped"
    assert advise(run, curves(loss=[0.6, 0.7, 0.8], val_loss=[0.6, 0.7, 0.8]))[0].title == "The training went the wrong way"


def test_too_few_epochs_and_too_large(store):
    small = finished(store, dense_spec([32], epochs=5), test_acc=0.8795, name="small")
    large = finished(store, dense_spec([512, 256], epochs=3), test_acc=0.88, name="large")
    epochs = curves(loss=[0.5, 0.4, 0.35], val_loss=[0.45, 0.4, 0.37], val_accuracy=[0.84, 0.855, 0.87])
    found = {f.kind: f for f in advise(large, epochs, store.list_runs())}
    assert set(found) == {"too_few_epochs", "too_large"}
    assert found["too_few_epochs"].change == {"epochs": 8, "early_stopping": True}
    assert f"run #{small.id} has {small.params:,} parameters" in found["too_large"].evidence
    # still training: "too few epochs" waits for the end, and nothing is compared yet
    store.create_run(dense_spec([512, 256], epochs=3), name="training")
    assert advise(store.list_runs()[-1], epochs, store.list_runs()) == []


def test_runs_the_coach_cannot_read_say_why(store):
    with pytest.raises(CoachError, match="no such run"):
        advise(None, [])
    search = store.get(store.create_run(dense_spec([16]), kind=RunKind.SEARCH))
    with pytest.raises(CoachError, match="is a search"):
        advise(search, curves([0.5], [0.5]))
    missing = run_cli("advise", "77")
    assert missing.returncode == 2 and "There is no run 77" in missing.stderr


def test_real_runs_made_to_overfit_and_to_diverge(home):
    """Trained by the engine: a wide stack on 600 images for 14 epochs overfits; Adam at 0.9 diverges."""
    overfit = run_cli("train", "--layers", "512,512", "--epochs", "14", "--limit", "600", "--batch-size", "32", "--backend", "jax")
    assert overfit.returncode == 0, overfit.stderr
    run_id = json.loads(overfit.stdout.strip().splitlines()[-1])["run_id"]
    advice = run_cli("advise", str(run_id))
    assert advice.returncode == 0, advice.stderr
    assert "overfitting" in [finding["kind"] for finding in json.loads(advice.stdout)["findings"]], advice.stdout

    diverge = run_cli("train", "--layers", "256,256", "--epochs", "3", "--limit", "3000", "--lr", "0.9", "--backend", "jax")
    run_id = json.loads(diverge.stdout.strip().splitlines()[-1])["run_id"]
    findings = json.loads(run_cli("advise", str(run_id)).stdout)["findings"]
    assert [finding["kind"] for finding in findings] == ["learning_rate"], findings
