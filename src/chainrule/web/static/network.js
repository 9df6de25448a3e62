// The network as layers of neurons: the input image, each hidden layer's activations, the
// output probabilities, and the strongest contributions to the predicted digit.
import { $, fitCanvas, line, state } from "./dom.js";

export function drawNetwork(result) {
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
  const box = { W, H, top, usable, short: W < 520, inX: 14, inY: top + (usable - inSize) / 2, inSize };
  drawInput(ctx, box, result.input);
  // columns for hidden layers and the output
  const outW = 44, right = W - outW - 8;
  const hidden = layers.slice(0, -1), output = layers[layers.length - 1];
  const positions = drawHidden(ctx, box, hidden, box.inX + box.inSize + 40, right);
  const gapOut = usable / 10, outX = right + outW / 2, outPts = [];
  for (let i = 0; i < output.values.length; i++) {
    const y = top + gapOut * (i + 0.5);
    outPts.push({ x: outX, y });
  }
  if (positions.length) drawConnections(ctx, box, hidden, positions, outPts[result.digit], result.contributions);
  drawOutput(ctx, output, outPts, gapOut, result.digit);
  ctx.fillStyle = "#8091ab"; ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "right";
  ctx.fillText(box.short ? "output" : "output · softmax", W - 8, H - 10);
}

// The input image, one square per pixel.
function drawInput(ctx, { H, short, inX, inY, inSize }, input) {
  const px = inSize / 28;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const v = input ? input[y][x] : 0;
      const c = Math.round(25 + 230 * v);
      ctx.fillStyle = `rgb(${c},${c},${Math.min(255, c + 10)})`;
      ctx.fillRect(inX + x * px, inY + y * px, px + 0.5, px + 0.5);
    }
  }
  label(ctx, short ? "input" : "input · 784 pixels", inX + inSize / 2, H - 10);
}

// Each hidden layer as a block of neurons between x = colStart and x = right; per layer, the
// [{x, y}] of each unit.
function drawHidden(ctx, { H, top, usable, short }, hidden, colStart, right) {
  const span = (right - colStart) / Math.max(1, hidden.length + 1);
  const positions = [];
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
  return positions;
}

// input → most active units of the first hidden layer (faint); last hidden layer → predicted
// output: the largest terms W[digit, j]·h_j.
function drawConnections(ctx, { inX, inY, inSize }, hidden, positions, target, contributions) {
  const first = hidden[0].values.map((v, j) => [v, j]).sort((a, b) => b[0] - a[0]).slice(0, 10);
  ctx.lineWidth = 1;
  for (const [v, j] of first) {
    if (v <= 0) continue;
    ctx.strokeStyle = "rgba(255,214,102,0.18)";
    line(ctx, inX + inSize, inY + inSize / 2, positions[0][j].x, positions[0][j].y);
  }
  const last = positions[positions.length - 1];
  const terms = contributions || [];
  const big = Math.max(1e-9, ...terms.map((t) => Math.abs(t[1])));
  for (const [j, value] of terms) {
    if (!last[j]) continue;
    ctx.lineWidth = 0.6 + 2.4 * Math.abs(value) / big;
    ctx.strokeStyle = value > 0 ? "rgba(72,199,116,0.75)" : "rgba(240,82,82,0.75)";
    line(ctx, last[j].x, last[j].y, target.x - 14, target.y);
  }
}

function drawOutput(ctx, output, outPts, gapOut, digit) {
  const names = state.model ? state.model.class_names : null;
  output.values.forEach((p, i) => {
    const { x, y } = outPts[i];
    neuron(ctx, x, y, Math.min(13, gapOut * 0.42), p);
    if (i === digit) {
      ctx.strokeStyle = "#ffd666"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(x, y, Math.min(13, gapOut * 0.42) + 3, 0, 2 * Math.PI); ctx.stroke();
    }
    ctx.fillStyle = p > 0.5 ? "#0f1724" : "#c9d4e5";
    ctx.font = "bold 12px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    ctx.fillText(names && names[i].length <= 2 ? names[i] : String(i), x, y + 0.5);
  });
}

function neuron(ctx, x, y, r, t) {
  // brightness = activation (scaled by the layer's largest); negative values tinted blue
  const a = Math.min(1, Math.abs(t));
  const [base, lit] = t >= 0 ? [[38, 48, 66], [255, 214, 102]] : [[38, 48, 66], [110, 160, 255]];
  const c = base.map((b, i) => Math.round(b + (lit[i] - b) * Math.sqrt(a)));
  ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
  ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill();
}

function label(ctx, text, x, y) {
  ctx.fillStyle = "#8091ab"; ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center"; ctx.textBaseline = "alphabetic";
  ctx.fillText(text, x, y);
}
