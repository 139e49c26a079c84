"""`python -m fmnist bench`: a bare `model.fit` on TensorFlow against the engine on each backend.

The cases: the seed's 64-128-64-32 MLP at batch 32 and 256 on all 60,000 images, and the Small CNN
preset on a fifth of them. Three sides each train every case: bare `model.fit` on TensorFlow (the
reference people compare with), the engine on TensorFlow and the engine on JAX; auto's figure is
the engine on the backend auto picks for the case. Keras' backend is fixed per process, so each side
runs in a process of its own (benchmarks.bench_fit); the sides take turns, in a rotated order each round,
so that a slow moment on a shared machine does not always fall on the same side. Each figure is the
median over the rounds, with the slowest and fastest beside it.

Also the time from starting a training to its first batch, as a person waits for it: `python -m
fmnist train` from process start through imports, the dataset, building and compiling, on each backend.

This module only starts processes and compares their figures: it never imports Keras.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from fmnist.backends import BACKENDS, LABELS, auto_backend, with_precision_resolved
from fmnist.dataset import FASHION_MNIST
from fmnist.machine import cpu_flags, cpu_mhz, cpu_name
from fmnist.models import PRESETS, ModelSpec, training_flops_per_sample, with_training
from fmnist.store import RunStore

MLP_PRESET = "Seed A: 64-128-64-32"
# (name, preset, batch size, training images): the CNN on a fifth of the set keeps the bench short.
CASES = (
    ("MLP 64-128-64-32", MLP_PRESET, 32, FASHION_MNIST.train_size),
    ("MLP 64-128-64-32", MLP_PRESET, 256, FASHION_MNIST.train_size),
    ("Small CNN", "Small CNN", PRESETS["Small CNN"].batch_size, 12800),  # in the precision auto picks on this CPU
)
SIDES = (("bare", "tensorflow"), ("engine", "tensorflow"), ("engine", "jax"))
# The training whose start is timed: one epoch of the MLP on a few batches, so it ends soon after.
START_ARGS = ("train", "--preset", MLP_PRESET, "--epochs", "1", "--limit", "3200", "--name", "bench start")
# Float32 FMA units per core: /proc/cpuinfo does not say. Intel Xeon Scalable CPUs with AVX-512
# have two (AMD's Zen 4 has two 256-bit units, which comes to the same lanes per cycle).
FMA_UNITS = 2


def case_spec(i: int) -> ModelSpec:
    _, preset, batch, _ = CASES[i]
    return with_precision_resolved(with_training(PRESETS[preset], batch_size=batch, val_split=0.0))


def cpu_limit() -> tuple[float, str]:
    """The CPU's float32 arithmetic limit in FLOP/s, and how it was computed:
    cores × SIMD lanes × FMA units × 2 FLOPs × clock, from /proc/cpuinfo (lanes from its flags:
    16 with avx512f, 8 with avx2; the clock is its 'cpu MHz'; FMA units assumed, see FMA_UNITS)."""
    cores = len(os.sched_getaffinity(0))
    flags, mhz = cpu_flags() or set(), cpu_mhz()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    flops = cores * lanes * FMA_UNITS * 2 * mhz * 1e6
    how = (f"{cores} cores × {lanes} float32 lanes × {FMA_UNITS} FMA units × 2 FLOPs × {mhz / 1000:.2f} GHz "
           f"= {flops / 1e9:.0f} GFLOP/s")
    return flops, how


def side_figures(side: str, backend: str) -> list[dict]:
    """Run one side in its own process; its JSON lines."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "fmnist", "bench", "--side", side, "--backend", backend]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"the bench's {side} side on {backend} failed:\n{result.stderr[-2000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def seconds_to_first_batch(backend: str) -> tuple[float, float, str]:
    """(seconds from starting `python -m fmnist train` to its first batch, seconds to the end, the
    backend that trained it), in a run store of its own."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "FMNIST_HOME": home, "TF_CPP_MIN_LOG_LEVEL": "2"}
        store = RunStore(home)
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "fmnist", *START_ARGS, "--backend", backend],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = None
        while process.poll() is None and first is None:
            runs = store.list_runs()
            if runs and store.batches(runs[0].id):
                first = time.perf_counter() - start
            time.sleep(0.02)
        process.wait()
        end = time.perf_counter() - start
        runs = store.list_runs()
        if first is None or not runs or runs[0].status != "finished":
            raise RuntimeError(f"the timed training on {backend} did not finish: {runs[0].error if runs else 'no run'}")
        return first, end, runs[0].backend


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}" if len(values) > 1 else ""


def run_bench(rounds: int, as_json: bool) -> int:
    cpu = cpu_name()
    limit, how = cpu_limit()
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if as_json else (lambda text: print(text, flush=True))
    say(f"CPU: {cpu} (/proc/cpuinfo). Its float32 limit: {how}.")
    rates = {(side, backend, i): [] for side, backend in SIDES for i in range(len(CASES))}
    live, actual, devices = {}, {}, {}
    starts = {backend: [] for backend in BACKENDS}
    for r in range(rounds):
        order = SIDES[r % len(SIDES):] + SIDES[:r % len(SIDES)]
        for side, backend in order:
            for row in side_figures(side, backend):
                rates[side, backend, row["case"]].append(row["samples_per_s"])
                live.setdefault((side, backend, row["case"]), []).append(row["live_updates_per_s"])
                actual[side, backend] = row["backend"]
                devices[side, backend] = row["device"]  # a GPU's name when the side trained on one
        for backend in (BACKENDS if r % 2 == 0 else BACKENDS[::-1]):
            first, end, trained_on = seconds_to_first_batch(backend)
            starts[backend].append((first, end))
            actual["start", backend] = trained_on
        say(f"round {r + 1}/{rounds} done")

    for (side, backend), trained_on in actual.items():
        if trained_on != backend:
            say(f"note: the {side} side asked for {backend} but ran on {trained_on} (see `python -m fmnist train --backend {backend}`)")
    rows = []
    for i, (name, _, batch, images) in enumerate(CASES):
        spec = case_spec(i)
        median = {key: statistics.median(rates[(*key, i)]) for key in SIDES}
        auto = auto_backend(spec)
        auto_rate = median["engine", auto]
        flops = training_flops_per_sample(spec)
        row = {
            "model": name, "batch": batch, "images": images, "cpu": cpu, "rounds": rounds,
            "precision": "bfloat16" if spec.mixed_precision else "float32",
            "bare_tensorflow": round(median["bare", "tensorflow"]), "engine_tensorflow": round(median["engine", "tensorflow"]),
            "engine_jax": round(median["engine", "jax"]), "auto_picks": auto,
            "auto_over_bare": round(auto_rate / median["bare", "tensorflow"], 2),
            "engine_tensorflow_over_bare": round(median["engine", "tensorflow"] / median["bare", "tensorflow"], 2),
            "training_flops_per_sample": flops, "share_of_cpu_limit": round(auto_rate * flops / limit, 3),
            "live_updates_per_s": round(statistics.median(live["engine", auto, i]), 1),
            "spread": {f"{side}_{backend}": [round(min(rates[side, backend, i])), round(max(rates[side, backend, i]))] for side, backend in SIDES},
        }
        row["devices"] = {f"{side}_{backend}": devices[side, backend] for side, backend in SIDES}
        rows.append(row)
        if as_json:
            print(json.dumps(row), flush=True)
        else:
            figures = ", ".join(f"{side} {LABELS[backend]} {median[side, backend]:,.0f} ({spread(rates[side, backend, i])})"
                                for side, backend in SIDES)
            where = ", ".join(sorted(set(row["devices"].values())))
            say(f"{name} ({row['precision']}), batch {batch}, {images:,} images, on {where}: samples/s, "
                f"median of {rounds} (slowest–fastest): {figures}. "
                f"auto picks {LABELS[auto]}: {row['auto_over_bare']:.2f}× the bare fit (the engine on TensorFlow "
                f"{row['engine_tensorflow_over_bare']:.2f}×), {100 * row['share_of_cpu_limit']:.0f} % of the CPU's float32 limit "
                f"({flops / 1e3:,.0f} kFLOP per image), {row['live_updates_per_s']:.1f} live updates/s")
    for backend, times in starts.items():
        firsts, ends = [t[0] for t in times], [t[1] for t in times]
        row = {"start": f"python -m fmnist {' '.join(START_ARGS)} --backend {backend}", "backend": backend, "cpu": cpu,
               "first_batch_s": round(statistics.median(firsts), 2), "first_batch_s_range": [round(min(firsts), 2), round(max(firsts), 2)],
               "finished_s": round(statistics.median(ends), 2), "finished_s_range": [round(min(ends), 2), round(max(ends), 2)]}
        if as_json:
            print(json.dumps(row), flush=True)
        else:
            say(f"start to first batch on {LABELS[backend]}, on {cpu}: {row['first_batch_s']:.1f} s "
                f"({min(firsts):.1f}–{max(firsts):.1f}); to the end of its one short epoch, test and save: {row['finished_s']:.1f} s "
                f"({min(ends):.1f}–{max(ends):.1f})")
    return 0
