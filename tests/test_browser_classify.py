"""The Classify page in a real browser: Debian's Chromium against `streamlit run` on 127.0.0.1."""

import base64
import io
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks.photo_fixtures import photo_like
from fmnist.data import load_dataset
from fmnist.dataset import FASHION_MNIST
from fmnist.imaging import open_image, prepare, prepare_or_whole
from fmnist.prediction import load_model, predict_image
from fmnist.store import RunStore

from browser import CHROMIUM, app_idle, free_port, screenshot, start_streamlit
from helpers import run_cli, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (./setup.sh --test)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose store holds one small trained model, trained as a person would."""
    home = tmp_path_factory.mktemp("browser-classify") / "home"
    trained = run_cli("train", "--layers", "64", "--epochs", "2", "--limit", "5000", env={"FMNIST_HOME": str(home)})
    assert trained.returncode == 0, trained.stderr[-2000:]
    port = free_port()
    process = start_streamlit(home, port)
    yield f"http://127.0.0.1:{port}", home
    process.terminate()
    process.wait(timeout=20)


def open_classify(browser, url):
    """The app in a new session, then its Classify page as a person reaches it: from the sidebar."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    page.get_by_role("heading", name="Build & Train").wait_for(timeout=30000)
    page.get_by_test_id("stSidebarNav").get_by_text("Classify").click()
    page.get_by_role("heading", name="Classify").wait_for(timeout=30000)
    return page


def open_tab(page, name: str):
    """The tab's panel (a tab once opened stays in the page, hidden while another is shown)."""
    page.get_by_role("tab", name=name).click()
    panel = page.get_by_test_id("stTabPanel").filter(visible=True)
    panel.wait_for()
    return panel


def shown_image(panel, caption: str):
    return panel.get_by_test_id("stImageContainer").filter(has_text=caption).locator("img")


def shown_prediction(panel) -> str | None:
    value = panel.get_by_test_id("stMetric").filter(has_text="Prediction").get_by_test_id("stMetricValue")
    return value.inner_text() if value.count() else None


def wait_for_prediction(panel, expected):
    """Every stroke or upload reruns the page, so an earlier prediction may show for a moment.
    expected() is asked again each time: the canvas may still be committing the last stroke."""
    wait_until(lambda: shown_prediction(panel) == expected(), timeout=60, every=0.25, message="the page's prediction to match the library's")
    app_idle(panel.page)


def prediction_gone(panel, screenshot_name: str) -> None:
    """No prediction is shown (an earlier one fades out when the rerun ends); then a screenshot."""
    panel.get_by_test_id("stMetric").wait_for(state="detached", timeout=60000)
    app_idle(panel.page)
    screenshot(panel.page, screenshot_name)


def non_black(image) -> float:
    """The share of pixels that are not black in a shown image, read back from the browser once it has loaded."""
    image.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=30000)
    return image.evaluate("""img => {
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
        let lit = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] > 0) lit++;
        return lit / (data.length / 4);
    }""")


def stroke(page, box, points):
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
    page.mouse.up()


def drawing(panel) -> bytes:
    """The strokes as the browser holds them (on a transparent layer; the black is drawn beneath)."""
    data_url = panel.locator("canvas.dc-canvas.lower-canvas").evaluate("canvas => canvas.toDataURL('image/png')")
    return base64.b64decode(data_url.split(",", 1)[1])


def server_model(home):
    """The server's one model, loaded here too."""
    [run] = RunStore(home).list_runs()
    return load_model(RunStore(home), run.id)


def expected_class(model, content: bytes) -> str:
    """What the library predicts for the image."""
    probs = predict_image(model, prepare(open_image(content)).image01)
    return FASHION_MNIST.class_names[int(np.argmax(probs))]


def test_drawing_shows_what_the_model_sees_and_its_prediction(server, browser):
    url, home = server
    page = open_classify(browser, url)
    panel = open_tab(page, "Draw")
    panel.get_by_text("Draw a clothing item on the black canvas").wait_for(timeout=30000)
    canvas = panel.locator("canvas.upper-canvas")
    box = canvas.bounding_box()
    # Trousers: a waistband and two legs.
    stroke(page, box, [(80, 40), (200, 40)])
    stroke(page, box, [(90, 40), (85, 250)])
    stroke(page, box, [(190, 40), (195, 250)])

    model = server_model(home)
    wait_for_prediction(panel, lambda: expected_class(model, drawing(panel)))
    assert 0.05 < non_black(shown_image(panel, "What the model sees")) < 0.8, "the strokes, not an empty or a white frame"
    screenshot(page, "classify-draw")

    page.get_by_role("button", name="Reset canvas & history").click()
    panel.get_by_text("there is only background").wait_for(timeout=60000)
    prediction_gone(panel, "classify-draw-cleared")  # an empty canvas gets a hint, not a prediction


def test_uploads_a_photo_and_a_file_that_is_not_an_image(server, browser):
    url, home = server
    page = open_classify(browser, url)
    panel = open_tab(page, "Upload")
    boot = load_dataset().x_test[0]
    photo = Image.new("L", (400, 300), 255)
    photo.paste(Image.fromarray(255 - boot).resize((250, 250), Image.BICUBIC), (100, 30))
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    upload = panel.locator("input[type=file]")

    upload.set_input_files(files=[{"name": "boot.png", "mimeType": "image/png", "buffer": buffer.getvalue()}])
    model = server_model(home)
    wait_for_prediction(panel, lambda: expected_class(model, buffer.getvalue()))
    assert non_black(shown_image(panel, "What the model sees")) > 0.2
    screenshot(page, "classify-upload")

    upload.set_input_files(files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"shopping list: socks, a coat"}])
    panel.get_by_text("notes.png cannot be used").wait_for(timeout=60000)
    assert panel.get_by_text("This file is not an image").is_visible()
    prediction_gone(panel, "classify-upload-error")


def test_uploads_a_phone_photo_and_sees_each_step(server, browser):
    url, home = server
    page = open_classify(browser, url)
    panel = open_tab(page, "Upload")
    photo = photo_like(load_dataset().x_test, load_dataset().y_test, per_situation=1, seed=0)[0]  # a T-shirt on a lit floor, JPEG
    panel.locator("input[type=file]").set_input_files(files=[{"name": "floor.jpg", "mimeType": "image/jpeg", "buffer": photo.data}])
    model = server_model(home)
    expected = FASHION_MNIST.class_names[int(np.argmax(predict_image(model, prepare_or_whole(open_image(photo.data))[0].image01)))]
    wait_for_prediction(panel, lambda: expected)
    for caption in ("floor.jpg", "Item found", "The crop", "What the model sees"):
        shown_image(panel, caption).wait_for(timeout=30000)  # each step's image, once it has loaded
    # The item, not the lit floor: the mask covers a part of the frame, the 28×28 is an item on black.
    assert 0.05 < non_black(shown_image(panel, "Item found")) < 0.5
    assert 0.2 < non_black(shown_image(panel, "What the model sees")) < 0.9
    panel.get_by_text("Correct the crop or the colours").click()
    panel.get_by_text("Set the crop box by hand").wait_for(timeout=30000)
    screenshot(page, "classify-photo-steps")


def test_a_random_test_image_next_to_its_true_label(server, browser):
    url, _ = server
    page = open_classify(browser, url)
    panel = open_tab(page, "Try a test image")
    # The page's first run loads TensorFlow and the model: on a busy machine that takes a while.
    panel.get_by_role("button", name="Pick a random test image").click(timeout=90000)
    true_label = panel.get_by_test_id("stMetric").filter(has_text="True label").get_by_test_id("stMetricValue")
    true_label.wait_for(timeout=60000)
    app_idle(page)
    assert true_label.inner_text() == FASHION_MNIST.class_names[0], "the first class is chosen at first"
    assert shown_prediction(panel) in FASHION_MNIST.class_names
    original, seen = non_black(shown_image(panel, "Test image #")), non_black(shown_image(panel, "What the model sees"))
    assert original > 0.2 and abs(seen - original) < 0.01, "a test image reaches the model as it is, as the test set is scored"
    screenshot(page, "classify-test-image")
