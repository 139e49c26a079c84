"""Scores from class probabilities: loss and accuracy, confusion matrices, per-class scores.

Pure numpy: a run's stored test-set probabilities are all it needs (computing them
from a model is the Keras side's job, fmnist.prediction). Any dataset's: the class names, or
their number, come from its DatasetInfo (the app's Fashion-MNIST unless the caller hands down another).
"""

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fmnist.dataset import FASHION_MNIST

if TYPE_CHECKING:
    import pandas as pd

# Keras clips probabilities the same way in sparse_categorical_crossentropy.
EPSILON = 1e-7


def test_metrics(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(cross-entropy loss, accuracy) of class probabilities against true labels."""
    picked = np.clip(probs[np.arange(len(labels)), labels], EPSILON, 1.0)
    loss = float(-np.mean(np.log(picked)))
    accuracy = float(np.mean(np.argmax(probs, axis=1) == labels))
    return loss, accuracy


# --- a run's predictions on the test images ---

def read_probabilities(path: Path, n_images: int, num_classes: int = FASHION_MNIST.num_classes) -> np.ndarray | None:
    """The stored (n_images, num_classes) probabilities, or None if the file is missing, unreadable or of another shape."""
    try:
        probs = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return probs if probs.shape == (n_images, num_classes) else None


# --- where the model goes wrong ---


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int = FASHION_MNIST.num_classes) -> np.ndarray:
    """cm[true, predicted] = number of images; rows are the true classes."""
    pairs = labels.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(cm: np.ndarray) -> float:
    return float(np.trace(cm) / cm.sum())


def per_class_scores(cm: np.ndarray, class_names: tuple[str, ...] = FASHION_MNIST.class_names) -> "pd.DataFrame":
    """Precision, recall and F1 per class; a class never predicted (or never present) scores 0 there."""
    import pandas as pd  # here: the run store reads challenges' scores through this module, and every
    # training process opens the store; pandas would be half a second of each one's start
    right = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(right, predicted, out=np.zeros_like(right), where=predicted > 0)
    recall = np.divide(right, actual, out=np.zeros_like(right), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(right), where=both > 0)
    return pd.DataFrame({
        "class": class_names, "precision": precision, "recall": recall, "F1": f1, "images": actual,
    })


def most_confused(cm: np.ndarray) -> tuple[int, int]:
    """(true, predicted) of the most frequent mistake."""
    mistakes = cm - np.diag(np.diag(cm))
    true_class, predicted_class = np.unravel_index(np.argmax(mistakes), cm.shape)
    return int(true_class), int(predicted_class)


def cell_examples(probs: np.ndarray, labels: np.ndarray, true_class: int, predicted_class: int) -> np.ndarray:
    """Indices of the test images in one confusion-matrix cell, the most confident prediction first."""
    in_cell = np.flatnonzero((labels == true_class) & (np.argmax(probs, axis=1) == predicted_class))
    order = np.argsort(-probs[in_cell, predicted_class], kind="stable")
    return in_cell[order]


def top_classes(probs: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    """The k most probable (class, probability) of one image."""
    best = np.argsort(-probs, kind="stable")[:k]
    return [(int(c), float(probs[c])) for c in best]


def confusion_name(true_class: int, predicted_class: int, class_names: tuple[str, ...] = FASHION_MNIST.class_names) -> str:
    return f"{class_names[true_class]} taken for {class_names[predicted_class]}"


def worst_confusions(cm: np.ndarray, k: int = 3) -> list[tuple[int, int, int]]:
    """The k most frequent mistakes: (true, predicted, images), most first; none when there are none."""
    mistakes = cm - np.diag(np.diag(cm))
    cells = np.argsort(-mistakes, axis=None, kind="stable")[:k]
    return [(int(t), int(p), int(mistakes[t, p])) for t, p in zip(*np.unravel_index(cells, cm.shape)) if mistakes[t, p] > 0]


def confusion_summary(cm: np.ndarray) -> str:
    """The confusion matrix in a sentence, for who cannot see the chart: its most frequent mistakes."""
    worst = worst_confusions(cm)
    if not worst:
        return "No test image is misclassified."
    return "Most frequent mistakes: " + "; ".join(f"{confusion_name(t, p)} ({n} images)" for t, p, n in worst) + "."


def change_summary(cm_a: np.ndarray, cm_b: np.ndarray, class_names: tuple[str, ...] = FASHION_MNIST.class_names) -> str:
    """One line on how run B's mistakes differ from run A's: in total, then the confusions that changed most."""
    diff = cm_b.astype(np.int64) - cm_a
    mistakes = diff - np.diag(np.diag(diff))
    if not mistakes.any():
        return "B makes the same mistakes as A."
    total = int(mistakes.sum())
    if total:
        head = f"B makes {abs(total)} {'fewer' if total < 0 else 'more'} mistakes than A"
    else:
        head = "B makes as many mistakes as A"
    parts = [f"{head} ({-total / cm_a.sum() * 100:+.2f} accuracy points)"]
    better = np.unravel_index(np.argmin(mistakes), mistakes.shape)
    worse = np.unravel_index(np.argmax(mistakes), mistakes.shape)
    if mistakes[better] < 0:
        parts.append(f"most improved: {confusion_name(*better, class_names)} ({int(mistakes[better]):+d})")
    if mistakes[worse] > 0:
        parts.append(f"most worsened: {confusion_name(*worse, class_names)} ({int(mistakes[worse]):+d})")
    return "; ".join(parts) + "."


def percent(p: float) -> str:
    """A probability as people read it: 92.1%, and never 0.0% or 100.0% for what is only nearly so."""
    if p < 0.001:
        return "<0.1%"
    return ">99.9%" if p > 0.999 else f"{p:.1%}"


def top_k(probs: np.ndarray, k: int = 3, class_names: tuple[str, ...] = FASHION_MNIST.class_names) -> list[tuple[str, float]]:
    """The k likeliest classes as (name, probability), likeliest first."""
    return [(class_names[c], p) for c, p in top_classes(probs, k)]
