"""Finding the item in a picture: its background (with a smooth lighting gradient) estimated and taken
away, the item brought out as light on black, and the item's region told apart from a card's frame,
a caption and specks.

Works on a small grayscale image (imaging.WORK_SIZE on its long side), where a 12-megapixel photo's
sensor and JPEG noise has been averaged away. scikit-image does the thresholds, the morphology and
the connected components; numpy's least squares fits the lighting.
"""

from dataclasses import dataclass

import numpy as np
from skimage.filters import apply_hysteresis_threshold
from skimage.measure import label, regionprops
from skimage.morphology import disk, erosion

# Up to this level (of 255, once the background is taken away and the item's brightest pixel is
# 255, as in the dataset) a pixel is background when finding the item. Lower would take noise for
# the item; higher trims the faint edges of dataset images, which then come back slightly enlarged.
NOISE_LEVEL = 15
# A dataset image's brightest pixel is 254-255 (fit_frame): from this peak on, the noise level is NOISE_LEVEL itself.
DATASET_PEAK = 250
# At least this share of the border exactly at one level: a clean background shows there.
CLEAN_SHARE = 0.1
# An item stands at least this far (of 255) from its background at its strongest; fainter is no item.
MIN_CONTRAST = 2 * NOISE_LEVEL
# A lighting gradient that changes the background by less than this over the frame is left as a
# flat background: a dataset image's black stays exactly 0.
GRADIENT_LEVEL = NOISE_LEVEL
# The border band a photo's lighting is first fitted to: this share of the picture on each side.
BAND = 0.08
# Fewer background pixels than this: too few to fit a surface to.
MIN_FIT_PIXELS = 12
# Where a background's spread is noise (a bed's folds, a floor's grain), an item's pixel stands this
# many spreads above it, and its faint rim (a light sole) RIM_SPREADS where it joins the item.
SPREADS, RIM_SPREADS = 4, 3
# The background's noise (a floor's grain) is taken away up to this many spreads: black stays black.
CORING = 2
# An item covers at least this share of the picture: less is a speck (in noise, say).
MIN_ITEM_SHARE = 0.002
# A line of text above or below the item is at most this share of the item's height, and this share
# of its long side away from it, and at least CAPTION_PIXELS: a sneaker's sole or a hanger's loop is
# nearer (2-3 px in a 28×28 dataset image).
CAPTION_SHARE, CAPTION_GAP, CAPTION_PIXELS = 1 / 3, 0.1, 4
# Parts of the item (a sandal's straps, a drawing's strokes) lie within this share of its size of each other.
NEAR_SHARE = 0.25
# A frame spans at least this share of the picture both ways, fills at most FRAME_FILL of its box,
# and runs along at least FRAME_SIDES of three of its box's four sides (a sandal's straps do not).
FRAME_SPAN, FRAME_FILL, FRAME_SIDES = 0.8, 0.3, 0.6


class NoItemError(ValueError):
    """Nothing in the picture stands out from its background."""


@dataclass(frozen=True)
class Separated:
    item: np.ndarray  # float32: the item light on black (background 0), the picture's shape
    inverted: bool  # the item was darker than its background, so the picture was inverted
    noise: float  # the spread of the background around its estimate

    def levels(self) -> tuple[float, float]:
        """Item pixels are above the first level, and its rim's above the second where they join them.
        The dataset's noise level is a share of the item's brightest pixel (its images are stretched to
        255): a photo's item is fainter, and its rim as faint."""
        peak = float(self.item.max()) if self.item.size else 0.0
        level = NOISE_LEVEL * min(1.0, peak / DATASET_PEAK) if peak >= MIN_CONTRAST else np.inf
        return max(level, SPREADS * self.noise), max(level, RIM_SPREADS * self.noise)

    def within(self, rows: slice, cols: slice) -> "Separated":
        return Separated(self.item[rows, cols], self.inverted, self.noise)


def border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])


def spread(values: np.ndarray) -> float:
    """The standard deviation of noise, robust to the item's pixels among them (the median absolute deviation)."""
    return float(1.4826 * np.median(np.abs(values - np.median(values)))) if values.size else 0.0


def fit_lighting(gray: np.ndarray, quiet: np.ndarray, quadratic: bool = True) -> np.ndarray:
    """A smooth surface (a plane, or quadratic in x and y) through the background pixels: the light
    falling across the frame. Kept within the background's own range: a fit never invents a light
    brighter or darker than the background shows."""
    height, width = gray.shape
    y, x = np.mgrid[0:height, 0:width]
    x, y = x.ravel() / width - 0.5, y.ravel() / height - 0.5
    terms = np.stack([np.ones_like(x), x, y] + ([x * x, x * y, y * y] if quadratic else []), axis=1)
    chosen = quiet.ravel()
    coefficients, *_ = np.linalg.lstsq(terms[chosen], gray.ravel()[chosen], rcond=None)
    surface = (terms @ coefficients).reshape(gray.shape)
    return np.clip(surface, gray[quiet].min(), gray[quiet].max()).astype(np.float32)


def border_band(shape: tuple[int, int]) -> np.ndarray:
    """The outer BAND share of the picture on each side: mostly background in a photo of one item."""
    band = np.ones(shape, bool)
    rows, cols = max(1, round(BAND * shape[0])), max(1, round(BAND * shape[1]))
    band[rows:-rows, cols:-cols] = False
    return band


def estimate_background(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """The background under the whole picture (flat, or the lighting's gradient) and its noise's spread.

    A plane through the border band first (the item, where it reaches the border, left out), then
    the quadratic surface through every pixel that looks like background, refitted as the fit finds
    more of them.
    """
    edge = border(gray)
    background = np.full(gray.shape, np.median(edge), np.float32)
    noise = spread(edge)
    if min(gray.shape) < 8:
        return background, noise
    band = border_band(gray.shape)
    # The item where it reaches the border is an outlier from the band's median; out before any fit.
    quiet = band & (np.abs(gray - np.median(gray[band])) <= max(NOISE_LEVEL, SPREADS * spread(gray[band])))
    if quiet.sum() < MIN_FIT_PIXELS:  # the item covers the border: its level is all there is
        return background, noise
    for step in range(4):
        surface = fit_lighting(gray, quiet, quadratic=step > 0)
        residual = gray - surface
        noise = spread(residual[quiet])
        limit = max(NOISE_LEVEL, SPREADS * noise)
        # Eroded: the item's faint rim stays out of the fit.
        wider = erosion(np.abs(residual) <= limit, disk(1))
        if wider.mean() < 0.15:  # the item fills the frame: too little background for more than the border's plane
            break
        quiet = wider
    if np.ptp(surface) < GRADIENT_LEVEL:
        level = np.median(gray[quiet])
        return np.full(gray.shape, level, np.float32), spread(gray[quiet] - level)
    return surface, noise


def clean_border(gray: np.ndarray) -> bool:
    """Whether a clean background shows along the border (a share of it exactly at its darkest or lightest
    level): a drawing's canvas or a dataset image around an item that fills most of the frame, never
    noise or a photo, whose border levels scatter."""
    edge = border(gray)
    return max(np.mean(edge == edge.min()), np.mean(edge == edge.max())) >= CLEAN_SHARE


def clean_level(gray: np.ndarray) -> float:
    """A clean background's level: the most common one in the border band where it holds over half of
    it, which the outermost row alone can miss (a product card whose thin frame runs so near the
    edge that the shrink blends it with the card's margin into the whole outer row); else the
    border's median."""
    band = gray[border_band(gray.shape)]
    levels, counts = np.unique(band, return_counts=True)
    return float(levels[counts.argmax()]) if counts.max() > 0.5 * band.size else float(np.median(border(gray)))


def separate(gray: np.ndarray, invert: bool | None = None, flat: bool = False, core: bool = True) -> Separated:
    """The item light on black, its background at 0. invert None: decided by whether the item's
    pixels are mostly darker than the background around them (a photo, a card) or lighter (a drawing,
    a dataset image, a light item on a dark floor). flat: the background is the border's level, no
    lighting fitted (for an item that fills the frame, whose border is mostly the item), as it is for
    a clean background anyway. core False: the background's noise is left in (a crop set by hand
    around a faint item, whose grain is all it has)."""
    edge = border(gray)
    # A clean background (a drawing's canvas, a dataset image, a product shot on pure white: most of the
    # border exactly one level) needs no lighting fitted, and has no noise.
    flat = flat or np.mean(edge == np.median(edge)) > 0.5
    background, noise = (np.full(gray.shape, clean_level(gray), np.float32), 0.0) if flat else estimate_background(gray)
    residual = gray - background
    if invert is None:
        loud = residual[np.abs(residual) > max(NOISE_LEVEL, SPREADS * noise)]
        if loud.size:
            invert = bool(-loud[loud < 0].sum() > loud[loud > 0].sum())
        else:  # a faint picture: judged by its border, as light pages are common
            invert = bool(np.median(border(gray)) > 127.5)
    # Under a grey level (a clean drawing, a dataset image) there is nothing to take away.
    coring = CORING * noise if core and noise >= 1 else 0.0
    item = np.clip((-residual if invert else residual) - coring, 0, None).astype(np.float32)
    return Separated(item, invert, noise)


def is_caption(region, item) -> bool:
    """A line of text (or a letter of it) under or over the item: short beside it, and apart from it."""
    top, left, bottom, right = item.bbox
    gap = max(region.bbox[0] - bottom, top - region.bbox[2])
    short = region.bbox[2] - region.bbox[0] <= CAPTION_SHARE * (bottom - top)
    return short and gap >= max(CAPTION_PIXELS, CAPTION_GAP * max(bottom - top, right - left))


def near(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> bool:
    """Whether other lies within NEAR_SHARE of box's long side around box (boxes as skimage's bbox: top, left, bottom, right)."""
    reach = NEAR_SHARE * max(box[2] - box[0], box[3] - box[1])
    return other[0] < box[2] + reach and box[0] - reach < other[2] and other[1] < box[3] + reach and box[1] - reach < other[3]


def union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def is_frame(region, shape: tuple[int, int]) -> bool:
    """A card's frame (or a page's border): around the picture, thin, along its box's sides."""
    top, left, bottom, right = region.bbox
    spans = (bottom - top) >= FRAME_SPAN * shape[0] and (right - left) >= FRAME_SPAN * shape[1]
    if not spans or region.extent > FRAME_FILL:
        return False
    inside = region.image  # the region in its box
    sides = [inside[:2].any(axis=0), inside[-2:].any(axis=0), inside[:, :2].any(axis=1), inside[:, -2:].any(axis=1)]
    # Three sides are enough: a thin line can fade out where it falls between the work image's pixels.
    return sorted(side.mean() for side in sides)[1] >= FRAME_SIDES


@dataclass(frozen=True)
class Found:
    mask: np.ndarray  # bool: the item, its holes filled
    dropped: np.ndarray  # bool: what stood out but is not the item (a frame, a caption, specks)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with every hole filled: background that does not reach the picture's edge."""
    background = label(~mask, connectivity=1)
    return mask | ~np.isin(background, np.unique(border(background)))


def find_item(separated: Separated) -> Found:
    """The item: its largest region with the parts near it; frames, captions and specks left out.
    NoItemError when nothing stands out."""
    threshold, rim = separated.levels()
    labels = label(apply_hysteresis_threshold(separated.item, rim, threshold), connectivity=2)
    regions = [r for r in regionprops(labels) if not is_frame(r, labels.shape)]
    if not regions:
        raise NoItemError("No item stands out from the background.")
    main = max(regions, key=lambda r: r.area)
    if main.area < MIN_ITEM_SHARE * labels.size:
        raise NoItemError("Only specks stand out from the background.")
    candidates = [r for r in regions if r is not main and not is_caption(r, main)]
    kept, box = [main], main.bbox
    grown = True
    while grown:  # parts near the item join it, and then the parts near those
        grown = False
        for region in [r for r in candidates if near(box, r.bbox)]:
            kept.append(region)
            candidates.remove(region)
            box = union(box, region.bbox)
            grown = True
    mask = np.isin(labels, [r.label for r in kept])
    return Found(fill_holes(mask), (labels > 0) & ~mask)
