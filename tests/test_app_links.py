"""Build & Train's settings in its address, the coach's Try it and a run's code, through AppTest
(issue 29 in the pages). Runs are synthetic (curves written as training writes them): nothing trains."""

from streamlit.testing.v1 import AppTest
from test_app_train import training_run

from fmnist.models import dense_spec
from fmnist.stack_link import (
    BATCH_SIZES,
    DROPOUT_RANGE,
    EPOCHS_RANGE,
    FILTER_CHOICES,
    LEARNING_RATES,
    PATIENCE_RANGE,
    SEED_RANGE,
    STEP,
    TRAIN_SIZES,
    VAL_SPLIT_RANGE,
    Stack,
    link_params,
)
from fmnist.store import RunStore
from fmnist.worker import try_start

from helpers import APP


def open_train(params: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params or {})
    at.run()
    assert not at.exception, at.exception
    return at


def ended_run(store: RunStore, spec, losses, val_losses, status="finished", name="coached") -> int:
    """A run that trained with these curves (accuracies rising slowly) and ended."""
    run_id = store.create_run(spec, name=name, train_limit=1000)
    try_start(store, run_id, max_parallel=10)
    for epoch, (loss, val_loss) in enumerate(zip(losses, val_losses), start=1):
        store.record_epoch(run_id, epoch, {"loss": loss, "accuracy": 0.8 + epoch / 100, "val_loss": val_loss,
                                          "val_accuracy": 0.8 + epoch / 200}, 1.0)
    store.finish(run_id, status, test_acc=0.85, test_loss=0.4, train_s=5.0)
    return run_id


def test_a_link_sets_the_controls_and_the_address_follows_them(home):
    at = open_train({"layers": "100,50,20", "act": "tanh,relu,gelu", "drop": "0.1,0,0.3", "bn": "1,0,0", "conv": "16,64", "kernel": "5,3",
                     "pool": "1,0", "cbn": "0,1", "cdrop": "0.25,0", "cact": "elu", "epochs": "7", "batch": "256", "lr": "0.003",
                     "sched": "plateau", "val": "0.2", "aug": "1", "prec": "float32", "seed": "42", "es": "1", "patience": "5",
                     "ckpt": "1", "images": "5000", "engine": "tensorflow"})
    assert not at.warning
    assert at.slider(key="build_layers").value == 3 and at.toggle(key="build_per_layer").value
    assert [at.slider(key=f"build_width_{i}").value for i in range(3)] == [100, 50, 20]
    assert [at.selectbox(key=f"build_activation_{i}").value for i in range(3)] == ["tanh", "relu", "gelu"]
    assert [at.slider(key=f"build_dropout_{i}").value for i in range(3)] == [0.1, 0.0, 0.3]
    assert [at.checkbox(key=f"build_batch_norm_{i}").value for i in range(3)] == [True, False, False]
    assert at.slider(key="build_conv_blocks").value == 2
    assert [at.select_slider(key=f"build_filters_{i}").value for i in range(2)] == [16, 64]
    assert [at.selectbox(key=f"build_kernel_{i}").value for i in range(2)] == [5, 3]
    assert [at.checkbox(key=f"build_pool_{i}").value for i in range(2)] == [True, False]
    assert [at.checkbox(key=f"build_conv_norm_{i}").value for i in range(2)] == [False, True]
    assert [at.slider(key=f"build_conv_dropout_{i}").value for i in range(2)] == [0.25, 0.0]
    assert at.session_state["build_activation"] == "elu", "the conv blocks' activation"
    training = (at.slider(key="build_epochs").value, at.select_slider(key="build_batch_size").value, at.select_slider(key="build_lr").value,
                at.selectbox(key="build_lr_schedule").value, at.slider(key="build_val_split").value, at.checkbox(key="build_augment").value,
                at.selectbox(key="build_mixed_precision").value, at.number_input(key="build_seed").value,
                at.checkbox(key="build_early_stopping").value, at.number_input(key="build_patience").value,
                at.checkbox(key="build_checkpoint").value, at.select_slider(key="build_limit").value, at.selectbox(key="build_backend").value)
    assert training == (7, 256, 0.003, "plateau", 0.2, True, False, 42, True, 5, True, 5000, "tensorflow")
    assert not any("cannot be built" in e.value for e in at.error)

    at.slider(key="build_epochs").set_value(9).run()
    assert at.query_params["epochs"] == "9", "the address follows a moved slider"
    assert at.slider(key="build_layers").value == 3, "the link is not applied again over what the person changed"
    [link] = [code.value for code in at.code if "?layers=" in code.value]
    assert "layers=100,50,20" in link and "epochs=9" in link and "engine=tensorflow" in link


def test_a_link_with_bad_settings_names_them_in_one_message_and_applies_the_rest(home):
    at = open_train({"layers": "256,32", "epochs": "900", "lr": "fast", "zoom": "2", "batch": "64"})
    [warning] = at.warning
    for named in ("zoom (not a setting this version knows)", "epochs=900", "lr=fast (learning rate): not a number"):
        assert named in warning.value
    assert [at.slider(key=f"build_width_{i}").value for i in range(2)] == [256, 32] and at.select_slider(key="build_batch_size").value == 64
    assert at.slider(key="build_epochs").value == 10 and at.select_slider(key="build_lr").value == 0.001, "the page's own values stay"
    at.slider(key="build_width_0").set_value(300).run()
    assert not at.warning, "said once"


def test_try_it_fills_the_controls_with_the_coachs_change(home):
    store = RunStore()
    overfit = ended_run(store, dense_spec([256], epochs=8, batch_size=64), [0.6, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15],
                        [0.5, 0.45, 0.40, 0.42, 0.44, 0.47, 0.5, 0.55])
    at = open_train()
    assert any("It learnt the training images by heart" in m.value and "early stopping would have kept epoch 3" in m.value for m in at.markdown)
    at.button(key=f"coach_try_{overfit}_overfitting").click().run()
    assert not at.exception, at.exception
    assert at.slider(key="build_layers").value == 1 and at.slider(key="build_width_0").value == 256
    assert at.slider(key="build_dropout").value == 0.2 and at.checkbox(key="build_early_stopping").value
    assert (at.slider(key="build_epochs").value, at.select_slider(key="build_batch_size").value, at.select_slider(key="build_limit").value) \
        == (8, 64, 1000), "the run's other settings"
    assert any(f"run #{overfit}'s settings" in s.value for s in at.success)

    diverged = ended_run(store, dense_spec([32], epochs=4), [0.5, 0.9, 1.5, 2.0], [0.5, 0.9, 1.5, 2.0], name="diverged")
    at.run()
    at.button(key=f"coach_try_{diverged}_learning_rate").click().run()
    assert at.select_slider(key="build_lr").value == 0.0003 and at.slider(key="build_width_0").value == 32
    [filled] = at.success
    assert "Learning rate: 0.000333 → 0.0003, the nearest the page offers" in filled.value


def test_a_finished_runs_code_downloads_and_a_training_runs_message(home):
    store = RunStore()
    run_id = ended_run(store, dense_spec([64], epochs=3), [0.6, 0.5, 0.45], [0.55, 0.5, 0.48])
    at = open_train()
    assert [b.label for b in at.download_button] == ["Code (.py)", "Notebook (.ipynb)"]
    training = training_run(store)
    at.run()
    assert not at.download_button
    assert any(f"Run #{training} is still running: its code is ready when it ends." == c.value for c in at.caption)
    store.finish(training, "failed", error="boom")
    at.run()
    assert any(f"Run #{training} failed and kept no model" in c.value for c in at.caption)
    assert store.get(run_id).status == "finished"


def test_the_leaderboard_opens_a_run_in_build_and_train_and_offers_its_code(home):
    store = RunStore()
    run_id = ended_run(store, dense_spec([96, 48], epochs=3, dropout=0.1), [0.6, 0.5, 0.45], [0.55, 0.5, 0.48])
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/leaderboard.py")
    at.session_state["lb_table"] = {"selection": {"rows": [0]}}  # the run ticked
    at.run()
    assert not at.exception, at.exception
    [link] = [link for link in at.get("page_link") if link.proto.label == "Open in Build & Train"]
    query = dict(pair.split("=") for pair in link.proto.query_string.split("&"))
    assert query == {k: v.replace(",", "%2C") for k, v in link_params(Stack(store.get(run_id).spec, 1000)).items()}
    assert [b.label for b in at.download_button][-2:] == ["Code (.py)", "Notebook (.ipynb)"]


def test_the_coach_reads_a_training_runs_curves_so_far(home):
    store = RunStore()
    run_id = training_run(store)
    for epoch, loss in enumerate([0.9, 0.5, 0.8], start=1):  # the loss jumps: a learning rate too high
        store.record_epoch(run_id, epoch, {"loss": loss, "accuracy": 0.7, "val_loss": loss, "val_accuracy": 0.7}, 1.0)
    at = open_train()
    assert any(m.value == "##### What the curves say so far" for m in at.markdown)
    assert any("The loss jumped" in m.value and "epoch 3" in m.value for m in at.markdown)
    at.button(key=f"coach_try_{run_id}_learning_rate").click().run()
    assert at.select_slider(key="build_lr").value == 0.0003 and at.slider(key="build_epochs").value == 5


def test_the_links_ranges_are_the_controls(home):
    """A link is checked against what Build & Train's controls offer: the same ranges and choices."""
    at = open_train({"conv": "32"})
    assert (at.slider(key="build_epochs").min, at.slider(key="build_epochs").max) == EPOCHS_RANGE
    assert (at.number_input(key="build_patience").min, at.number_input(key="build_patience").max) == PATIENCE_RANGE
    assert (at.number_input(key="build_seed").min, at.number_input(key="build_seed").max) == SEED_RANGE
    for key, (low, high) in (("build_dropout", DROPOUT_RANGE), ("build_conv_dropout_0", DROPOUT_RANGE), ("build_val_split", VAL_SPLIT_RANGE)):
        assert (at.slider(key=key).min, at.slider(key=key).max, at.slider(key=key).step) == (low, high, STEP), key
    for key, options in (("build_batch_size", BATCH_SIZES), ("build_lr", LEARNING_RATES), ("build_limit", TRAIN_SIZES),
                         ("build_filters_0", FILTER_CHOICES)):
        assert at.select_slider(key=key).options == [str(option) for option in options], key
