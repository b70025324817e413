// Gate page, part 3 of 3: pointer handling, controls, live readout, locking, start-up.

// ---- pointer handling ------------------------------------------------------------------
const local = (e) => { const b = canvas.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; };

canvas.addEventListener("pointerdown", (e) => {
  if (e.button !== 0) return;
  const [px, py] = local(e);
  const hit = locked ? { kind: "none" } : pick(px, py);
  canvas.setPointerCapture(e.pointerId);
  if (hit.kind === "class") {
    selected = hit.index; syncControls();
    drag = { ...hit, px, py, tx: T[2 * hit.index], ty: T[2 * hit.index + 1], undo: snapshotOf("class", hit.index) };
  } else if (hit.kind === "point") {
    const i = hit.index;
    drag = { ...hit, px, py, x: X[i], y: Y[i], undo: snapshotOf("point", i) };
  } else {
    drag = { kind: "pan", px, py, cx: cam.cx, cy: cam.cy };
  }
  drag.moved = false;
  tip.style.display = "none";
});

canvas.addEventListener("pointermove", (e) => {
  const [px, py] = local(e);
  if (!drag) { hover(px, py); return; }
  const dx = (px - drag.px) / cam.k, dy = -(py - drag.py) / cam.k; // data units, y up
  drag.moved = drag.moved || px !== drag.px || py !== drag.py;
  if (drag.kind === "class") {
    T[2 * drag.index] = drag.tx + dx; T[2 * drag.index + 1] = drag.ty + dy;
    recompute(drag.index); requestReadout();
  } else if (drag.kind === "point") {
    const i = drag.index, c = LAB[i];
    MV[i] = 1; RX[i] = drag.x + dx - T[2 * c]; RY[i] = drag.y + dy - T[2 * c + 1];
    recompute(c); requestReadout();
  } else {
    cam.cx = drag.cx - dx; cam.cy = drag.cy - dy;
  }
  schedule();
});

const endDrag = () => {
  if (!drag) return;
  const d = drag;
  drag = null;
  if (d.kind === "pan" || !d.moved) return;
  undoStack.push(d.undo);
  if (d.kind === "class") mergeIfDropped(d.index);
  else say(`Moved sample ${IDS[d.index]} (${view.class_names[LAB[d.index]]}).`);
  changed();
};
canvas.addEventListener("pointerup", endDrag);
canvas.addEventListener("pointercancel", endDrag);

function mergeIfDropped(c) {
  for (let d = 0; d < C; d++) {
    if (d === c || !present[d]) continue;
    if (Math.hypot(sx(hx(c)) - sx(hx(d)), sy(hy(c)) - sy(hy(d))) > MERGE_R) continue;
    T[2 * c] = hx(d) - C0x[c]; T[2 * c + 1] = hy(d) - C0y[c]; recompute(c);
    say(`Merged ${view.class_names[c]} into ${view.class_names[d]}.`);
    return;
  }
  say(`Moved class ${view.class_names[c]}.`);
}

canvas.addEventListener("wheel", (e) => {
  // Zoom about the pointer: the data point under it stays put. Edits are in data units,
  // so zoom and pan never change them.
  e.preventDefault();
  const [px, py] = local(e);
  const x = dataX(px), y = dataY(py);
  cam.k *= Math.exp(-e.deltaY * 0.0015);
  cam.cx = x - (px - cam.W / 2) / cam.k; cam.cy = y + (py - cam.H / 2) / cam.k;
  schedule();
}, { passive: false });

canvas.addEventListener("pointerleave", () => { tip.style.display = "none"; });

function hover(px, py) {
  const hit = pick(px, py);
  canvas.style.cursor = hit.kind === "none" ? "grab" : locked ? "default" : "move";
  if (hit.kind === "none") { tip.style.display = "none"; return; }
  const c = hit.kind === "class" ? hit.index : LAB[hit.index];
  const name = view.class_names[c];
  tip.textContent = hit.kind === "class"
    ? `centre of ${name} (${members[c].length} points): drag to move, drop on a centre to merge`
    : `sample ${IDS[hit.index]} · ${name}${MV[hit.index] ? " · moved" : ""}`;
  tip.style.left = `${px + 14}px`; tip.style.top = `${py + 10}px`; tip.style.display = "block";
}

// ---- controls: undo, reset, fit, per-class scale, legend -----------------------------
const $ = (sel) => root.querySelector(sel);
const scaleInput = $(".hill-scale");
const scaleClass = $(".hill-scale-class");
let scaleGesture = false;

$(".hill-undo").addEventListener("click", undo);
$(".hill-reset").addEventListener("click", reset);
$(".hill-fit").addEventListener("click", () => { fit(); schedule(); });
root.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); }
});
view.class_names.forEach((name, c) => {
  if (present[c]) scaleClass.add(new Option(name, String(c)));
});
scaleClass.addEventListener("change", () => { selected = Number(scaleClass.value); syncControls(); schedule(); });
scaleInput.addEventListener("input", () => {
  if (locked) return;
  if (!scaleGesture) { undoStack.push(snapshotOf("class", selected)); scaleGesture = true; }
  S[selected] = Number(scaleInput.value); recompute(selected);
  schedule(); requestReadout(); $(".hill-scale-val").textContent = `${S[selected].toFixed(2)}×`;
});
scaleInput.addEventListener("change", () => {
  scaleGesture = false;
  say(`Scaled ${view.class_names[selected]} to ${S[selected].toFixed(2)}× its spread.`);
  changed();
});

function buildLegend() {
  const legend = $(".hill-legend");
  legend.replaceChildren();
  view.class_names.forEach((name, c) => {
    if (!present[c]) return;
    const item = document.createElement("button");
    item.className = "hill-legend-item"; item.dataset.cls = String(c);
    const sw = document.createElement("span");
    sw.className = "hill-swatch"; sw.style.background = view.colors[c];
    const label = document.createElement("span");
    label.textContent = `${name} (${members[c].length})`;
    item.append(sw, label);
    item.addEventListener("click", () => { selected = c; syncControls(); schedule(); });
    legend.append(item);
  });
}

function syncControls() {
  scaleClass.value = String(selected);
  if (!scaleGesture) scaleInput.value = String(S[selected]);
  $(".hill-scale-val").textContent = `${S[selected].toFixed(2)}×`;
  const undoButton = $(".hill-undo");
  undoButton.textContent = `Undo (${undoStack.length})`;
  undoButton.disabled = locked || !undoStack.length;
  $(".hill-reset").disabled = locked || !edited();
  scaleInput.disabled = locked;
  root.querySelectorAll(".hill-legend-item").forEach((el) => {
    const c = Number(el.dataset.cls);
    el.classList.toggle("hill-selected", c === selected);
    el.classList.toggle("hill-edited", T[2 * c] !== 0 || T[2 * c + 1] !== 0 || S[c] !== 1);
  });
}

const say = (text) => { $(".hill-status").textContent = text; };

// ---- live readout: throttled, at most one call in flight ------------------------------
const READOUT_MS = 80;
let inflight = false, queued = false, lastSent = 0, timer = 0;

function requestReadout() { queued = true; pump(); }

function pump() {
  if (inflight || !queued || timer) return;
  const wait = READOUT_MS - (performance.now() - lastSent);
  if (wait > 0) { timer = setTimeout(() => { timer = 0; pump(); }, wait); return; }
  queued = false; inflight = true; lastSent = performance.now();
  server.readout(ops())
    .then((r) => { showReadout(r, performance.now() - lastSent); })
    .catch((err) => { $(".hill-readout").textContent = `readout failed: ${err}`; })
    .finally(() => { inflight = false; pump(); });
}

function showReadout(r, ms) {
  readoutPerf.calls += 1; readoutPerf.last = ms; readoutPerf.samples.push(ms);
  if (readoutPerf.samples.length > 600) readoutPerf.samples.shift();
  const f = (v) => Number(v).toFixed(4);
  $(".hill-readout").innerHTML =
    `<b>What this edit asks of the model</b> (L_human of the current layout against the edited one): ` +
    `L_center <code>${f(r.l_center)}</code> · L_spread <code>${f(r.l_spread)}</code> · ` +
    `L_point <code>${f(r.l_point)}</code> · <b>L_human <code>${f(r.l_human)}</code></b> ` +
    `<span class="hill-muted">(${ms.toFixed(0)} ms)</span>`;
}

// ---- after a decision (here or in another tab) the page stops accepting edits ----------
function lock(text) {
  if (locked) return;
  locked = true; drag = null;
  const banner = $(".hill-lock");
  banner.textContent = text || "This gate is decided; the layout is read-only.";
  banner.style.display = "block";
  root.classList.add("hill-locked");
  syncControls();
}

async function pollStatus() {
  try {
    const s = await server.status(null);
    if (s && s.decided) { lock(s.message); return; }
  } catch (err) { /* server gone: the run went on; keep the page as it is */ }
  setTimeout(pollStatus, 3000);
}

// Hooks for the decision buttons (via gr.Button js=), tests and benchmarks.
root.hill = {
  payload, ops, lock, perf, readoutPerf,
  pickAt: (x, y) => { const b = canvas.getBoundingClientRect(); return pick(x - b.left, y - b.top); },
  isLocked: () => locked,
  undoDepth: () => undoStack.length,
  dataPerPixel: () => 1 / cam.k,
  toClient: (x, y) => { const b = canvas.getBoundingClientRect(); return [b.left + sx(x), b.top + sy(y)]; },
  handle: (c) => [hx(c), hy(c)],
  point: (i) => [X[i], Y[i]],
  redraw: draw,
};

buildLegend();
syncControls();
new ResizeObserver(resize).observe(canvas);
resize();
pollStatus();
