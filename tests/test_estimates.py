"""Times for labels, from synthetic runs: measured on this machine, estimated from its speed, or unknown."""

from dataclasses import fields, replace

import pytest

import fmnist.models
from fmnist.estimates import TimeEstimate, fit_costs, speeds_here, speeds_on, time_here, trained_samples
from fmnist.estimates import training_time as time_of
from fmnist.models import PRESETS, ConvBlock, DenseLayer, ModelSpec, dense_spec, training_flops_per_sample
from fmnist.runs import Run, RunKind, RunStatus

HERE = "AMD EPYC"
# A synthetic machine: each image costs a step's fixed cost shared by the batch plus a cost per FLOP.
PER_STEP_S = 2e-3
PER_FLOP_S = 4e-11


def synthetic_speed(spec: ModelSpec) -> float:
    return 1 / (PER_STEP_S / spec.batch_size + PER_FLOP_S * training_flops_per_sample(spec))


def run(spec: ModelSpec, samples_per_s: float | None = None, device: str = HERE, backend: str = "jax", start_up_s: float = 12.0,
        images: int | None = None, kind: RunKind = RunKind.TRAIN, status: RunStatus = RunStatus.FINISHED) -> Run:
    """A run as the store gives it back, finished at that speed after that long outside its training."""
    speed = samples_per_s or synthetic_speed(spec)
    train_s = trained_samples(spec, images) / speed
    values = {field.name: None for field in fields(Run)}
    return replace(Run(**values), spec=spec, kind=kind, status=status, device=device, backend=backend, samples_per_s=speed,
                   train_s=train_s, started_at=1000.0, ended_at=1000.0 + start_up_s + train_s, train_limit=images)


@pytest.fixture(autouse=True)
def avx2_only(monkeypatch):
    """This machine's CPU, as the issue found it: no bfloat16 instructions (auto picks float32)."""
    monkeypatch.setattr(fmnist.models, "cpu_has_bfloat16", lambda: False)


def training_time(spec: ModelSpec, runs: list[Run], device: str, backend: str, images: int | None = None) -> TimeEstimate:
    return time_of(spec, speeds_on(runs, device), backend, images)


def test_nothing_measured_claims_nothing():
    estimate = training_time(PRESETS["Best MLP"], [], HERE, "jax")
    assert estimate == TimeEstimate(None)
    assert estimate.text() == "time not measured on this machine yet"


def test_the_same_workload_gives_its_median_speed_and_start_up():
    best = PRESETS["Best MLP"]  # 20 epochs of 54,000 images
    runs = [run(replace(best, seed=seed), samples_per_s=speed, start_up_s=start)
            for seed, speed, start in ((0, 10000, 10.0), (1, 12000, 14.0), (2, 18000, 30.0))]
    estimate = training_time(best, runs, HERE, "jax")
    assert (estimate.measured, estimate.runs, estimate.seconds) == (True, 3, pytest.approx(20 * 54000 / 12000 + 14.0))
    assert estimate.text() == "1 min 44 s here (median of 3 runs)"
    # Fewer epochs on a fifth of the images, another learning rate: the same speed, so the same workload.
    short = training_time(replace(best, epochs=2, learning_rate=0.003), runs, HERE, "jax", images=12000)
    assert short.measured and short.seconds == pytest.approx(2 * 10800 / 12000 + 14.0)


def test_runs_of_another_machine_backend_precision_or_state_do_not_count():
    best = PRESETS["Best MLP"]
    others = [
        run(best, 50000, device="Intel Xeon with AMX"),
        run(best, 50000, backend="tensorflow"),
        run(replace(best, mixed_precision=True), 50000),  # bfloat16 set by hand: another workload on this CPU
        run(best, 50000, status=RunStatus.FAILED),
        run(best, 50000, status=RunStatus.STOPPED),
        run(best, 50000, kind=RunKind.SEEDS),
    ]
    assert training_time(best, others, HERE, "jax") == TimeEstimate(None)
    mine = run(replace(best, mixed_precision=False), 12000)  # auto picks float32 here: the same workload
    estimate = training_time(best, [*others, mine], HERE, "jax")
    assert (estimate.measured, estimate.runs, estimate.seconds) == (True, 1, pytest.approx(90 + 12.0))


def test_a_search_trial_gives_its_speed_but_no_start_up():
    best = PRESETS["Best MLP"]
    trial = run(best, 12000, kind=RunKind.TRIAL, images=20000)
    estimate = training_time(best, [trial], HERE, "jax")
    assert (estimate.measured, estimate.runs, estimate.seconds) == (True, 1, pytest.approx(90.0))


def test_another_stack_is_estimated_from_this_machines_speed_for_its_family():
    """Runs of two other dense stacks fit the synthetic machine's costs, and give the third's time."""
    runs = [run(PRESETS["Seed D: 128-64"]), run(dense_spec([64, 32], batch_size=256, epochs=3))]
    best = PRESETS["Best MLP"]
    estimate = training_time(best, runs, HERE, "jax")
    assert not estimate.measured and estimate.runs == 2
    assert estimate.seconds == pytest.approx(trained_samples(best, None) / synthetic_speed(best) + 12.0, rel=1e-6)
    assert estimate.text().startswith("≈ ") and estimate.text().endswith(" here (estimated from 2 runs)")
    # Dense runs say nothing of a CNN's speed, nor one run of a family of two costs.
    assert training_time(PRESETS["Small CNN"], runs, HERE, "jax") == TimeEstimate(None)
    assert training_time(best, runs[:1], HERE, "jax") == TimeEstimate(None)


def test_a_cnn_is_estimated_from_other_cnns_in_its_precision():
    cnn = PRESETS["Small CNN"]
    runs = [run(ModelSpec(conv=(ConvBlock(16),), layers=(DenseLayer(64),), batch_size=64), backend="tensorflow"),
            run(ModelSpec(conv=(ConvBlock(32), ConvBlock(32)), layers=(DenseLayer(32),), batch_size=256), backend="tensorflow")]
    estimate = training_time(cnn, runs, HERE, "tensorflow")
    assert estimate.seconds == pytest.approx(trained_samples(cnn, None) / synthetic_speed(cnn) + 12.0, rel=1e-6)
    # The same runs, trained in bfloat16 by hand, are another precision than what auto picks here.
    bfloat16 = [replace(r, spec=replace(r.spec, mixed_precision=True)) for r in runs]
    assert training_time(cnn, bfloat16, HERE, "tensorflow") == TimeEstimate(None)


def test_the_fit_keeps_each_cost_at_zero_or_above():
    # The larger batch slower per image at the same FLOPs (a busy machine): only a negative per-step
    # cost would fit both, so the fit falls back to one cost alone.
    per_step, per_flop = fit_costs([(1 / 32, 1e5, 1e-5), (1 / 256, 1e5, 2e-5)])
    assert per_step == 0 and per_flop > 0
    assert fit_costs([(1 / 32, 1e5, 2e-5), (1 / 32, 1e5, 3e-5)]) is None, "two runs of one cost fit nothing"


def test_time_here_uses_this_cpu_and_the_backend_auto_picks(monkeypatch):
    from fmnist import estimates

    monkeypatch.setattr(estimates, "cpu_name", lambda: HERE)
    monkeypatch.delenv("FMNIST_BACKEND", raising=False)
    best = PRESETS["Best MLP"]
    speeds = speeds_here([run(best, 12000), run(best, 1000, device="Another CPU")])
    assert time_here(best, speeds).seconds == pytest.approx(102.0)
    assert time_here(best, speeds, "tensorflow") == TimeEstimate(None)
    monkeypatch.setenv("FMNIST_BACKEND", "nonsense")  # the page that starts runs says what is wrong; auto meanwhile
    assert time_here(best, speeds).measured
