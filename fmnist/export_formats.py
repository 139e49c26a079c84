"""The ways a run's model leaves the app, and what is kept of them: ONNX, LiteRT (float32, float16
or int8) and TensorFlow's SavedModel, made by fmnist.export (the Keras side) into the run's folder
with a model card beside each (fmnist.model_card).

Pure side: the formats, where each export is kept, what can be exported before anything loads
Keras, the cards read back, the zip people download, and the export runs made of them. An export is
a run of its own, of kind export (fmnist.jobs.export), queued and made in its own process, so the
page never loads TensorFlow or a converter itself.
"""

import io
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fmnist.leaderboard import model_file_problem
from fmnist.model_card import read_card
from fmnist.runs import Run, RunKind
from fmnist.store import RunStore

EXPORTS = "exports"
FORMATS = ("onnx", "litert", "saved_model")
QUANTIZE = ("float16", "int8")


class ExportError(RuntimeError):
    """An export cannot be made or failed its check; the message says why (naming the layer or op a converter refused)."""


@dataclass(frozen=True)
class Variant:
    format: str  # as the command line names it: onnx, litert, saved_model
    quantize: str | None = None  # LiteRT only: float16 or int8

    @property
    def key(self) -> str:
        return f"{self.format}-{self.quantize}" if self.quantize else self.format

    @property
    def label(self) -> str:
        name = {"onnx": "ONNX", "litert": "LiteRT", "saved_model": "SavedModel"}[self.format]
        return f"{name} {self.quantize}" if self.quantize else name

    @property
    def runtime(self) -> str:
        return {"onnx": "onnxruntime", "litert": "the LiteRT interpreter (ai-edge-litert)", "saved_model": "TensorFlow"}[self.format]

    @property
    def packages(self) -> tuple[str, ...]:
        """What converts it and what runs its check, for the card."""
        return {"onnx": ("tf2onnx", "onnx", "onnxruntime"), "litert": ("ai-edge-litert",), "saved_model": ()}[self.format]

    def file_name(self, run_id: int) -> str:
        """The model's file (a folder for a SavedModel), named for people who download it."""
        tail = f"-{self.quantize}" if self.quantize else ""
        return {"onnx": f"run-{run_id}.onnx", "litert": f"run-{run_id}{tail}.tflite", "saved_model": f"run-{run_id}-saved_model"}[self.format]


VARIANTS = (Variant("onnx"), Variant("litert"), Variant("litert", "float16"), Variant("litert", "int8"), Variant("saved_model"))


def variant_for(format: str, quantize: str | None = None) -> Variant:
    """ValueError for an unknown format or a quantisation the format does not have."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ValueError(f"unknown quantisation {quantize!r}: one of {', '.join(QUANTIZE)}")
    if quantize and format != "litert":
        raise ValueError(f"--quantize {quantize} is for LiteRT (--format litert); ONNX and SavedModel exports stay float32")
    return Variant(format, quantize)


def variant_by_key(key: str) -> Variant:
    """ValueError for a key no variant has."""
    found = next((variant for variant in VARIANTS if variant.key == key), None)
    if found is None:
        raise ValueError(f"unknown export {key!r}: one of {', '.join(variant.key for variant in VARIANTS)}")
    return found


# --- where exports are kept ---

def exports_dir(store: RunStore, run_id: int) -> Path:
    return store.run_dir(run_id) / EXPORTS


def card_paths(model_path: Path) -> tuple[Path, Path]:
    """The card beside a model file or folder: (JSON for programs, Markdown for people)."""
    return model_path.with_name(model_path.name + ".card.json"), model_path.with_name(model_path.name + ".card.md")


def kept_path(store: RunStore, run_id: int, variant: Variant) -> Path:
    return exports_dir(store, run_id) / variant.file_name(run_id)


def model_version(store: RunStore, run_id: int) -> int:
    """The model file's modification time: an export of another version of it is stale."""
    path = store.model_path(run_id)
    return path.stat().st_mtime_ns if path.is_file() else 0


def kept_exports(store: RunStore, run_id: int) -> dict[str, dict]:
    """The run's checked exports of its current model: variant key -> card. The card is written
    last, so one without its model file (or of an older model) is not shown."""
    found, version = {}, model_version(store, run_id)
    for variant in VARIANTS:
        path = kept_path(store, run_id, variant)
        card = read_card(card_paths(path)[0])
        if card and path.exists() and card.get("model_version") == version:
            found[variant.key] = card
    return found


def export_problem(store: RunStore, run: Run | None, run_id: int) -> str | None:
    """Why the run's model cannot be exported (or used by predict), found without loading Keras; None if it can."""
    if run is None:
        return f"there is no run {run_id}"
    if run.kind == RunKind.TRIAL:
        return f"run {run_id} is a search's trial, which keeps no model: train the best one from the Search page"
    if run.active:
        return f"run {run_id} is {run.status}: its model can be used once its training ends"
    if not run.status.has_model:
        return f"run {run_id} has no model: it {run.status}"
    return model_file_problem(store, run_id)


def check_out_path(out: str | os.PathLike, variant: Variant, run_id: int) -> Path:
    """Where --out puts a copy, checked before the export starts: ValueError saying why it cannot be written."""
    path = Path(out).expanduser().resolve()
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"--out {out}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: the folder {parent} cannot be written to")
    try:  # really: root passes os.access on a read-only disk or in /proc, and would convert for nothing
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise ValueError(f"--out {out}: the folder {parent} cannot be written to ({e.strerror or e})") from None
    if variant.format == "saved_model":
        if path.exists() and not (path.is_dir() and (path / "saved_model.pb").is_file()):
            raise ValueError(f"--out {out}: it exists and is not a SavedModel folder; a SavedModel is a folder, and this one would be replaced")
    elif path.is_dir():
        raise ValueError(f"--out {out}: it is a folder; give a file's path, e.g. {path / variant.file_name(run_id)}")
    return path


def place(source: Path, destination: Path) -> None:
    """Move a finished file or folder into place in one step, so nobody sees half of it; an older
    one there is replaced (a folder by moving it aside first, then deleting it)."""
    if source.is_dir():
        old = destination.with_name(f".old-{os.getpid()}-{destination.name}")
        if destination.exists():
            os.replace(destination, old)
        os.replace(source, destination)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, destination)


def copy_into_place(source: Path, destination: Path) -> None:
    """Copy a file or folder beside its destination under a temporary name, then place it:
    a copy that fails (a full disk) leaves nothing behind."""
    temporary = Path(tempfile.mkdtemp(prefix=".export-", dir=destination.parent))
    try:
        copy = temporary / destination.name
        if source.is_dir():
            shutil.copytree(source, copy)
        else:
            shutil.copyfile(source, copy)
        place(copy, destination)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


# --- what the Leaderboard does with them ---

def export_zip(store: RunStore, run_id: int, variant: Variant) -> bytes:
    """The export with its card, zipped for one download (a SavedModel is a folder)."""
    path = kept_path(store, run_id, variant)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in [*files, *card_paths(path)]:
            archive.write(file, file.relative_to(path.parent))
    return buffer.getvalue()


def latest_exports(store: RunStore, run_id: int) -> dict[str, Run]:
    """The run's newest export run of each variant (key -> run): queued, running or ended, with its error if it failed."""
    return {run.settings.get("variant"): run for run in store.children(run_id) if run.kind == RunKind.EXPORT}


def exports_table(cards: dict[str, dict]) -> pd.DataFrame:
    """One row per kept export: its check beside the Keras model's, for the page."""
    rows = [{
        "format": card["format_label"],
        "accuracy": card["check"]["accuracy"],
        "Keras": card["check"]["keras_accuracy"],
        "drop (points)": 100 * card["check"]["accuracy_drop"],
        "same class": card["check"]["argmax_agreement"],
        "max prob. diff.": card["check"]["max_prob_diff"],
        "bytes": card["check"]["size_bytes"],
        "ms/image": card["check"]["ms_per_image"],
        "Keras ms/image": card["check"]["keras_ms_per_image"],
    } for card in cards.values()]
    return pd.DataFrame(rows)
