"""`python -m fmnist photo-bench RUN_ID...`: how the Classify page does on photo-like pictures.

For each run: the photo-like pictures (benchmarks.photo_fixtures) per situation, how many are classified
right (as they are and averaged over small shifts) and how well the item's box is found (IoU); then
how well each measure of unusualness separates pictures unlike the data (noise, text pages, other
photos) from the run's held-out validation images (the area under the ROC curve), and which share of
each kind gets the notice at the app's threshold. Also the time to prepare a 12-megapixel photo.
Prints one JSON object per run; docs/photos.md, "Measured", keeps the figures.
"""

import io
import json
import statistics
import time

import numpy as np
from PIL import Image

from benchmarks.inside_bench import load_average
from benchmarks.photo_fixtures import SITUATIONS, encode, phone_photo, photo_like, unlike_data
from fmnist.data import load_dataset, to_model_input
from fmnist.imaging import open_image, prepare, prepare_or_whole
from fmnist.machine import cpu_name
from fmnist.outlier_check import HiddenAndOutput, calibrated_check
from fmnist.outliers import FLAGGED_SHARE, MEASURES, held_out_images, item_pieces, separation
from fmnist.prediction import load_model
from fmnist.store import open_store


def small_shifts(image01: np.ndarray) -> np.ndarray:
    """Test-time augmentation, measured here (it did not help: docs/photos.md, "Tried and not in the app"): the (28, 28) image
    and its copies moved one pixel up, down, left and right, black coming in: (5, 28, 28)."""
    padded = np.pad(image01, 1)
    return np.stack([padded[1 + dy:29 + dy, 1 + dx:29 + dx] for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))])


def box_iou(a, b) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return width * height / (area(a) + area(b) - width * height)


def found_box(prepared, image) -> tuple[float, float, float, float]:
    """The crop box in the uploaded picture's pixels."""
    width, height = image.info.get("full_size", image.size)
    left, top, right, bottom = prepared.box
    return left * width, top * height, right * width, bottom * height


def preparation_ms(data: bytes, repeats: int = 7) -> dict:
    """Median milliseconds from the file's bytes to the 28×28 (decoding, then finding the item), and those two apart."""
    decode, find = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        image = open_image(data)
        middle = time.perf_counter()
        prepare(image)
        decode.append(middle - start)
        find.append(time.perf_counter() - middle)
    total = [a + b for a, b in zip(decode, find)]
    return {"total": round(1000 * statistics.median(total), 1), "decode": round(1000 * statistics.median(decode), 1),
            "prepare": round(1000 * statistics.median(find), 1)}


def twelve_megapixels(dataset) -> dict:
    data, _ = phone_photo(dataset.x_test[0], np.random.default_rng(0), size=(4000, 3000))
    # The same photo losslessly, whole (open_image would decode the JPEG at a reduced scale): PNGs cannot be.
    png = encode(Image.open(io.BytesIO(data)).convert("RGB"), "PNG")
    return {"jpeg_ms": preparation_ms(data), "png_ms": preparation_ms(png), "jpeg_kb": len(data) // 1024}


def photo_scores(model, fixtures) -> dict:
    """Per situation: right as they are, right averaged over shifts, how many were turned upright, the mean and lowest box IoU."""
    rows = {situation: {"n": 0, "right": 0, "right_shifts": 0, "turned": 0, "iou": []} for situation in SITUATIONS}
    for fixture in fixtures:
        image = open_image(fixture.data)
        prepared, _ = prepare_or_whole(image)
        row = rows[fixture.situation]
        row["n"] += 1
        row["turned"] += int(prepared.turned != 0)
        batch = small_shifts(prepared.image01)[..., np.newaxis]
        probs = np.asarray(model.predict_on_batch(batch), np.float32)
        row["right"] += int(probs[0].argmax() == fixture.label)
        row["right_shifts"] += int(probs.mean(axis=0).argmax() == fixture.label)
        row["iou"].append(box_iou(found_box(prepared, image), fixture.box))
    for row in rows.values():
        row["iou_mean"], row["iou_min"] = round(float(np.mean(row["iou"])), 3), round(float(np.min(row["iou"])), 3)
        del row["iou"]
    return rows


def prepared_unlike(unlike) -> tuple[dict, dict]:
    """Each kind's pictures as the page prepares them (the whole picture where no item stands out);
    and for each picture whether no item stood out (the page shows the notice for those whatever the score)."""
    images, whole = {}, {}
    for kind, pictures in unlike.items():
        prepared = [prepare_or_whole(open_image(data)) for _, data in pictures]
        images[kind] = np.stack([p.image01 for p, _ in prepared])
        whole[kind] = np.array([note is not None for _, note in prepared])
    return images, whole


def scores_of(check, outputs, images01: np.ndarray) -> np.ndarray:
    if not len(images01):
        return np.zeros(0)
    features, probs = outputs(images01)
    return check.scores(probs, features)


def notice(check, scores: np.ndarray, images01: np.ndarray, no_item: np.ndarray | bool = False) -> np.ndarray:
    """Which pictures get the page's notice."""
    return check.unlike(scores, no_item, item_pieces(images01))


def measure_scores(outputs, dataset, run, unlike_images, whole, photos01) -> dict:
    """For each measure: its separation of each unlike kind from the held-out images, the shares above
    its threshold, and the shares that get the notice (above it, in too many pieces, or no item found)."""
    results = {}
    test_images = to_model_input(dataset.x_test)[..., 0]
    for measure in MEASURES:
        check = calibrated_check(outputs, dataset, run.train_limit, run.spec.val_split, measure)
        held_out = held_out_images(len(dataset.y_train), run.train_limit, run.spec.val_split)
        held = scores_of(check, outputs, to_model_input(dataset.x_train[held_out.indices])[..., 0])
        test = scores_of(check, outputs, test_images)
        photos = scores_of(check, outputs, photos01)
        row = {"threshold": round(check.threshold, 4), "pieces_limit": check.pieces_limit,
               "flagged": {"held_out": round(float((held > check.threshold).mean()), 4),
                           "test": round(float((test > check.threshold).mean()), 4),
                           "photo_like": round(float((photos > check.threshold).mean()), 4)},
               "notice_share": {"held_out": round(check.flagged_share, 4), "test": round(float(notice(check, test, test_images).mean()), 4),
                                "photo_like": round(float(notice(check, photos, photos01).mean()), 4)},
               "auc": {}, "notice": {}}
        every = []
        for kind, images in unlike_images.items():
            scores = scores_of(check, outputs, images)
            every.append(scores)
            row["auc"][kind] = round(separation(held, scores), 4)
            row["flagged"][kind] = round(float((scores > check.threshold).mean()), 4)
            row["notice"][kind] = f"{int(notice(check, scores, images, whole[kind]).sum())} of {len(scores)}"
        row["auc"]["all unlike"] = round(separation(held, np.concatenate(every)), 4)
        results[measure] = row
    return results


def run_photo_bench(run_ids: list[int], seed: int = 0) -> int:
    store, dataset = open_store(), load_dataset()
    fixtures = photo_like(dataset.x_test, dataset.y_test, seed=seed)
    unlike = unlike_data(seed)
    unlike_images, whole = prepared_unlike(unlike)
    photos01 = np.stack([prepare_or_whole(open_image(f.data))[0].image01 for f in fixtures])
    timing = twelve_megapixels(dataset)
    for run_id in run_ids:
        run = store.get(run_id)
        model = load_model(store, run_id)
        outputs = HiddenAndOutput(model)
        start = time.perf_counter()
        result = {
            "run_id": run_id, "name": run.name, "test_acc": run.test_acc, "flagged_share": FLAGGED_SHARE,
            "situations": photo_scores(model, fixtures),
            "no_item_found": {kind: f"{int(flags.sum())} of {len(flags)}" for kind, flags in whole.items()},
            "measures": measure_scores(outputs, dataset, run, unlike_images, whole, photos01),
            "twelve_megapixels": timing, "cpu": cpu_name(), "load_average": round(load_average(), 2),
        }
        result["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(result))
    return 0
