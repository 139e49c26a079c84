"""A run's curves and progress line as one small Streamlit component (components v2, inline, no build step).

Why not Streamlit's own charts: the live panel refreshes every second on every tab that watches a
run, and each refresh of a Vega-Lite chart and a progress bar cost the browser about a sixth of a
core (React re-rendering them, Vega laying out its scenegraph; docs/performance.md, "The live panel in the browser"), which
on two cores comes out of the training. This component is one element: the browser calls its
script only when its data changed, and the script redraws a <canvas> only when its points did.
Its data is plain number lists (fmnist.charts.live_curves), no network, no CDN.
"""

from pathlib import Path

import streamlit as st

HTML = """
<div class="fmnist-live">
  <div class="progress" hidden>
    <div class="bar"><div class="fill"></div></div>
    <div class="progress-text"></div>
  </div>
  <div class="charts">
    <canvas data-metric="loss" role="img"></canvas>
    <canvas data-metric="accuracy" role="img"></canvas>
  </div>
  <div class="readout" role="status" hidden></div>
</div>
"""
# The theme's own colours and font (Streamlit sets them as --st-* properties around the component),
# so the panel reads the same on the light and the dark theme.
CSS = """
.fmnist-live { font-family: var(--st-font, sans-serif); color: var(--st-text-color, #31333F); position: relative; }
.readout { position: absolute; pointer-events: none; white-space: nowrap; font-size: 0.8rem; padding: 0.2rem 0.45rem;
           border-radius: 0.25rem; background: var(--st-background-color, #fff); border: 1px solid var(--st-border-color, #ccc); }
.readout[hidden] { display: none; }
.progress { margin-bottom: 0.75rem; }
.progress-text { font-size: 0.875rem; margin-top: 0.25rem; }
.bar { height: 0.25rem; border-radius: 0.25rem; background: var(--st-secondary-background-color, #f0f2f6); overflow: hidden; }
.fill { height: 100%; width: 0; background: var(--st-primary-color, #6C4AB6); }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
canvas { width: 100%; height: 300px; display: block; }
"""

live_chart_component = st.components.v2.component(
    "fmnist.live_chart", html=HTML, css=CSS, js=(Path(__file__).with_name("live_chart.js")).read_text(),
)


def live_chart(curves: dict, progress: dict | None, key: str = "live_curves") -> None:
    """Draw `curves` (fmnist.charts.live_curves) and, while the run trains, `progress`
    ({"fraction": 0–1, "text": ...}). The same data on a refresh costs the browser nothing."""
    live_chart_component(data={**curves, "progress": progress}, key=key)
