// The drawing pad: draw on #pad → POST /api/predict (the canvas as a PNG data URL) → the bars,
// the 28×28 input the network saw, and the network view.
import { api } from "./api.js";
import { $, el, paint, pct, state, status } from "./dom.js";
import { drawNetwork } from "./network.js";

export const pad = $("pad");
const pctx = pad.getContext("2d");

export function clearPad() {
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

function startStroke(e) {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  state.drawing = true;
  state.last = padPoint(e);
  stroke(state.last, state.last);
}

function moveStroke(e) {
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
}

function endStroke() {
  if (!state.drawing) return;
  state.drawing = false;
  clearTimeout(state.liveTimer);  // the stroke is done: one prediction now, none pending
  state.liveTimer = 0;
  if ($("live").checked) predict(true);
}

export function setupPad() {
  pad.addEventListener("pointerdown", startStroke);
  pad.addEventListener("pointermove", moveStroke);
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
}

export async function predict(quiet = false) {
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

export function showPrediction(result) {
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
  $("bars").replaceChildren(...probs.map((p, i) => probabilityBar(p, i, result.digit, names)));
  if (result.input) paint($("seen"), result.input, (v) => [255 * v, 255 * v, 255 * v]);
  drawNetwork(result);
  digit.dataset.version = Number(digit.dataset.version) + 1;
}

function probabilityBar(p, i, top, names) {
  const fill = el("div", { class: "bar-fill", style: `width:${(100 * p).toFixed(2)}%` });
  return el("div", { class: "bar-row" + (i === top ? " top" : ""), "data-digit": i, "data-p": p },
    el("span", { class: "label" }, names[i] || String(i)),
    el("div", { class: "bar-track" }, fill),
    el("span", { class: "value" }, pct(p)));
}
