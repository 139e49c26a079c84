"""The app server's own set-up: no Keras reset after each script run, and, once its first page is
drawn, TensorFlow, the dataset, the best model and the warm trainers readied in the background."""


import os
import threading

import numpy as np
import streamlit as st

from fmnist.app.caches import get_dataset, get_store, load_run_inside, load_run_model, load_run_outlier_check


def no_public_address_lookup() -> None:
    """Streamlit (1.67, streamlit/net_util.py) asks checkip.amazonaws.com for this machine's public address to
    print an "External URL" and, for a WebSocket from another origin, to compare it with: two blocking HTTP
    requests of up to a second each, again and again where there is no network. The app never wants that
    address: another origin is refused unless it is this machine, browser.serverAddress or
    server.corsAllowedOrigins. `serve --share` sets browser.serverAddress, so the start asks nothing either."""
    from streamlit import net_util

    net_util.get_external_ip = lambda: None


def keep_keras_between_runs() -> None:
    """Streamlit (1.67, `_clean_problem_modules` in streamlit/runtime/scriptrunner/script_runner.py)
    calls `keras.backend.clear_session()` after every script run once Keras is imported: a full
    garbage collection and TensorFlow's kernel cache thrown away each time, and every refresh of
    a fragment is a script run, on every open tab (docs/performance.md, "A hidden tab"). This server never builds
    a Keras model (training runs in processes of its own); it only predicts with loaded ones,
    which lose their compiled kernels on each reset. So nothing is cleared; the hook's other
    task, closing matplotlib figures, has nothing to do here (no page uses pyplot)."""
    from streamlit.runtime.scriptrunner import script_runner

    script_runner._clean_problem_modules = lambda: None


@st.cache_resource(show_spinner=False)
def warm_up_in_background() -> threading.Thread | None:
    """Once per server process: load TensorFlow, the dataset and the best run's model in a
    thread, so that the first visit to Classify finds them ready (TensorFlow's import alone
    takes seconds). Started once the first page has been drawn, so it never delays that page.

    Not under AppTest (`global.appTest`), whose tests check that pages other than Classify
    never import TensorFlow; FMNIST_WARM_UP=0 turns it off (a server that never classifies)."""
    from streamlit import config  # AppTest patches this module's get_option, not st.get_option

    if config.get_option("global.appTest") or os.environ.get("FMNIST_WARM_UP", "1") == "0":
        return None
    thread = threading.Thread(target=warm_up, name="fmnist-warm-up", daemon=True)
    thread.start()
    return thread


def warm_up() -> None:
    """What the first visit to Classify would do: TensorFlow's import (with fmnist.prediction),
    the dataset, the best run's model loaded and its predict step traced, the model opened up
    for the saliency map, its unusual-picture check calibrated. Into the caches the pages read, so a visit meanwhile waits for it."""
    from fmnist import warm
    from fmnist.leaderboard import best_run

    try:
        warm.prepare(get_store())  # the next run's process, waiting with Keras and the dataset loaded
        dataset = get_dataset()
        best = best_run(get_store().list_runs())
        if best is None:  # nothing to classify with yet: Classify offers to train, without TensorFlow
            return
        from fmnist.prediction import predict_image

        blank = np.zeros(dataset.info.image_shape, dtype=np.float32)
        predict_image(load_run_model(best.id), blank)
        load_run_inside(best.id).look(blank)
        load_run_outlier_check(best.id)
    except Exception:  # noqa: S110  (a page that needs what failed here shows why)
        pass
