// chainrule serve: the Playground tab. An ES module, no libraries. The network lives on the
// server (chainrule's Dense, activations, dropout, losses and optimizers); this page asks for
// K training steps per frame (POST /api/playground/step) and draws what comes back: the
// output over the plane, every neuron's picture of it, the weights, the losses, and for one
// training point every number of its forward and backward pass (the backprop view). Clicks on
// the plane add or remove points, a pasted CSV becomes the data, and the network can leave as a
// Python script or a .safetensors file. The settings live in the URL hash
// (#playground?problem=classification&dataset=xor&hidden=4,4&...).

import {
  drawBoundary, drawChart, drawNet, nodeImage, toCanvas, useState,
} from "./playground-draw.js";

const $ = (id) => document.getElementById(id);
const SETTING_KEYS = ["problem", "dataset", "noise", "train", "seed", "hidden", "activation", "lr",
  "batch", "optimizer", "l2", "dropout"];
const PAGE_KEYS = ["speed", "paint"];  // page-only settings, kept in the URL too
const DATASET_LABELS = {
  xor: "xor", circle: "circle", gauss: "two blobs", spiral: "spiral",
  xnor: "XNOR truth table (seed 001)", spiral3: "three-arm spiral", blobs4: "four blobs",
  custom: "your own points", plane: "plane", multigauss: "multigauss",
};
const PAINT = {
  classification: [["0", "class 0"], ["1", "class 1"], ["2", "class 2"], ["3", "class 3"]],
  regression: [["-1", "value −1"], ["-0.5", "value −0.5"], ["0", "value 0"], ["0.5", "value 0.5"],
    ["1", "value 1"]],
};
const SUP = { "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵", "6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹" };
const SUB = { "0": "₀", "1": "₁", "2": "₂", "3": "₃", "4": "₄", "5": "₅", "6": "₆", "7": "₇", "8": "₈", "9": "₉" };

const pg = {
  options: null, net: null, frame: null, explain: null, history: [], playing: false,
  loop: null, building: Promise.resolve(true), builds: 0, mathSeq: 0, point: 0, edge: null, mathVersion: 0, nodes: [], edges: [], started: false,
};
useState(pg);  // the drawing (playground-draw.js) reads and fills in this same object

// ---- small helpers ---------------------------------------------------------------------------
const sup = (n) => "⁽" + String(n).split("").map((c) => SUP[c]).join("") + "⁾";
const sub = (n) => String(n).split("").map((c) => SUB[c]).join("");
const fmt = (v) => (v === null || v === undefined) ? "–"
  : (Math.abs(v) >= 0.001 || v === 0 ? v.toFixed(4) : v.toExponential(2)).replace(/-/g, "−");

function message(text, isError = true) {
  const el = $("pg-message");
  el.textContent = text;
  el.className = "pg-message" + (isError && text ? " error" : "");
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body), credentials: "same-origin",
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function node(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else el.setAttribute(k, v);
  }
  for (const c of children) el.append(c);
  return el;
}

// ---- settings and the URL ---------------------------------------------------------------------
function features() {
  return [...document.querySelectorAll("#pg-features input:checked")].map((i) => i.value);
}

function readControls() {
  const s = {};
  for (const key of SETTING_KEYS) s[key] = $(`pg-${key}`).value.trim();
  s.features = features().join(",");
  return s;
}

function setSelect(el, value) {
  value = String(value);
  if (![...el.options].some((o) => o.value === value)) el.append(node("option", {}, value));
  el.value = value;
}

// The data sets and paint values that fit the problem (classification or regression).
function fillProblemChoices(problem) {
  const datasets = pg.options.datasets[problem] || pg.options.datasets.classification;
  const data = $("pg-dataset"), paint = $("pg-paint-class");
  if ([...data.options].map((o) => o.value).join() !== datasets.join()) {
    const keep = data.value;
    data.replaceChildren(...datasets.map((d) => node("option", { value: d }, DATASET_LABELS[d] || d)));
    data.value = datasets.includes(keep) ? keep : datasets[0];
  }
  const values = PAINT[problem] || PAINT.classification;
  if (paint.dataset.problem !== problem) {
    paint.replaceChildren(...values.map(([v, label]) => node("option", { value: v }, label)));
    paint.value = "1";
    paint.dataset.problem = problem;
  }
}

function writeControls(s) {
  if (s.problem !== undefined) fillProblemChoices(String(s.problem));
  for (const key of SETTING_KEYS) {
    if (s[key] === undefined) continue;
    const el = $(`pg-${key}`);
    if (el.tagName === "SELECT") setSelect(el, s[key]); else el.value = s[key];
  }
  if (s.features !== undefined) {
    const on = new Set(String(s.features).split(","));
    for (const box of document.querySelectorAll("#pg-features input")) box.checked = on.has(box.value);
  }
  if (s.speed !== undefined) setSelect($("pg-speed"), s.speed);
  if (s.paint !== undefined && [...$("pg-paint-class").options].some((o) => o.value === String(s.paint))) {
    $("pg-paint-class").value = String(s.paint);
  }
}

function settingsFromUrl() {
  const hash = location.hash;
  if (!hash.startsWith("#playground")) return null;
  const query = new URLSearchParams(hash.slice(hash.indexOf("?") + 1 || hash.length));
  const s = {};
  for (const key of [...SETTING_KEYS, "features", ...PAGE_KEYS]) {
    if (query.has(key)) s[key] = query.get(key);
  }
  return s;
}

function saveUrl(settings) {
  const query = new URLSearchParams({ ...settings, speed: $("pg-speed").value,
    paint: $("pg-paint-class").value });
  history.replaceState(null, "", "#playground?" + query.toString().replace(/%2C/g, ","));
}

// ---- talking to the server ---------------------------------------------------------------------
// Builds run one after another, each reading the controls when its turn comes, so the last
// change wins on the server as on the page.
function build() {
  pg.building = pg.building.then(buildNow);
  return pg.building;
}

async function buildNow() {
  const settings = readControls();
  try {
    const answer = await post("/api/playground/new", { settings });
    useNet(answer, true);
    const unchanged = JSON.stringify(readControls()) === JSON.stringify(settings);
    if (unchanged) writeControls(answer.settings);  // tidied ("4, 4" → "4,4"), unless edited since
    saveUrl(answer.settings);
    message("");
    showFrame(answer.frame);
    return true;
  } catch (error) {
    message(error.message + (pg.net ? " (the network is unchanged)" : ""));
    return false;
  }
}

// A new network (fresh: forget the loss history and the backprop view) or new data for the
// same one; the frame is drawn by the caller.
function useNet(answer, fresh) {
  pg.net = answer;
  if (fresh) {
    pg.history = [];
    pg.explain = null;
    pg.point = 0;
    pg.edge = null;
    $("pg-net").dataset.version = String(++pg.builds);
  }
  if (pg.point >= answer.train.length) pg.point = 0;
  $("pg-points").textContent = String(answer.points);
  $("pg-code").value = "";
}

async function step(steps, explain) {
  const body = { steps };
  if (explain && pg.net && pg.net.train.length) body.explain = pg.point;
  try {
    return await post("/api/playground/step", body);
  } catch (error) {
    if (error.status === 404 && await build()) return post("/api/playground/step", body);
    throw error;
  }
}

// While playing: ask for K steps, draw the frame, wait for the next animation frame, repeat.
async function playLoop() {
  while (pg.playing) {
    try {
      const answer = await step(Number($("pg-speed").value), false);
      showFrame(answer.frame);
    } catch (error) {
      message(error.message);
      setPlaying(false);
    }
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  $("pg-play").dataset.state = "paused";  // the last frame has landed
}

function setPlaying(on) {
  if (on && pg.playing) return;
  pg.playing = on;
  $("pg-play").textContent = on ? "❚❚ Pause" : "▶ Play";
  $("pg-play").setAttribute("aria-pressed", String(on));
  if (on) {
    $("pg-play").dataset.state = "playing";
    pg.loop = playLoop();
  }
}

async function pause() {
  setPlaying(false);
  await pg.loop;  // the frame in flight lands first
}

async function togglePlay() {
  if (!pg.playing) { setPlaying(true); return; }
  await pause();
  if (pg.net && !pg.frame.diverged && pg.net.train.length) explainPoint();
}

async function stepOnce() {
  await pause();
  const seq = ++pg.mathSeq;
  try {
    const answer = await step(1, true);
    showFrame(answer.frame);
    if (answer.explain && seq === pg.mathSeq) showMath(answer.explain);
  } catch (error) {
    message(error.message);
  }
}

async function explainPoint() {
  const seq = ++pg.mathSeq;
  try {
    const answer = await post("/api/playground/explain", { point: pg.point });
    if (seq === pg.mathSeq) showMath(answer.explain);
  } catch (error) {
    message(error.message);
  }
}

// ---- drawing a frame ----------------------------------------------------------------------------
function showFrame(frame) {
  pg.frame = frame;
  $("pg-epoch").textContent = String(frame.step);
  const none = frame.diverged ? "NaN" : "–";  // no number: diverged, or no points yet
  $("pg-loss").textContent = frame.test_loss === null ? none : frame.test_loss.toFixed(4);
  $("pg-train-loss").textContent = frame.train_loss === null ? none : frame.train_loss.toFixed(4);
  const last = pg.history[pg.history.length - 1];
  if (frame.test_loss !== null && (!last || last.step !== frame.step)) {
    pg.history.push({ step: frame.step, train: frame.train_loss, test: frame.test_loss });
  }
  if (frame.diverged) {
    setPlaying(false);
    message(frame.message);
  }
  drawBoundary();
  drawNet();
  drawChart();
}

// ---- the backprop view ----------------------------------------------------------------------------
function vector(values) {
  const span = node("span", { class: "pg-vec" });
  span.append("[");
  values.forEach((v, k) => {
    if (k) span.append(", ");
    span.append(node("span", { class: "pg-n", "data-value": String(v) }, fmt(v)));
  });
  span.append("]");
  return span;
}

function line(label, formula, values) {
  const row = node("div", { class: "pg-line" });
  row.append(node("span", { class: "pg-sym" }, label), node("span", { class: "pg-eq" }, formula));
  if (values) row.append(" = ", vector(values));
  return row;
}

function matrix(rows, highlight) {
  const table = node("table", { class: "pg-matrix" });
  rows.forEach((row, i) => {
    const tr = node("tr");
    row.forEach((v, j) => {
      const td = node("td", { "data-value": String(v) }, fmt(v));
      if (highlight && highlight.i === i && highlight.j === j) td.className = "chosen";
      td.addEventListener("click", () => chooseEdge(highlight.l, i, j));
      tr.append(td);
    });
    table.append(tr);
  });
  return table;
}

function defaultEdge(view) {
  const first = view.layers[0].dL_dW;
  let best = { l: 1, i: 0, j: 0 }, most = -1;
  first.forEach((row, i) => row.forEach((g, j) => {
    if (Math.abs(g) > most) { most = Math.abs(g); best = { l: 1, i, j }; }
  }));
  return best;
}

function showMath(view) {
  pg.explain = view;
  const L = view.layers.length;
  if (!pg.edge || pg.edge.l > L) pg.edge = defaultEdge(view);
  const box = $("pg-math");
  const act = view.activation, out = OUTPUT_MATHS[view.output] || OUTPUT_MATHS.binary;
  const forward = node("div", { class: "pg-col" }, node("h3", {}, "Forward pass"));
  const a0 = `a${sup(0)}`;
  const what = view.output === "regression" ? "value" : "class";
  forward.append(line(`${a0} = x`, `(training point ${view.point} at (${view.xy.map(fmt).join(", ")}), ${what} y = ${view.output === "regression" ? fmt(view.y) : view.y})`, view.x));
  view.layers.forEach((layer, k) => {
    const l = layer.layer, below = `a${sup(l - 1)}`;
    forward.append(line(`z${sup(l)}`, `= W${sup(l)}${below} + b${sup(l)}`, layer.z));
    const f = l === L ? out.f : act;
    forward.append(line(`a${sup(l)}`, `= ${f}(z${sup(l)})${l === L ? ` = ${out.yhat}` : ""}`, layer.a));
    if (k === L - 1) forward.append(line("L", out.loss, [view.loss]));
  });
  const backward = node("div", { class: "pg-col" }, node("h3", {}, "Backward pass (chain rule)"));
  for (let k = L - 1; k >= 0; k--) {
    const layer = view.layers[k], l = layer.layer;
    const f = l === L ? out.f : act;
    const daText = l === L ? out.da : `= W${sup(l + 1)}ᵀ ∂L/∂z${sup(l + 1)}`;
    backward.append(node("h4", {}, `layer ${l}${l === L ? " (output)" : ""}`));
    if (layer.dL_da !== null) {
      backward.append(line(`∂L/∂a${sup(l)}`, daText, layer.dL_da));
      backward.append(line(`σ′(z${sup(l)})`, `(${f}′)`, layer.sigma_prime));
      backward.append(line(`∂L/∂z${sup(l)}`, `= ∂L/∂a${sup(l)}·σ′(z${sup(l)})${l === L ? ` = ${out.dz}` : ""}`, layer.dL_dz));
    } else {  // the softmax output: its Jacobian and the log of the loss cancel
      backward.append(line(`∂L/∂z${sup(l)}`, `= ${out.dz}  (y one-hot: 1 at class ${view.y})`, layer.dL_dz));
    }
    backward.append(line(`∂L/∂W${sup(l)}`, `= ∂L/∂z${sup(l)}·a${sup(l - 1)}ᵀ`));
    backward.append(matrix(layer.dL_dW, pg.edge.l === l ? pg.edge : { l, i: -1, j: -1 }));
  }
  const e = pg.edge, layer = view.layers[e.l - 1];
  const below = e.l === 1 ? view.x : view.layers[e.l - 2].a;
  const g = layer.dL_dW[e.i][e.j];
  const chosen = node("div", { class: "pg-chosen", id: "pg-edge" });
  chosen.append(
    node("b", {}, `The dark edge: W${sup(e.l)}${sub(e.i + 1)}${sub(e.j + 1)}`),
    ` (${e.l === 1 ? `input ${pg.net.features[e.j]}` : `neuron ${e.j + 1} of layer ${e.l - 1}`} → `,
    `${e.l === L ? "the output" : `neuron ${e.i + 1} of layer ${e.l}`}): `,
    `∂L/∂W${sup(e.l)}${sub(e.i + 1)}${sub(e.j + 1)} = ∂L/∂z${sup(e.l)}${sub(e.i + 1)} · a${sup(e.l - 1)}${sub(e.j + 1)} = `,
    `${fmt(layer.dL_dz[e.i])} · ${fmt(below[e.j])} = ${fmt(g)}. `,
    `A plain SGD step on this point alone would change it by −η·${fmt(g)} = ${fmt(-view.lr * g)} `,
    `(η = ${view.lr}); the real step averages this over the mini-batch.`,
  );
  box.replaceChildren(chosen, node("div", { class: "pg-cols" }, forward, backward));
  box.dataset.version = String(++pg.mathVersion);
  box.dataset.point = String(view.point);
  drawNet();
  drawBoundary();
}

// How the output layer reads in each problem: two classes, more classes, regression.
const OUTPUT_MATHS = {
  binary: { f: "sigmoid", yhat: "ŷ", loss: "= −[y log ŷ + (1 − y) log(1 − ŷ)]",
    da: "= (ŷ − y) / (ŷ(1 − ŷ))", dz: "ŷ − y" },
  softmax: { f: "softmax", yhat: "p", loss: "= −log p_y  (cross-entropy)", da: "", dz: "p − y" },
  regression: { f: "identity", yhat: "ŷ", loss: "= (ŷ − y)²  (squared error)",
    da: "= 2(ŷ − y)", dz: "2(ŷ − y)" },
};

function chooseEdge(l, i, j) {
  pg.edge = { l, i, j };
  if (pg.explain) showMath(pg.explain);
}

// ---- pointer: pick a point, pick an edge, enlarge a neuron --------------------------------------
function canvasPoint(canvas, event, size) {
  const r = canvas.getBoundingClientRect();
  return [(event.clientX - r.left) * size[0] / r.width, (event.clientY - r.top) * size[1] / r.height];
}

// Click: add a point of the chosen class (or value); shift-click: remove the nearest point;
// alt-click: explain the nearest training point in the backprop view.
function boundaryClick(event) {
  if (!pg.net) return;
  if (event.altKey) { pickPoint(event); return; }
  const canvas = $("pg-boundary");
  const [cx, cy] = canvasPoint(canvas, event, [canvas.width, canvas.height]);
  const [lo, hi] = pg.net.domain;
  const round = (v) => Math.round(Math.min(hi, Math.max(lo, v)) * 1e4) / 1e4;
  const xy = [round(lo + cx / canvas.width * (hi - lo)), round(hi - cy / canvas.height * (hi - lo))];
  const value = Number($("pg-paint-class").value);
  changePoints(event.shiftKey ? { remove: xy } : { add: [...xy, value] });
}

// Edits run one after another (and after any build), so none is lost.
function changePoints(body) {
  pg.building = pg.building.then(async () => {
    try {
      let answer;
      try {
        answer = await post("/api/playground/points", body);
      } catch (error) {
        if (error.status !== 404 || !(await buildNow())) throw error;
        answer = await post("/api/playground/points", body);
      }
      useNet(answer, answer.rebuilt);
      message(answer.rebuilt ? `the network was rebuilt for ${answer.classes} classes` : "", false);
      showFrame(answer.frame);
    } catch (error) {
      message(error.message);
    }
    return true;
  });
  return pg.building;
}

async function loadCsv() {
  const text = $("pg-csv").value;
  pg.building = pg.building.then(async () => {
    try {
      const answer = await post("/api/playground/csv", { csv: text, settings: readControls() });
      writeControls(answer.settings);
      useNet(answer, true);
      saveUrl(answer.settings);
      message(`loaded ${answer.points} points`, false);
      showFrame(answer.frame);
    } catch (error) {
      message(error.message + (pg.net ? " (the data is unchanged)" : ""));
    }
    return true;
  });
  return pg.building;
}

async function exportScript() {
  await pg.building;
  try {
    const answer = await post("/api/playground/export", {});
    $("pg-code").value = answer.code;
    $("pg-code").dataset.loss = answer.test_loss === null ? "" : answer.test_loss.toFixed(4);
    message("");
  } catch (error) {
    message(error.message);
  }
}

function pickPoint(event) {
  if (!pg.net || !pg.net.train.length) return;
  const canvas = $("pg-boundary");
  const [x, y] = canvasPoint(canvas, event, [canvas.width, canvas.height]);
  let best = 0, bestDistance = Infinity;
  pg.net.train.forEach((p, k) => {
    const [px, py] = toCanvas(p, canvas.width);
    const d = (px - x) ** 2 + (py - y) ** 2;
    if (d < bestDistance) { bestDistance = d; best = k; }
  });
  pg.point = best;
  explainPoint();
}

function segmentDistance(e, x, y) {
  const dx = e.x2 - e.x1, dy = e.y2 - e.y1;
  const t = Math.max(0, Math.min(1, ((x - e.x1) * dx + (y - e.y1) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(e.x1 + t * dx - x, e.y1 + t * dy - y);
}

function netPointer(event, click) {
  if (!pg.net || !pg.frame) return;
  const canvas = $("pg-net");
  const r = canvas.getBoundingClientRect();
  const x = event.clientX - r.left, y = event.clientY - r.top;
  const zoom = $("pg-zoom");
  const over = pg.nodes.find((n) => x >= n.x && x <= n.x + n.size && y >= n.y && y <= n.y + n.size);
  if (over && !click) {
    const ctx = zoom.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(nodeImage(over.l, over.i), 0, 0, zoom.width, zoom.height);
    zoom.style.left = Math.min(x + 12, r.width - zoom.width) + "px";
    zoom.style.top = Math.max(0, y - zoom.height / 2) + "px";
    zoom.hidden = false;
    return;
  }
  zoom.hidden = true;
  if (!click) return;
  let best = null, bestDistance = 6;
  for (const e of pg.edges) {
    const d = segmentDistance(e, x, y);
    if (d < bestDistance) { bestDistance = d; best = e; }
  }
  if (best) chooseEdge(best.l, best.i, best.j);
}

// ---- start-up ---------------------------------------------------------------------------------------
function onProblemChange() {
  fillProblemChoices($("pg-problem").value);
  onDatasetChange();
}

function onDatasetChange() {
  const xnor = pg.options.xnor_defaults, defaults = pg.options.defaults;
  const current = readControls();
  const isXnor = (s) => ["hidden", "activation", "optimizer", "lr", "batch"].every((k) => String(s[k]) === String(xnor[k]));
  const keep = { problem: current.problem, dataset: current.dataset, seed: current.seed };
  if (current.dataset === "xnor") writeControls({ ...xnor, seed: current.seed });
  else if (isXnor(current)) writeControls({ ...defaults, ...keep });
  build();
}

function makeFeatureToggles(labels) {
  const box = $("pg-features");
  for (const [key, label] of Object.entries(labels)) {
    const input = node("input", { type: "checkbox", id: `pg-feat-${key}`, value: key });
    box.append(node("label", { class: "check" }, input, label));
  }
}

async function start() {
  if (pg.started) return;
  pg.started = true;
  const response = await fetch("/api/playground/options", { credentials: "same-origin" });
  pg.options = await response.json();
  makeFeatureToggles(pg.options.features);
  writeControls({ ...pg.options.defaults, ...(settingsFromUrl() || {}) });
  for (const key of SETTING_KEYS.filter((k) => k !== "dataset" && k !== "problem")) {
    $(`pg-${key}`).addEventListener("change", build);
  }
  $("pg-problem").addEventListener("change", onProblemChange);
  $("pg-dataset").addEventListener("change", onDatasetChange);
  $("pg-paint-class").addEventListener("change", () => pg.net && saveUrl(pg.net.settings));
  $("pg-load-csv").addEventListener("click", loadCsv);
  $("pg-export").addEventListener("click", exportScript);
  $("pg-features").addEventListener("change", build);
  $("pg-speed").addEventListener("change", () => pg.net && saveUrl(pg.net.settings));
  $("pg-play").addEventListener("click", togglePlay);
  $("pg-step").addEventListener("click", stepOnce);
  $("pg-reset").addEventListener("click", async () => { await pause(); await build(); });
  $("pg-boundary").addEventListener("click", boundaryClick);
  $("pg-net").addEventListener("pointermove", (e) => netPointer(e, false));
  $("pg-net").addEventListener("pointerleave", () => { $("pg-zoom").hidden = true; });
  $("pg-net").addEventListener("click", (e) => netPointer(e, true));
  window.addEventListener("resize", () => pg.frame && drawNet());
  await build();
}

$("tab-playground").addEventListener("click", () => {
  start();
  if (pg.net) saveUrl(pg.net.settings);
});
for (const other of ["tab-draw", "tab-model"]) {
  $(other).addEventListener("click", () => {
    setPlaying(false);
    if (location.hash.startsWith("#playground")) history.replaceState(null, "", location.pathname);
  });
}
if (settingsFromUrl()) $("tab-playground").click();
