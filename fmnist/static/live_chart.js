// The live panel's curves and progress line, drawn with Plotly (fmnist/live_chart.py). Streamlit
// calls the component when it first shows and again each time its data changed (a refresh that
// sent the same data calls nothing); its loader imports this module once a page and calls draw().
// Each chart is drawn once (Plotly.newPlot). Later data hands Plotly only the traces' points while
// the axes stand still (Plotly.animate without a redraw: the traces alone are drawn again, a fifth
// to a third of what Plotly.react or extendTraces cost, which lay out the whole figure again); a new
// layout (the y range once an epoch ends, the theme) or a y axis still ranging over the points (the
// first epoch) goes through Plotly.react. A refresh that brought only a new progress line changes
// two DOM nodes.

const METRICS = ["loss", "accuracy"];
// Plotly's own modebar, cut to what a person watching needs: save the picture, zoom, pan, reset.
const CONFIG = {
  displaylogo: false,
  modeBarButtons: [["toImage", "zoom2d", "pan2d", "resetScale2d"]],
  toImageButtonOptions: { scale: 2 },
};
const POINTS_ONLY = { transition: { duration: 0 }, frame: { duration: 0, redraw: false }, mode: "immediate" };

function loadPlotly(url) {
  // plotly.js once a page: one <script> (it sets window.Plotly), shared by every chart that needs it.
  window.fmnistPlotly ??= new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement("script"), { src: url, async: true });
    script.onload = () => resolve(window.Plotly);
    script.onerror = () => {
      delete window.fmnistPlotly; // the next data tries again
      reject(new Error(`plotly.js did not load from ${url}`));
    };
    document.head.append(script);
  });
  return window.fmnistPlotly;
}

function themeLayout(element) {
  // The theme's colours and font, as Streamlit hands them to a component (--st-* properties): what
  // st.plotly_chart's theme sets on the app's other charts.
  const style = getComputedStyle(element);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  const text = read("--st-text-color", "#31333F");
  const grid = read("--st-border-color-light", "rgba(128,128,128,0.25)");
  const family = read("--st-font", "sans-serif");
  const axis = { gridcolor: grid, linecolor: grid, zerolinecolor: grid, tickfont: { color: text }, title: { font: { color: text } } };
  return {
    font: { family, color: text, size: 12 },
    xaxis: axis,
    yaxis: axis,
    hoverlabel: { bgcolor: read("--st-background-color", "#fff"), bordercolor: grid, font: { family, color: text } },
    modebar: { bgcolor: "rgba(0,0,0,0)", color: grid, activecolor: text },
  };
}

function withTheme(layout, theme) {
  // The figure's own settings win: the theme fills in what the figure builder left to it.
  const merged = { ...theme, ...layout, font: { ...theme.font, ...layout.font } };
  for (const axis of ["xaxis", "yaxis"]) {
    const own = layout[axis] || {};
    merged[axis] = { ...theme[axis], ...own, title: { ...theme[axis].title, ...own.title } };
  }
  return merged;
}

function describe(metric, figure) {
  // What the chart shows, in words: for screen readers, and what a test can read.
  const last = (trace) => (trace && trace.y.length ? `${trace.y.at(-1)} at epoch ${trace.x.at(-1)}` : "none yet");
  const [batch, train, val] = figure.data;
  return `${metric}: train ${last(train)}, validation ${last(val)}, ${batch.x.length} per-batch points`;
}

async function render(root, state) {
  const Plotly = await loadPlotly(state.data.files.plotly);
  const theme = themeLayout(root);
  const themeKey = JSON.stringify(theme);
  for (const metric of METRICS) {
    const chart = root.querySelector(`.chart[data-metric="${metric}"]`);
    const figure = state.data[metric];
    const drawn = (state.drawn[metric] ??= {});
    const layoutKey = JSON.stringify(figure.layout) + themeKey;
    const dataKey = JSON.stringify(figure.data);
    if (drawn.layoutKey === layoutKey && drawn.dataKey === dataKey) continue;
    const axesStill = drawn.layoutKey === layoutKey && figure.layout.yaxis.range;
    if (drawn.layoutKey !== layoutKey) drawn.layout = withTheme(figure.layout, theme);
    if (!drawn.layoutKey) await Plotly.newPlot(chart, figure.data, drawn.layout, CONFIG);
    else if (axesStill) {
      const points = figure.data.map((trace) => ({ x: trace.x, y: trace.y }));
      await Plotly.animate(chart, { data: points, traces: points.map((_, i) => i) }, POINTS_ONLY);
    } else await Plotly.react(chart, figure.data, drawn.layout, CONFIG);
    Object.assign(drawn, { layoutKey, dataKey });
    chart.dataset.points = String(figure.data[0].x.length);
    chart.dataset.epochs = String(figure.data[1].x.length);
    chart.setAttribute("aria-label", describe(metric, figure));
  }
}

export function draw({ data, parentElement }) {
  const root = parentElement.querySelector(".fmnist-live");
  if (!root || !data) return undefined;
  const state = (root.liveState ??= { drawn: {}, data: null, queue: Promise.resolve() });
  state.data = data;

  const progress = root.querySelector(".progress");
  progress.hidden = !data.progress;
  if (data.progress) {
    root.querySelector(".fill").style.width = `${(100 * data.progress.fraction).toFixed(1)}%`;
    root.querySelector(".progress-text").textContent = data.progress.text;
  }

  // One drawing at a time, each with the newest data: plotly.js may still be loading when the next arrives.
  state.queue = state.queue.then(() => render(root, state)).catch((error) => console.error("fmnist live chart:", error));

  // A new width (the window, the sidebar) resizes the charts; set up once per root.
  if (!state.observer) {
    let width = root.clientWidth;
    state.observer = new ResizeObserver(() => {
      if (root.clientWidth === width) return;
      width = root.clientWidth;
      for (const chart of root.querySelectorAll(".chart.js-plotly-plot")) window.Plotly.Plots.resize(chart);
    });
    state.observer.observe(root);
  }
  // Called once, when the component leaves the page.
  return () => {
    state.observer.disconnect();
    for (const chart of root.querySelectorAll(".chart.js-plotly-plot")) window.Plotly.purge(chart);
    delete root.liveState;
  };
}
