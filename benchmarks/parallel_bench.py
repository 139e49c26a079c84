"""One training at a time against two, on this machine's cores (issue 28, item 4): which finishes a
class's queue sooner.

`python -m fmnist bench --parallel [--repeats R] [--epochs E] [--images N]` queues RUNS runs (by
default the class bench's short one: Seed D, 3 epochs, 10,000 images) through the app's own launch path, once with FMNIST_MAX_PARALLEL=1 and once
with 2, alternating which goes first, R rounds; each side in a fresh FMNIST_HOME. Each training
process uses all the cores it finds (Keras' default), as the app's do. A JSON line per side and
round (benchmarks.cluster_bench.measure: wall time from the first launch to the last run's end),
then one with the ratio of the medians. docs/performance.md, "One training at a time or two", has the figures.
"""

import json
import os
import statistics

from benchmarks.cluster_bench import measure
from fmnist.machine import cpu_name
from fmnist.models import PRESETS, with_training

RUNS = 6
EPOCHS = 3
IMAGES = 10000


def main(rounds: int, epochs: int = EPOCHS, images: int = IMAGES) -> int:
    spec = with_training(PRESETS["Seed D: 128-64"], epochs=epochs)
    walls = {1: [], 2: []}
    saved = os.environ.get("FMNIST_MAX_PARALLEL")
    try:
        for round_ in range(rounds):
            for at_once in ((1, 2) if round_ % 2 == 0 else (2, 1)):
                os.environ["FMNIST_MAX_PARALLEL"] = str(at_once)  # read by each run's process as it claims a slot
                result = measure(f"{at_once} at once", at_once, RUNS, spec, images)
                walls[at_once].append(result["wall_s"])
                print(json.dumps({**result, "round": round_ + 1, "cpu": cpu_name(), "cores": os.cpu_count()}), flush=True)
    finally:
        if saved is None:
            os.environ.pop("FMNIST_MAX_PARALLEL", None)
        else:
            os.environ["FMNIST_MAX_PARALLEL"] = saved
    one, two = statistics.median(walls[1]), statistics.median(walls[2])
    print(json.dumps({"runs": RUNS, "epochs": epochs, "images": images, "one_at_once_median_s": one, "two_at_once_median_s": two,
                      "two_over_one": round(two / one, 3), "cpu": cpu_name(), "cores": os.cpu_count()}))
    return 0
