// Gate page, part 2b: the fast path of drawing (gate_draw.js draws the reference and calls
// these). Dots are one path per class; every ringed look (misclassified, corrected, excluded,
// moved) is a sprite stamped with drawImage, so a ring costs what a dot costs. While a class or
// a point is dragged, the points it cannot move sit in a cached layer (keyed by the camera and
// the edit version) and each frame draws only the moving ones on top of it.

// ---- a cached layer of what a drag cannot move -------------------------------------------
function movingRows() {
  // Rows a drag moves frame by frame (a class's members, or one point); null when none.
  if (!drag || !drag.moved) return null;
  if (drag.kind === "class") return members[drag.index];
  if (drag.kind === "point") return [drag.index];
  return null;
}

const layer = { canvas: null, ctx: null, key: "" }; // every point but the moving ones

function blitLayer(r, moving) {
  const key = [version, cam.cx, cam.cy, cam.k, canvas.width, canvas.height, drag.kind, drag.index].join();
  if (!layer.canvas) {
    layer.canvas = document.createElement("canvas");
    layer.ctx = layer.canvas.getContext("2d");
  }
  if (layer.key !== key) {
    const g = layer.ctx, dpr = ctx.getTransform().a || 1; // the main canvas's own scale
    if (layer.canvas.width !== canvas.width || layer.canvas.height !== canvas.height) {
      layer.canvas.width = canvas.width; layer.canvas.height = canvas.height;
    }
    g.setTransform(1, 0, 0, 1, 0, 0); g.clearRect(0, 0, layer.canvas.width, layer.canvas.height);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const out = new Uint8Array(N);
    for (const i of moving) out[i] = 1;
    const rest = [];
    for (let i = 0; i < N; i++) if (!out[i]) rest.push(i);
    drawPoints(g, r, rest);
    layer.key = key;
  }
  ctx.save(); ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.drawImage(layer.canvas, 0, 0); ctx.restore();
}

function drawPoints(g, r, rows) {
  // rows: the points to draw (null: all). The reference's order: dots class by class, then
  // the rings by predicted class, corrected points, moved points.
  const dots = Array.from({ length: C }, () => []), rings = Array.from({ length: C }, () => []);
  const fixed = Array.from({ length: C }, () => []), moved = [];
  const add = (i) => {
    const c = LAB[i];
    if (EX[i] || LA[i] !== c) fixed[c].push(i);
    else { dots[c].push(i); if (WRONG[i] && PRED[i] >= 0 && PRED[i] < C) rings[PRED[i]].push(i); }
    if (MV[i]) moved.push(i);
  };
  if (rows) for (const i of rows) add(i); else for (let i = 0; i < N; i++) add(i);
  g.globalAlpha = hi ? 0.15 : 0.75;
  for (let c = 0; c < C; c++) {
    if (!dots[c].length) continue;
    g.fillStyle = view.colors[c]; g.beginPath();
    for (const i of dots[c]) {
      const px = sx(X[i]), py = sy(Y[i]);
      if (px < -r || py < -r || px > cam.W + r || py > cam.H + r) continue;
      g.moveTo(px + r, py); g.arc(px, py, r, 0, 6.2832);
    }
    g.fill();
  }
  if (hi) {
    // Faded, rings that overlap must not add up their alpha (the reference strokes them as
    // one path per colour): the dark rings, then the coloured ones, each drawn opaque on a
    // layer of their own that goes on at 0.12.
    for (const part of ["dark", "colour"]) {
      const f = fadeLayer();
      drawRings(f.getContext("2d"), r, rings, part);
      g.save(); g.setTransform(1, 0, 0, 1, 0, 0); g.globalAlpha = 0.12; g.drawImage(f, 0, 0); g.restore();
    }
  } else {
    g.globalAlpha = 1;
    drawRings(g, r, rings, "both");
  }
  g.globalAlpha = hi ? 0.3 : 1;
  for (let c = 0; c < C; c++) for (const i of fixed[c]) stampAll(g, correctedSprite(r, i), [i]);
  g.globalAlpha = 1;
  stampAll(g, sprite("halo", r, ringLook(r + 1.7, 4, "#fff")), moved);
  stampAll(g, sprite("moved", r, ringLook(r + 1.7, 2, "#111")), moved);
}

function drawRings(g, r, rings, part) {
  // rings[p]: misclassified points predicted as p. All dark rings first, then the coloured.
  const dark = sprite("ring", r, ringLook(r, 2.8, "#222"));
  if (part !== "colour") for (let p = 0; p < C; p++) stampAll(g, dark, rings[p]);
  if (part === "dark") return;
  for (let p = 0; p < C; p++) if (rings[p].length) stampAll(g, sprite(`ring${p}`, r, ringLook(r, 1.4, view.colors[p])), rings[p]);
}

let fade = null;
function fadeLayer() {
  // A cleared canvas the size of the page's (device px).
  if (!fade) fade = document.createElement("canvas");
  if (fade.width !== canvas.width || fade.height !== canvas.height) {
    fade.width = canvas.width; fade.height = canvas.height;
  } else {
    fade.getContext("2d").clearRect(0, 0, fade.width, fade.height);
  }
  return fade;
}

// A sprite: one look drawn once at device resolution, keyed by name, in PHASES x PHASES
// variants offset by a fraction of a device pixel, so that it is stamped at whole device pixels
// (no resampling) within 1 / (2 * PHASES) px of the point. All are rebuilt when the device
// pixel ratio or the point radius changes.
const PHASES = 4;
const sprites = { key: "", map: new Map() };

function sprite(name, r, look) {
  const dpr = ctx.getTransform().a || 1, key = `${dpr}:${r}`;
  if (sprites.key !== key) { sprites.key = key; sprites.map.clear(); }
  let s = sprites.map.get(name);
  if (!s) {
    // D device px: the widest look (the moved halo, r + 5.5 px) with room for its edge
    s = { look, D: Math.ceil(2 * (r + 8) * dpr), dpr, v: new Array(PHASES * PHASES).fill(null) };
    sprites.map.set(name, s);
  }
  return s;
}

function variant(s, qx, qy) {
  // The look centred at (D / 2 + qx / PHASES, D / 2 + qy / PHASES) device px.
  const k = qy * PHASES + qx;
  if (s.v[k]) return s.v[k];
  const img = document.createElement("canvas");
  img.width = img.height = s.D;
  const g = img.getContext("2d");
  g.setTransform(s.dpr, 0, 0, s.dpr, 0, 0);
  s.look(g, (s.D / 2 + qx / PHASES) / s.dpr, (s.D / 2 + qy / PHASES) / s.dpr);
  return (s.v[k] = img);
}

function stampAll(g, s, rows) {
  // In device px, identity transform: each stamp lands on whole pixels.
  const dpr = s.dpr, h = s.D / 2, W = cam.W * dpr, H = cam.H * dpr;
  g.save(); g.setTransform(1, 0, 0, 1, 0, 0);
  for (const i of rows) {
    const px = sx(X[i]) * dpr - h, py = sy(Y[i]) * dpr - h; // the sprite's corner
    if (px < -s.D || py < -s.D || px > W || py > H) continue;
    const ix = Math.floor(px), iy = Math.floor(py);
    let qx = Math.round((px - ix) * PHASES), qy = Math.round((py - iy) * PHASES);
    const ox = qx === PHASES ? 1 : 0, oy = qy === PHASES ? 1 : 0;
    qx -= ox * PHASES; qy -= oy * PHASES;
    g.drawImage(variant(s, qx, qy), ix + ox, iy + oy);
  }
  g.restore();
}

const ringLook = (R, width, colour) => (g, x, y) => {
  // A ring of radius R + 1.8 px (R: the point radius; the moved look passes a larger one).
  g.beginPath(); g.arc(x, y, R + 1.8, 0, 6.2832);
  g.lineWidth = width; g.strokeStyle = colour; g.stroke();
};

function correctedSprite(r, i) {
  // As drawCorrected: relabelled (new class's fill, given class's ring) or excluded (grey cross).
  const R = r + 1.5;
  if (EX[i]) {
    return sprite("excluded", r, (g, x, y) => {
      g.beginPath(); g.arc(x, y, R, 0, 6.2832);
      g.lineWidth = 1.5; g.strokeStyle = "#888"; g.fillStyle = "#fff"; g.fill(); g.stroke();
      g.beginPath(); g.moveTo(x - R, y - R); g.lineTo(x + R, y + R);
      g.moveTo(x + R, y - R); g.lineTo(x - R, y + R); g.stroke();
    });
  }
  const to = LA[i], from = LAB[i];
  return sprite(`fix${to}:${from}`, r, (g, x, y) => {
    g.beginPath(); g.arc(x, y, R, 0, 6.2832);
    g.fillStyle = view.colors[to] || "#000"; g.fill();
    g.lineWidth = 2.2; g.strokeStyle = view.colors[from]; g.stroke();
  });
}
