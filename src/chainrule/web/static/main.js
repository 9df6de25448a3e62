// chainrule serve: the page. Plain JavaScript ES modules, no libraries, nothing fetched from
// elsewhere. This module switches the tabs and wires the buttons; the parts live in
//   draw.js     the drawing pad → POST /api/predict → bars and the 28×28 input
//   network.js  the network as layers of neurons
//   teach.js    "Teach it" → POST /api/teach → the gradient step, made visible; reset
//   charts.js   the Training tab: facts, curves, confusion matrix (GET /api/model)
//   api.js, dom.js   fetch helpers; shared state and small DOM/canvas helpers
// playground.js (its own module) runs the Playground tab; it listens to the same tab buttons.
import { loadModel, drawPlots } from "./charts.js";
import { $, state, status } from "./dom.js";
import { clearPad, predict, setupPad } from "./draw.js";
import { drawNetwork } from "./network.js";
import { reset, teach } from "./teach.js";

function showTab(name) {
  for (const tab of ["draw", "model", "playground"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`panel-${tab}`).hidden = tab !== name;
  }
  if (name === "model") drawPlots();
  else if (name === "draw") drawNetwork(state.prediction);
}

setupPad();
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
