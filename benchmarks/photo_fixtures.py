"""Photo-like pictures made from test images, with the item's box known, and pictures unlike the data.

What people upload is not a dataset image: a phone photo of an item lying on a floor or a bed (lit
from one side, sensor noise, JPEG, the item a little turned and off-centre), a product card (the item
on white in a thin grey frame, a caption under it), a light item on a dark, textured floor. Each is
made here from a Fashion-MNIST test image with Pillow and numpy, deterministically from a seed, with
the box the item covers in the picture: the tests score the item finder against it (IoU) and the
classes against the test labels; `python -m fmnist photo-bench` reports the same per situation.
Generated rather than kept as files: the set is small to make (well under a second), the box comes
from the same code that places the item, and a change of the situations is a change of code.

`unlike_data` makes the other kind: noise, pages of text and photos of anything but clothes (a
cat among them, from scikit-image's bundled sample images), for the "does not look like the training
images" notice.
"""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

PHONE, CARD, DARK_FLOOR = "phone photo", "product card", "dark floor"
SITUATIONS = (PHONE, CARD, DARK_FLOOR)
# A placed item pixel belongs to the item from this level (of 1): imaging.NOISE_LEVEL's 15 of 255.
ITEM_LEVEL = 15 / 255
CAPTIONS = ("EUR 19.99", "New season · 30 % off", "Only 24.90 EUR", "Organic cotton", "Free delivery", "SALE  -50 %",
            "Size S-XL", "Bestseller", "Now 39,95", "Limited edition")
WORDS = ("the", "model", "of", "fashion", "images", "a", "page", "with", "text", "is", "not", "clothing", "every",
         "line", "reads", "like", "this", "one", "data", "set", "and", "more", "words", "to", "fill", "it")


@dataclass(frozen=True)
class PhotoFixture:
    name: str
    situation: str
    label: int  # the test image's class
    test_index: int
    data: bytes  # the file as uploaded (JPEG or PNG)
    box: tuple[int, int, int, int]  # the item in the picture: left, top, right, bottom (exclusive), in pixels


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def item_layer(pixels: np.ndarray, size: int, angle: float) -> np.ndarray:
    """The test image as how much of the item covers each pixel (0-1), its long side `size` px, turned by angle degrees."""
    big = Image.fromarray(pixels).resize((size, size), Image.BICUBIC)
    turned = big.rotate(angle, resample=Image.BILINEAR, expand=True)
    return np.asarray(turned, dtype=np.float32) / 255


def place(layer: np.ndarray, shape: tuple[int, int], centre: tuple[float, float]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The layer on a canvas of shape (height, width) with its middle at centre (x, y); and the item's box there."""
    canvas = np.zeros(shape, np.float32)
    height, width = layer.shape
    top, left = round(centre[1] - height / 2), round(centre[0] - width / 2)
    canvas[top:top + height, left:left + width] = layer
    rows = np.flatnonzero((canvas > ITEM_LEVEL).any(axis=1))
    cols = np.flatnonzero((canvas > ITEM_LEVEL).any(axis=0))
    return canvas, (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def smooth_noise(rng, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Blotches about `scale` px across, in -1..1: the folds of a bed sheet, the grain of a floor."""
    coarse = rng.uniform(-1, 1, (max(2, round(shape[0] / scale)), max(2, round(shape[1] / scale)))).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((shape[1], shape[0]), Image.BICUBIC))


def lighting(rng, shape: tuple[int, int], strength: float) -> np.ndarray:
    """Light from one side: brightness falling across the frame by `strength` (a share), in a random direction."""
    height, width = shape
    y, x = np.ogrid[0:height, 0:width]
    direction = rng.uniform(0, 2 * np.pi)
    along = (np.float32(np.cos(direction)) * (x / np.float32(width) - 0.5) + np.float32(np.sin(direction)) * (y / np.float32(height) - 0.5))
    return 1 + np.float32(strength / 2) * along / np.abs(along).max()


def to_rgb(luminance: np.ndarray, tint: np.ndarray) -> np.ndarray:
    return luminance[..., None] * tint.astype(np.float32)


def finish(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")


def phone_photo(pixels: np.ndarray, rng, size: tuple[int, int] = (800, 600)) -> tuple[bytes, tuple[int, int, int, int]]:
    """A dark item lying on a light floor or bed, lit from one side, noisy, turned, off-centre, JPEG."""
    width, height = size if rng.random() < 0.5 else size[::-1]
    item = item_layer(pixels, round(min(width, height) * rng.uniform(0.38, 0.55)), rng.uniform(-12, 12))
    margin = np.array(item.shape[::-1]) / 2 + 8
    centre = rng.uniform(margin, np.array([width, height]) - margin)
    cover, box = place(item, (height, width), tuple(centre))
    floor = np.float32(rng.uniform(170, 225)) * (1 + 0.04 * smooth_noise(rng, (height, width), min(width, height) / 6))
    # A faint soft shadow beside the item (diffuse room light; a hard drop shadow would be taken for the item's edge).
    shifted = np.roll(cover, (round(height * 0.02), round(width * 0.02)), axis=(0, 1))
    shadow = np.asarray(Image.fromarray(np.rint(shifted * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(min(width, height) / 40))) / 255
    floor = floor * (1 - 0.04 * shadow)
    darkness = rng.uniform(0.7, 0.9)
    tint = rng.uniform(0.9, 1.05, 3)
    item_colour = rng.uniform(15, 70, 3)
    rgb = to_rgb(floor, tint) * (1 - darkness * cover[..., None]) + item_colour * darkness * cover[..., None]
    rgb *= lighting(rng, (height, width), rng.uniform(0.35, 0.6))[..., None]
    rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(rng.uniform(3, 7))
    return encode(finish(rgb), "JPEG", quality=int(rng.integers(70, 91))), box


def product_card(pixels: np.ndarray, rng) -> tuple[bytes, tuple[int, int, int, int]]:
    """The item on a white card in a thin grey frame, with one or two lines of caption under it."""
    width, height = int(rng.integers(560, 720)), int(rng.integers(760, 900))
    item = item_layer(pixels, round(width * rng.uniform(0.55, 0.7)), 0.0)
    centre = (width / 2, height * rng.uniform(0.36, 0.42))
    cover, box = place(item, (height, width), centre)
    card = np.full((height, width, 3), rng.uniform(245, 255), np.float32)
    item_colour = rng.uniform(10, 80, 3)
    rgb = card * (1 - 0.95 * cover[..., None]) + item_colour * 0.95 * cover[..., None]
    image = finish(rgb)
    draw = ImageDraw.Draw(image)
    inset, grey = int(rng.integers(6, 24)), int(rng.integers(120, 190))
    draw.rectangle([inset, inset, width - 1 - inset, height - 1 - inset], outline=(grey,) * 3, width=int(rng.integers(2, 5)))
    font = ImageFont.load_default(size=int(height * rng.uniform(0.04, 0.06)))
    y = box[3] + height * rng.uniform(0.06, 0.1)
    for caption in rng.choice(CAPTIONS, int(rng.integers(1, 3)), replace=False):
        left, top, right, bottom = draw.textbbox((0, 0), str(caption), font=font)
        draw.text(((width - right) / 2, y), str(caption), fill=(40, 40, 40), font=font)
        y += (bottom - top) * 1.6
    fmt = "PNG" if rng.random() < 0.5 else "JPEG"
    return encode(image, fmt, **({"quality": 90} if fmt == "JPEG" else {})), box


def dark_floor(pixels: np.ndarray, rng) -> tuple[bytes, tuple[int, int, int, int]]:
    """A light item on a dark floor with a grain and a little noise, JPEG."""
    width, height = (800, 600) if rng.random() < 0.5 else (600, 800)
    item = item_layer(pixels, round(min(width, height) * rng.uniform(0.45, 0.65)), rng.uniform(-8, 8))
    margin = np.array(item.shape[::-1]) / 2 + 8
    cover, box = place(item, (height, width), tuple(rng.uniform(margin, np.array([width, height]) - margin)))
    floor = np.float32(rng.uniform(30, 70)) * (1 + 0.15 * smooth_noise(rng, (height, width), 12) + 0.1 * smooth_noise(rng, (height, width), 80))
    light = rng.uniform(190, 240)
    rgb = to_rgb(floor, rng.uniform(0.9, 1.1, 3)) * (1 - cover[..., None]) + to_rgb(light * cover, np.ones(3))
    rgb *= lighting(rng, (height, width), 0.2)[..., None]
    rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(3)
    return encode(finish(rgb), "JPEG", quality=int(rng.integers(75, 91))), box


MAKERS = {PHONE: phone_photo, CARD: product_card, DARK_FLOOR: dark_floor}


def photo_like(x_test: np.ndarray, y_test: np.ndarray, per_situation: int = 12, seed: int = 0) -> list[PhotoFixture]:
    """per_situation pictures of each situation, each from another test image, the classes in turn."""
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(y_test == label)) for label in range(10)]
    fixtures = []
    for s, situation in enumerate(SITUATIONS):
        for i in range(per_situation):
            label = (i + 3 * s) % 10
            index = int(by_class[label][s * per_situation + i])
            data, box = MAKERS[situation](x_test[index], rng)
            name = f"{situation.replace(' ', '-')}-{i:02d}"
            fixtures.append(PhotoFixture(name, situation, label, index, data, box))
    return fixtures


def text_page(rng, size: tuple[int, int] = (600, 800)) -> Image.Image:
    """A page of dark words on white, in lines."""
    page = Image.new("L", size, int(rng.integers(235, 256)))
    draw = ImageDraw.Draw(page)
    font_size = int(rng.integers(18, 36))
    font = ImageFont.load_default(size=font_size)
    y = font_size
    while y < size[1] - 2 * font_size:
        draw.text((font_size, y), " ".join(rng.choice(WORDS, 12)), fill=int(rng.integers(0, 60)), font=font)
        y += round(font_size * 1.5)
    return page


def noise_picture(rng, kind: int, size: tuple[int, int] = (500, 400)) -> Image.Image:
    shape = (size[1], size[0])
    if kind == 0:  # television snow
        return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    if kind == 1:  # coloured noise
        return Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), "RGB")
    if kind == 2:  # clouds
        return Image.fromarray(np.clip(128 + 120 * smooth_noise(rng, shape, 40), 0, 255).astype(np.uint8))
    # salt and pepper on grey
    grey = np.full(shape, 128, np.uint8)
    grey[rng.random(shape) < 0.1] = 255
    grey[rng.random(shape) < 0.1] = 0
    return Image.fromarray(grey)


def unlike_data(seed: int = 0) -> dict[str, list[tuple[str, bytes]]]:
    """Pictures that are not of a clothing item, as (name, PNG) by kind: noise, text, photos."""
    from skimage import data as samples  # the sample images ship inside scikit-image: nothing is downloaded

    rng = np.random.default_rng(seed)
    noise = [(f"noise-{i}", encode(noise_picture(rng, i % 4), "PNG")) for i in range(8)]
    pages = [(f"text-page-{i}", encode(text_page(rng), "PNG")) for i in range(6)]
    pages += [("skimage-text", encode(Image.fromarray(samples.text()), "PNG")), ("skimage-page", encode(Image.fromarray(samples.page()), "PNG"))]
    photos = []
    for name in ("chelsea", "coffee", "astronaut", "rocket", "camera", "clock", "coins", "moon", "brick", "grass", "horse"):
        picture = getattr(samples, name)()
        if picture.dtype == bool:
            picture = picture.astype(np.uint8) * 255
        photos.append((name if name != "chelsea" else "cat", encode(Image.fromarray(picture), "PNG")))
    cat = Image.fromarray(samples.chelsea())
    photos += [("cat-face", encode(cat.crop((100, 20, 300, 220)), "PNG")), ("cat-left", encode(cat.crop((0, 0, 250, 300)), "PNG"))]
    return {"noise": noise, "text": pages, "photos": photos}
