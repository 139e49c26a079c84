"""The live panel's announcement for screen readers (fmnist.accessibility): a sentence per epoch at
most every few seconds, and the run's end at once. The browser test (test_browser_accessibility)
hears it in the page during a real training."""

from types import SimpleNamespace

from fmnist.accessibility import ANNOUNCE_EVERY_S, announcement, progress_sentence


def test_the_live_announcement_says_an_epoch_at_most_every_few_seconds_and_the_end():
    rows = [{"epoch": 1, "accuracy": 0.7, "val_accuracy": 0.80}, {"epoch": 2, "accuracy": 0.8, "val_accuracy": 0.85},
            {"epoch": 3, "accuracy": 0.85, "val_accuracy": 0.84}]
    assert progress_sentence(rows, 10) == "Epoch 3 of 10, validation accuracy 0.840, best 0.850 at epoch 2."
    assert progress_sentence([{k: v for k, v in r.items() if k != "val_accuracy"} for r in rows], 10) == \
        "Epoch 3 of 10, training accuracy 0.850, best 0.850 at epoch 3."
    assert progress_sentence([], 10) is None

    run = SimpleNamespace(id=7, status="running", active=True, total_epochs=10, test_acc=None)
    state, reads = {}, []

    def epochs(n):
        return lambda: reads.append(n) or rows[:n]

    t = 100.0
    assert announcement(run, epochs(0), t, state) == "Run #7 running."
    t += ANNOUNCE_EVERY_S
    assert announcement(run, epochs(1), t, state) == "Epoch 1 of 10, validation accuracy 0.800, best 0.800 at epoch 1."
    # Epochs 2 and 3 end within the next few seconds: the region keeps its sentence, reading nothing.
    assert announcement(run, epochs(3), t + ANNOUNCE_EVERY_S - 0.1, state).startswith("Epoch 1 of 10")
    assert reads == [0, 1]
    assert announcement(run, epochs(3), t + ANNOUNCE_EVERY_S, state).startswith("Epoch 3 of 10")
    # The run ends: its final sentence at once.
    ended = SimpleNamespace(id=7, status="finished", active=False, total_epochs=10, test_acc=0.8512)
    assert announcement(ended, epochs(3), t + ANNOUNCE_EVERY_S + 0.1, state) == "Run #7 finished: 85.1% of the test images right."
