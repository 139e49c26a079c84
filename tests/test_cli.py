"""`python -m fmnist` as a user runs it."""

import json

import pytest

from helpers import run_cli


def test_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "runs", "stop", "seed-table", "bench"):
        assert command in result.stdout
    train_help = run_cli("train", "--help").stdout
    for flag in ("--layers", "--activation", "--dropout", "--epochs", "--batch-size", "--lr", "--val-split", "--seed", "--limit"):
        assert flag in train_help


def test_train_prints_a_final_json_line_and_the_run_is_on_the_leaderboard(home):
    result = run_cli("train", "--layers", "64,32", "--epochs", "2", "--limit", "3000", "--dropout", "0.1", "--name", "tiny")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) >= {"run_id", "status", "params", "test_loss", "test_acc", "train_s", "samples_per_s"}
    assert summary["status"] == "finished" and summary["params"] == 52650 and summary["test_acc"] > 0.7
    assert "epoch 2/2" in result.stderr, "a progress bar is shown"

    listed = [json.loads(line) for line in run_cli("runs", "--json").stdout.splitlines()]
    assert [(r["run_id"], r["name"], r["stack"], r["test_acc"]) for r in listed] == [(summary["run_id"], "tiny", "64-32", summary["test_acc"])]
    table = run_cli("runs").stdout
    assert "tiny" in table and "64-32" in table and f"{summary['test_acc']:.4f}" in table


def test_bad_input_gets_one_clear_line_not_a_traceback(home):
    bad_width = run_cli("train", "--layers", "5000", "--limit", "100")
    assert bad_width.returncode == 2 and "layers[0].units" in bad_width.stderr and "Traceback" not in bad_width.stderr
    bad_layers = run_cli("train", "--layers", "a,b")
    assert bad_layers.returncode == 2 and "comma-separated" in bad_layers.stderr
    missing = run_cli("stop", "999")
    assert missing.returncode == 2 and "no run 999" in missing.stderr
    no_data = run_cli("train", "--layers", "32", "--limit", "100", env={"FMNIST_DATA": str(home / "nowhere")})
    assert no_data.returncode == 1 and "dataset-fashion-mnist" in no_data.stderr
    assert json.loads(no_data.stdout.splitlines()[-1])["status"] == "failed"


def test_empty_leaderboard_says_how_to_start(home):
    assert "python -m fmnist train" in run_cli("runs").stdout


def test_seed_table_trains_the_four_stacks_beside_the_seed_figures(home):
    result = run_cli("seed-table", "--epochs", "1", "--limit", "2000")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:5] == ["stack", "params", "test_loss", "test_acc", "seed_test_loss"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1]) for r in rows] == [("64-128-64-32", "69226"), ("64-128-32", "63018"), ("64-32", "52650"), ("128-64", "109386")]
    assert [r[5] for r in rows] == ["0.8874", "0.8854", "0.8819", "0.8861"]


def test_the_precision_flag_is_auto_unless_given():
    import argparse

    from fmnist.cli.args import add_spec_flags, spec_from_args

    parser = argparse.ArgumentParser()
    add_spec_flags(parser)

    def precision(*args):
        return spec_from_args(parser.parse_args(["--preset", "Small CNN", *args])).mixed_precision

    assert precision() == "auto" and precision("--mixed-precision", "auto") == "auto"
    assert precision("--mixed-precision") is True, "the flag alone still means on, as before auto"
    assert precision("--mixed-precision", "--epochs", "1") is True
    assert (precision("--mixed-precision", "on"), precision("--mixed-precision", "off")) == (True, False)
    with pytest.raises(SystemExit):
        precision("--mixed-precision", "bf16")
