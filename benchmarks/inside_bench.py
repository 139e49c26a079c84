"""`python -m fmnist inside-bench RUN_ID...`: how fast the Inside page is on this machine.

For each run: opening the model up, one image through every layer with its saliency map (median
over 20 test images), the PCA and the t-SNE of the test images (the first time: they are removed
first, and computed again as the page's background process does), and the page's rerun in each
view once everything is cached (AppTest, the fastest of 5). Prints one JSON object per run;
docs/performance.md, "Inside", keeps the figures.
"""

import json
import os
import statistics
import time
from pathlib import Path

from fmnist.data import load_dataset
from fmnist.inside import Inside, project_run, run_pca
from fmnist.machine import cpu_name
from fmnist.prediction import load_model
from fmnist.projection import PCA, TSNE, pixels_projection_path, run_projection_path
from fmnist.store import open_store

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def load_average() -> float:
    return os.getloadavg()[0]


def fastest_rerun(at, repeats: int) -> float:
    at.run()  # fills the caches
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        at.run()
        runs.append(time.perf_counter() - start)
    assert not at.exception, at.exception
    return round(min(runs), 3)


def page_reruns(run_id: int, repeats: int = 5) -> dict:
    """The page's rerun time in each view, everything cached: the fastest of `repeats`; and the
    Evaluate page's at the same moment, as a yardstick of how busy the machine is."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.switch_page("pages/evaluate.py").run()
    times = {"evaluate (yardstick)": fastest_rerun(at, repeats)}
    at.switch_page("pages/inside.py").run()
    at.selectbox(key="inside_run").select(run_id).run()
    for view in ("image", "weights", "projection"):
        at.session_state["inside_view"] = view
        times[view] = fastest_rerun(at, repeats)
    return times


def run_inside_bench(args) -> int:
    store, dataset = open_store(), load_dataset()
    for run_id in args.run_ids:
        result = {"run_id": run_id, "cpu": cpu_name(), "cores": os.cpu_count(), "load_average_before": load_average()}
        model = load_model(store, run_id)
        start = time.perf_counter()
        inside = Inside(model)
        inside.look(dataset.x_test[0] / 255.0)  # traces the probe and the gradients
        result["open_and_first_image_s"] = round(time.perf_counter() - start, 3)
        times = []
        for i in range(1, 21):
            start = time.perf_counter()
            inside.look(dataset.x_test[i] / 255.0)
            times.append(time.perf_counter() - start)
        result["one_image_and_saliency_ms"] = round(1000 * statistics.median(times), 1)
        for method in (PCA, TSNE):
            run_projection_path(store, run_id, method).unlink(missing_ok=True)
        start = time.perf_counter()
        run_pca(store, run_id, model, dataset)
        result["pca_first_s"] = round(time.perf_counter() - start, 2)
        pixels_there = pixels_projection_path(store, TSNE).is_file()
        wall, cpu = time.perf_counter(), time.process_time()
        seconds = project_run(store, run_id, dataset, report=lambda **fields: None)
        result["tsne_first_s"] = round(seconds["run"], 1)
        result["tsne_process_wall_s"] = round(time.perf_counter() - wall, 1)
        result["tsne_process_cpu_s"] = round(time.process_time() - cpu, 1)
        if not pixels_there:
            result["pixels_tsne_once_s"] = round(seconds["pixels"], 1)
        result["page_rerun_s"] = page_reruns(run_id)
        result["load_average_after"] = load_average()
        print(json.dumps(result), flush=True)
    return 0
