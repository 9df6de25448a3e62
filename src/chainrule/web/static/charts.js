// The Training tab: GET /api/model → the model's facts, its architecture, the training curves
// (loss and accuracy per epoch) and the confusion matrix on its test split.
import { api } from "./api.js";
import { $, el, fitCanvas, line, pct, state, status } from "./dom.js";

export async function loadModel() {
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

export function drawPlots() {
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

