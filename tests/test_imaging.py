"""Preprocessing (fmnist.imaging) and prediction (fmnist.prediction) on real test images and on bad files."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fmnist.charts import probability_bars
from fmnist.data import examples_per_class, to_model_input
from fmnist.dataset import FASHION_MNIST
from fmnist.evaluation import percent, top_k
from fmnist.imaging import NOISE_LEVEL, EmptyImageError, ImageError, enlarge, open_image, prepare, preview
from fmnist.models import dense_spec
from fmnist.prediction import load_model, predict_image
from fmnist.store import RunStore
from fmnist.training import train_run
from fmnist.worker import try_start


@pytest.fixture(scope="module")
def model(tmp_path_factory, dataset):
    """A real small model (64 units, 2 epochs on 5,000 images: about 0.79 test accuracy)."""
    store = RunStore(tmp_path_factory.mktemp("imaging") / "home")
    run_id = store.create_run(dense_spec([64], epochs=2), train_limit=5000)
    assert try_start(store, run_id, max_parallel=1)
    summary = train_run(store, run_id, dataset)
    assert summary["status"] == "finished", store.get(run_id).error
    return load_model(store, run_id)


@pytest.fixture(scope="module")
def one_per_class(dataset) -> np.ndarray:
    return dataset.x_test[[int(indices[0]) for indices in examples_per_class(dataset.y_test, 1, seed=0)]]


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def dark_on_white(pixels: np.ndarray) -> Image.Image:
    """A dataset image as a person would photograph or draw it: dark on white, larger, off-centre."""
    item = Image.fromarray(255 - pixels).resize((196, 196), Image.BICUBIC)
    page = Image.new("L", (280, 280), 255)
    page.paste(item, (30, 50))
    return page


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# --- real images ---


def test_a_test_image_dark_on_white_comes_back_close_and_is_classified_the_same(one_per_class, model):
    prepared = [prepare(open_image(encode(dark_on_white(x), "PNG"))) for x in one_per_class]
    for original, p in zip(one_per_class, prepared):
        assert p.pixels.shape == (28, 28) and p.pixels.dtype == np.uint8
        assert p.image01.shape == (28, 28) and p.image01.dtype == np.float32
        np.testing.assert_allclose(p.image01, p.pixels / 255, atol=1e-6)
        # Up ×7 (bicubic) and area-averaged back down blurs every edge by about a pixel:
        # 12.6 grey levels on average over the first 1,000 test images, at most 16 for these ten.
        # 20 allows that and stays under what a one-pixel misplacement alone costs (22 on
        # average); a missed inversion costs about 195.
        assert mean_abs_diff(p.pixels, original) < 20
        assert correlation(p.pixels, original) > 0.9
    as_drawn = [predict_image(model, p.image01).argmax() for p in prepared]
    as_in_dataset = model.predict_on_batch(to_model_input(one_per_class)).argmax(axis=1)
    assert as_drawn == list(as_in_dataset)


def test_a_dataset_image_is_left_as_it_is(dataset):
    """Cropping, centring and framing reproduce Fashion-MNIST's own layout: an image already in
    it (its item fills the frame and has no faint edge the crop would trim) comes back unchanged."""
    def box(pixels, level):
        rows, cols = np.flatnonzero((pixels > level).any(axis=1)), np.flatnonzero((pixels > level).any(axis=0))
        return rows[0], rows[-1], cols[0], cols[-1]

    in_form = [x for x in dataset.x_test[:1000] if box(x, 0) == box(x, NOISE_LEVEL) and 28 in (box(x, 0)[1] + 1, box(x, 0)[3] + 1)]
    unchanged = [np.abs(prepare(Image.fromarray(x)).pixels.astype(int) - x).max() <= 1 for x in in_form]
    assert len(in_form) > 500
    # A few dataset images break the dataset's own centring rule by a pixel.
    assert np.mean(unchanged) > 0.99


def test_a_noisy_photo_on_a_grey_backdrop(one_per_class):
    rng = np.random.default_rng(0)
    for original in one_per_class:
        item = np.asarray(Image.fromarray(255 - original).resize((196, 196), Image.BICUBIC), dtype=np.float64)
        photo = np.full((280, 280), 200.0)
        photo[50:246, 30:226] = item * 200 / 255
        photo += rng.normal(0, 4, photo.shape)
        jpeg = encode(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).convert("RGB"), "JPEG", quality=80)
        p = prepare(open_image(jpeg))
        assert mean_abs_diff(p.pixels, original) < 20 and correlation(p.pixels, original) > 0.9


# --- drawings ---


def canvas_with(draw) -> Image.Image:
    """A 280×280 canvas like the page's: opaque black, white strokes."""
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    draw(ImageDraw.Draw(canvas))
    return canvas


def vertical_lines(size: int, width: int) -> tuple[Image.Image, list[int]]:
    """Six lines across a size×size sketch, white on black, none where nearest-neighbour
    sampling down to 28 looks (the centre of every size/28 block)."""
    step = size / 28
    xs = [round(step * (4 + 4 * i)) for i in range(6)]  # block edges: 4 output pixels apart
    image = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    draw = ImageDraw.Draw(image)
    for x in xs:
        draw.line([(x, size // 7), (x, size - size // 7)], fill="white", width=width)
    return image, xs


@pytest.mark.parametrize("size, width", [(280, 3), (280, 1), (1400, 3)], ids=["3px on 280", "1px on 280", "3px on 1400"])
def test_thin_strokes_survive_the_shrink_to_28(size, width):
    sketch, xs = vertical_lines(size, width)
    # The fixture is the known failure: nearest-neighbour sampling misses every line.
    assert np.asarray(sketch.convert("L").resize((28, 28), Image.NEAREST)).max() == 0
    pixels = prepare(sketch).pixels
    # The item is taller than wide, so it fills the rows and sits centred across the columns.
    lit_columns = np.flatnonzero(pixels[2:26].min(axis=0) >= 64)
    assert (pixels.max(axis=1) >= 128).all(), "the lines cross every row, clearly lit"
    groups = np.split(lit_columns, np.flatnonzero(np.diff(lit_columns) > 1) + 1)
    assert len(groups) == len(xs), f"each of the {len(xs)} lines is a lit column: {lit_columns}"


def test_a_thin_diagonal_stays_on_the_diagonal():
    canvas = canvas_with(lambda d: d.line([(40, 40), (240, 240)], fill="white", width=3))
    pixels = prepare(canvas).pixels
    assert all(pixels[i, i] >= 96 for i in range(28)), "to its rounded ends"


def test_an_item_anywhere_is_cropped_centred_and_fills_the_frame():
    canvas = canvas_with(lambda d: d.rectangle([20, 160, 59, 259], fill="white"))  # 40 wide, 100 tall, bottom left
    pixels = prepare(canvas).pixels
    rows = np.flatnonzero((pixels > NOISE_LEVEL).any(axis=1))
    cols = np.flatnonzero((pixels > NOISE_LEVEL).any(axis=0))
    assert (rows[0], rows[-1]) == (0, 27), "the long side fills the frame, as in the dataset"
    assert abs(len(cols) - 28 * 40 / 100) <= 1.5
    assert abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1, "centred"
    dark_on_light = Image.fromarray(255 - np.asarray(canvas.convert("L")))
    np.testing.assert_array_equal(prepare(dark_on_light).pixels, pixels)


@pytest.mark.parametrize("blank", [
    Image.new("RGBA", (280, 280), (0, 0, 0, 255)),  # the page's canvas before a stroke, or after Clear
    Image.new("RGB", (640, 480), "white"),
    Image.new("RGBA", (100, 100), (255, 0, 0, 0)),  # fully transparent
    Image.fromarray(np.random.default_rng(0).integers(0, NOISE_LEVEL // 2, (280, 280), dtype=np.uint8)),  # faint noise
], ids=["empty canvas", "white page", "transparent", "faint noise"])
def test_an_image_without_an_item_is_reported_as_empty(blank):
    with pytest.raises(EmptyImageError):
        prepare(blank)
    assert issubclass(EmptyImageError, ImageError)


# --- files that are odd but fine ---


def test_an_animated_gif_uses_its_first_frame(one_per_class):
    first, second = (Image.fromarray(x).convert("P") for x in one_per_class[[1, 7]])  # a trouser, then a sneaker
    gif = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(io.BytesIO(gif)).n_frames == 2
    np.testing.assert_array_equal(prepare(open_image(gif)).pixels, prepare(Image.fromarray(one_per_class[1])).pixels)


def test_16_bit_and_cmyk_images_look_like_their_8_bit_rgb_versions(one_per_class):
    for original in one_per_class[:3]:
        rgb = dark_on_white(original).convert("RGB")
        expected = prepare(rgb).pixels
        sixteen = open_image(encode(Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257), "PNG"))
        assert sixteen.info["full_mode"] == "I;16"
        assert mean_abs_diff(prepare(sixteen).pixels, expected) < 1
        cmyk = open_image(encode(rgb.convert("CMYK"), "JPEG", quality=95))
        assert cmyk.info["full_mode"] == "CMYK"
        assert mean_abs_diff(prepare(cmyk).pixels, expected) < 3  # JPEG is lossy


def test_a_phone_photo_stored_sideways_is_turned_upright(one_per_class):
    upright = dark_on_white(one_per_class[1]).convert("RGB")  # a trouser: its long side must stay vertical
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: turn 90° clockwise to display
    photo = open_image(encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif))
    assert photo.size == upright.size
    assert mean_abs_diff(prepare(photo).pixels, prepare(upright).pixels) < 3


def test_a_transparent_background_counts_as_background_whatever_colour_it_hides(one_per_class):
    original = one_per_class[0]
    item = Image.fromarray(original).resize((196, 196), Image.BICUBIC)
    shape = item.point(lambda v: 255 if v > 0 else 0)  # opaque where the item is
    on_black = Image.new("L", (280, 280), 0)
    on_black.paste(item, (30, 50))
    expected_light = prepare(on_black).pixels

    # A light item whose transparent pixels hide white (a naive conversion sees a white page).
    light = Image.new("RGBA", (280, 280), (255, 255, 255, 0))
    light.paste(Image.merge("RGBA", [item, item, item, shape]), (30, 50))
    assert mean_abs_diff(prepare(open_image(encode(light, "PNG"))).pixels, expected_light) < 3

    # A dark item whose transparent pixels hide black (a naive conversion sees black on black).
    dark_item = Image.fromarray(255 - np.asarray(item))
    dark = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    dark.paste(Image.merge("RGBA", [dark_item, dark_item, dark_item, shape]), (30, 50))
    assert mean_abs_diff(prepare(open_image(encode(dark, "PNG"))).pixels, expected_light) < 3


def test_preview_is_a_small_8_bit_copy_and_enlarge_keeps_pixels_square():
    sixteen = Image.fromarray(np.linspace(0, 65535, 3000 * 2000).reshape(2000, 3000).astype(np.uint16))
    shown = preview(sixteen)
    assert shown.mode == "L" and max(shown.size) == 280
    pixels = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    big = enlarge(pixels)
    assert big.shape == (280, 280)
    assert (big[30:40, 50:60] == pixels[3, 5]).all()


# --- files that cannot be used: one error type, a message a person understands ---


def png_bomb(width: int, height: int) -> bytes:
    """A real 1-bit PNG of width×height zeros: about 50 KB that would decode to width×height bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed bits
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b"")


def half_a_jpeg(dataset) -> bytes:
    data = encode(Image.fromarray(dataset.x_test[0]).resize((280, 280)).convert("RGB"), "JPEG", quality=90)
    return data[:len(data) // 2]


BAD_FILES = {
    "notes.png": (lambda dataset: b"shopping list: socks, a coat", "not an image"),
    "empty.png": (lambda dataset: b"", "empty"),
    "cut.jpg": (half_a_jpeg, "truncated"),
    "bomb-20000x20000.png": (lambda dataset: png_bomb(20_000, 20_000), "too large"),
    # Pillow only warns from 40 to 80 megapixels: those are refused too.
    "bomb-7000x7000.png": (lambda dataset: png_bomb(7_000, 7_000), "too large"),
    # A format Pillow reads but an upload need not be in.
    "scan.tiff": (lambda dataset: encode(Image.new("L", (64, 64), 255), "TIFF"), "not an image"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_file_that_cannot_be_used_raises_image_error_with_a_clear_message(name, tmp_path, dataset):
    make, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(make(dataset))
    assert path.stat().st_size < 200_000
    with pytest.raises(ImageError, match=message):
        open_image(path.read_bytes())
    assert Image.MAX_IMAGE_PIXELS == 40_000_000


# What one upload may take: the decoded picture (at most 40 megapixels × 4 bytes, 160 MB) and a work image of
# a few MB; the probe (a 180 KB 6300×6300 RGBA PNG) took 1.1 GB, its 16-bit version 0.5 GB.
UPLOAD_BUDGET_MB = 200
PROBE = """
import sys
from pathlib import Path
from fmnist.imaging import open_image, prepare_or_whole, preview, preview_with_box


def status(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))


data = Path(sys.argv[1]).read_bytes()
# The peak starts here: writing 5 to clear_refs resets VmHWM (Linux 4.0). ru_maxrss would not do: a forked
# child starts with its parent's peak.
Path("/proc/self/clear_refs").write_text("5")
before = status("VmRSS")
image = open_image(data)
prepared, _ = prepare_or_whole(image)
preview_with_box(image, prepared.box, 340)
preview(image, 340)
print((status("VmHWM") - before) // 1024, prepared.pixels.max())
"""


@pytest.mark.parametrize("mode, white", [("RGBA", (255, 255, 255, 255)), ("I;16", 65535)])
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="measures the peak with Linux's /proc")
def test_a_small_png_that_decodes_large_takes_a_bounded_memory(mode, white, tmp_path):
    import subprocess
    import sys

    from helpers import ROOT

    picture = Image.new(mode, (6300, 6300), white)  # the probe: a black disc on white
    ImageDraw.Draw(picture).ellipse((2000, 2000, 4300, 4300), fill=(0, 0, 0, 255) if mode == "RGBA" else 0)
    path = tmp_path / "disc.png"
    picture.save(path)
    del picture
    assert path.stat().st_size < 200_000
    # In a process of its own that does nothing else.
    result = subprocess.run([sys.executable, "-c", PROBE, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    grown_mb, brightest = map(int, result.stdout.split())
    assert brightest == 255, "its item was found"
    assert grown_mb < UPLOAD_BUDGET_MB, f"one upload raised the peak memory by {grown_mb} MB"


def test_a_large_transparent_picture_is_averaged_without_the_colours_it_hides(one_per_class):
    """The work image averages a transparent picture premultiplied: what hides under transparent pixels
    (here bright red, whose grey is darker than the item) changes nothing."""
    item = Image.fromarray(one_per_class[0]).resize((1400, 1400), Image.BICUBIC)
    picture = Image.new("RGBA", (2000, 2000), (255, 0, 0, 0))
    picture.paste(Image.merge("RGBA", [item, item, item, Image.new("L", item.size, 255)]), (300, 300))
    from_large = prepare(open_image(encode(picture, "PNG")))
    on_black = Image.alpha_composite(Image.new("RGBA", picture.size, (0, 0, 0, 255)), picture).convert("L")
    assert mean_abs_diff(from_large.pixels, prepare(on_black).pixels) < 2


# --- prediction ---


def test_predict_image_matches_keras_predict_and_top_k_orders_the_classes(one_per_class, model):
    image01 = prepare(Image.fromarray(one_per_class[0])).image01
    probs = predict_image(model, image01)
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-5
    np.testing.assert_allclose(probs, model.predict(image01[np.newaxis, :, :, np.newaxis], verbose=0)[0], atol=1e-6)
    top = top_k(probs, 3)
    assert [name for name, _ in top] == [FASHION_MNIST.class_names[i] for i in np.argsort(-probs)[:3]]
    assert top[0][1] >= top[1][1] >= top[2][1]


def test_probability_bars_show_every_class_and_colour_the_top_one():
    probs = np.array([0.01, 0.02, 0.6, 0.3, 0.01, 0.01, 0.02, 0.01, 0.01, 0.01])
    [bars] = probability_bars(probs).data
    assert list(bars.y) == list(FASHION_MNIST.class_names)
    np.testing.assert_allclose(bars.x, probs)
    colours = list(bars.marker.color)
    assert len(set(colours)) == 2 and colours.count(colours[2]) == 1
    assert list(bars.text[:4]) == ["1.0%", "2.0%", "60.0%", "30.0%"]


def test_percent_never_rounds_to_impossible_certainty():
    assert [percent(p) for p in (0.0004, 0.0012, 0.5, 0.998, 0.99996)] == ["<0.1%", "0.1%", "50.0%", "99.8%", ">99.9%"]


def test_a_test_image_on_classify_is_the_models_own_input(dataset):
    """Classify's 'Try a test image' scores it as the test set is scored (Evaluate): no item finding in between."""
    from fmnist.data import to_model_input
    from fmnist.imaging import as_dataset_image

    for x in dataset.x_test[:20]:
        prepared = as_dataset_image(x)
        assert np.array_equal(prepared.pixels, x) and np.array_equal(prepared.image01, to_model_input(x[np.newaxis])[0, :, :, 0])
