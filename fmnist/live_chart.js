// The live panel's curves and progress line, drawn on <canvas> (fmnist/live_chart.py).
// Streamlit calls this function when the component first shows and again each time its data
// changed (a refresh that sent the same data calls nothing). It keeps what it drew on the
// component's root and redraws a chart only when its points, its size or the theme changed:
// a refresh that brought only a new progress line changes two DOM nodes' text and width.

const METRICS = ["loss", "accuracy"];
const HEIGHT = 300; // CSS pixels, the whole chart: title, legend, axes and plot
const PAD = { left: 52, right: 12, top: 52, bottom: 40 };

function niceStep(span, most) {
  // The smallest of 1, 2, 5 × 10^k that puts at most `most` ticks on the span.
  const raw = span / most;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function epochStep(span) {
  // Whole-epoch ticks, at most 10 (charts.epoch_ticks' rule).
  for (const s of [1, 2, 5, 10, 20, 50]) if (span / s <= 10) return s;
  return 100;
}

function yRange(curve) {
  // The focus range the server sent (around the epoch values once there are two), else all points.
  if (curve.focus) return curve.focus;
  const values = [...curve.batch[1], ...curve.train[1], ...curve.val[1]];
  if (!values.length) return [0, 1];
  let low = Math.min(...values), high = Math.max(...values);
  const pad = Math.max(high - low, 0.02) * 0.1;
  return [low - pad, high + pad];
}

function themeColors(element) {
  const style = getComputedStyle(element);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: read("--st-text-color", "#31333F"),
    grid: read("--st-border-color-light", "rgba(128,128,128,0.25)"),
    font: read("--st-font", "sans-serif"),
  };
}

function draw(canvas, title, curve, epochs, colors, theme) {
  const width = canvas.clientWidth;
  if (!width) return false;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(HEIGHT * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, HEIGHT);
  const plot = { x: PAD.left, y: PAD.top, w: width - PAD.left - PAD.right, h: HEIGHT - PAD.top - PAD.bottom };
  const [low, high] = yRange(curve);
  const sx = (x) => plot.x + (x / epochs) * plot.w;
  const sy = (y) => plot.y + plot.h - ((y - low) / (high - low || 1)) * plot.h;
  canvas.scales = { sx, sy, plot }; // what the hover read-out needs to find the point under the pointer

  // Title and legend.
  ctx.fillStyle = theme.text;
  ctx.textBaseline = "middle";
  ctx.font = `600 14px ${theme.font}`;
  ctx.fillText(title, 4, 12);
  ctx.font = `12px ${theme.font}`;
  let lx = 4;
  for (const [label, color, alpha, dot] of [["train (per batch)", colors[0], 0.5, false], ["train", colors[0], 1, true],
                                           ["validation", colors[1], 1, true]]) {
    ctx.globalAlpha = alpha;
    ctx.strokeStyle = ctx.fillStyle = color;
    ctx.lineWidth = dot ? 2 : 1;
    ctx.beginPath(); ctx.moveTo(lx, 34); ctx.lineTo(lx + 18, 34); ctx.stroke();
    if (dot) { ctx.beginPath(); ctx.arc(lx + 9, 34, 3, 0, 2 * Math.PI); ctx.fill(); }
    ctx.globalAlpha = 1;
    ctx.fillStyle = theme.text;
    ctx.fillText(label, lx + 24, 34);
    lx += 24 + ctx.measureText(label).width + 16;
  }

  // Grid, ticks and axis titles.
  ctx.strokeStyle = theme.grid;
  ctx.lineWidth = 1;
  ctx.font = `11px ${theme.font}`;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let e = 0, step = epochStep(epochs); e <= epochs + 1e-9; e += step) {
    const x = Math.round(sx(e)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, plot.y); ctx.lineTo(x, plot.y + plot.h); ctx.stroke();
    ctx.fillText(String(e), x, plot.y + plot.h + 4);
  }
  ctx.fillText("epoch", plot.x + plot.w / 2, plot.y + plot.h + 22);
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const step = niceStep(high - low, 5);
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  for (let v = Math.ceil(low / step) * step; v <= high + 1e-9; v += step) {
    const y = Math.round(sy(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(plot.x, y); ctx.lineTo(plot.x + plot.w, y); ctx.stroke();
    ctx.fillText(v.toFixed(digits), plot.x - 6, y);
  }
  ctx.textAlign = "left";

  // The curves, clipped to the plot: the first batches' loss lies far above the focus range. The
  // clip reaches a dot's radius past the sides, so the first and last epochs' dots show whole.
  ctx.save();
  ctx.beginPath(); ctx.rect(plot.x - 4, plot.y, plot.w + 8, plot.h); ctx.clip();
  const line = ([xs, ys], color, width, alpha) => {
    if (!xs.length) return;
    ctx.globalAlpha = alpha; ctx.strokeStyle = color; ctx.lineWidth = width; ctx.lineJoin = "round";
    ctx.beginPath();
    xs.forEach((x, i) => (i ? ctx.lineTo(sx(x), sy(ys[i])) : ctx.moveTo(sx(x), sy(ys[i]))));
    ctx.stroke();
    ctx.globalAlpha = 1;
  };
  const dots = ([xs, ys], color) => {
    ctx.fillStyle = color;
    xs.forEach((x, i) => { ctx.beginPath(); ctx.arc(sx(x), sy(ys[i]), 3, 0, 2 * Math.PI); ctx.fill(); });
  };
  line(curve.batch, colors[0], 1, 0.5);
  line(curve.train, colors[0], 2, 1); dots(curve.train, colors[0]);
  line(curve.val, colors[1], 2, 1); dots(curve.val, colors[1]);
  ctx.restore();
  return true;
}

function nearestPoint(curve, scales, mx, my) {
  // The point under the pointer: the nearest epoch point (train or validation) within 24 px, else the
  // nearest per-batch point within 12 px; null when the pointer is away from the curves.
  let best = null;
  const look = (kind, [xs, ys], reach) => xs.forEach((x, i) => {
    const d = Math.hypot(scales.sx(x) - mx, scales.sy(ys[i]) - my);
    if (d <= reach && (!best || d < best.d)) best = { kind, x, y: ys[i], d };
  });
  look("train", curve.train, 24);
  look("val", curve.val, 24);
  if (!best) look("batch", curve.batch, 12);
  return best;
}

function readoutText(metric, curve, point) {
  // An epoch point reads with both of its epoch's values; a per-batch point with its own.
  const at = ([xs, ys], x) => { const i = xs.indexOf(x); return i < 0 ? null : ys[i]; };
  if (point.kind === "batch") return `epoch ${point.x.toFixed(2)} · ${metric}, mean of the last batches ${point.y}`;
  const train = at(curve.train, point.x), val = at(curve.val, point.x);
  return [`epoch ${point.x}`, train === null ? null : `train ${metric} ${train}`,
          val === null ? null : `validation ${metric} ${val}`].filter(Boolean).join(" · ");
}

function describe(title, curve) {
  // What the chart shows, in words: for screen readers, and what a test can read.
  const last = ([xs, ys]) => (ys.length ? `${ys[ys.length - 1]} at epoch ${xs[xs.length - 1]}` : "none yet");
  return `${title}: train ${last(curve.train)}, validation ${last(curve.val)}, ${curve.batch[0].length} per-batch points`;
}

export default function ({ data, parentElement }) {
  const root = parentElement.querySelector(".fmnist-live");
  if (!root || !data) return;
  const state = (root.liveState ??= { drawn: {}, data: null });
  state.data = data;

  const progress = root.querySelector(".progress");
  progress.hidden = !data.progress;
  if (data.progress) {
    root.querySelector(".fill").style.width = `${(100 * data.progress.fraction).toFixed(1)}%`;
    root.querySelector(".progress-text").textContent = data.progress.text;
  }

  const redraw = (force) => {
    const theme = themeColors(root);
    const themeKey = JSON.stringify(theme);
    for (const metric of METRICS) {
      const canvas = root.querySelector(`canvas[data-metric="${metric}"]`);
      const curve = state.data[metric];
      // What the picture depends on: the points (their count and last value), the x span, the size, the theme.
      const key = [curve.batch[0].length, curve.train[0].length, curve.val[0].length, curve.batch[1].at(-1), curve.focus,
                   state.data.epochs, canvas.clientWidth, window.devicePixelRatio, themeKey].join("|");
      if (!force && state.drawn[metric] === key) continue;
      const title = metric[0].toUpperCase() + metric.slice(1);
      if (draw(canvas, title, curve, state.data.epochs, state.data.colors, theme)) {
        state.drawn[metric] = key;
        canvas.dataset.points = String(curve.batch[0].length);
        canvas.dataset.epochs = String(curve.train[0].length);
        canvas.setAttribute("aria-label", describe(title, curve));
      }
    }
  };
  redraw(false);

  // The hover read-out: which point is under the pointer, read from the data last drawn; set up once
  // per root, and it costs nothing until the pointer moves over a chart.
  if (!state.readout) {
    state.readout = root.querySelector(".readout");
    for (const metric of METRICS) {
      const canvas = root.querySelector(`canvas[data-metric="${metric}"]`);
      canvas.addEventListener("pointermove", (event) => {
        const box = canvas.getBoundingClientRect();
        const point = canvas.scales && nearestPoint(state.data[metric], canvas.scales, event.clientX - box.left, event.clientY - box.top);
        if (!point) { state.readout.hidden = true; return; }
        state.readout.textContent = readoutText(metric, state.data[metric], point);
        state.readout.hidden = false;
        const home = root.getBoundingClientRect();
        const x = box.left - home.left + canvas.scales.sx(point.x);
        const right = x + 10 + state.readout.offsetWidth > home.width; // near the right edge: to the point's left
        state.readout.style.left = `${right ? x - 10 - state.readout.offsetWidth : x + 10}px`;
        state.readout.style.top = `${box.top - home.top + canvas.scales.sy(point.y) - 30}px`;
      });
      canvas.addEventListener("pointerleave", () => { state.readout.hidden = true; });
    }
  }

  // A new width (the window, the sidebar) redraws; set up once per root.
  if (!state.observer) {
    let width = root.clientWidth;
    state.observer = new ResizeObserver(() => {
      if (root.clientWidth !== width) { width = root.clientWidth; redraw(false); }
    });
    state.observer.observe(root);
  }
  // Called once, when the component leaves the page.
  return () => {
    state.observer.disconnect();
    delete root.liveState;
  };
}
