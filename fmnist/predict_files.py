"""`python -m fmnist predict`: image files prepared as the Classify page prepares an upload, and one
JSON-ready record per file, its answer or why it has none.

Pure side: reading and preparing the files needs no model, so a command given only unreadable
files answers without loading Keras; the prediction itself is fmnist.prediction's.
"""

from pathlib import Path

import numpy as np

from fmnist.evaluation import top_k
from fmnist.imaging import ImageError, Prepared, open_image, prepare_or_whole


def prepare_file(path: str) -> Prepared | str:
    """The file as the model receives it, or the reason it cannot be classified."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        return "it is a folder, not an image file"
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return f"it cannot be read ({e.strerror or e})"
    try:  # where no item stands out, the whole picture, as Classify does
        prepared, _ = prepare_or_whole(open_image(data))
        return prepared
    except ImageError as e:
        return str(e)


def prediction_record(path: str, probs: np.ndarray) -> dict:
    """The likeliest class and the top three, as Classify shows them."""
    (name, probability), *_ = top = top_k(probs, 3)
    return {"file": path, "class": name, "probability": round(float(probability), 6),
            "top3": [{"class": c, "probability": round(float(p), 6)} for c, p in top]}


def error_record(path: str, problem: str) -> dict:
    return {"file": path, "error": problem}
