"""`python -m fmnist bench --time-to-accuracy` (issue 27, item 3): a JSON line per training, whose times
follow one another and whose thresholds are the first epoch that reached them. On 2,000 images for 2
epochs, the notebook's bare model.fit and the Fast MLP by a warm trainer, the app's default way; no
time is asserted as a figure (the figures are docs/performance.md, "Time to accuracy")."""

import json

import pytest

from benchmarks.time_to_accuracy import ROW_NAMES, THRESHOLDS, across_seeds, planned_rows, seconds_to
from fmnist.machine import cpu_name

from helpers import run_cli

KEYS = {"row", "how", "stack", "seed", "images", "epochs", "cpu", "backend", "device", "precision", "first_batch_s",
        *(f"s_to_{t:.2f}" for t in THRESHOLDS), "final_test_acc", "run_test_acc", "finished_s", "scoring_s_taken_out",
        "load_avg_1min", "nice", "source", "curve"}


def point(epoch, s, test_acc):
    return {"epoch": epoch, "s": s, "test_acc": test_acc}


def test_a_threshold_is_reached_at_the_first_epoch_at_or_above_it():
    curve = [point(1, 3.0, 0.879), point(2, 5.0, 0.9), point(3, 7.0, 0.895), point(4, 9.0, 0.925)]
    assert seconds_to(curve) == {"s_to_0.88": 5.0, "s_to_0.90": 5.0, "s_to_0.92": 9.0, "s_to_0.93": None, "s_to_0.94": None}
    assert seconds_to([]) == dict.fromkeys(seconds_to(curve))


def test_across_seeds_a_threshold_has_a_time_only_where_every_seed_reached_it():
    lines = [{"row": "r", "how": "h", "stack": "s", "seed": seed, "cpu": "c", "final_test_acc": acc, "first_batch_s": 1.0 + seed,
              "finished_s": 10.0 + seed, **seconds_to(curve)}
             for seed, (acc, curve) in enumerate([(0.90, [point(1, 4.0, 0.90)]), (0.89, [point(1, 6.0, 0.89)])])]
    summary = across_seeds(lines)
    assert summary["mean_test_acc"] == 0.895 and summary["test_accs"] == [0.90, 0.89] and summary["seeds"] == [0, 1]
    assert (summary["s_to_0.88"], summary["reached_0.88"]) == (5.0, "2/2")
    assert (summary["s_to_0.90"], summary["reached_0.90"]) == (None, "1/2")
    assert summary["first_batch_s"] == 1.5


def test_the_rows_are_the_notebook_each_preset_and_the_search():
    rows = planned_rows(None)
    assert [row.name for row in rows] == list(ROW_NAMES) and ROW_NAMES[0] == "notebook" and ROW_NAMES[-1] == "search"
    assert [row.how for row in rows] == ["bare"] + ["engine"] * (len(rows) - 1)
    assert [row.name for row in planned_rows(["search", "Fast MLP"])] == ["Fast MLP", "search"]
    with pytest.raises(ValueError, match="no row 'Fastest'"):
        planned_rows(["Fastest"])


def test_the_bench_writes_a_line_per_training_whose_times_and_thresholds_agree_with_its_curve():
    result = run_cli("bench", "--time-to-accuracy", "--rows", "notebook", "Fast MLP", "--images", "2000", "--epochs", "2",
                     env={"FMNIST_WARM_TRAINER": "1"})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["row"], line["how"]) for line in lines] == [("notebook", "bare model.fit"), ("Fast MLP", "the app, warm trainer")]
    assert [line["backend"] for line in lines] == ["tensorflow", "jax"]
    for line in lines:
        assert set(line) == KEYS
        assert (line["seed"], line["images"], line["epochs"], line["cpu"]) == (0, 2000, 2, cpu_name())
        curve = line["curve"]
        assert [p["epoch"] for p in curve] == [1, 2]
        times = [line["first_batch_s"], *(p["s"] for p in curve), line["finished_s"]]
        assert 0 < times[0] and times == sorted(times), "the first batch, then each epoch's end, then the finished run"
        for t in THRESHOLDS:
            assert line[f"s_to_{t:.2f}"] == next((p["s"] for p in curve if p["test_acc"] >= t), None)
        # The last checkpoint is the finished model: the run's own test score (the engine's, the notebook's evaluate) agrees.
        assert 0.1 < line["final_test_acc"] == curve[-1]["test_acc"] < 1
        assert line["run_test_acc"] == pytest.approx(line["final_test_acc"], abs=1e-3)
        assert line["scoring_s_taken_out"] > 0 and line["precision"] == "float32"
