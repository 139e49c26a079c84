"""A photo's item lying a little turned is turned upright when it is symmetric (fmnist.upright), and
nothing else is: not a shoe, not an upright item, not a picture on a clean background."""

import numpy as np
import pytest
from PIL import Image

from fmnist.dataset import FASHION_MNIST
from fmnist.imaging import prepare
from fmnist.upright import estimate, mirror_symmetry


def first_of(dataset, name: str, symmetric: bool = False) -> np.ndarray:
    """The class's first test image; symmetric: the first whose upright mask is symmetric (some coats and bags are not)."""
    for index in np.flatnonzero(dataset.y_test == FASHION_MNIST.class_names.index(name)):
        if not symmetric or mirror_symmetry((dataset.x_test[index] > 15).astype(float)) >= 0.95:
            return dataset.x_test[index]


def turned_mask(pixels: np.ndarray, angle: float) -> np.ndarray:
    """The item's mask, 4× larger (as the work image shows a photo's item), turned counter-clockwise by angle."""
    big = Image.fromarray(pixels).resize((112, 112), Image.BICUBIC).rotate(angle, resample=Image.BILINEAR, expand=True)
    return np.asarray(big) > 15


def on_floor(pixels: np.ndarray, angle: float, seed: int = 0, noise: float = 4.0) -> Image.Image:
    """The item dark on a light floor, turned by angle, with sensor noise (0: a clean white background)."""
    item = np.asarray(Image.fromarray(pixels).resize((220, 220), Image.BICUBIC).rotate(angle, resample=Image.BILINEAR, expand=True),
                      np.float32) / 255
    floor = np.full((480, 640), 215.0, np.float32) if noise else np.full((480, 640), 255.0, np.float32)
    top, left = (480 - item.shape[0]) // 2, (640 - item.shape[1]) // 2
    floor[top:top + item.shape[0], left:left + item.shape[1]] *= 1 - 0.8 * item
    floor += np.random.default_rng(seed).normal(0, noise, floor.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(floor), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name", ["T-shirt/top", "Trouser", "Coat", "Bag"])
@pytest.mark.parametrize("angle", [-11, 7])
def test_a_turned_symmetric_item_is_turned_back(dataset, name, angle):
    found = estimate(turned_mask(first_of(dataset, name, symmetric=True), angle))
    assert found.angle == pytest.approx(-angle, abs=1.5), found


@pytest.mark.parametrize("name", ["T-shirt/top", "Trouser", "Coat", "Bag"])
def test_an_upright_item_stays_as_it_is(dataset, name):
    assert estimate(turned_mask(first_of(dataset, name, symmetric=True), 0)).angle == 0.0


@pytest.mark.parametrize("name", ["Sandal", "Sneaker", "Ankle boot"])
def test_a_shoe_is_not_symmetric_so_it_is_not_turned_by_a_guess(dataset, name):
    found = estimate(turned_mask(first_of(dataset, name), 6))
    assert found.angle == 0.0 and found.symmetry < 0.9, found


def test_mirror_symmetry_is_the_share_its_mirror_image_covers():
    half = np.zeros((4, 4)), np.zeros((4, 4))
    half[0][:, :2] = 1
    half[1][:, 1:3] = 1
    assert mirror_symmetry(half[0]) == 0.0 and mirror_symmetry(half[1]) == 1.0


def test_a_photos_turned_shirt_comes_out_upright_and_a_clean_pictures_does_not(dataset):
    shirt = first_of(dataset, "Shirt")
    upright, turned = prepare(on_floor(shirt, 0)), prepare(on_floor(shirt, 9))
    assert upright.turned == 0.0 and turned.turned == pytest.approx(-9, abs=1.5)
    assert prepare(on_floor(shirt, 9), invert=True).turned == turned.turned, "the turn is the item's, whatever the colours"
    clean_upright, clean_turned = prepare(on_floor(shirt, 0, noise=0)), prepare(on_floor(shirt, 9, noise=0))
    assert clean_turned.turned == 0.0, "a clean background (a product shot, a drawing) is upright by making: left as it is"
    # Turned back, the photo's 28×28 is near the upright photo's (13 grey levels apart on average); left
    # turned, the clean picture's is far from its upright one's (21).
    distance = lambda a, b: np.abs(a.pixels.astype(int) - b.pixels).mean()  # noqa: E731
    assert distance(turned, upright) < 0.75 * distance(clean_turned, clean_upright)
