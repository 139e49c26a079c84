"""The flags several commands share: counts, layer widths, and a model spec's fields."""

import argparse
from dataclasses import replace

from fmnist.models import ACTIVATIONS, LR_SCHEDULES, PRESETS, ConvBlock, DenseLayer, ModelSpec, dense_spec, validate

# --mixed-precision's words and the spec's values.
PRECISION_FLAGS = {"auto": "auto", "on": True, "off": False}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def layer_widths(text: str) -> list[int]:
    try:
        return [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"layers are comma-separated widths like 128,64, got {text!r}") from None


def add_spec_flags(parser: argparse.ArgumentParser) -> None:
    """Every spec field; a flag left out keeps the preset's value (or the default stack 128,64's)."""
    defaults = ModelSpec(layers=())
    parser.add_argument("--preset", choices=list(PRESETS), help="start from a preset; the flags you give change it")
    parser.add_argument("--layers", type=layer_widths, help="hidden layer widths, e.g. 128,64 (default 128,64)")
    parser.add_argument("--activation", choices=ACTIVATIONS, help="activation of every hidden layer (default relu)")
    parser.add_argument("--dropout", type=float, help="dropout after every hidden layer, 0 to <1 (default 0)")
    parser.add_argument("--batch-norm", action="store_true", help="batch normalisation in every hidden layer")
    parser.add_argument("--conv", type=layer_widths, help="conv blocks' filters before the dense stack, e.g. 32,64 (3×3, 2×2 max-pooling)")
    parser.add_argument("--conv-dropout", type=float, default=0.0, help="dropout after every conv block (default 0)")
    parser.add_argument("--conv-batch-norm", action="store_true", help="batch normalisation in every conv block")
    parser.add_argument("--augment", action="store_true", help="random shifts and left-right flips while training")
    parser.add_argument("--mixed-precision", nargs="?", const="on", choices=tuple(PRECISION_FLAGS),
                        help="compute in bfloat16: on (the flag alone), off (float32), or auto, the default: bfloat16 on a GPU, "
                             "and for conv blocks on a CPU with bfloat16 instructions (AMX, AVX512-BF16), float32 elsewhere")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, help=f"default {defaults.lr_schedule}")
    parser.add_argument("--epochs", type=int, help=f"default {defaults.epochs}")
    parser.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    parser.add_argument("--lr", type=float, help=f"Adam learning rate (default {defaults.learning_rate})")
    parser.add_argument("--val-split", type=float, help=f"fraction held out for validation (default {defaults.val_split})")
    parser.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    parser.add_argument("--early-stopping", action="store_true", help="stop when validation loss stops improving")
    parser.add_argument("--patience", type=int, help=f"epochs without improvement before early stopping (default {defaults.patience})")
    parser.add_argument("--checkpoint", action="store_true", help="keep and use the weights of the best validation epoch")


def spec_from_args(args) -> ModelSpec:
    spec = PRESETS[args.preset] if args.preset else dense_spec([128, 64])
    if args.layers or args.activation or args.dropout is not None or args.batch_norm:
        like = spec.layers[0] if spec.layers else DenseLayer(128)
        layers = tuple(
            DenseLayer(width, args.activation or like.activation, like.dropout if args.dropout is None else args.dropout,
                       args.batch_norm or like.batch_norm)
            for width in args.layers or [layer.units for layer in spec.layers]
        )
        spec = replace(spec, layers=layers)
    if args.conv is not None:
        spec = replace(spec, conv=tuple(ConvBlock(filters, dropout=args.conv_dropout, batch_norm=args.conv_batch_norm) for filters in args.conv))
    values = {"lr_schedule": args.lr_schedule, "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
              "val_split": args.val_split, "seed": args.seed, "patience": args.patience,
              "mixed_precision": PRECISION_FLAGS.get(args.mixed_precision)}
    switches = {"augment": args.augment, "early_stopping": args.early_stopping, "checkpoint": args.checkpoint}
    changes = {name: value for name, value in values.items() if value is not None} | {name: True for name, on in switches.items() if on}
    return validate(replace(spec, **changes))
