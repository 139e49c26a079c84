"""Any picture of a clothing item -> the 28×28 image a Fashion-MNIST model expects.

Fashion-MNIST was made from product photos by trimming them to the item, resizing the
long side to 28, centring, negating (a light item on black) and 8-bit grayscale. `prepare`
does the same to a drawing, a photo or a test image, after finding the item in it
(fmnist.segmentation: the background and its lighting taken away, a card's frame and caption
left out) and, in a photo, turning it upright (fmnist.upright); a person may set the crop box and
the inversion instead. Plain functions of PIL
images and numpy arrays: no Streamlit, no Keras.
"""

import io
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from fmnist.data import to_model_input
from fmnist.dataset import FASHION_MNIST
from fmnist.segmentation import NOISE_LEVEL, NoItemError, Separated, clean_border, find_item, separate  # noqa: F401  (NOISE_LEVEL: part of what imaging offers)
from fmnist.upright import estimate, upright

# Pillow's guard against decompression bombs (a small file that decodes to gigabytes),
# set explicitly: 40 megapixels is a large photo, and what may be decoded at all.
Image.MAX_IMAGE_PIXELS = 40_000_000
SIZE = FASHION_MNIST.image_shape[0]  # its images are square
# Larger images are shrunk to this (4× the final size) before the item is looked for:
# fast for a 12-megapixel photo, and area averaging takes the sensor and JPEG noise
# down with it, so that noise cannot pass for the item's edge.
WORK_SIZE = 112
# A JPEG is decoded at a reduced scale (its DCT allows 1/2, 1/4 and 1/8) down to no less
# than this on its short side: a 12-megapixel photo decodes in a fraction of the time, and
# even a tight crop box keeps more pixels than the 28×28 needs.
DECODE_SIZE = 448
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")

# What one upload may take (docs/security.md). Pillow decodes a PNG, WebP, GIF or BMP whole, so
# the decoded picture is the unavoidable part: at most MAX_IMAGE_PIXELS pixels of at most
# MAX_BYTES_PER_PIXEL bytes (RGBA, CMYK, 32-bit and float images; a 16-bit one is 2, grey 1),
# 160 MB. open_image then keeps only a work image, the picture area-averaged by a whole factor to
# KEEP_SIZE..2·KEEP_SIZE on its long side (at most 896×896×4 bytes, 3.2 MB), made strip by strip
# (STRIP_BYTES each) so no full-size copy is ever made in another mode or in floats; the decoded
# picture is dropped before anything else is done. At most DECODES_AT_ONCE uploads are decoded at
# once in a server, so several tabs uploading at once queue for the 160 MB instead of adding it up.
MAX_BYTES_PER_PIXEL = 4
BYTES_PER_SAMPLE = {"1": 1, "L": 1, "P": 1, "LA": 1, "La": 1, "PA": 1, "RGB": 1, "RGBA": 1, "RGBa": 1, "RGBX": 1, "CMYK": 1,
                    "YCbCr": 1, "LAB": 1, "HSV": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "I": 4, "F": 4}
KEEP_SIZE = 448
STRIP_BYTES = 8 * 2**20
DECODES_AT_ONCE = threading.BoundedSemaphore(2)
# The formats an upload may be in (Classify's file types; Pillow's JPEG opener also opens the MPO files
# of many phones). Pillow would open others too (EPS through Ghostscript, PSD, TIFF…): none is needed here.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the turn that stands the picture upright (as ImageOps.exif_transpose does).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


class ImageError(ValueError):
    """The input cannot be turned into an image of an item; the message says why."""


class EmptyImageError(ImageError):
    """The image holds only background (an empty canvas, a blank page), or no item could be told from it."""


# A crop box as shares of the picture's width and height: left, top, right, bottom, each 0-1.
Box = tuple[float, float, float, float]
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class Prepared:
    pixels: np.ndarray  # uint8 (28, 28): a light item on black, like a dataset image
    image01: np.ndarray  # float32 (28, 28) in 0-1: exactly what the model receives
    mask: np.ndarray  # bool, the work image's shape: where the item was found (none where a box set by hand is the crop)
    box: Box  # the crop, as shares of the picture
    inverted: bool  # the picture was inverted (a dark item on a light background)
    crop: np.ndarray  # uint8: the crop, light on black, before it is squared and shrunk to 28×28
    turned: float = 0.0  # degrees counter-clockwise the item was turned to stand upright (fmnist.upright)


def open_image(data: bytes) -> Image.Image:
    """An uploaded file as a work image, upright, at most 2·KEEP_SIZE on its long side (an animation on its
    first frame), its size and colour mode as uploaded in info["full_size"] and info["full_mode"]; ImageError if it is not a readable image.
    The memory it takes is bounded (see MAX_BYTES_PER_PIXEL)."""
    if not data:
        raise ImageError("The file is empty (0 bytes).")
    try:
        with warnings.catch_warnings(), DECODES_AT_ONCE:
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            full_size, full_mode = image.size, image.mode
            if image.mode not in BYTES_PER_SAMPLE:
                raise ImageError(f"Images in colour mode {image.mode} are not supported.")
            image.draft(None, (DECODE_SIZE, DECODE_SIZE))  # only JPEGs shrink while decoding; others ignore it
            image.load()
            # Phones store photos sideways and note the turn in EXIF: a shirt must not lie on its side.
            turn = UPRIGHT.get(image.getexif().get(EXIF_ORIENTATION))
            work = work_image(image)
            image.close()
            del image  # the decoded picture goes before anything else is made
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"The image is too large: over {Image.MAX_IMAGE_PIXELS // 1_000_000} megapixels. "
            "Use a smaller picture."
        ) from None
    except UnidentifiedImageError:
        raise ImageError("This file is not an image: upload a PNG, JPEG, WebP, GIF or BMP.") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # Pillow's decoders report a truncated or damaged file in any of these.
        raise ImageError(f"The image is damaged or truncated ({e}).") from None
    if turn is not None:
        work = work.transpose(turn)
        if turn in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
            full_size = full_size[::-1]
    work.info["full_size"], work.info["full_mode"] = full_size, full_mode
    return work


def work_image(image: Image.Image) -> Image.Image:
    """The decoded picture area-averaged by a whole factor to KEEP_SIZE..2·KEEP_SIZE on its long side, in
    one of the modes the rest reads: L or RGB (opaque), RGBA (transparent: averaged premultiplied, so that
    the colours transparent pixels hide do not bleed in), F (16-bit, 32-bit and float pictures). Made strip
    by strip: no full-size copy in another mode."""
    transparent = image.mode not in HIGH_DEPTH_MODES and image.has_transparency_data
    if image.mode in HIGH_DEPTH_MODES:
        steps, mode = ("F",), "F"
    elif transparent:
        steps, mode = ("RGBA", "RGBa"), "RGBa"
    else:
        steps, mode = (() if image.mode in ("L", "RGB") else ("RGB",)), ("L" if image.mode in ("1", "L") else "RGB")
    factor = max(1, max(image.size) // KEEP_SIZE)
    if factor == 1 and not steps:
        return image.copy()
    width, height = image.size
    rows = max(factor, STRIP_BYTES // (width * MAX_BYTES_PER_PIXEL) // factor * factor)
    work = Image.new(mode, (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        for step in steps:
            strip = strip.convert(step)
        work.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return work.convert("RGBA") if transparent else work


def stretch(values: np.ndarray) -> np.ndarray:
    """Map the lowest value to 0 and the highest to 255 (all 0 for a flat image)."""
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.zeros(values.shape, np.float32)
    return ((values - low) * (255 / (high - low))).astype(np.float32)


def on_background(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite a transparent image on black behind a light item, white behind a dark one:
    transparent pixels become background whatever colour they hide."""
    opaque = alpha > 0.5
    if not opaque.any():
        raise EmptyImageError("The image is fully transparent: there is no item to classify.")
    background = 0.0 if np.median(gray[opaque]) >= 128 else 255.0
    return gray * alpha + background * (1 - alpha)


def grayscale(image: Image.Image) -> np.ndarray:
    """0-255 float32 luminance of any mode Pillow decodes to."""
    if image.mode in HIGH_DEPTH_MODES:
        # 16-bit, 32-bit and float images have no fixed white; Pillow's own
        # conversion to L would clip everything above 255 to white.
        return stretch(np.asarray(image, dtype=np.float32))
    try:
        if not image.has_transparency_data:
            return np.asarray(image.convert("L"), dtype=np.float32)
        rgba = image.convert("RGBA")
    except ValueError as e:
        raise ImageError(f"Images in colour mode {image.mode} are not supported ({e}).") from None
    gray = np.asarray(rgba.convert("L"), dtype=np.float32)
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255
    return on_background(gray, alpha)


def reduce_early(image: Image.Image) -> Image.Image:
    """A large opaque 8-bit picture area-averaged by a whole factor while still in Pillow (a fraction
    of the time numpy's float copy of 12 megapixels would take), to at least twice WORK_SIZE.
    Transparent pictures stay whole: averaging would mix in the colours their transparent pixels hide."""
    factor = max(image.size) // (2 * WORK_SIZE)
    if factor < 2 or image.mode not in ("L", "RGB") or image.has_transparency_data:
        return image
    return image.reduce(factor)


def shrink(gray: np.ndarray) -> np.ndarray:
    """Area-average an image larger than WORK_SIZE down to it (long side), keeping its shape."""
    height, width = gray.shape
    factor = max(height, width) / WORK_SIZE
    if factor <= 1:
        return gray
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return np.asarray(Image.fromarray(gray).resize(size, Image.BOX))


def pad_to_square(item: np.ndarray) -> np.ndarray:
    """The item centred on a black square as wide as its long side."""
    height, width = item.shape
    side = max(height, width)
    square = np.zeros((side, side), np.float32)
    # An odd pixel left over goes before the item, as in the dataset (its test images
    # with an odd gap are one pixel further right or down than floor division puts them).
    top, left = (side - height + 1) // 2, (side - width + 1) // 2
    square[top:top + height, left:left + width] = item
    return square


def fit_frame(square: np.ndarray) -> np.ndarray:
    """Resize a square to 28×28 and brighten it so its lightest pixel is 255.

    No margin: in the first 1,000 test images the bounding box's long side is 28 px for
    97% (26-27 for the rest), centred (box centre at 13.6 ± 0.2), and the brightest
    pixel is 254-255 in all. Shrinking averages areas (BOX), so a stroke thinner than
    the shrink factor fades to grey instead of vanishing between sampled pixels, and
    the brightening lifts it back.
    """
    resample = Image.BOX if square.shape[0] >= SIZE else Image.BILINEAR
    small = np.asarray(Image.fromarray(square).resize((SIZE, SIZE), resample))
    return small * (255 / small.max())


def box_slices(box: Box, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The box's rows and columns in an image of this shape, at least one pixel each."""
    height, width = shape
    left, top, right, bottom = box
    x0, y0 = min(round(left * width), width - 1), min(round(top * height), height - 1)
    return slice(y0, max(y0 + 1, round(bottom * height))), slice(x0, max(x0 + 1, round(right * width)))


def mask_box(mask: np.ndarray) -> Box:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height


@dataclass(frozen=True)
class Cropped:
    mask: np.ndarray  # bool, the work image's shape: the item found
    crop: np.ndarray  # float32: the item's box, upright, what is not the item (a caption, specks) blacked out
    turned: float  # degrees counter-clockwise it was turned


def crop_item(separated: Separated) -> Cropped:
    """The item found (its mask) and its crop, with what is not the item (a caption, specks) blacked out;
    in a photo, turned upright where it lies a little turned and is symmetric (fmnist.upright)."""
    found = find_item(separated)
    # A caption or a speck inside the crop box is not part of the item.
    item = np.where(found.dropped, 0, separated.item)
    box = box_slices(mask_box(found.mask), item.shape)
    # Only a photo's item (a noisy background) is turned: a clean background is a drawing's canvas, a
    # product shot or a dataset image, upright by making, and a dataset image must come back as it is.
    angle = estimate(found.mask[box]).angle if separated.noise > 0 else 0.0
    if not angle:
        return Cropped(found.mask, item[box], 0.0)
    item, mask = upright(item, found.mask, angle)
    return Cropped(found.mask, item[box_slices(mask_box(mask), item.shape)], angle)


def prepare(image: Image.Image, box: Box | None = None, invert: bool | None = None) -> Prepared:
    """The image as Fashion-MNIST would show it. box: look for the item only there (and crop to the box
    itself when nothing there stands out); invert: True or False instead of deciding. EmptyImageError
    if it holds no item."""
    gray = shrink(grayscale(reduce_early(image)))
    separated = separate(gray, invert)
    mask = np.zeros(gray.shape, bool)
    turned = 0.0
    if box is None:
        try:
            cropped = crop_item(separated)
        except NoItemError:
            try:  # an item that fills the frame on a clean background leaves too little of it to fit the lighting to
                if not clean_border(gray):
                    raise
                separated = separate(gray, invert, flat=True)
                cropped = crop_item(separated)
            except NoItemError:
                raise EmptyImageError("The image is empty: there is only background, no item to classify.") from None
        mask, crop, turned = cropped.mask, cropped.crop, cropped.turned
    else:
        rows, cols = box_slices(box, gray.shape)
        try:
            cropped = crop_item(separated.within(rows, cols))
            mask[rows, cols], crop, turned = cropped.mask, cropped.crop, cropped.turned
        except NoItemError:  # nothing stands out there (a faint item, a cat's fur): the person's box is the crop
            crop = separate(gray, separated.inverted, core=False).item[rows, cols]
            if crop.max() <= 0:
                raise EmptyImageError("The crop box holds only background: move it onto the item.") from None
    small = fit_frame(pad_to_square(crop))
    pixels = np.rint(small).astype(np.uint8)
    # Rounded to 8 bits like the dataset and scaled as its images are, so the model
    # receives exactly the pixels the page shows.
    return Prepared(pixels, to_model_input(pixels[np.newaxis])[0, :, :, 0], mask, mask_box(mask) if mask.any() else box, separated.inverted,
                    np.rint(crop * (255 / crop.max())).astype(np.uint8), turned)


def as_dataset_image(pixels: np.ndarray) -> Prepared:
    """A dataset image as it is: the model's own input, exactly as the test set is scored (Evaluate),
    with no item finding in between (which leaves most of them unchanged, not all)."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    return Prepared(pixels, to_model_input(pixels[np.newaxis])[0, :, :, 0], pixels > 0, WHOLE, False, pixels)


def prepare_or_whole(image: Image.Image, invert: bool | None = None) -> tuple[Prepared, str | None]:
    """The item found, and None; or, where no item stands out (a cat on a rug, noise), the whole picture
    and why. EmptyImageError for a picture of only background (a blank page)."""
    try:
        return prepare(image, invert=invert), None
    except EmptyImageError as e:
        try:
            return prepare(image, WHOLE, invert), "No item stands out from its background, so the whole picture is classified."
        except EmptyImageError:
            raise e from None


def enlarge(pixels: np.ndarray, factor: int = 10) -> np.ndarray:
    """Each pixel as a factor×factor block: a browser scaling it up would blur the pixels away."""
    return pixels.repeat(factor, axis=0).repeat(factor, axis=1)


def preview(image: Image.Image, size: int = 280, pad: bool = True) -> Image.Image:
    """An 8-bit copy of at most size×size to show the original (16-bit and float images cannot be shown as they are);
    a very flat or very tall picture is set on a band at least size/8 across (pad), so a page showing it smaller
    still has a pixel to show (10000×10 would otherwise become an image 0 pixels high)."""
    if image.mode in HIGH_DEPTH_MODES:
        shown = Image.fromarray(grayscale(image).astype(np.uint8))
    else:
        shown = image.convert("RGBA")
    shown.thumbnail((size, size), Image.BOX)
    return on_band(shown, size // 8) if pad else shown


def on_band(image: Image.Image, least: int) -> Image.Image:
    """The image centred on a band at least `least` pixels across each way (transparent, or black)."""
    width, height = image.size
    if min(width, height) >= least:
        return image
    band = Image.new(image.mode, (max(width, least), max(height, least)))
    band.paste(image, ((band.width - width) // 2, (band.height - height) // 2))
    return band


def preview_with_box(image: Image.Image, box: Box, size: int = 280) -> Image.Image:
    """The preview with the crop box drawn on it in red."""
    shown = preview(image, size, pad=False).convert("RGB")
    left, top, right, bottom = box
    width, height = shown.size
    ImageDraw.Draw(shown).rectangle([left * width, top * height, right * width - 1, bottom * height - 1], outline=(255, 60, 60), width=3)
    return on_band(shown, size // 8)
