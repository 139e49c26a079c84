"""Optuna searches from the command line: `search` (new, resumed, or its bench)."""

import argparse
import json
import sys
from dataclasses import replace

from fmnist import services
from fmnist.cli.args import positive_int
from fmnist.cli.train_commands import train_here
from fmnist.jobs.process import exit_code
from fmnist.services import Actor
from fmnist.store import open_store
from fmnist.worker import this_process


def range_of(kind):
    """A command-line range 'low,high' as a (low, high) tuple of `kind`."""
    def parse(text: str):
        try:
            low, high = (kind(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"a range low,high like 1,4, got {text!r}") from None
        return (low, high)
    return parse


def choices_of(kind):
    def parse(text: str):
        try:
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"comma-separated values, got {text!r}") from None
    return parse


def yes_no(text: str) -> bool:
    if text.strip().lower() not in ("yes", "no"):
        raise ValueError(text)
    return text.strip().lower() == "yes"


def add_search(sub) -> None:
    search = sub.add_parser(
        "search", help="let Optuna search stacks (pruned from their validation curves); a line per trial, then JSON",
        description="Search dense (and optionally conv) stacks with Optuna's TPE sampler and median pruner. Trials train on "
                    "the first --limit training images and are compared on validation accuracy only; train the best one "
                    "with `python -m fmnist train` (its settings are in the final JSON line's best_spec) to score it on the test set.")
    search.add_argument("--trials", type=positive_int, help="at most this many trials (default 40)")
    search.add_argument("--minutes", type=float, help="at most this many minutes (default 10)")
    search.add_argument("--no-minutes", action="store_true", help="no time limit: stop after --trials")
    search.add_argument("--epochs", type=positive_int, help="epochs per trial (default 6)")
    search.add_argument("--limit", type=positive_int, help="training images per trial (default 20000)")
    search.add_argument("--val-split", type=float, help="validation share of those images (default 0.1)")
    search.add_argument("--seed", type=int, help="the sampler's and every trial's seed (default 0)")
    search.add_argument("--layers", type=range_of(int), help="number of dense layers, low,high (default 1,4)")
    search.add_argument("--width", type=range_of(int), help="each layer's width, low,high, log scale (default 32,1024)")
    search.add_argument("--activations", type=choices_of(str), help="default relu,gelu,tanh")
    search.add_argument("--dropout", type=range_of(float), help="low,high in steps of 0.05 (default 0,0.4)")
    search.add_argument("--batch-norm", type=choices_of(yes_no), help="yes, no or yes,no (default)")
    search.add_argument("--lr", type=range_of(float), help="Adam's learning rate, low,high, log scale (default 0.0003,0.003)")
    search.add_argument("--batch-sizes", type=choices_of(int), help="default 32,64,128,256")
    search.add_argument("--lr-schedules", type=choices_of(str), help="constant, cosine or constant,cosine (default cosine)")
    search.add_argument("--conv", type=range_of(int), help="conv blocks before the dense layers, low,high (default 0,0)")
    search.add_argument("--filters", type=choices_of(int), help="each conv block's filters (default 16,32,64)")
    search.add_argument("--name", help="a name for the search")
    search.add_argument("--resume", type=int, metavar="SEARCH_ID", help="go on with an ended search (--trials/--minutes: a new budget)")
    search.add_argument("--bench", action="store_true",
                        help="measure the default search (--minutes to shorten it): its best retrained and tested, pruning's savings, overhead")
    search.set_defaults(func=cmd_search)


def cmd_search(args) -> int:
    from fmnist.search_space import SearchSpace, describe_size, validate_space

    if args.bench:
        from benchmarks.search_bench import run_search_bench

        return run_search_bench(args)

    store = open_store()
    if args.resume is not None:
        services.resume_search(store, Actor.local(), args.resume, trials=args.trials, minutes=args.minutes, process=this_process())
        search_id = args.resume
    else:
        defaults = SearchSpace()
        values = {
            "layers": args.layers, "width": args.width, "activations": args.activations, "dropout": args.dropout,
            "batch_norm": args.batch_norm, "learning_rate": args.lr, "batch_sizes": args.batch_sizes, "conv_blocks": args.conv,
            "filters": args.filters, "lr_schedules": args.lr_schedules, "images": args.limit, "epochs": args.epochs,
            "val_split": args.val_split, "seed": args.seed, "trials": args.trials, "minutes": args.minutes,
        }
        space = validate_space(replace(defaults, **{k: v for k, v in values.items() if v is not None}))
        if args.no_minutes:
            space = validate_space(replace(space, minutes=None))
        search_id = services.start_search(store, Actor.local(), space, name=args.name, process=this_process())
        print(f"search #{search_id}: {describe_size(space)}; up to {space.trials or 'any number of'} trials"
              f"{f' or {space.minutes:g} minutes' if space.minutes else ''}, {space.epochs} epochs on {space.images:,} images each; "
              "trials are compared on validation accuracy, never on the test set", file=sys.stderr)
    summary = train_here(store, search_id)
    print(json.dumps(summary))
    return exit_code(summary)
