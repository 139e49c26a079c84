"""Whether a picture looks like the training images: the measures, their threshold, how well they separate.

A model gives every picture a class, a cat or a page of text too. How unusual a picture is for the
model can be measured from its output (a low top probability, a high entropy) or from its last hidden
layer: the Mahalanobis distance to the nearest class's centre there (Lee et al., 2018), or the cosine
distance to its nearest training images there (Sun et al., 2022: the k-th nearest of a sample).
Each measure is a score, higher meaning more unusual; its threshold is calibrated on the run's
held-out images (its validation split, never the test set) so that a set share of them is flagged.
The app uses the nearest training images: of the four it separated text pages and photos of other
things from held-out images best, for the Small CNN and the Best MLP alike (README, "Photos").
Pure numpy: the Keras side (fmnist.outlier_check) computes the model's outputs.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.store import save_atomically

TOP_PROBABILITY, ENTROPY = "top probability", "entropy"
MAHALANOBIS, NEIGHBOURS = "Mahalanobis distance", "distance to the nearest training images"
MEASURES = (TOP_PROBABILITY, ENTROPY, MAHALANOBIS, NEIGHBOURS)
# The measure the app uses (chosen on validation images: README, "Photos").
MEASURE = NEIGHBOURS
# The k-th nearest training image is the one whose distance counts: one near copy does not make a picture usual.
NEAREST_K = 10
# The share of held-out images that gets the notice: the price of catching unlike pictures.
FLAGGED_SHARE = 0.02
# Training images whose hidden outputs are kept as the neighbours (and fit the classes' centres and spread).
FIT_IMAGES = 10_000
# Held-out images the threshold is calibrated on, at most.
CALIBRATION_IMAGES = 5_000
FILE = "outlier-check.npz"


@dataclass(frozen=True)
class HeldOut:
    indices: np.ndarray  # into the training images
    source: str  # in words, for the page


@dataclass(frozen=True)
class Reference:
    """The training images in the model's last hidden layer: the classes' centres, the inverse of
    their shared covariance, and the images themselves (unit length, float16) as neighbours."""
    means: np.ndarray  # (10, d)
    precision: np.ndarray  # (d, d)
    neighbours: np.ndarray  # (n, d)


def reference(features: np.ndarray, labels: np.ndarray) -> Reference:
    means, precision = fit_classes(features, labels)
    return Reference(means, precision, unit_length(features).astype(np.float16))


@dataclass(frozen=True)
class OutlierCheck:
    """A run's calibrated check: its threshold and what its measure compares with in the last hidden layer."""
    measure: str
    threshold: float  # a score above it gets the notice
    flagged_share: float  # the share of the held-out images above it
    held_out: int  # how many held-out images it was calibrated on
    source: str  # where they came from, in words
    reference: "Reference"

    def scores(self, probs: np.ndarray, features: np.ndarray) -> np.ndarray:
        return unusualness(self.measure, probs, features, self.reference)

    def unlike(self, scores: np.ndarray, no_item: np.ndarray | bool = False) -> np.ndarray:
        """Which pictures get the notice: a score above the threshold, or no item found in them (every
        training image is one item on a plain background)."""
        return (np.asarray(scores) > self.threshold) | np.asarray(no_item)

    def describe(self) -> str:
        return (f"{self.measure} above {self.threshold:.3g}: {percent_text(self.flagged_share)} of {self.held_out:,} "
                f"held-out images ({self.source}) are above it")


def percent_text(share: float) -> str:
    return f"{100 * share:.1f} %"


def held_out_images(n_images: int, limit: int | None, val_split: float) -> HeldOut:
    """The training images a run never trained on: its validation split (Keras takes the last share of
    the images it is given) and the images past its limit. None at all (no split, all images): its
    own training images, which it knows better, so the notice then comes more often."""
    used = min(limit or n_images, n_images)
    validation = np.arange(math.ceil(used * (1 - val_split)), used)  # where Keras' validation_split cuts
    unused = np.arange(used, n_images)
    if validation.size:
        return HeldOut(np.concatenate([validation, unused])[:CALIBRATION_IMAGES], "its validation split")
    if unused.size:
        return HeldOut(unused[:CALIBRATION_IMAGES], "training images past its limit")
    return HeldOut(np.linspace(0, n_images - 1, CALIBRATION_IMAGES).astype(int), "its own training images: it kept none back")


def fit_classes(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The classes' centres and the inverse of their shared (tied) covariance, a little regularised."""
    means = np.stack([features[labels == c].mean(axis=0) for c in range(10)])
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features)
    covariance += np.eye(len(covariance)) * 1e-3 * np.trace(covariance) / len(covariance)
    return means.astype(np.float32), np.linalg.inv(covariance).astype(np.float32)


def entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs.astype(np.float64), 1e-12, 1)
    return -(p * np.log(p)).sum(axis=1)


def mahalanobis(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """The Mahalanobis distance to the nearest class centre (its square root: on the scale of a distance)."""
    differences = features[:, None, :].astype(np.float64) - means[None, :, :]
    squared = np.einsum("ncd,de,nce->nc", differences, precision.astype(np.float64), differences)
    return np.sqrt(np.clip(squared.min(axis=1), 0, None))


def unit_length(features: np.ndarray) -> np.ndarray:
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-6)


def nearest_distance(features: np.ndarray, neighbours: np.ndarray, k: int = NEAREST_K) -> np.ndarray:
    """The cosine distance to the k-th nearest neighbour: 0 for the same direction, 1 at right angles.
    In chunks of rows: 5,000 held-out images against 10,000 neighbours at once would take 200 MB."""
    neighbours = neighbours.astype(np.float32)
    directions = unit_length(features.astype(np.float32))
    kth = [np.partition(chunk @ neighbours.T, -k, axis=1)[:, -k] for chunk in np.array_split(directions, max(1, len(directions) // 500))]
    return 1 - np.concatenate(kth).astype(np.float64) if kth else np.zeros(0)


def unusualness(measure: str, probs: np.ndarray, features: np.ndarray, against: Reference) -> np.ndarray:
    """The measure's score for each image (N rows), higher meaning more unusual."""
    if measure == TOP_PROBABILITY:
        return 1 - probs.max(axis=1).astype(np.float64)
    if measure == ENTROPY:
        return entropy(probs)
    if measure == MAHALANOBIS:
        return mahalanobis(features, against.means, against.precision)
    if measure == NEIGHBOURS:
        return nearest_distance(features, against.neighbours)
    raise ValueError(f"unknown measure {measure!r}; known: {', '.join(MEASURES)}")


def calibrate(held_out_scores: np.ndarray, share: float = FLAGGED_SHARE) -> float:
    """The threshold above which `share` of the held-out images lie."""
    return float(np.quantile(held_out_scores, 1 - share))


def separation(inliers: np.ndarray, outliers: np.ndarray) -> float:
    """The area under the ROC curve: the chance that an unlike picture scores above a like one (ties count half)."""
    inliers, outliers = np.asarray(inliers, np.float64), np.asarray(outliers, np.float64)
    above = (outliers[:, None] > inliers[None, :]).mean()
    ties = (outliers[:, None] == inliers[None, :]).mean()
    return float(above + ties / 2)


def save_check(path: Path, check: OutlierCheck, version: int) -> None:
    """Plain arrays, no pickle (read back with allow_pickle=False), written whole or not at all."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a file, not a name: np.savez would add its own suffix to a name
            np.savez(file, measure=check.measure, threshold=check.threshold, flagged_share=check.flagged_share, held_out=check.held_out,
                     source=check.source, means=check.reference.means, precision=check.reference.precision,
                     neighbours=check.reference.neighbours, version=version)

    save_atomically(path, write)


def read_check(path: Path, version: int) -> OutlierCheck | None:
    """The run's check, or None when there is none, it is for another model file or another measure, or it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            if int(saved["version"]) != version or str(saved["measure"]) != MEASURE:
                return None
            return OutlierCheck(str(saved["measure"]), float(saved["threshold"]), float(saved["flagged_share"]), int(saved["held_out"]),
                                str(saved["source"]), Reference(saved["means"], saved["precision"], saved["neighbours"]))
    except (OSError, KeyError, ValueError):
        return None
