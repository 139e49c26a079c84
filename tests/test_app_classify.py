"""The Classify page through Streamlit's AppTest, with real models trained once for the module."""

import io
import os

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from benchmarks.photo_fixtures import photo_like
from fmnist.dataset import FASHION_MNIST
from fmnist.evaluation import percent
from fmnist.imaging import as_dataset_image, open_image, prepare
from fmnist.models import dense_spec
from fmnist.prediction import load_model, predict_image
from fmnist.store import RunStore
from fmnist.training import train_run
from fmnist.worker import try_start

from helpers import APP, wait_until

PAGE = "pages/classify.py"


def train(store: RunStore, spec, limit: int, dataset) -> int:
    run_id = store.create_run(spec, train_limit=limit)
    assert try_start(store, run_id, max_parallel=1)
    summary = train_run(store, run_id, dataset)
    assert summary["status"] == "finished", store.get(run_id).error
    return run_id


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset):
    """A store with a weaker run, then a better one: the default must be found, not be the first."""
    store = RunStore(tmp_path_factory.mktemp("classify") / "home")
    weaker = train(store, dense_spec([16], epochs=1), 500, dataset)
    better = train(store, dense_spec([64], epochs=2), 5000, dataset)
    assert store.get(better).test_acc > store.get(weaker).test_acc
    return store, weaker, better


@pytest.fixture
def app(trained, monkeypatch):
    store, _, _ = trained
    monkeypatch.setenv("FMNIST_HOME", str(store.home))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def shown_prediction(at) -> tuple[str, str]:
    metric = next(m for m in at.metric if m.label == "Prediction")
    return metric.value, metric.delta


def expected_prediction(store: RunStore, run_id: int, image: Image.Image | np.ndarray) -> tuple[str, str]:
    """What the library says the run's model predicts for the image (a picture, prepared as an upload is;
    or a test image's pixels, as they are), as the page should show it."""
    prepared = as_dataset_image(image) if isinstance(image, np.ndarray) else prepare(image)
    probs = predict_image(load_model(store, run_id), prepared.image01)
    return FASHION_MNIST.class_names[int(np.argmax(probs))], f"{percent(float(probs.max()))} sure"


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def dark_on_white(pixels: np.ndarray) -> Image.Image:
    page = Image.new("L", (280, 280), 255)
    page.paste(Image.fromarray(255 - pixels).resize((196, 196), Image.BICUBIC), (40, 40))
    return page


def test_without_a_model_the_page_offers_to_train_the_seed_preset(home):
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE).run()
    assert any("no trained model" in i.value for i in at.info)
    button = at.button(key="classify_train")
    # Nothing trained on this machine yet: the button promises no time measured on another CPU.
    assert "Seed D: 128-64" in button.label and "time not measured on this machine yet" in button.label
    # Build & Train is the app's default page: its URL is the root.
    assert [(link.proto.page, "Build & Train" in link.proto.label) for link in at.get("page_link")] == [("", True)]

    button.click().run()
    assert not at.exception, at.exception
    store = RunStore()
    [run] = store.list_runs()
    assert run.name == "Seed D: 128-64" and [layer.units for layer in run.spec.layers] == [128, 64]
    assert run.spec.epochs == 10 and run.train_limit is None and run.active
    assert at.get("progress"), "the page follows the training"
    # Stopped once it runs, it keeps what it learnt so far.
    wait_until(lambda: store.get(run.id).status == "running", timeout=120, message="the run to start")
    store.request_stop(run.id)
    done = wait_until(lambda: (r := store.get(run.id)).status not in ("queued", "running") and r, timeout=120, message="the run to end")
    assert done.status == "stopped", done.error
    at.run()
    assert at.selectbox(key="classify_run").value == run.id, "its model is ready to classify"


def test_the_model_picker_offers_runs_with_a_model_and_starts_on_the_best(app, trained):
    store, weaker, better = trained
    store.request_stop(store.create_run(dense_spec([32])))  # a cancelled run: no model to offer
    app.run()
    picker = app.selectbox(key="classify_run")
    assert [option.split(" ")[0] for option in picker.options] == [f"#{weaker}", f"#{better}"]
    assert picker.value == better
    assert any("Draw a clothing item" in i.value for i in app.info), "the empty canvas asks for a drawing"


def test_a_random_test_image_is_classified_next_to_its_true_label(app, trained, dataset):
    store, weaker, better = trained
    app.selectbox(key="classify_test_class").select(7).run()
    app.button(key="classify_pick").click().run()
    assert not app.exception, app.exception
    index = app.session_state["classify_test_index"]
    assert dataset.y_test[index] == 7
    true_label = next(m for m in app.metric if m.label == "True label")
    assert true_label.value == "Sneaker"
    image = dataset.x_test[index]  # classified as it is, as the test set is scored
    predicted, _ = shown_prediction(app)
    assert shown_prediction(app) == expected_prediction(store, better, image)
    verdict = "green-badge[:material/check: right]" if predicted == "Sneaker" else "red-badge[:material/close: wrong]"
    assert any(verdict in m.value for m in app.markdown)

    app.selectbox(key="classify_run").select(weaker).run()
    assert app.session_state["classify_test_index"] == index, "the picked image stays"
    assert shown_prediction(app) == expected_prediction(store, weaker, image)


def test_an_uploaded_picture_is_classified(app, trained, dataset):
    store, _, better = trained
    image = dark_on_white(dataset.x_test[0])
    app.file_uploader(key="classify_upload").upload("boot.png", encode(image), "image/png").run()
    assert not app.exception and not app.error
    assert shown_prediction(app) == expected_prediction(store, better, image)
    assert [image.captions for image in app.image] == [["boot.png · 280×280 L"], ["Item found"], ["The crop, light on black (inverted)"],
                                                       ["What the model sees: 28×28"]]


def transparent(gray: Image.Image) -> Image.Image:
    """The dark item on a transparent background that hides black."""
    item = Image.fromarray(255 - np.asarray(gray))
    return Image.merge("RGBA", [gray, gray, gray, item.point(lambda v: 255 if v > 0 else 0)])


ODD_UPLOADS = {
    "16-bit.png": lambda page: encode(Image.fromarray(np.asarray(page, dtype=np.uint16) * 257)),
    "cmyk.jpg": lambda page: encode(page.convert("CMYK"), "JPEG"),
    "animated.gif": lambda page: encode(page.convert("P"), "GIF", save_all=True, append_images=[Image.new("P", page.size, 255)]),
    "transparent.png": lambda page: encode(transparent(page)),
}


@pytest.mark.parametrize("name", ODD_UPLOADS)
def test_odd_but_valid_uploads_are_shown_and_classified(app, trained, dataset, name):
    store, _, better = trained
    content = ODD_UPLOADS[name](dark_on_white(dataset.x_test[0]))
    app.file_uploader(key="classify_upload").upload(name, content, "application/octet-stream").run()
    assert not app.exception and not app.error, app.exception or app.error
    assert shown_prediction(app) == expected_prediction(store, better, Image.open(io.BytesIO(content)))
    assert len(app.image) == 4, "the original, the item found, the crop and what the model sees"


BAD_UPLOADS = {
    "notes.png": (b"shopping list: socks, a coat", "not an image"),
    "empty.png": (b"", "empty"),
    "blank.png": (encode(Image.new("RGB", (300, 300), "white")), None),
}


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_a_bad_upload_gives_a_message_and_keeps_the_page(app, name):
    content, error = BAD_UPLOADS[name]
    app.button(key="classify_pick").click().run()  # something on the page that must survive
    before = shown_prediction(app)
    app.file_uploader(key="classify_upload").upload(name, content, "image/png").run()
    assert not app.exception, app.exception
    if error:
        assert any(name in e.value and error in e.value for e in app.error), [e.value for e in app.error]
    else:
        assert any("only background" in i.value for i in app.info), "a blank picture asks for an item"
    assert [m.value for m in app.metric if m.label == "Prediction"] == [before[0]], "nothing else is lost"


def test_a_missing_or_corrupt_model_file_is_a_clear_message(app, trained):
    store, weaker, _ = trained
    path = store.model_path(weaker)
    kept = path.with_name("kept.keras")
    os.replace(path, kept)
    try:
        app.selectbox(key="classify_run").select(weaker).run()
        assert not app.exception, app.exception
        assert any("cannot be loaded" in e.value and "missing" in e.value for e in app.error)
        assert not app.tabs, "no classifying without a model"

        path.write_bytes(b"not a keras file")
        app.run()
        assert not app.exception, app.exception
        assert any("cannot be loaded" in e.value and "unreadable" in e.value for e in app.error)
    finally:
        os.replace(kept, path)
    app.run()
    assert not app.error and app.tabs, "the restored file loads again"


def test_the_warm_up_loads_the_best_model_before_the_first_visit(trained, monkeypatch):
    """What the server does in the background once its first page is drawn (server.warm_up_in_background):
    the first visit to Classify then finds the best model loaded."""
    import fmnist.prediction
    from fmnist.app import caches, server

    store, _, better = trained
    monkeypatch.setenv("FMNIST_HOME", str(store.home))
    caches.cached_model.clear()
    server.warm_up()
    loads = []
    monkeypatch.setattr(fmnist.prediction, "load_model", lambda store, run_id: loads.append(run_id))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="classify_run").value == better
    assert loads == [], "Classify loaded the model again"



def test_with_no_model_yet_the_warm_up_leaves_tensorflow_unloaded(home):
    """A new server with nothing trained: Classify has no model to load, so the warm-up loads the
    dataset only, not TensorFlow (seconds of a core at every start)."""
    import subprocess
    import sys

    code = ("import sys; from fmnist.app import caches, server; server.warm_up(); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules), caches.get_dataset().x_test.shape)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "[] (10000, 28, 28)"

# --- photos: the steps, the corrections by hand, the unusual-picture notice ---


def upload(app, name: str, content: bytes):
    app.file_uploader(key="classify_upload").upload(name, content, "application/octet-stream").run()
    assert not app.exception, "\n".join(app.exception[0].stack_trace)
    return app


def expected(store: RunStore, run_id: int, prepared) -> tuple[str, str]:
    probs = predict_image(load_model(store, run_id), prepared.image01)
    return FASHION_MNIST.class_names[int(np.argmax(probs))], f"{percent(float(probs.max()))} sure"


def notices(app) -> list[str]:
    return [w.value for w in app.warning if "does not look like the training images" in w.value]


def test_a_phone_photos_turned_coat_is_turned_upright_and_the_crop_says_so(app, trained, dataset):
    store, _, better = trained
    photo = photo_like(dataset.x_test, dataset.y_test, per_situation=5, seed=0)[4]  # a coat lying turned 10° on a lit floor
    upload(app, "coat.jpg", photo.data)
    prepared = prepare(open_image(photo.data))
    assert prepared.turned == pytest.approx(-10.4, abs=1.5)
    assert app.image[2].captions == [f"The crop, light on black (inverted, turned {abs(prepared.turned):.0f}° clockwise to stand upright)"]
    assert shown_prediction(app) == expected(store, better, prepared)


def test_a_phone_photo_shows_its_steps_and_the_crop_and_colours_can_be_set_by_hand(app, trained, dataset):
    store, _, better = trained
    photo = photo_like(dataset.x_test, dataset.y_test, per_situation=1, seed=0)[0]
    upload(app, "floor.jpg", photo.data)
    image = open_image(photo.data)
    assert shown_prediction(app) == expected(store, better, prepare(image))
    assert [i.captions[0].split(" · ")[0] for i in app.image] == ["floor.jpg", "Item found", "The crop, light on black (inverted)",
                                                                  "What the model sees: 28×28"]
    assert "600×800 RGB" in app.image[0].captions[0] or "800×600 RGB" in app.image[0].captions[0], "the size as uploaded"

    found = app.session_state["classify_found_box"]
    app.toggle(key="classify_manual_crop").set_value(True).run()
    assert app.slider(key="classify_crop_x").value == (int(100 * found[0]), int(np.ceil(100 * found[2]))), "the sliders start at the box found"
    app.slider(key="classify_crop_x").set_value((0, 100)).run()
    app.slider(key="classify_crop_y").set_value((0, 50)).run()
    assert not app.exception, app.exception
    assert shown_prediction(app) == expected(store, better, prepare(image, (0.0, 0.0, 1.0, 0.5)))
    assert app.image[1].captions == ["Item found (the crop box is yours)"]

    app.radio(key="classify_invert").set_value("keep").run()  # a dark item on a light floor, not inverted: only the floor's folds are light
    assert not app.exception, app.exception
    assert app.image[2].captions == ["The crop, light on black (not inverted)"]
    assert shown_prediction(app) == expected(store, better, prepare(image, (0.0, 0.0, 1.0, 0.5), invert=False))

    upload(app, "boot.png", encode(dark_on_white(dataset.x_test[0])))  # a new picture starts with the automatic choices
    assert app.toggle(key="classify_manual_crop").value is False and app.radio(key="classify_invert").value == "auto"
    assert shown_prediction(app) == expected_prediction(store, better, dark_on_white(dataset.x_test[0]))


def test_a_picture_without_an_item_is_classified_whole_with_the_notice(app, trained):
    store, _, better = trained
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8))
    upload(app, "noise.png", encode(noise))
    assert any("whole picture is classified" in i.value for i in app.info), [i.value for i in app.info]
    assert app.expander[0].proto.expanded, "the crop by hand is offered"
    assert shown_prediction(app) == expected(store, better, prepare(noise, (0.0, 0.0, 1.0, 1.0)))
    [notice] = notices(app)
    assert "held-out images (its validation split)" in notice and "above" in notice, "the measure and its threshold are stated"
    assert " pieces, as it does for " in notice and "for their pieces" in notice, "and the pieces' limit"


def test_a_test_image_gets_no_notice(app, dataset):
    upload(app, "boot.png", encode(dark_on_white(dataset.x_test[0])))
    assert notices(app) == []
    assert any(c.value.startswith("Looks like the training images.") for c in app.caption)


def test_a_picture_a_thousand_times_wider_than_high_shows_its_steps(app):
    """Issue 26 #8: a 10000×10 upload made an empty mask image (a traceback with the server's paths)."""
    wide = Image.new("L", (10_000, 10), 255)
    wide.paste(0, (4000, 0, 6000, 10))
    upload(app, "wide.png", encode(wide))
    assert app.image[0].captions == ["wide.png · 10000×10 L"], [i.captions for i in app.image]
    assert [m for m in app.metric if m.label == "Prediction"], "it is classified, as `predict` does"


def test_an_upload_is_decoded_once_however_often_the_page_reruns(app, monkeypatch, dataset):
    import fmnist.imaging

    calls = []
    decode = fmnist.imaging.open_image
    monkeypatch.setattr(fmnist.imaging, "open_image", lambda data: calls.append(len(data)) or decode(data))
    content = encode(dark_on_white(dataset.x_test[3]), "PNG") + b"\0" * (len(calls) + 7)  # bytes no other test uploads
    upload(app, "shirt.png", content)
    app.radio(key="classify_invert").set_value("invert").run()
    app.run()
    assert not app.exception, app.exception
    assert calls == [len(content)], "decoded on the first run only"
    bad = b"not a picture at all, from this test"
    upload(app, "bad.png", bad)
    app.run()
    assert calls == [len(content), len(bad)], "a file that cannot be used is not decoded again either"
