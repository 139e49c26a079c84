"""The class bench, small: a few students signed in to a real `streamlit run` server at the protocol
level for a few seconds (`python -m fmnist bench --class N`, benchmarks/class_bench.py). It asserts
that the harness works: no error, every action measured, a training finished, and the output's last
line the JSON the docs' figures come from. The figures themselves come from the bench, never from
a timed test (docs/performance.md, "A class on one machine")."""

import json

from helpers import run_cli

ACTIONS = ("page", "slider", "draw", "sign_in", "start_training")


def test_a_small_class_signs_in_browses_draws_and_trains():
    result = run_cli("bench", "--class", "3", "--minutes", "0.25", "--epochs", "1", "--images", "1000", "--think", "0.3", "1.2",
                     "--alone-runs", "1", timeout=180)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(lines[-1])
    assert figures["errors"] == 0, figures["error_messages"]
    assert figures["students"] == 3
    for action in ACTIONS:
        assert figures[action]["n"] >= 1, f"{action} was never measured"
        assert 0 < figures[action]["p50"] <= figures[action]["p95"] <= figures[action]["p99"], figures[action]
    assert figures["sign_in"]["n"] == 3 and figures["start_training"]["n"] == 3, "each student signed in and started a run"
    assert figures["runs"].get("finished", 0) >= 1, figures["runs"]  # at least one student's training ended well
    assert figures["training_speed"]["alone"] > 0
    assert set(figures["queue_wait"]["per_student"]) == {f"Student {i:02d}" for i in range(1, 4)}
    assert figures["cpu"]["server_cores_mean"] > 0 and figures["memory_mb"]["server_peak"] > 100
