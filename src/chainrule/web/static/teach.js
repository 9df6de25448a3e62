// Teach: one gradient step on the drawing (POST /api/teach), made visible: the loss before and
// after, dL/dlogits, and each weight matrix's gradient. Reset forgets the taught copy.
import { api } from "./api.js";
import { $, diverging, el, fitCanvas, fmt, maxAbs, paint, pct, state, status } from "./dom.js";
import { pad, predict, showPrediction } from "./draw.js";

export async function teach() {
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
  $("teach-table").tBodies[0].replaceChildren(...r.output_grad.map((g, i) => gradientRow(r, g, i, gmax, names)));
  showTiles(r.weight_grads.find((w) => w.kind === "tiles"));
  const views = r.weight_grads.filter((w) => w.kind !== "tiles").map(matrixView);
  $("matrices").replaceChildren(...views.map((v) => v.box));
  views.forEach((v) => v.draw());
  out.dataset.version = Number(out.dataset.version) + 1;
}

// One row of the table: digit, p before, dL/dlogit as a diverging bar, p after.
function gradientRow(r, g, i, gmax, names) {
  const before = r.probabilities_before[i], after = r.probabilities_after[i];
  const w = (50 * Math.abs(g) / gmax).toFixed(1);
  const span = el("span", { style: `${g >= 0 ? "left:50%" : `right:50%`};width:${w}%;background:${g >= 0 ? "#b2182b" : "#2166ac"}` });
  return el("tr", { class: i === r.label ? "target" : "", "data-digit": i, "data-before": before, "data-after": after, "data-grad": g },
    el("td", {}, names ? names[i] : String(i)),
    el("td", {}, probCell(before)),
    el("td", {}, el("div", { class: "cell-bar" }, el("div", { class: "diverge" }, span), fmt(g))),
    el("td", {}, probCell(after)));
}

// The first weight matrix's gradient, one 28×28 tile per hidden unit (with its row after).
function showTiles(first) {
  const tiles = $("tiles");
  tiles.replaceChildren();
  if (!first) return;
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

export async function reset() {
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
