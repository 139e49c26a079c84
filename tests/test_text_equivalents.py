"""What a chart shows, in a sentence for who cannot see it: the confusion matrix's worst mistakes and
a run's curves' last and best values."""

import numpy as np

from fmnist.charts import curves_summary
from fmnist.evaluation import confusion_summary, worst_confusions


def test_the_confusion_matrix_in_a_sentence_names_its_three_worst_mistakes():
    cm = np.diag([90] * 10)
    cm[6, 0], cm[0, 6], cm[2, 4], cm[9, 7] = 40, 25, 12, 3  # shirts taken for T-shirts the most
    assert worst_confusions(cm) == [(6, 0, 40), (0, 6, 25), (2, 4, 12)]
    assert confusion_summary(cm) == ("Most frequent mistakes: Shirt taken for T-shirt/top (40 images); "
                                     "T-shirt/top taken for Shirt (25 images); Pullover taken for Coat (12 images).")
    assert worst_confusions(np.diag([5] * 10)) == [] and confusion_summary(np.diag([5] * 10)) == "No test image is misclassified."


def test_a_runs_curves_in_a_sentence_give_their_last_and_best_values():
    epochs = [{"epoch": 1, "accuracy": 0.70, "val_accuracy": 0.75, "loss": 0.9, "val_loss": 0.8},
              {"epoch": 2, "accuracy": 0.80, "val_accuracy": 0.83, "loss": 0.6, "val_loss": 0.55},
              {"epoch": 3, "accuracy": 0.85, "val_accuracy": 0.81, "loss": 0.5, "val_loss": 0.58}]
    assert curves_summary("#1 wide", epochs, "accuracy") == (
        "#1 wide: training accuracy 0.8500 at the last epoch (3), best 0.8500 at epoch 3; "
        "validation accuracy 0.8100 at the last epoch (3), best 0.8300 at epoch 2.")
    # Loss: the best is the lowest. No validation split: no validation part.
    no_val = [{k: v for k, v in row.items() if not k.startswith("val_")} for row in epochs]
    assert curves_summary("#2", no_val, "loss") == "#2: training loss 0.5000 at the last epoch (3), best 0.5000 at epoch 3."
    assert curves_summary("#3", [], "loss") == "#3: no epoch yet."

