// chainrule serve: the Playground tab's drawing. An ES module, no libraries: the decision
// boundary with the data points, the network diagram (each neuron's map, weights as lines),
// the loss chart, and the packed-byte pictures they are made of. State, controls and requests
// live in playground.js, which hands its state object over once (useState).

const $ = (id) => document.getElementById(id);
export const ORANGE = [245, 147, 34];  // class 1, positive values
export const BLUE = [8, 119, 189];     // class 0, negative values
export const CLASS_COLOURS = [BLUE, ORANGE, [44, 160, 44], [148, 83, 189]];  // classes 0..3

let pg = null;  // playground.js's state: options, net, frame, history, nodes, edges, ...

// The page state these functions read and fill in (pg.nodes, pg.edges for the pointer).
export function useState(state) {
  pg = state;
}

// White → orange for t > 0, white → blue for t < 0 (t in [−1, 1]).
export function colour(t) {
  const [r, g, b] = t >= 0 ? ORANGE : BLUE;
  const a = Math.min(1, Math.abs(t));
  return [255 + (r - 255) * a, 255 + (g - 255) * a, 255 + (b - 255) * a];
}

export function bytes(packed) {
  const text = atob(packed);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

// A side×side canvas from packed bytes: signed (128 = 0) or probabilities (0..255), with
// colours at most `strength` of full (pale backgrounds keep the points visible).
export function mapCanvas(packed, side, signed, strength = 0.85) {
  const values = bytes(packed);
  const canvas = document.createElement("canvas");
  canvas.width = side; canvas.height = side;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    const t = signed ? (values[i] - 128) / 127 : 2 * values[i] / 255 - 1;
    const [r, g, b] = colour(strength * t);
    img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

// White → `rgb` as t goes 0 → 1 (at most `strength` of full): one output unit's probability.
export function tintCanvas(packed, side, rgb, strength = 0.85) {
  const values = bytes(packed);
  const canvas = document.createElement("canvas");
  canvas.width = side; canvas.height = side;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    const a = strength * values[i] / 255;
    for (let c = 0; c < 3; c++) img.data[4 * i + c] = 255 + (rgb[c] - 255) * a;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

// More than two classes: each cell in its likeliest class's colour, paler where the network
// is less sure (confidence (p − 1/K)/(1 − 1/K) from the winning probability p).
export function classCanvas(frame, side, classes) {
  const winners = bytes(frame.boundary_class), top = bytes(frame.boundary);
  const canvas = document.createElement("canvas");
  canvas.width = side; canvas.height = side;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    const rgb = CLASS_COLOURS[winners[i]] || BLUE;
    const sure = Math.max(0, (top[i] / 255 - 1 / classes) / (1 - 1 / classes));
    const a = 0.2 + 0.5 * sure;
    for (let c = 0; c < 3; c++) img.data[4 * i + c] = 255 + (rgb[c] - 255) * a;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

export function outputCanvas(frame, side) {
  const net = pg.net;
  if (net.output === "softmax") return classCanvas(frame, side, net.sizes[net.sizes.length - 1]);
  return mapCanvas(frame.boundary, side, net.output === "regression", 0.6);
}

// A data point's colour: its class, or (regression) its value on the orange/blue scale.
export function pointColour(point) {
  if (pg.net.output === "regression") return colour(point[2] / (pg.net.value_scale || 1));
  return CLASS_COLOURS[point[2]] || BLUE;
}

export function toCanvas(point, size) {
  const [lo, hi] = pg.net.domain;
  return [(point[0] - lo) / (hi - lo) * size, (hi - point[1]) / (hi - lo) * size];
}

export function drawBoundary() {
  const canvas = $("pg-boundary");
  const size = canvas.width;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(outputCanvas(pg.frame, pg.net.grid), 0, 0, size, size);
  const regression = pg.net.output === "regression";
  const dot = (point, filled, radius) => {
    const [x, y] = toCanvas(point, size);
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, 2 * Math.PI);
    const rgb = `rgb(${pointColour(point).map(Math.round).join(",")})`;
    ctx.fillStyle = filled ? rgb : "#fff";
    ctx.strokeStyle = regression ? "#333" : filled ? "#fff" : rgb;
    ctx.lineWidth = filled ? 1 : 2;
    if (regression && !filled) { ctx.strokeStyle = rgb; ctx.lineWidth = 3; }
    ctx.fill(); ctx.stroke();
  };
  const radius = pg.net.train.length <= 4 ? 9 : 3.5;
  for (const p of pg.net.test) dot(p, false, radius);
  for (const p of pg.net.train) dot(p, true, radius);
  const chosen = pg.net.train[pg.point];
  if (chosen) {
    const [x, y] = toCanvas(chosen, size);
    ctx.beginPath(); ctx.arc(x, y, radius + 5, 0, 2 * Math.PI);
    ctx.strokeStyle = "#111"; ctx.lineWidth = 2; ctx.stroke();
  }
  canvas.dataset.step = String(pg.frame.step);
  canvas.dataset.points = String(pg.net.points);
}

// The diagram: a column of squares per layer, each square the neuron's map; lines are weights.
export function layout(width) {
  const sizes = pg.net.sizes;
  const most = Math.max(...sizes);
  const box = most <= 8 ? 40 : most <= 16 ? 26 : 16;
  const gap = Math.max(4, Math.round(box / 4));
  const height = most * (box + gap) + 30;
  const columnGap = (width - 40 - box) / (sizes.length - 1);
  const nodes = sizes.map((count, l) => {
    const top = (height - count * (box + gap) + gap) / 2;
    return Array.from({ length: count }, (_, i) => ({
      l, i, x: 20 + l * columnGap, y: top + i * (box + gap), size: box,
    }));
  });
  return { nodes, height, box };
}

export function nodeImage(l, i) {
  const net = pg.net, frame = pg.frame;
  if (l === 0) return mapCanvas(net.input_maps[i], net.neuron_grid, true);
  if (l === net.sizes.length - 1) {
    if (net.output === "binary") return mapCanvas(frame.boundary, net.grid, false);
    if (net.output === "regression") return mapCanvas(frame.outputs[0], net.neuron_grid, true);
    return tintCanvas(frame.outputs[i], net.neuron_grid, CLASS_COLOURS[i]);
  }
  return mapCanvas(frame.neurons[l - 1][i], net.neuron_grid, true);
}

export function drawNet() {
  const canvas = $("pg-net");
  const width = Math.max(320, canvas.parentElement.clientWidth);
  const { nodes, height } = layout(width);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
  canvas.style.width = width + "px"; canvas.style.height = height + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  pg.nodes = nodes.flat();
  pg.edges = [];
  const weights = pg.frame.weights;
  for (let l = 1; l < nodes.length; l++) {
    const W = weights[l - 1];
    let most = 0;
    for (const row of W) for (const w of row) most = Math.max(most, Math.abs(w || 0));
    for (const to of nodes[l]) {
      for (const from of nodes[l - 1]) {
        const w = W[to.i][from.i] || 0;
        const edge = { l, i: to.i, j: from.i, x1: from.x + from.size, y1: from.y + from.size / 2,
          x2: to.x, y2: to.y + to.size / 2 };
        pg.edges.push(edge);
        ctx.strokeStyle = `rgba(${(w >= 0 ? ORANGE : BLUE).join(",")},${0.25 + 0.75 * Math.abs(w) / (most || 1)})`;
        ctx.lineWidth = 0.5 + 4 * Math.abs(w) / (most || 1);
        ctx.beginPath(); ctx.moveTo(edge.x1, edge.y1); ctx.lineTo(edge.x2, edge.y2); ctx.stroke();
      }
    }
  }
  const e = pg.edge && pg.edges.find((d) => d.l === pg.edge.l && d.i === pg.edge.i && d.j === pg.edge.j);
  if (e) {
    ctx.strokeStyle = "#111"; ctx.lineWidth = 4; ctx.setLineDash([]);
    ctx.beginPath(); ctx.moveTo(e.x1, e.y1); ctx.lineTo(e.x2, e.y2); ctx.stroke();
  }
  ctx.imageSmoothingEnabled = true;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#667085";
  for (const n of pg.nodes) {
    ctx.drawImage(nodeImage(n.l, n.i), n.x, n.y, n.size, n.size);
    ctx.strokeStyle = "#9aa4b2"; ctx.lineWidth = 1;
    ctx.strokeRect(n.x + 0.5, n.y + 0.5, n.size - 1, n.size - 1);
  }
  const names = pg.net.features;
  for (const n of nodes[0]) ctx.fillText(names[n.i], n.x, n.y - 2);
  canvas.dataset.sizes = pg.net.sizes.join(",");
}

export function drawChart() {
  const canvas = $("pg-chart");
  const width = Math.max(200, canvas.clientWidth), height = 110;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
  canvas.style.height = height + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const h = pg.history;
  if (h.length < 2) return;
  const top = Math.max(...h.map((p) => Math.max(p.train, p.test)));
  const last = h[h.length - 1].step || 1;
  for (const [key, style] of [["train", "#9aa4b2"], ["test", "#111"]]) {
    ctx.strokeStyle = style; ctx.lineWidth = 1.5; ctx.beginPath();
    h.forEach((p, k) => {
      const x = 4 + (width - 8) * p.step / last, y = height - 4 - (height - 8) * p[key] / top;
      if (k) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  }
}
