// Gate page, part 2: drawing and picking (see gate_state.js for the shared state).

// ---- drawing: one path per class so 10,000 points cost C fills ----------------------
// draw() takes the fast path (gate_sprites.js: ring sprites, and a cached layer of what a drag
// cannot move); drawReference() draws the same picture the long way, one path per point and
// per ring. The browser tests compare the two canvases (tests/test_app_drawing.py).
let frame = 0;
let version = 0; // bumped by every change but a drag's own move: the cached layer's key
const paint = { samples: [], pending: [] }; // ms from a drag's pointer event to its frame painted
const onFrame = () => {
  frame = 0;
  const events = paint.pending;
  paint.pending = [];
  draw();
  // The next frame's callback runs once the frame with this drawing has been produced.
  if (events.length) requestAnimationFrame(() => notePainted(events));
};
function notePainted(events) {
  const now = performance.now();
  for (const t of events) paint.samples.push(now - t);
  if (paint.samples.length > 4000) paint.samples.splice(0, paint.samples.length - 4000);
}
const schedule = () => { version += 1; if (!frame) frame = requestAnimationFrame(onFrame); };
// A drag's move: only what the drag moves changed, so the cached layer stays valid.
const scheduleMove = () => { if (!frame) frame = requestAnimationFrame(onFrame); };

// Where each class handle is drawn (screen px) and where its label goes. Centres closer than
// FAN_R are fanned out around their common spot, each joined to its true place by a leader
// line, so overlapping (or merged) classes all stay visible and grabbable.
const DX = new Float64Array(C), DY = new Float64Array(C); // drawn handle centre
const FANNED = new Uint8Array(C);
const LABELS = Array.from({ length: C }, () => null); // [x, y, w, h] of each label box
const FAN_R = 2 * HANDLE_R + 2; // px: centres nearer than this are fanned

function layoutHandles() {
  // A grabbed handle stays under the pointer: its drawn place keeps the offset it was grabbed
  // at (drag.off, px), and it is left out of the fans while it moves.
  const skip = drag && drag.kind === "class" ? drag.index : -1;
  for (let c = 0; c < C; c++) { DX[c] = sx(hx(c)); DY[c] = sy(hy(c)); FANNED[c] = 0; }
  const parent = Int32Array.from({ length: C }, (_, c) => c);
  const find = (c) => { while (parent[c] !== c) c = parent[c] = parent[parent[c]]; return c; };
  const shown = [];
  for (let c = 0; c < C; c++) if (present[c] && c !== skip) shown.push(c);
  // Group the centres nearer than FAN_R, fan each group; while a fanned handle lands on a
  // handle of another group, join the two groups and fan again (each pass joins at least two
  // groups, so at most C passes).
  const near = (a, b) => Math.hypot(DX[a] - DX[b], DY[a] - DY[b]) < FAN_R;
  for (let pass = 0; pass < C; pass++) {
    let joined = false;
    for (let k = 0; k < shown.length; k++) {
      for (let m = k + 1; m < shown.length; m++) {
        const a = shown[k], b = shown[m];
        if (find(a) !== find(b) && near(a, b)) { parent[find(b)] = find(a); joined = true; }
      }
    }
    if (!joined) break;
    fanGroups(shown, find);
  }
  if (skip >= 0 && drag.off) { DX[skip] += drag.off[0]; DY[skip] += drag.off[1]; }
  placeLabels();
}

function fanGroups(shown, find) {
  // Each group of two or more handles around the mean of its true centres, neighbours just
  // clear of each other; a group of one stays at its true centre.
  const groups = new Map();
  for (const c of shown) {
    DX[c] = sx(hx(c)); DY[c] = sy(hy(c)); FANNED[c] = 0;
    const r = find(c);
    if (!groups.has(r)) groups.set(r, []);
    groups.get(r).push(c);
  }
  for (const group of groups.values()) {
    const k = group.length;
    if (k < 2) continue;
    let mx = 0, my = 0;
    for (const c of group) { mx += DX[c]; my += DY[c]; }
    mx /= k; my /= k;
    const R = (HANDLE_R + 3) / Math.sin(Math.PI / k); // px: neighbours 2 * (HANDLE_R + 3) apart
    group.forEach((c, m) => {
      const a = -Math.PI / 2 + (2 * Math.PI * m) / k;
      DX[c] = mx + R * Math.cos(a); DY[c] = my + R * Math.sin(a); FANNED[c] = 1;
    });
  }
}

function placeLabels() {
  // Greedy: each label takes the first of right / left / above / below that overlaps no
  // handle and no label placed before it (the selected class first).
  ctx.font = "600 12px system-ui, sans-serif";
  const boxes = [];
  const handles = [];
  for (let c = 0; c < C; c++) if (present[c]) handles.push([DX[c] - HANDLE_R - 2, DY[c] - HANDLE_R - 2, 2 * HANDLE_R + 4, 2 * HANDLE_R + 4, c]);
  const hit = (b, c) => boxes.some((o) => overlap(b, o)) || handles.some((h) => h[4] !== c && overlap(b, h));
  const order = [];
  for (let c = 0; c < C; c++) if (present[c]) order.push(c);
  order.sort((a, b) => (a === selected ? -1 : b === selected ? 1 : a - b));
  for (const c of order) {
    const w = ctx.measureText(view.class_names[c]).width + 6, h = 16, x = DX[c], y = DY[c], g = HANDLE_R + 3;
    const right = [x + g, y - h / 2, w, h], left = [x - g - w, y - h / 2, w, h];
    const above = [x - w / 2, y - g - h, w, h], below = [x - w / 2, y + g, w, h];
    const outward = FANNED[c] && DX[c] < sx(hx(c)) ? [left, right] : [right, left];
    const candidates = [...outward, above, below, [x + g, y - h / 2 - h, w, h], [x + g, y + h / 2, w, h]];
    const box = candidates.find((b) => !hit(b, c)) || candidates[0];
    boxes.push(box); LABELS[c] = box;
  }
}

const overlap = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];

const pointRadius = () => (N > 3000 ? 2.2 : 3.2); // px

let useReference = false; // hill.useReference(true): every frame the long way (benchmarks)

function draw() {
  const t0 = performance.now();
  const r = pointRadius(), moving = movingRows();
  if (useReference) {
    drawReference();
  } else {
    ctx.clearRect(0, 0, cam.W, cam.H);
    if (moving) { blitLayer(r, moving); drawPoints(ctx, r, moving); } else drawPoints(ctx, r, null);
    drawOverlays(r);
  }
  const ms = performance.now() - t0;
  perf.draws += 1; perf.last = ms; perf.samples.push(ms);
  if (perf.samples.length > 600) perf.samples.shift();
}

function drawReference() {
  // The readable reference: one arc per point and per ring, as the page drew before sprites.
  const r = pointRadius();
  ctx.clearRect(0, 0, cam.W, cam.H);
  ctx.globalAlpha = hi ? 0.15 : 0.75;
  const fixed = []; // corrected points (relabelled or excluded): drawn on their own
  for (let c = 0; c < C; c++) {
    ctx.fillStyle = view.colors[c];
    ctx.beginPath();
    for (const i of members[c]) {
      if (EX[i] || LA[i] !== c) { fixed.push(i); continue; }
      const px = sx(X[i]), py = sy(Y[i]);
      if (px < -r || py < -r || px > cam.W + r || py > cam.H + r) continue;
      ctx.moveTo(px + r, py); ctx.arc(px, py, r, 0, 6.2832);
    }
    ctx.fill();
  }
  ctx.globalAlpha = hi ? 0.12 : 1;
  drawWrong(r);
  ctx.globalAlpha = hi ? 0.3 : 1;
  drawCorrected(r, fixed);
  ctx.globalAlpha = 1;
  drawMoved(r);
  drawOverlays(r);
}

function drawOverlays(r) {
  // Above the points: focus rings, trails, leaders, handles and labels, then the highlighted
  // points of a confusion cell (confused points sit between exactly those handles).
  drawFocus(r);
  drawTrails();
  layoutHandles();
  // A leader wherever a handle is drawn away from its centre (fanned, or grabbed off-centre).
  for (let c = 0; c < C; c++) if (present[c] && (DX[c] !== sx(hx(c)) || DY[c] !== sy(hy(c)))) drawLeader(c);
  for (let c = 0; c < C; c++) if (present[c]) drawHandle(c);
  if (hi) drawHighlight(r);
}

function drawWrong(r) {
  // A misclassified point: a dark ring with the predicted class's colour inside it.
  const R = r + 1.8;
  const ring = (list) => {
    ctx.beginPath();
    for (const i of list) {
      if (EX[i] || LA[i] !== LAB[i]) continue; // a corrected point shows its correction instead
      const px = sx(X[i]), py = sy(Y[i]);
      if (px < -R || py < -R || px > cam.W + R || py > cam.H + R) continue;
      ctx.moveTo(px + R, py); ctx.arc(px, py, R, 0, 6.2832);
    }
    ctx.stroke();
  };
  ctx.lineWidth = 2.8; ctx.strokeStyle = "#222";
  for (let p = 0; p < C; p++) if (wrongBy[p].length) ring(wrongBy[p]);
  ctx.lineWidth = 1.4;
  for (let p = 0; p < C; p++) if (wrongBy[p].length) { ctx.strokeStyle = view.colors[p]; ring(wrongBy[p]); }
}

function drawCorrected(r, list) {
  // Relabelled: filled in the new class's colour inside a ring of the given class's colour.
  // Excluded: hollow grey with a cross ("not a valid item").
  const R = r + 1.5;
  for (const i of list) {
    const px = sx(X[i]), py = sy(Y[i]);
    if (px < -R - 3 || py < -R - 3 || px > cam.W + R + 3 || py > cam.H + R + 3) continue;
    ctx.beginPath(); ctx.arc(px, py, R, 0, 6.2832);
    if (EX[i]) {
      ctx.lineWidth = 1.5; ctx.strokeStyle = "#888"; ctx.fillStyle = "#fff"; ctx.fill(); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(px - R, py - R); ctx.lineTo(px + R, py + R);
      ctx.moveTo(px + R, py - R); ctx.lineTo(px - R, py + R); ctx.stroke();
    } else {
      ctx.fillStyle = view.colors[LA[i]] || "#000"; ctx.fill();
      ctx.lineWidth = 2.2; ctx.strokeStyle = view.colors[LAB[i]]; ctx.stroke();
    }
  }
}

function drawMoved(r) {
  // A point moved by hand: a white halo and a black ring, visible on any colour.
  const R = r + 3.5;
  const path = () => {
    ctx.beginPath();
    for (let i = 0; i < N; i++) {
      if (!MV[i]) continue;
      const px = sx(X[i]), py = sy(Y[i]);
      ctx.moveTo(px + R, py); ctx.arc(px, py, R, 0, 6.2832);
    }
  };
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 4; path(); ctx.stroke();
  ctx.strokeStyle = "#111"; ctx.lineWidth = 2; path(); ctx.stroke();
}

function drawHighlight(r) {
  // The points of the clicked confusion cell, on top: full colour with a black outline.
  const R = r + 1.5;
  for (let c = 0; c < C; c++) {
    ctx.beginPath();
    let any = false;
    for (const i of members[c]) {
      if (!hi.mask[i]) continue;
      const px = sx(X[i]), py = sy(Y[i]);
      ctx.moveTo(px + R, py); ctx.arc(px, py, R, 0, 6.2832); any = true;
    }
    if (!any) continue;
    ctx.fillStyle = view.colors[c]; ctx.fill();
    ctx.lineWidth = 1.5; ctx.strokeStyle = "#000"; ctx.stroke();
  }
}

function drawTrails() {
  // Where each moved centre came from: a faint ring and a dashed line.
  ctx.setLineDash([4, 4]); ctx.lineWidth = 1.5;
  for (let c = 0; c < C; c++) {
    if (!present[c] || (T[2 * c] === 0 && T[2 * c + 1] === 0)) continue;
    ctx.strokeStyle = view.colors[c]; ctx.beginPath();
    ctx.moveTo(sx(C0x[c]), sy(C0y[c])); ctx.lineTo(sx(hx(c)), sy(hy(c))); ctx.stroke();
    ctx.beginPath(); ctx.arc(sx(C0x[c]), sy(C0y[c]), 5, 0, 6.2832); ctx.stroke();
  }
  ctx.setLineDash([]);
}

function drawLeader(c) {
  // A fanned handle points at the class's true centre: a line and a small dot there.
  const x = sx(hx(c)), y = sy(hy(c));
  ctx.strokeStyle = "#333"; ctx.lineWidth = 1.2;
  ctx.beginPath(); ctx.moveTo(DX[c], DY[c]); ctx.lineTo(x, y); ctx.stroke();
  ctx.beginPath(); ctx.arc(x, y, 3.5, 0, 6.2832);
  ctx.fillStyle = view.colors[c]; ctx.fill(); ctx.lineWidth = 1; ctx.stroke();
}

function drawHandle(c) {
  const px = DX[c], py = DY[c];
  ctx.beginPath(); ctx.arc(px, py, HANDLE_R, 0, 6.2832);
  ctx.fillStyle = view.colors[c]; ctx.fill();
  ctx.lineWidth = c === selected ? 4 : 2.5; ctx.strokeStyle = "#fff"; ctx.stroke();
  ctx.lineWidth = 1; ctx.strokeStyle = "#222"; ctx.beginPath();
  ctx.arc(px, py, HANDLE_R + (c === selected ? 2.5 : 1.5), 0, 6.2832); ctx.stroke();
  const [bx, by, bw, bh] = LABELS[c];
  ctx.font = "600 12px system-ui, sans-serif"; ctx.textBaseline = "middle";
  ctx.fillStyle = "rgba(255,255,255,0.85)";
  ctx.fillRect(bx, by, bw, bh);
  ctx.fillStyle = "#111"; ctx.fillText(view.class_names[c], bx + 3, by + bh / 2);
}

// ---- picking ------------------------------------------------------------------------
function pickHandle(px, py) {
  // Drawn positions, as last laid out (a fanned handle is grabbed where it is drawn); a
  // click on a label picks its class too.
  let best = -1, bestD = HANDLE_R + 3;
  for (let c = C - 1; c >= 0; c--) {
    if (!present[c]) continue;
    const d = Math.hypot(DX[c] - px, DY[c] - py);
    if (d < bestD) { best = c; bestD = d; }
  }
  if (best >= 0) return best;
  for (let c = C - 1; c >= 0; c--) {
    const b = LABELS[c];
    if (present[c] && b && px >= b[0] && px <= b[0] + b[2] && py >= b[1] && py <= b[1] + b[3]) return c;
  }
  return -1;
}

function pickPoint(px, py) {
  let best = -1, bestD = PICK_R * PICK_R;
  for (let i = 0; i < N; i++) {
    const dx = sx(X[i]) - px, dy = sy(Y[i]) - py, d = dx * dx + dy * dy;
    if (d < bestD) { best = i; bestD = d; }
  }
  return best;
}

function pick(px, py) {
  const c = pickHandle(px, py);
  if (c >= 0) return { kind: "class", index: c };
  const i = pickPoint(px, py);
  return i >= 0 ? { kind: "point", index: i } : { kind: "none", index: -1 };
}
