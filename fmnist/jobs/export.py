"""A trained run's model as ONNX, LiteRT or a SavedModel (its settings' "variant"), checked in its own
runtime on 1,000 test images and kept with its model card in the run's exports/ (fmnist.export), where
the Leaderboard offers it; with "out" (the command line's --out), copied there too."""

from pathlib import Path

from fmnist.export_formats import ExportError, kept_path, variant_by_key
from fmnist.jobs.derived import Derived
from fmnist.runs import ModelFileError, Run, RunKind


class Export(Derived):
    kind = RunKind.EXPORT
    known_errors = (ExportError, ModelFileError)

    def name(self, parent_id: int, settings: dict) -> str:
        return f"{variant_by_key(settings['variant']).label} export of #{parent_id}"

    def work(self, store, run: Run, dataset, report) -> dict:
        from fmnist.export import Exporter

        variant = variant_by_key(run.settings["variant"])
        report("loading the model and the Keras model's answers", 0.05)
        card = Exporter(store, run.parent_id, dataset).export(variant, Path(run.settings["out"]) if run.settings.get("out") else None,
                                                             report=report)
        return {"check": card["check"], "file": str(kept_path(store, run.parent_id, variant))}
