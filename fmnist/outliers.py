"""Whether a picture looks like the training images: the measures, their threshold, how well they separate.

A model gives every picture a class, a cat or a page of text too. How unusual a picture is for the
model can be measured from its output (a low top probability, a high entropy) or from its last hidden
layer: the Mahalanobis distance to the nearest class's centre there (Lee et al., 2018), or the cosine
distance to its nearest training images there (Sun et al., 2022: the k-th nearest of a sample).
Each measure is a score, higher meaning more unusual; its threshold is calibrated on the run's
held-out images (its validation split, never the test set) so that a set share of them is flagged.
The app uses the nearest training images: of the four it separated text pages and photos of other
things from held-out images best, for the Small CNN and the Best MLP alike (docs/photos.md, "Which measure of unusual").
Beside it, one thing the model does not measure: a training image's item is one piece, or two or
three (a sandal's straps), where a page of text or a photo of a scene falls apart into many; the
number of pieces a picture's 28×28 breaks into that at most PIECES_SHARE of the held-out images reach
gets the notice too, and the distance's threshold is set so that both together flag FLAGGED_SHARE.
Pure numpy and scikit-image: the Keras side (fmnist.outlier_check) computes the model's outputs.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.measure import label

from fmnist.segmentation import NOISE_LEVEL
from fmnist.store import save_atomically

TOP_PROBABILITY, ENTROPY = "top probability", "entropy"
MAHALANOBIS, NEIGHBOURS = "Mahalanobis distance", "distance to the nearest training images"
MEASURES = (TOP_PROBABILITY, ENTROPY, MAHALANOBIS, NEIGHBOURS)
# The measure the app uses (chosen on validation images: docs/photos.md, "Which measure of unusual").
MEASURE = NEIGHBOURS
# The k-th nearest training image is the one whose distance counts: one near copy does not make a picture usual.
NEAREST_K = 10
# The share of held-out images that gets the notice: the price of catching unlike pictures.
FLAGGED_SHARE = 0.02
# Of it, at most this share for the number of pieces (the rest for the distance).
PIECES_SHARE = 0.01
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
    flagged_share: float  # the share of the held-out images that get the notice (above the threshold or in too many pieces)
    held_out: int  # how many held-out images it was calibrated on
    source: str  # where they came from, in words
    reference: "Reference"
    pieces_limit: int  # a picture whose item is in this many pieces or more gets the notice
    pieces_share: float  # the share of the held-out images in that many pieces or more

    def scores(self, probs: np.ndarray, features: np.ndarray) -> np.ndarray:
        return unusualness(self.measure, probs, features, self.reference)

    def unlike(self, scores: np.ndarray, no_item: np.ndarray | bool = False, pieces: np.ndarray | int = 0) -> np.ndarray:
        """Which pictures get the notice: a score above the threshold, an item in too many pieces, or no
        item found in them (every training image is one item on a plain background)."""
        return (np.asarray(scores) > self.threshold) | (np.asarray(pieces) >= self.pieces_limit) | np.asarray(no_item)

    def describe(self) -> str:
        return (f"{self.measure} above {self.threshold:.3g} or an item in {self.pieces_limit} pieces or more: "
                f"{percent_text(self.flagged_share)} of {self.held_out:,} held-out images ({self.source})")


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


def calibrate(held_out_scores: np.ndarray, share: float = FLAGGED_SHARE, flagged: np.ndarray | None = None) -> float:
    """The threshold above which `share` of the held-out images lie; with those already flagged (by
    their pieces) counted in, so that together they are `share`."""
    others = held_out_scores if flagged is None else held_out_scores[~flagged]
    wanted = share * len(held_out_scores) - (0 if flagged is None else int(flagged.sum()))
    return float(np.quantile(others, 1 - min(max(wanted, 0) / max(len(others), 1), 1)))


def item_pieces(images01: np.ndarray) -> np.ndarray:
    """How many pieces each (28, 28) image's item is in: its regions above the noise level, touching at corners too."""
    return np.array([label(np.rint(image * 255) >= NOISE_LEVEL, connectivity=2).max() for image in images01], dtype=int)


def pieces_limit(held_out_pieces: np.ndarray, share: float = PIECES_SHARE) -> int:
    """The fewest pieces that at most `share` of the held-out images are in (or more)."""
    limit = 1
    while np.mean(held_out_pieces >= limit) > share:
        limit += 1
    return limit


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
                     neighbours=check.reference.neighbours, pieces_limit=check.pieces_limit, pieces_share=check.pieces_share, version=version)

    save_atomically(path, write)


def read_check(path: Path, version: int) -> OutlierCheck | None:
    """The run's check, or None when there is none, it is for another model file or another measure, it is damaged,
    or it was kept before the pieces were counted (then it is calibrated again)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            if int(saved["version"]) != version or str(saved["measure"]) != MEASURE:
                return None
            return OutlierCheck(str(saved["measure"]), float(saved["threshold"]), float(saved["flagged_share"]), int(saved["held_out"]),
                                str(saved["source"]), Reference(saved["means"], saved["precision"], saved["neighbours"]),
                                int(saved["pieces_limit"]), float(saved["pieces_share"]))
    except (OSError, KeyError, ValueError):
        return None
