// The page's shared state and small DOM/canvas helpers, used by every other module.

export const $ = (id) => document.getElementById(id);
export const state = {
  drawing: false, last: null, inked: false, seq: 0, shown: 0, busy: false,
  prediction: null, teach: null, model: null, steps: 0, liveTimer: 0,
};

export function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

export const fmt = (v) => (Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(3) : v.toExponential(1)).replace(/-/g, "−");
export const pct = (p) => (100 * p).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1) + "%";

// Diverging colour (blue − / white 0 / red +) for t in [−1, 1].
export function diverging(t) {
  t = Math.max(-1, Math.min(1, t));
  const [r, g, b] = t >= 0 ? [178, 24, 43] : [33, 102, 172];
  const a = Math.abs(t);
  return [255 + (r - 255) * a, 255 + (g - 255) * a, 255 + (b - 255) * a];
}

// Paint a 2-D array into a canvas, one pixel per entry, with colour(value) → [r, g, b].
export function paint(canvas, rows, colour) {
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

export function maxAbs(rows) {
  let m = 0;
  for (const row of rows) for (const v of row) m = Math.max(m, Math.abs(v));
  return m || 1;
}

// A canvas sized to its CSS width × aspect, sharp on high-DPI screens; returns [ctx, w, h].
export function fitCanvas(canvas, aspect) {
  const w = Math.max(240, canvas.clientWidth || canvas.parentElement.clientWidth);
  const h = Math.round(w * aspect);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return [ctx, w, h];
}

export function line(ctx, x1, y1, x2, y2) {
  ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
}
