// Gate page, part 2 of 3: drawing and picking (see gate_state.js for the shared state).

// ---- drawing: one path per class so 10,000 points cost C fills ----------------------
let frame = 0;
const schedule = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); }); };

function draw() {
  const t0 = performance.now();
  ctx.clearRect(0, 0, cam.W, cam.H);
  const r = N > 3000 ? 2.2 : 3.2;
  ctx.globalAlpha = 0.75;
  for (let c = 0; c < C; c++) {
    ctx.fillStyle = view.colors[c];
    ctx.beginPath();
    for (const i of members[c]) {
      const px = sx(X[i]), py = sy(Y[i]);
      if (px < -r || py < -r || px > cam.W + r || py > cam.H + r) continue;
      ctx.moveTo(px + r, py); ctx.arc(px, py, r, 0, 6.2832);
    }
    ctx.fill();
  }
  ctx.globalAlpha = 1;
  drawMoved(r);
  drawTrails();
  for (let c = 0; c < C; c++) if (present[c]) drawHandle(c);
  const ms = performance.now() - t0;
  perf.draws += 1; perf.last = ms; perf.samples.push(ms);
  if (perf.samples.length > 600) perf.samples.shift();
}

function drawMoved(r) {
  ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5; ctx.beginPath();
  for (let i = 0; i < N; i++) {
    if (!MV[i]) continue;
    const px = sx(X[i]), py = sy(Y[i]);
    ctx.moveTo(px + r + 2, py); ctx.arc(px, py, r + 2, 0, 6.2832);
  }
  ctx.stroke();
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

function drawHandle(c) {
  const px = sx(hx(c)), py = sy(hy(c));
  ctx.beginPath(); ctx.arc(px, py, HANDLE_R, 0, 6.2832);
  ctx.fillStyle = view.colors[c]; ctx.fill();
  ctx.lineWidth = c === selected ? 4 : 2.5; ctx.strokeStyle = "#fff"; ctx.stroke();
  ctx.lineWidth = 1; ctx.strokeStyle = "#222"; ctx.beginPath();
  ctx.arc(px, py, HANDLE_R + (c === selected ? 2.5 : 1.5), 0, 6.2832); ctx.stroke();
  const name = view.class_names[c];
  ctx.font = "600 12px system-ui, sans-serif"; ctx.textBaseline = "middle";
  const w = ctx.measureText(name).width;
  ctx.fillStyle = "rgba(255,255,255,0.85)";
  ctx.fillRect(px + HANDLE_R + 3, py - 8, w + 6, 16);
  ctx.fillStyle = "#111"; ctx.fillText(name, px + HANDLE_R + 6, py);
}

// ---- picking ------------------------------------------------------------------------
function pickHandle(px, py) {
  let best = -1, bestD = HANDLE_R + 3;
  for (let c = C - 1; c >= 0; c--) {
    if (!present[c]) continue;
    const d = Math.hypot(sx(hx(c)) - px, sy(hy(c)) - py);
    if (d < bestD) { best = c; bestD = d; }
  }
  return best;
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
