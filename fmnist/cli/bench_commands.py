"""Measuring: `bench` (and its one-side processes), `inside-bench`, `photo-bench`. Each loads Keras only
once it runs. The measuring itself lives in the top-level `benchmarks` package, outside the library: the commands import it once they run."""

import argparse
import sys

from fmnist.backends import BACKENDS
from fmnist.cli.args import positive_float, positive_int
from fmnist.stack_link import ALL_IMAGES, TRAIN_SIZES
from fmnist.store import open_store

# A class's training images: Build & Train's choices, short of all of them.
CLASS_IMAGES = tuple(n for n in TRAIN_SIZES if n != ALL_IMAGES)


def add_bench(sub) -> None:
    bench = sub.add_parser("bench", help="samples/s of a bare model.fit against the engine on each backend, and the time to the first batch")
    bench.add_argument("--json", action="store_true", help="one JSON object per case and per backend's start")
    bench.add_argument("--repeats", type=positive_int, default=3, help="rounds: each side trains each case once a round")
    bench.add_argument("--parallel", action="store_true",
                       help="instead: 6 short runs queued one at a time, then two at a time (FMNIST_MAX_PARALLEL), alternating, --repeats rounds")
    bench.add_argument("--watch", action="store_true",
                       help="instead: training alone against watched in Chromium, idle CPU, page times (python -m benchmarks.watch_bench)")
    bench.add_argument("--cluster", action="store_true",
                       help="instead: 8 short runs on the local queue, then on the Ray head at FMNIST_RAY_ADDRESS: wall time, time to first batch")
    bench.add_argument("--class", dest="class_size", type=positive_int, metavar="N",
                       help="instead: N students signed in to a real server at the protocol level (pages, sliders, drawings, "
                            "trainings): page, slider and prediction times, the server's CPU and memory, queue waits "
                            "(python -m benchmarks.class_bench)")
    bench.add_argument("--time-to-accuracy", action="store_true",
                       help="instead: seconds from the click to test accuracy 0.88, 0.90, 0.92, 0.93 and 0.94 and to the first batch, "
                            "for the seed notebook's bare model.fit, each preset and the default search's best; a JSON line per row "
                            "(python -m benchmarks.time_to_accuracy)")
    bench.add_argument("--rows", nargs="+", metavar="ROW",
                       help="with --time-to-accuracy: which rows (default all): notebook, a preset's name, search")
    bench.add_argument("--seeds", type=positive_int, default=1, help="with --time-to-accuracy: seeds 0 to N-1 for every row (default 1)")
    bench.add_argument("--search-run", type=positive_int, metavar="ID",
                       help="with --time-to-accuracy: the search row is this finished search's best trial, 20 epochs on all images "
                            "(default: the default search's find in docs/performance.md)")
    bench.add_argument("--minutes", type=positive_float, default=2.0, help="with --class: how long the lesson lasts (default 2)")
    bench.add_argument("--epochs", type=positive_int,
                       help="with --class: each student's training, Seed D (default 3); with --time-to-accuracy: every row's epochs "
                            "(default: each its own)")
    bench.add_argument("--images", type=positive_int,
                       help=f"with --class: its training images, one of {', '.join(map(str, CLASS_IMAGES))} (default 10000); "
                            "with --time-to-accuracy: the first N training images (default all 60,000)")
    bench.add_argument("--think", type=positive_float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"),
                       help="with --class: a student's think time between actions, in seconds (default 2 6)")
    bench.add_argument("--alone-runs", type=positive_int, default=2,
                       help="with --class: the teacher's trainings alone before the lesson, the last one the speed's "
                            "yardstick (default 2: the first fills JAX's compilation cache)")
    bench.add_argument("--side", choices=("bare", "engine"), help=argparse.SUPPRESS)  # one side, in its own process
    bench.add_argument("--backend", choices=BACKENDS, default="tensorflow", help=argparse.SUPPRESS)
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    if args.time_to_accuracy:
        from benchmarks.time_to_accuracy import time_to_accuracy

        return time_to_accuracy(args.rows, args.seeds, args.images, args.epochs, args.search_run)
    if args.class_size:
        from benchmarks.class_bench import Lesson, class_bench

        if args.images is not None and args.images not in CLASS_IMAGES:
            print(f"error: --images with --class: one of {', '.join(map(str, CLASS_IMAGES))}", file=sys.stderr)
            return 2
        return class_bench(Lesson(args.class_size, args.minutes, args.epochs or Lesson.epochs, args.images or Lesson.images,
                                  tuple(args.think), alone_runs=args.alone_runs))
    if args.cluster:
        from benchmarks.cluster_bench import main as cluster_bench

        return cluster_bench()
    if args.parallel:
        from benchmarks.parallel_bench import main as parallel_bench

        return parallel_bench(args.repeats, args.epochs or 3, args.images or 10000)
    if args.watch:
        from benchmarks.watch_bench import main as watch_bench

        return watch_bench(["--rounds", str(args.repeats)])
    if args.side:  # one side of the bench, in a process of its own (benchmarks.bench starts them)
        from fmnist.keras_start import start_keras

        start_keras(args.backend)
        from benchmarks.bench import CASES
        from benchmarks.bench_fit import run_side

        return run_side(args.side, list(range(len(CASES))))
    from benchmarks.bench import run_bench

    return run_bench(args.repeats, args.json)


def add_inside_bench(sub) -> None:
    inside_bench = sub.add_parser("inside-bench", help="time the Inside page: one image and its saliency, the projections, a rerun")
    inside_bench.add_argument("run_ids", type=int, nargs="+")
    inside_bench.set_defaults(func=cmd_inside_bench)


def cmd_inside_bench(args) -> int:
    from fmnist.keras_start import start_keras

    start_keras("tensorflow")
    from benchmarks.inside_bench import run_inside_bench

    return run_inside_bench(args)


def add_photo_bench(sub) -> None:
    photo_bench = sub.add_parser("photo-bench", help="Classify on photo-like pictures: right per situation, boxes found, the unusual-picture notice")
    photo_bench.add_argument("run_ids", type=int, nargs="+")
    photo_bench.add_argument("--seed", type=int, default=0, help="the seed that makes the pictures (the tests use 0)")
    photo_bench.set_defaults(func=cmd_photo_bench)


def cmd_photo_bench(args) -> int:
    from fmnist.keras_start import start_keras

    start_keras("tensorflow")  # the app's own backend, which classifies uploads
    store = open_store()
    missing = [run_id for run_id in args.run_ids if store.get(run_id) is None or not store.model_path(run_id).is_file()]
    if missing:
        print(f"error: no run with a saved model: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    from benchmarks.photo_bench import run_photo_bench

    return run_photo_bench(args.run_ids, args.seed)
