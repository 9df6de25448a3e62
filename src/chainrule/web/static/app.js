// chainrule serve: the page. Plain JavaScript, no libraries, nothing fetched from elsewhere.
// Draw on #pad → POST /api/predict (the canvas as a PNG data URL) → bars, the 28×28 input,
// the network's activations. "Teach it" → POST /api/teach → the gradient step, made visible.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  drawing: false, last: null, inked: false, seq: 0, shown: 0, busy: false,
  prediction: null, teach: null, model: null, steps: 0, liveTimer: 0,
};

// ---- small helpers -------------------------------------------------------------------------
function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body), credentials: "same-origin",
  };
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const fmt = (v) => (Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(3) : v.toExponential(1)).replace(/-/g, "−");
const pct = (p) => (100 * p).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1) + "%";

// Diverging colour (blue − / white 0 / red +) for t in [−1, 1].
function diverging(t) {
  t = Math.max(-1, Math.min(1, t));
  const [r, g, b] = t >= 0 ? [178, 24, 43] : [33, 102, 172];
  const a = Math.abs(t);
  return [255 + (r - 255) * a, 255 + (g - 255) * a, 255 + (b - 255) * a];
}

// Paint a 2-D array into a canvas, one pixel per entry, with colour(value) → [r, g, b].
function paint(canvas, rows, colour) {
  const h = rows.length, w = rows[0].length;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [r, g, b] = colour(rows[y][x]);
      const i = 4 * (y * w + x);
      img.data[i] = r; img.data[i + 1] = g; img.data[i + 2] = b; img.data[i + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

function maxAbs(rows) {
  let m = 0;
  for (const row of rows) for (const v of row) m = Math.max(m, Math.abs(v));
  return m || 1;
}

// A canvas sized to its CSS width × aspect, sharp on high-DPI screens; returns [ctx, w, h].
function fitCanvas(canvas, aspect) {
  const w = Math.max(240, canvas.clientWidth || canvas.parentElement.clientWidth);
  const h = Math.round(w * aspect);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return [ctx, w, h];
}

// ---- the drawing pad -------------------------------------------------------------------------
const pad = $("pad");
const pctx = pad.getContext("2d");

function clearPad() {
  pctx.fillStyle = "#000";
  pctx.fillRect(0, 0, pad.width, pad.height);
  state.inked = false;
}

function padPoint(event) {
  const r = pad.getBoundingClientRect();
  return [(event.clientX - r.left) * pad.width / r.width, (event.clientY - r.top) * pad.height / r.height];
}

function stroke(from, to) {
  pctx.strokeStyle = "#fff"; pctx.fillStyle = "#fff";
  pctx.lineWidth = 18; pctx.lineCap = "round"; pctx.lineJoin = "round";
  pctx.beginPath(); pctx.moveTo(from[0], from[1]); pctx.lineTo(to[0], to[1]); pctx.stroke();
  state.inked = true;
}

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  state.drawing = true;
  state.last = padPoint(e);
  stroke(state.last, state.last);
});
pad.addEventListener("pointermove", (e) => {
  if (!state.drawing) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) {
    const p = padPoint(ev);
    stroke(state.last, p);
    state.last = p;
  }
  if ($("live").checked && !state.liveTimer) {
    state.liveTimer = setTimeout(() => { state.liveTimer = 0; predict(true); }, 350);
  }
});
function endStroke() {
  if (!state.drawing) return;
  state.drawing = false;
  clearTimeout(state.liveTimer);  // the stroke is done: one prediction now, none pending
  state.liveTimer = 0;
  if ($("live").checked) predict(true);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// ---- predict ---------------------------------------------------------------------------------
async function predict(quiet = false) {
  if (!state.inked) {
    if (!quiet) status("Draw a digit first.", true);
    return;
  }
  const seq = ++state.seq;
  try {
    const result = await api("/api/predict", { image: pad.toDataURL("image/png") });
    if (seq < state.shown) return;  // an older answer arriving late
    state.shown = seq;
    showPrediction(result);
    status(`predicted ${result.label} (${pct(result.probabilities[result.digit])})`);
  } catch (err) {
    if (!quiet || state.inked) status(err.message, true);
  }
}

function showPrediction(result) {
  state.prediction = result;
  const probs = result.probabilities;
  const digit = $("digit");
  digit.textContent = result.label;
  digit.dataset.digit = result.digit;
  const names = state.model ? state.model.class_names : probs.map((_, i) => String(i));
  $("confidence").textContent = `${pct(probs[result.digit])} sure`;
  const badge = $("model-badge");
  badge.textContent = result.taught ? `your taught copy (${state.steps || "≥1"} step${state.steps === 1 ? "" : "s"})` : "the loaded model";
  badge.classList.toggle("taught", !!result.taught);
  const bars = $("bars");
  bars.replaceChildren(...probs.map((p, i) => {
    const fill = el("div", { class: "bar-fill", style: `width:${(100 * p).toFixed(2)}%` });
    return el("div", { class: "bar-row" + (i === result.digit ? " top" : ""), "data-digit": i, "data-p": p },
      el("span", { class: "label" }, names[i] || String(i)),
      el("div", { class: "bar-track" }, fill),
      el("span", { class: "value" }, pct(p)));
  }));
  if (result.input) paint($("seen"), result.input, (v) => [255 * v, 255 * v, 255 * v]);
  drawNetwork(result);
  digit.dataset.version = Number(digit.dataset.version) + 1;
}

// ---- the network as layers of neurons ----------------------------------------------------------
function drawNetwork(result) {
  const canvas = $("net");
  const narrow = canvas.clientWidth < 700;
  const [ctx, W, H] = fitCanvas(canvas, narrow ? 0.8 : 0.36);
  ctx.fillStyle = "#0f1724"; ctx.fillRect(0, 0, W, H);
  if (!result) {
    ctx.fillStyle = "#8091ab"; ctx.font = "14px system-ui, sans-serif";
    ctx.fillText("Draw a digit to light up the network.", 20, H / 2);
    return;
  }
  const layers = result.layers || [];
  const top = 18, bottom = H - 30, usable = bottom - top;
  const inSize = Math.min(usable, W * 0.22);
  const inX = 14, inY = top + (usable - inSize) / 2;
  // input image, one square per pixel
  const px = inSize / 28;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const v = result.input ? result.input[y][x] : 0;
      const c = Math.round(25 + 230 * v);
      ctx.fillStyle = `rgb(${c},${c},${Math.min(255, c + 10)})`;
      ctx.fillRect(inX + x * px, inY + y * px, px + 0.5, px + 0.5);
    }
  }
  const short = W < 520;
  label(ctx, short ? "input" : "input · 784 pixels", inX + inSize / 2, H - 10);
  // columns for hidden layers and the output
  const outW = 44, right = W - outW - 8;
  const colStart = inX + inSize + 40;
  const hidden = layers.slice(0, -1), output = layers[layers.length - 1];
  const span = (right - colStart) / Math.max(1, hidden.length + 1);
  const positions = [];  // per layer: [{x, y}] for each unit
  hidden.forEach((layer, k) => {
    const n = layer.size, rows = Math.min(n, Math.max(8, Math.floor(usable / 9)));
    const cols = Math.ceil(n / rows), gap = Math.min(usable / rows, 14), colGap = Math.min(gap, 16);
    const x0 = colStart + span * (k + 0.5) - (cols - 1) * colGap / 2;
    const y0 = top + (usable - (rows - 1) * gap) / 2;
    const peak = Math.max(1e-9, ...layer.values.map(Math.abs));
    const pts = [];
    for (let j = 0; j < n; j++) {
      const x = x0 + Math.floor(j / rows) * colGap, y = y0 + (j % rows) * gap;
      pts.push({ x, y });
      neuron(ctx, x, y, Math.max(1.5, gap * 0.36), layer.values[j] / peak);
    }
    positions.push(pts);
    const act = layer.layer.split(" + ").slice(1).join(" + ");
    label(ctx, short ? `${n} ${act}` : `${layer.name} · ${n} ${act}`, x0 + (cols - 1) * colGap / 2, H - 10);
  });
  // output neurons
  const gapOut = usable / 10, outX = right + outW / 2, outPts = [];
  for (let i = 0; i < output.values.length; i++) {
    const y = top + gapOut * (i + 0.5);
    outPts.push({ x: outX, y });
  }
  // connections: input → most active units of the first hidden layer (faint)
  if (positions.length) {
    const first = hidden[0].values.map((v, j) => [v, j]).sort((a, b) => b[0] - a[0]).slice(0, 10);
    ctx.lineWidth = 1;
    for (const [v, j] of first) {
      if (v <= 0) continue;
      ctx.strokeStyle = "rgba(255,214,102,0.18)";
      line(ctx, inX + inSize, inY + inSize / 2, positions[0][j].x, positions[0][j].y);
    }
    // last hidden layer → predicted output: the largest terms W[digit, j]·h_j
    const last = positions[positions.length - 1];
    const terms = result.contributions || [];
    const big = Math.max(1e-9, ...terms.map((t) => Math.abs(t[1])));
    for (const [j, value] of terms) {
      if (!last[j]) continue;
      ctx.lineWidth = 0.6 + 2.4 * Math.abs(value) / big;
      ctx.strokeStyle = value > 0 ? "rgba(72,199,116,0.75)" : "rgba(240,82,82,0.75)";
      line(ctx, last[j].x, last[j].y, outPts[result.digit].x - 14, outPts[result.digit].y);
    }
  }
  const names = state.model ? state.model.class_names : null;
  output.values.forEach((p, i) => {
    const { x, y } = outPts[i];
    neuron(ctx, x, y, Math.min(13, gapOut * 0.42), p);
    if (i === result.digit) {
      ctx.strokeStyle = "#ffd666"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(x, y, Math.min(13, gapOut * 0.42) + 3, 0, 2 * Math.PI); ctx.stroke();
    }
    ctx.fillStyle = p > 0.5 ? "#0f1724" : "#c9d4e5";
    ctx.font = "bold 12px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    ctx.fillText(names && names[i].length <= 2 ? names[i] : String(i), x, y + 0.5);
  });
  ctx.fillStyle = "#8091ab"; ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "right";
  ctx.fillText(short ? "output" : "output · softmax", W - 8, H - 10);
}

function neuron(ctx, x, y, r, t) {
  // brightness = activation (scaled by the layer's largest); negative values tinted blue
  const a = Math.min(1, Math.abs(t));
  const [base, lit] = t >= 0 ? [[38, 48, 66], [255, 214, 102]] : [[38, 48, 66], [110, 160, 255]];
  const c = base.map((b, i) => Math.round(b + (lit[i] - b) * Math.sqrt(a)));
  ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
  ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill();
}

function line(ctx, x1, y1, x2, y2) {
  ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
}

function label(ctx, text, x, y) {
  ctx.fillStyle = "#8091ab"; ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center"; ctx.textBaseline = "alphabetic";
  ctx.fillText(text, x, y);
}

// ---- teach: one gradient step --------------------------------------------------------------------
async function teach() {
  const choice = $("teach-label").value;
  if (choice === "") { status("Choose which digit this is, then press Teach it.", true); return; }
  if (!state.inked) { status("Draw a digit first.", true); return; }
  $("teach").disabled = true;
  try {
    const result = await api("/api/teach", {
      image: pad.toDataURL("image/png"), label: Number(choice), lr: Number($("teach-lr").value),
    });
    state.steps += 1;
    state.shown = ++state.seq;
    showTeach(result);
    showPrediction({ ...result.prediction_after, input: result.input, taught: true });
    const b = result.probabilities_before[result.label], a = result.probabilities_after[result.label];
    status(`one step taken: p(${result.label}) ${pct(b)} → ${pct(a)}, loss ${result.loss_before.toFixed(4)} → ${result.loss_after.toFixed(4)}`);
  } catch (err) {
    status(err.message, true);
  } finally {
    $("teach").disabled = false;
  }
}

function showTeach(r) {
  state.teach = r;
  const out = $("teach-out");
  out.hidden = false;
  $("loss-before").textContent = r.loss_before.toFixed(4);
  $("loss-after").textContent = r.loss_after.toFixed(4);
  $("loss-note").textContent = r.loss_after < r.loss_before
    ? `lower by ${(r.loss_before - r.loss_after).toFixed(4)} (η = ${r.lr})`
    : `higher: η = ${r.lr} overshot; try a smaller step`;
  const names = state.model ? state.model.class_names : null;
  const gmax = Math.max(...r.output_grad.map(Math.abs), 1e-9);
  $("teach-table").tBodies[0].replaceChildren(...r.output_grad.map((g, i) => {
    const before = r.probabilities_before[i], after = r.probabilities_after[i];
    const w = (50 * Math.abs(g) / gmax).toFixed(1);
    const span = el("span", { style: `${g >= 0 ? "left:50%" : `right:50%`};width:${w}%;background:${g >= 0 ? "#b2182b" : "#2166ac"}` });
    return el("tr", { class: i === r.label ? "target" : "", "data-digit": i, "data-before": before, "data-after": after, "data-grad": g },
      el("td", {}, names ? names[i] : String(i)),
      el("td", {}, probCell(before)),
      el("td", {}, el("div", { class: "cell-bar" }, el("div", { class: "diverge" }, span), fmt(g))),
      el("td", {}, probCell(after)));
  }));
  const first = r.weight_grads.find((w) => w.kind === "tiles");
  const tiles = $("tiles");
  tiles.replaceChildren();
  if (first) {
    const scale = Math.max(...first.tiles.map((t) => maxAbs(t.grad)));
    for (const t of first.tiles) {
      const g = el("canvas", { title: `dL/dW⁽¹⁾ row ${t.unit}` });
      paint(g, t.grad, (v) => diverging(v / scale));
      const wscale = maxAbs(t.weight_after);
      const w = el("canvas", { class: "after", title: `W⁽¹⁾ row ${t.unit} after the step` });
      paint(w, t.weight_after, (v) => diverging(v / wscale));
      tiles.append(el("div", { class: "tile" }, g, `unit ${t.unit}`, el("br"), `δ = ${fmt(t.delta)}`, w));
    }
    $("tiles-title").textContent = `First weight matrix ${first.name} ${first.shape.join("×")}: dL/dW, one 28×28 tile per hidden unit`;
  }
  const views = r.weight_grads.filter((w) => w.kind !== "tiles").map(matrixView);
  $("matrices").replaceChildren(...views.map((v) => v.box));
  views.forEach((v) => v.draw());
  out.dataset.version = Number(out.dataset.version) + 1;
}

function probCell(p) {
  return el("div", { class: "cell-bar" },
    el("div", { class: "mini", style: `width:${(40 * p).toFixed(1)}px` }), pct(p));
}

// A weight matrix's gradient: [box, draw()]; draw once the box is on the page (it sizes to it).
function matrixView(w) {
  const box = el("div", { class: "matrix" });
  const names = state.model ? state.model.class_names : null;
  if (w.kind === "matrix") {
    const c = el("canvas", {});
    const isOutput = w.shape[0] === (names ? names.length : 10);
    const title = isOutput
      ? `${w.name} ${w.shape.join("×")}: dL/dW = (p − y)·hᵀ. Row k is digit k's output error times the hidden activations, so only the rows with a large p − y (the label, and what it was mistaken for) change much.`
      : `${w.name} ${w.shape.join("×")}: dL/dW = δ·hᵀ${w.rows.length < w.shape[0] ? ` (the ${w.rows.length} most-changed rows)` : ""}`;
    box.append(el("h3", {}, title), c,
      el("div", { class: "legend" }, `−${w.max_abs.toExponential(1)}`, el("i"), `+${w.max_abs.toExponential(1)}`, ` · ‖dL/dW‖ = ${w.norm.toFixed(4)}`));
    const rowNames = w.rows.map((k) => (isOutput && names ? names[k] : String(k)));
    return { box, draw: () => drawMatrix(c, w.grad, rowNames) };
  }
  box.append(el("h3", {}, `${w.name} ${w.shape.join("×")}: kernel gradients`));
  const grid = el("div", { class: "tiles" });
  const scale = Math.max(...w.kernels.map(maxAbs));
  for (const k of w.kernels) {
    const c = el("canvas", {});
    paint(c, k, (v) => diverging(v / scale));
    grid.append(el("div", { class: "tile" }, c));
  }
  box.append(grid);
  return { box, draw: () => {} };
}

function drawMatrix(canvas, rows, rowNames) {
  const n = rows.length, m = rows[0].length;
  const cellH = n <= 16 ? 16 : Math.max(3, Math.min(10, 320 / n));
  const width = canvas.clientWidth || 600;
  const [ctx, W] = fitCanvas(canvas, (n * cellH + 4) / width);
  const left = n <= 16 ? 22 : 30, cellW = (W - left - 2) / m;
  const scale = maxAbs(rows);
  ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
  rows.forEach((row, i) => {
    if (n <= 16 || i % Math.ceil(n / 16) === 0) {
      ctx.fillStyle = "#667085"; ctx.fillText(rowNames[i], left - 6, 2 + (i + 0.5) * cellH);
    }
    row.forEach((v, j) => {
      const [r, g, b] = diverging(v / scale);
      ctx.fillStyle = `rgb(${r | 0},${g | 0},${b | 0})`;
      ctx.fillRect(left + j * cellW, 2 + i * cellH, cellW + 0.6, cellH - (n <= 16 ? 1 : 0));
    });
  });
}

async function reset() {
  try {
    await api("/api/reset", {});
    state.steps = 0;
    $("teach-out").hidden = true;
    status("reset: back to the loaded model");
    if (state.inked) await predict(true);
    else $("model-badge").textContent = "the loaded model";
    $("model-badge").classList.remove("taught");
  } catch (err) {
    status(err.message, true);
  }
}

// ---- the Training tab ---------------------------------------------------------------------------
async function loadModel() {
  try {
    state.model = await api("/api/model");
    const names = state.model.class_names;
    const select = $("teach-label");
    if (select.options.length === 1) {
      names.forEach((n, i) => select.append(el("option", { value: i }, n)));
    }
    showModel(state.model);
  } catch (err) {
    status(`could not read the model: ${err.message}`, true);
  }
}

function showModel(m) {
  const facts = $("model-facts");
  const ev = m.evaluation || {}, metrics = m.metrics || {};
  const rows = [
    ["file", m.source || "(trained at start)"],
    ["parameters", m.parameters.toLocaleString()],
    ["data", m.data && m.data.name ? `${m.data.name} (${(m.data.n_train || 0).toLocaleString()} training digits)` : "—"],
  ];
  if (metrics.test_accuracy != null) rows.push(["test accuracy", pct(metrics.test_accuracy)]);
  if (ev.accuracy != null) rows.push(["checked now", `${pct(ev.accuracy)} on ${ev.n.toLocaleString()} ${ev.data} test digits`]);
  const t = m.training || {};
  const lr = t.lr != null ? t.lr : (m.history.lr || [])[0];
  if (t.optimizer) rows.push(["trained with", `${t.optimizer}${lr != null ? ` lr ${lr}` : ""}, batch ${t.batch_size || "full"}, ${(m.history.loss || []).length} epochs`]);
  facts.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  $("arch").replaceChildren(
    el("tr", {}, el("th", {}, "#"), el("th", {}, "layer"), el("th", {}, "output"), el("th", {}, "params")),
    ...m.architecture.map((l) => el("tr", {},
      el("td", {}, String(l.index)),
      el("td", {}, l.type + (Object.keys(l.config).length ? `(${Object.values(l.config).join(", ")})` : "")),
      el("td", {}, `(${l.output_shape.map((s) => (s === null ? "N" : s)).join(", ")})`),
      el("td", {}, l.parameters.toLocaleString()))));
  drawPlots();
  showConfusion(ev, m.class_names);
}

function drawPlots() {
  const m = state.model;
  if (!m || $("panel-model").hidden) return;
  const h = m.history || {};
  plot($("plot-loss"), [
    { name: "per batch", values: h.batch_loss || [], colour: "rgba(47,111,222,0.28)", thin: true },
    { name: "train", values: h.loss || [], colour: "#2f6fde" },
    { name: "validation", values: h.val_loss || [], colour: "#1a9b55" },
  ], "loss (cross-entropy)", false);
  plot($("plot-acc"), [
    { name: "train", values: h.accuracy || [], colour: "#2f6fde" },
    { name: "validation", values: h.val_accuracy || [], colour: "#1a9b55" },
  ], "accuracy", true, m.metrics && m.metrics.test_accuracy);
}

// Curves against epochs: per-epoch series are plotted at the end of each epoch (x = 1..n);
// a `thin` series (the loss of every batch) is spread evenly over 0..n.
function plot(canvas, series, ylabel, isFraction, testValue) {
  const [ctx, W, H] = fitCanvas(canvas, 0.58);
  ctx.clearRect(0, 0, W, H);
  const finite = (v) => v !== null && Number.isFinite(v);
  const all = series.flatMap((s) => s.values).filter(finite);
  if (testValue != null) all.push(testValue);
  ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = "#667085";
  if (!all.length) { ctx.fillText("no training history saved with this model", 12, H / 2); return; }
  const n = Math.max(1, ...series.filter((s) => !s.thin).map((s) => s.values.length));
  const hasThin = series.some((s) => s.thin && s.values.length);
  const x0 = hasThin || n === 1 ? 0 : 1;
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hasThin) {  // a few wild early batches should not flatten the rest
    const sorted = series.find((s) => s.thin).values.filter(finite).sort((a, b) => a - b);
    hi = Math.max(...series.filter((s) => !s.thin).flatMap((s) => s.values).filter(finite),
      sorted[Math.floor(0.98 * (sorted.length - 1))]);
  }
  if (hi - lo < 1e-6) { lo -= 0.05; hi += 0.05; }
  const padY = (hi - lo) * 0.08, lowest = Math.min(...all);
  lo = lowest >= 0 ? Math.max(0, lo - padY) : lo - padY;
  hi = isFraction ? Math.min(1, hi + padY) : hi + padY;
  const L = 62, R = 12, T = 26, B = 34;
  const X = (e) => L + (e - x0) / Math.max(1e-9, n - x0) * (W - L - R);
  const Y = (v) => T + (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (H - T - B);
  ctx.strokeStyle = "#e2e5ea"; ctx.lineWidth = 1;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (let k = 0; k <= 4; k++) {
    const v = lo + (hi - lo) * k / 4;
    line(ctx, L, Y(v), W - R, Y(v));
    ctx.fillText(isFraction ? (100 * v).toFixed(1) + "%" : v.toFixed(3), L - 5, Y(v));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "alphabetic";
  const stepX = Math.max(1, Math.ceil(n / 10));
  for (let e = Math.max(1, x0); e <= n; e += stepX) ctx.fillText(String(e), X(e), H - B + 16);
  ctx.fillText("epoch", (L + W - R) / 2, H - 3);
  if (testValue != null) {
    ctx.setLineDash([5, 4]); ctx.strokeStyle = "#f08c00";
    line(ctx, L, Y(testValue), W - R, Y(testValue)); ctx.setLineDash([]);
  }
  let legendX = L + 4;
  for (const s of series) {
    if (!s.values.length) continue;
    const at = s.thin ? (i) => X((i + 1) * n / s.values.length) : (i) => X(i + 1);
    ctx.strokeStyle = s.colour; ctx.fillStyle = s.colour; ctx.lineWidth = s.thin ? 1 : 2;
    ctx.beginPath();
    s.values.forEach((v, i) => (i ? ctx.lineTo(at(i), Y(v)) : ctx.moveTo(at(i), Y(v))));
    ctx.stroke();
    if (!s.thin) s.values.forEach((v, i) => { ctx.beginPath(); ctx.arc(at(i), Y(v), 2.5, 0, 2 * Math.PI); ctx.fill(); });
    ctx.textAlign = "left"; ctx.fillText(s.name, legendX, 12); legendX += ctx.measureText(s.name).width + 16;
  }
  if (testValue != null) { ctx.fillStyle = "#f08c00"; ctx.fillText(`test ${pct(testValue)}`, legendX, 12); }
  ctx.save(); ctx.translate(12, (T + H - B) / 2); ctx.rotate(-Math.PI / 2);
  ctx.fillStyle = "#667085"; ctx.textAlign = "center"; ctx.fillText(ylabel, 0, 0); ctx.restore();
}

function showConfusion(ev, names) {
  const box = $("confusion");
  if (!ev || !ev.confusion) {
    $("confusion-caption").textContent = "The model's test data is not on this machine.";
    box.replaceChildren();
    return;
  }
  $("confusion-caption").textContent = `Rows: the true digit; columns: what the model said, on ${ev.n.toLocaleString()} ${ev.data} test digits (${pct(ev.accuracy)} right). Off-diagonal cells are its mistakes.`;
  const cm = ev.confusion;
  const offMax = Math.max(1, ...cm.flatMap((row, i) => row.filter((_, j) => j !== i)));
  const diagMax = Math.max(1, ...cm.map((row, i) => row[i]));
  const table = el("table", { class: "confusion" });
  table.append(el("tr", {}, el("th", { class: "corner" }, "true╲said"), ...names.map((n) => el("th", {}, n))));
  cm.forEach((row, i) => {
    table.append(el("tr", {}, el("th", {}, names[i]), ...row.map((v, j) => {
      const a = i === j ? 0.15 + 0.6 * v / diagMax : (v ? 0.12 + 0.75 * v / offMax : 0);
      const bg = i === j ? `rgba(26,155,85,${a.toFixed(3)})` : `rgba(210,60,60,${a.toFixed(3)})`;
      return el("td", { style: `background:${bg}`, title: `true ${names[i]}, said ${names[j]}: ${v}` }, v ? String(v) : "");
    })));
  });
  box.replaceChildren(table);
}

// ---- tabs and start-up ---------------------------------------------------------------------------
function showTab(name) {
  for (const tab of ["draw", "model", "playground"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`panel-${tab}`).hidden = tab !== name;
  }
  if (name === "model") drawPlots();
  else if (name === "draw") drawNetwork(state.prediction);
}

$("tab-draw").addEventListener("click", () => showTab("draw"));
$("tab-model").addEventListener("click", () => showTab("model"));
$("tab-playground").addEventListener("click", () => showTab("playground"));  // playground.js does the rest
$("clear").addEventListener("click", () => { clearPad(); status("cleared"); });
$("predict").addEventListener("click", () => predict(false));
$("teach").addEventListener("click", teach);
$("reset").addEventListener("click", reset);
let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { drawNetwork(state.prediction); drawPlots(); }, 150);
});

clearPad();
drawNetwork(null);
loadModel();
