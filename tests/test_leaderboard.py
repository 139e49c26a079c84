"""The leaderboard's library (table, curves CSV, model check, seed comparison), its scatter, and the page."""

import io
import json
import shutil
import zipfile

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from test_evaluation import train_tiny

from fmnist.compare_charts import size_vs_accuracy
from fmnist.leaderboard import curves_csv, leaderboard_table, model_file_problem, seed_comparison, training_runs
from fmnist.models import SEED_STACKS, SEED_TEST_ACCURACY, dense_spec
from fmnist.store import RunStore
from fmnist.worker import process_alive, try_start

from helpers import APP, wait_until

SEED_D = (128, 64)


def finished_run(store: RunStore, widths, name: str, test_acc: float | None, epochs: int = 2, limit: int | None = None,
                 status: str = "finished") -> int:
    """A run as training leaves it (curves, scores), without a model file."""
    run_id = store.create_run(dense_spec(widths, epochs=epochs), name=name, train_limit=limit)
    try_start(store, run_id, max_parallel=10)
    for epoch in range(1, epochs + 1):
        store.record_progress(run_id, epoch, 50, 100, 2000.0, [(epoch, 50, 1.0 / epoch, 0.5 + epoch / 10)])
        store.record_epoch(run_id, epoch, {"loss": 0.9 / epoch, "accuracy": 0.6 + epoch / 20,
                                          "val_loss": 0.8 / epoch, "val_accuracy": 0.65 + epoch / 20}, 3.0)
    scores = {} if test_acc is None else {"test_loss": 1 - test_acc, "test_acc": test_acc}
    store.finish(run_id, status, train_s=6.0, samples_per_s=2000.0, **scores)
    return run_id


def running_run(store: RunStore, name: str) -> int:
    """A run that trains now: this test process stands in for its training process."""
    run_id = store.create_run(dense_spec([16], epochs=5), name=name)
    assert try_start(store, run_id, max_parallel=10)
    return run_id


@pytest.fixture(scope="module")
def model_home(tmp_path_factory, dataset):
    home = tmp_path_factory.mktemp("leaderboard") / "home"
    train_tiny(RunStore(home), dataset, (32,), "tiny")
    return home


# --- the library ---


def test_table_lists_training_runs_best_first_without_jobs(home):
    store = RunStore()
    low = finished_run(store, [32], "low", 0.70)
    high = finished_run(store, [64, 32], "high", 0.85)
    unscored = running_run(store, "still training")
    store.create_run(store.get(high).spec, name="5-fold CV of #2", kind="cv", parent_id=high, repeats=5)
    runs = training_runs(store.list_runs())
    assert [run.id for run in runs] == [low, high, unscored]
    table = leaderboard_table(runs)
    assert table["run"].tolist() == [high, low, unscored]
    assert table["best"].tolist() == ["★", "", ""]
    assert table.loc[0, ["name", "stack", "params", "epochs", "status"]].tolist() == ["high", "64-32", 52650, "2/2", "finished"]


def test_curves_csv_holds_the_epochs_and_batch_points_in_training_order(home):
    store = RunStore()
    run_id = finished_run(store, [32], "curves", 0.8, epochs=2)
    table = pd.read_csv(io.StringIO(curves_csv(store, run_id)))
    assert table.columns.tolist() == ["point", "epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
    assert table["point"].tolist() == ["batch", "epoch", "batch", "epoch"]
    epochs = table[table["point"] == "epoch"]
    stored = pd.DataFrame(store.epochs(run_id))
    for column in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert epochs[column].tolist() == pytest.approx(stored[column].tolist())
    batches = table[table["point"] == "batch"]
    assert batches[["epoch", "step"]].values.tolist() == [[1, 50], [2, 50]]
    assert batches["loss"].tolist() == pytest.approx([row["loss"] for row in store.batches(run_id)])
    assert batches["val_loss"].isna().all()


def test_model_file_problem_finds_missing_truncated_and_damaged_files(model_home, home):
    shutil.copytree(model_home, home)
    store = RunStore()
    [run] = store.list_runs()
    path = store.model_path(run.id)
    assert model_file_problem(store, run.id) is None
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert "unreadable" in model_file_problem(store, run.id)
    with zipfile.ZipFile(io.BytesIO(whole)) as archive:
        info = archive.getinfo("model.weights.h5")
    damaged = bytearray(whole)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    damaged[start + info.compress_size // 2] ^= 0xFF  # one byte of the weights, inside the zip
    path.write_bytes(bytes(damaged))
    assert "damaged" in model_file_problem(store, run.id)
    path.unlink()
    assert "no model file" in model_file_problem(store, run.id)


def test_seed_comparison_takes_the_best_finished_run_of_exactly_each_seed_spec(home):
    store = RunStore()
    finished_run(store, SEED_D, "Seed D", 0.880, epochs=10)
    best = finished_run(store, SEED_D, "Seed D again", 0.889, epochs=10)
    finished_run(store, SEED_D, "fewer epochs", 0.95, epochs=3)
    finished_run(store, SEED_D, "fewer images", 0.95, epochs=10, limit=5000)
    finished_run(store, SEED_D, "stopped", 0.95, epochs=10, status="stopped")
    queued = store.create_run(dense_spec((64, 32), epochs=10), name="Seed C: 64-32")
    table = seed_comparison(store.list_runs()).set_index("seed stack")
    assert table.index.tolist() == list(SEED_STACKS)
    d = table.loc["Seed D: 128-64"]
    assert (d["run"], d["status"], d["test accuracy"]) == (f"#{best}", "finished", pytest.approx(0.889))
    assert d["difference (points)"] == pytest.approx(100 * (0.889 - SEED_TEST_ACCURACY[SEED_D]))
    c = table.loc["Seed C: 64-32"]
    assert (c["run"], c["status"]) == (f"#{queued}", "queued") and pd.isna(c["test accuracy"])
    a = table.loc["Seed A: 64-128-64-32"]
    assert a["status"] == "not trained" and a["seed test accuracy"] == SEED_TEST_ACCURACY[(64, 128, 64, 32)]


def test_size_vs_accuracy_plots_every_scored_run_and_picks_out_the_selected(home):
    store = RunStore()
    small, large, other = (finished_run(store, widths, name, acc) for widths, name, acc in
                           (([16], "small", 0.80), ([256, 128], "large", 0.87), ([64], "other", 0.84)))
    running_run(store, "unscored")
    table = leaderboard_table(training_runs(store.list_runs()))
    fig = size_vs_accuracy(table, [large, small])
    assert fig.layout.xaxis.type == "log"
    others, first, second = fig.data
    assert list(others.x) == [store.get(other).params] and list(others.y) == [0.84]
    assert (first.name, list(first.x), list(first.y)) == (f"#{large} large", [store.get(large).params], [0.87])
    assert second.name == f"#{small} small" and first.marker.color != second.marker.color
    assert first.marker.size > others.marker.size
    assert list(first.customdata[0]) == ["large", "256-128"]


# --- the page ---


def open_leaderboard() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/leaderboard.py").run()
    assert not at.exception, at.exception
    return at


def tick(at: AppTest, *run_ids: int) -> AppTest:
    """Tick runs in the table the way the browser reports it: by row position."""
    rows = at.dataframe[0].value["run"].tolist()
    at.session_state["lb_table"] = {"selection": {"rows": [rows.index(r) for r in run_ids]}}
    at.run()
    assert not at.exception, at.exception
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def ticked_headers(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**#")]


def test_empty_store_says_how_to_train_the_first_model(home):
    at = open_leaderboard()
    assert any("Train your first model" in i.value for i in at.info)
    [seeds] = at.dataframe
    assert seeds.value["seed stack"].tolist() == list(SEED_STACKS), "only the seed table, ready to fill"


def test_the_table_shows_every_run_with_its_figures(home):
    store = RunStore()
    low = finished_run(store, [32], "low", 0.70)
    high = finished_run(store, [64, 32], "high", 0.85)
    store.record_engine(high, "jax", "some CPU")
    store.record_engine(low, "tensorflow", "some CPU")
    at = open_leaderboard()
    table = at.dataframe[0].value
    assert table["run"].tolist() == [high, low] and table["name"].tolist() == ["high", "low"]
    assert table["backend"].tolist() == ["JAX", "TensorFlow"]
    assert table["test accuracy"].tolist() == pytest.approx([0.85, 0.70])
    assert table["best"].tolist() == ["★", ""]
    assert {"CV score", "train time (s)", "samples/s", "backend", "status", "created"} <= set(table.columns)
    assert any("Tick runs" in i.value for i in at.info), "nothing ticked: no curves yet"


def test_ticked_runs_get_their_curves_overlaid_and_stand_out_in_the_scatter(home):
    store = RunStore()
    a = finished_run(store, [32], "a", 0.70)
    b = finished_run(store, [64, 32], "b", 0.85)
    finished_run(store, [16], "c", 0.60)
    at = tick(open_leaderboard(), a, b)
    loss, accuracy, scatter = figures(at)
    names = [trace["name"] for trace in loss["data"]]
    assert names == [f"#{b} b (64-32)", f"#{b} b (64-32) (val)", f"#{a} a (32)", f"#{a} a (32) (val)"]
    assert loss["data"][0]["y"] == pytest.approx([row["loss"] for row in store.epochs(b)])
    assert accuracy["data"][1]["y"] == pytest.approx([row["val_accuracy"] for row in store.epochs(b)])
    assert [trace["name"] for trace in scatter["data"]] == ["other runs", f"#{b} b", f"#{a} a"]
    assert ticked_headers(at) == [f"**#{b} b (64-32)** · finished", f"**#{a} a (32)** · finished"]


def test_ticks_stay_on_their_runs_when_a_run_moves_up(home):
    store = RunStore()
    a = finished_run(store, [32], "a", 0.80)
    b = finished_run(store, [64], "b", 0.85)
    c = running_run(store, "c")
    at = tick(open_leaderboard(), a, c)
    store.finish(c, "finished", test_loss=0.2, test_acc=0.9)  # c now leads the board
    at.run()
    assert at.dataframe[0].value["run"].tolist() == [c, b, a]
    assert ticked_headers(at) == [f"**#{c} c (16)** · finished", f"**#{a} a (32)** · finished"]


def test_rename_a_run(home):
    store = RunStore()
    run_id = finished_run(store, [32], "old name", 0.8)
    at = tick(open_leaderboard(), run_id)
    at.text_input(key=f"lb_name_{run_id}").input("a better name")
    at.button(key=f"lb_rename_{run_id}").click().run()
    assert store.get(run_id).name == "a better name"
    assert at.dataframe[0].value["name"].tolist() == ["a better name"]


def test_delete_asks_first_then_removes_the_run_and_its_files(home):
    store = RunStore()
    keep = finished_run(store, [32], "keep", 0.8)
    doomed = finished_run(store, [64], "doomed", 0.9)
    at = tick(open_leaderboard(), keep, doomed)
    at.button(key=f"lb_delete_{doomed}").click().run()
    assert any("This cannot be undone" in w.value for w in at.warning)
    at.button(key=f"lb_no_{doomed}").click().run()
    assert not at.warning and store.get(doomed) is not None

    at.button(key=f"lb_delete_{doomed}").click().run()
    at.button(key=f"lb_yes_{doomed}").click().run()
    assert not at.exception, at.exception
    assert store.get(doomed) is None and not store.run_dir(doomed).exists()
    assert at.dataframe[0].value["run"].tolist() == [keep]
    assert ticked_headers(at) == [f"**#{keep} keep (32)** · finished"], "the other tick stays on its run"


def test_an_active_run_cannot_be_deleted(home):
    store = RunStore()
    run_id = running_run(store, "busy")
    at = tick(open_leaderboard(), run_id)
    assert at.button(key=f"lb_delete_{run_id}").disabled
    assert any("stop it first" in c.value for c in at.caption)


@pytest.mark.parametrize("damage, message", [("delete", "has no model file"), ("garbage", "is unreadable")])
def test_a_run_whose_model_file_is_gone_or_corrupt_says_so_and_can_be_deleted(model_home, home, damage, message):
    shutil.copytree(model_home, home)
    store = RunStore()
    [run] = store.list_runs()
    at = tick(open_leaderboard(), run.id)
    assert [b.label for b in at.download_button] == ["Model (.keras)", "Curves (.csv)", "Code (.py)", "Notebook (.ipynb)"]
    if damage == "delete":
        store.model_path(run.id).unlink()
    else:
        store.model_path(run.id).write_bytes(b"\x00" * 100)
    at.run()
    [error] = at.error
    assert message in error.value and "can still be deleted" in error.value
    assert [b.label for b in at.download_button] == ["Curves (.csv)", "Code (.py)", "Notebook (.ipynb)"], "its code needs no model file"
    at.button(key=f"lb_delete_{run.id}").click().run()
    at.button(key=f"lb_yes_{run.id}").click().run()
    assert store.list_runs() == [] and not store.run_dir(run.id).exists()


def test_train_the_seed_stacks_queues_each_once_in_its_own_process(home):
    store = RunStore()
    blocker = running_run(store, "training now")  # so that the four wait in the queue
    at = open_leaderboard()
    at.button(key="lb_seed_train").click().run()
    assert any("they train one after another" in s.value for s in at.success)
    queued = [run for run in store.list_runs() if run.id != blocker]
    try:
        assert [run.name for run in queued] == list(SEED_STACKS)
        assert [run.spec for run in queued] == [dense_spec(widths, epochs=10) for widths in SEED_STACKS.values()]
        assert all(run.status == "queued" and run.train_limit is None for run in queued)
        assert len({run.pid for run in queued}) == 4 and all(process_alive(run.pid) for run in queued)
        seeds = at.dataframe[1].value
        assert seeds["run"].tolist() == [f"#{run.id}" for run in queued] and set(seeds["status"]) == {"queued"}

        at.button(key="lb_seed_train").click().run()
        assert any("already queued" in i.value for i in at.info)
        assert len(store.list_runs()) == 5
    finally:
        for run in queued:
            store.request_stop(run.id)
        store.finish(blocker, "stopped")
    for run in queued:
        wait_until(lambda run=run: not process_alive(run.pid), timeout=60, message=f"run {run.id}'s process to end")
    assert {store.get(run.id).status for run in queued} == {"cancelled"}


def test_cross_validate_and_repeat_with_seeds_queue_jobs_and_show_their_scores(home):
    store = RunStore()
    blocker = running_run(store, "training now")  # so that the jobs wait in the queue
    run_id = finished_run(store, [32], "to repeat", 0.8)
    at = tick(open_leaderboard(), run_id)
    at.number_input(key=f"lb_folds_{run_id}").set_value(3)
    at.button(key=f"lb_cv_{run_id}").click().run()
    at.button(key=f"lb_repeat_{run_id}").click().run()
    jobs = [run for run in store.list_runs() if run.parent_id == run_id]
    try:
        assert [(job.kind, job.repeats, job.status) for job in jobs] == [("cv", 3, "queued"), ("seeds", 3, "queued")]
        assert [job.spec for job in jobs] == [store.get(run_id).spec] * 2
        assert at.dataframe[0].value["name"].tolist() == ["to repeat", "training now"], "jobs are not runs of the leaderboard"
    finally:
        for job in jobs:
            store.request_stop(job.id)
        store.finish(blocker, "stopped")
    store.record_scores(jobs[0].id, [0.8, 0.9, 0.85])  # as a finished job leaves them
    at.run()
    assert at.dataframe[0].value["CV score"].tolist()[0] == "0.8500 ± 0.0408"
