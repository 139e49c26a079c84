"""A run's curves and progress line as one small Streamlit component (components v2, no build step),
drawn with Plotly from the figures the ended runs and the Leaderboard's overlays come from
(fmnist.charts.live_figure, curves_figure).

Why a component and not st.plotly_chart: the live panel refreshes every second on every tab that
watches a run, and an element Streamlit re-renders costs the browser React's work and a new chart
each time (docs/live-curves.md), which on two cores comes out of the training. This is one element:
the browser calls its script only when its data changed, the script draws each chart once and then
hands Plotly only what changed (Plotly.react with the same layout: new points), and nothing when
only the progress line moved.

Bytes: plotly.js (about 4.8 MB, 1.5 MB compressed) and the chart's script are files the server
serves (from the `plotly` package as installed, and from fmnist/static), fetched once a page; a
refresh sends the figures' JSON alone, nothing from the internet either. Streamlit serves a
components v2 script as a file only for an installed package that declares it, so the files go
through a declared v1 component's file route, which serves a folder as it is.
"""

import json
from functools import lru_cache
from pathlib import Path

import plotly
import streamlit as st
import streamlit.components.v1 as components_v1

from fmnist.charts import LIVE_METRICS, live_figure

PLOTLY_FILES = Path(plotly.__file__).with_name("package_data")  # plotly.min.js, what plotly.offline.get_plotlyjs() reads
SCRIPT_FILES = Path(__file__).with_name("static")  # live_chart.js, and nothing else the server should not show

HTML = """
<div class="fmnist-live">
  <div class="progress" hidden>
    <div class="bar"><div class="fill"></div></div>
    <div class="progress-text"></div>
  </div>
  <div class="charts">
    <div class="chart" data-metric="loss" role="figure"></div>
    <div class="chart" data-metric="accuracy" role="figure"></div>
  </div>
</div>
"""
# The theme's own colours and font (Streamlit sets them as --st-* properties around the component),
# so the panel reads the same on the light and the dark theme. Not in a shadow root (isolate_styles
# off): Plotly styles its modebar and hover from the document's head.
CSS = """
.fmnist-live { font-family: var(--st-font, sans-serif); color: var(--st-text-color, #31333F); }
.fmnist-live .progress { margin-bottom: 0.75rem; }
.fmnist-live .progress-text { font-size: 0.875rem; margin-top: 0.25rem; }
.fmnist-live .bar { height: 0.25rem; border-radius: 0.25rem; background: var(--st-secondary-background-color, #f0f2f6); overflow: hidden; }
.fmnist-live .fill { height: 100%; width: 0; background: var(--st-primary-color, #6C4AB6); }
.fmnist-live .charts { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; }
.fmnist-live .chart { height: 320px; }
"""
# Sent with every refresh, so it only fetches the script (once a page: the browser keeps a module
# it imported) and hands it the call; plotly.js starts downloading at once beside it (a preload the
# script's own <script> then takes), not after it. Addresses are made whole: this runs from a blob: URL.
LOADER = """
export default function (args) {
  const whole = (path) => new URL(path, document.baseURI).href;
  window.fmnistPlotlyPreload ??= document.head.appendChild(
    Object.assign(document.createElement("link"), { rel: "preload", as: "script", href: whole(args.data.files.plotly) }));
  return import(whole(args.data.files.script)).then((chart) => chart.draw(args));
}
"""

live_chart_component = st.components.v2.component("fmnist.live_chart", html=HTML, css=CSS, js=LOADER, isolate_styles=False)


def file_urls() -> dict:
    """Where the browser fetches plotly.js and the chart's script: each folder declared (again, at no
    cost: the server may have started after this module was imported) as a component's files."""
    base = st.get_option("server.baseUrlPath").strip("/")
    prefix = f"/{base}/component" if base else "/component"
    plotly_files = components_v1.declare_component("plotly", path=PLOTLY_FILES)
    script_files = components_v1.declare_component("script", path=SCRIPT_FILES)
    return {"plotly": f"{prefix}/{plotly_files.name}/plotly.min.js", "script": f"{prefix}/{script_files.name}/live_chart.js"}


def figure_json(fig) -> dict:
    """The figure as Plotly.js takes it, without plotly.py's template (about 7 kB a chart, a refresh):
    the script styles it from the theme, as st.plotly_chart does."""
    spec = fig.to_plotly_json()
    spec["layout"].pop("template", None)
    return spec


@lru_cache(maxsize=64)
def empty_figure(metric: str, span: int, focus: tuple | None, colors: tuple) -> str:
    """live_figure's figure without its points, as JSON: built by plotly.py once for each axes the
    run's chart has (its span, a new focus once an epoch ends), not on every new point."""
    nothing = [[], []]
    curves = {"epochs": span, "colors": colors, metric: {"batch": nothing, "train": nothing, "val": nothing, "focus": focus and list(focus)}}
    return json.dumps(figure_json(live_figure(curves, metric)))


def live_chart_data(curves: dict) -> dict:
    """The component's figures from live_curves' data, one a metric: live_figure's, its points filled
    in (the per-batch line, train, validation: the order live_figure draws them)."""
    figures = {}
    for metric in LIVE_METRICS:
        line = curves[metric]
        figure = json.loads(empty_figure(metric, curves["epochs"], line["focus"] and tuple(line["focus"]), tuple(curves["colors"])))
        for trace, name in zip(figure["data"], ("batch", "train", "val"), strict=True):
            trace["x"], trace["y"] = line[name]
        figures[metric] = figure
    return figures


def live_chart(figures: dict, progress: dict | None, key: str = "live_curves") -> None:
    """Draw `figures` (live_chart_data) and, while the run trains, `progress` ({"fraction": 0–1,
    "text": ...}). The same data on a refresh costs the browser nothing."""
    live_chart_component(data={**figures, "progress": progress, "files": file_urls()}, key=key)
