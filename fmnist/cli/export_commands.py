"""A run's model outside the app: `export` (ONNX, LiteRT, SavedModel, each checked in its own runtime)
and `predict` (image files through it, as the Classify page does)."""

import json
import sys

from fmnist import services
from fmnist.services import Actor
from fmnist.store import open_store
from fmnist.worker import this_process


def add_export(sub) -> None:
    export = sub.add_parser("export", help="a run's model as ONNX, LiteRT or SavedModel, checked against Keras and kept with the run",
                            description="Export a run's model with Keras' model.export, run the export in its own runtime on the first "
                                        "1,000 test images beside the Keras model, and keep it with its model card in the run's folder "
                                        "(exports/), where the Leaderboard offers it too.")
    export.add_argument("run_id", type=int)
    export.add_argument("--format", required=True, choices=("onnx", "litert", "saved_model"))
    export.add_argument("--quantize", choices=("float16", "int8"),
                        help="LiteRT only: float16 weights, or int8 weights and activations calibrated on training images")
    export.add_argument("--out", metavar="PATH", help="also copy the export (a folder for saved_model) and its card to PATH")
    export.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    """A run's model as ONNX, LiteRT or a SavedModel, checked on 1,000 test images in its own runtime and
    kept with the run with its model card (--out: copied there too): a run of kind export, queued and
    made in this process (the Leaderboard's in a process of its own)."""
    from fmnist.cli.train_commands import train_here
    from fmnist.export_formats import card_paths, check_out_path, export_problem, kept_path, variant_for
    from fmnist.model_card import check_line, read_card
    from fmnist.runs import RunStatus

    variant = variant_for(args.format, args.quantize)
    store = open_store()
    problem = export_problem(store, store.get(args.run_id), args.run_id)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out = check_out_path(args.out, variant, args.run_id) if args.out else None
    export_id = services.export(store, Actor.local(), args.run_id, variant, out=out, process=this_process())
    train_here(store, export_id)
    export = store.get(export_id)
    if export.status != RunStatus.FINISHED:
        print(f"error: {export.error or f'the export {export.status}'}", file=sys.stderr)
        return 2
    kept = kept_path(store, args.run_id, variant)
    card = read_card(card_paths(out or kept)[0])
    print(f"{variant.label} export of run {args.run_id}: {out or kept}, its model card beside it. Checked on "
          + check_line(card["check"]) + ".", file=sys.stderr)
    print(json.dumps({"run_id": args.run_id, "format": variant.key, "file": str(kept), "out": str(out) if out else None,
                      "card": str(card_paths(out or kept)[0]), "export_run": export_id, **card["check"]}))
    return 0


def add_predict(sub) -> None:
    predict = sub.add_parser("predict", help="classify image files with a run's model, as the Classify page does: a JSON line per file")
    predict.add_argument("run_id", type=int)
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    """Image files through a run's model as Classify does it: one JSON line per file."""
    from fmnist.export_formats import export_problem
    from fmnist.predict_files import error_record, prediction_record, prepare_file
    from fmnist.runs import ModelFileError

    store = open_store()
    problem = export_problem(store, store.get(args.run_id), args.run_id)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    prepared = [prepare_file(path) for path in args.images]
    model = None
    if not all(isinstance(item, str) for item in prepared):  # Keras loads only when some file can be classified
        from fmnist.keras_start import start_keras

        start_keras("tensorflow")  # the app's own backend: the same predictions as the Classify page
        from fmnist.prediction import load_model, predict_image

        try:
            model = load_model(store, args.run_id)
        except ModelFileError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    for path, item in zip(args.images, prepared):
        record = error_record(path, item) if isinstance(item, str) else prediction_record(path, predict_image(model, item.image01))
        print(json.dumps(record), flush=True)
    return 0 if model is not None else 1
