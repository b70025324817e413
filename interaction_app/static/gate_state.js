// Gate page, part 1: the edit state. The gate's scatter is plain canvas JavaScript, no
// libraries. app.py joins gate_state, gate_draw, gate_sprites, gate_ui, gate_labels,
// gate_suspects and gate_start (JS_PARTS) into the body of gr.HTML's js_on_load, which provides `element`,
// `props` and `server`; the parts share its scope, inside the callback that receives `page`,
// the gate's opening (app.py PAGE_SCRIPT, page_state.py GatePage.opening): the page app serves
// every gate of the gate service, so nothing of a gate is in its props.
// Edits live in data units as per-class offsets T and scales S about the original class
// centres C0, plus per-point overrides (relative to their class offset, so a moved point
// follows its class). interaction_app/layout.py (Readout.positions) applies the same rule.

const root = element.querySelector(".hill-root");
const canvas = root.querySelector("canvas");
const ctx = canvas.getContext("2d");
const tip = root.querySelector(".hill-tip");
const view = page.view;
const GATE = page.gate || {}; // key (run:epoch), note, has_items, status_ms
document.title = page.title;
document.querySelectorAll("#hill-context .hill-context").forEach((el) => { el.innerHTML = page.context_html; });
const N = view.x.length;
const C = view.class_names.length;
const IDS = view.sample_id;
const LAB = Int32Array.from(view.label);
const PRED = Int32Array.from(view.pred || view.label);
const WRONG = Uint8Array.from(LAB, (t, i) => (t !== PRED[i] ? 1 : 0)); // misclassified
const X0 = Float64Array.from(view.x);
const Y0 = Float64Array.from(view.y);
const X = Float64Array.from(X0);
const Y = Float64Array.from(Y0);
const MV = new Uint8Array(N); // 1 where the person moved that single point
const RX = new Float64Array(N); // moved point's position minus its class offset
const RY = new Float64Array(N);
// Labels: the page records each item's label after the gate (LA) and whether it is excluded
// (EX). They start from the snapshot's state (CUR0, EXC0: earlier gates' corrections), and an
// item is drawn as corrected wherever it differs from its given label LAB. Class geometry
// (members, offsets, scales) keeps the given labels, as the readout and the edits file do.
const CUR0 = Int32Array.from(view.current_label || view.label);
const EXC0 = view.excluded ? Uint8Array.from(view.excluded, (v) => (v ? 1 : 0)) : new Uint8Array(N);
const LA = Int32Array.from(CUR0);
const EX = Uint8Array.from(EXC0);
const SCORE = view.suspect_score ? Float64Array.from(view.suspect_score, (v) => (v == null ? NaN : v)) : new Float64Array(N).fill(NaN);
const SPRED = view.suspect_pred ? Int32Array.from(view.suspect_pred) : new Int32Array(N).fill(-1);
const T = new Float64Array(2 * C); // class offsets (dx, dy)
const S = new Float64Array(C).fill(1); // class scales about the original centre
const HANDLE_R = 12; // px, radius of a class-centre handle
const PICK_R = 7; // px, how close a pointer must be to grab a point
const MERGE_R = 16; // px, dropping a centre this close to another merges them

const members = Array.from({ length: C }, () => []);
for (let i = 0; i < N; i++) members[LAB[i]].push(i);
const C0x = new Float64Array(C);
const C0y = new Float64Array(C);
members.forEach((m, c) => {
  for (const i of m) { C0x[c] += X0[i]; C0y[c] += Y0[i]; }
  if (m.length) { C0x[c] /= m.length; C0y[c] /= m.length; }
});
const present = members.map((m) => m.length > 0);
// Misclassified points by predicted class: one ring path per predicted colour.
const wrongBy = Array.from({ length: C }, () => []);
for (let i = 0; i < N; i++) if (WRONG[i] && PRED[i] >= 0 && PRED[i] < C) wrongBy[PRED[i]].push(i);
const wrongCount = wrongBy.reduce((n, m) => n + m.length, 0);

const undoStack = [];
const cam = { cx: 0, cy: 0, k: 1, W: 0, H: 0 }; // data centre, px per data unit, canvas size
const perf = { draws: 0, last: 0, samples: [] }; // redraw times in ms, read by benchmarks
const readoutPerf = { calls: 0, last: 0, samples: [] }; // round trips of the live readout
let drag = null;
let selected = Math.max(0, present.indexOf(true)); // the class the scale slider acts on
let locked = false;
let fitted = false;
let hi = null; // confusion-cell highlight: { t, p, mask, count }

// ---- geometry -----------------------------------------------------------------------
const sx = (x) => cam.W / 2 + (x - cam.cx) * cam.k;
const sy = (y) => cam.H / 2 - (y - cam.cy) * cam.k;
const dataX = (px) => cam.cx + (px - cam.W / 2) / cam.k;
const dataY = (py) => cam.cy - (py - cam.H / 2) / cam.k;
const hx = (c) => C0x[c] + T[2 * c];
const hy = (c) => C0y[c] + T[2 * c + 1];

function recompute(c) {
  // x0 + T + (S - 1)(x0 - C0): exact x0 when a class is untouched, so nothing drifts.
  const tx = T[2 * c], ty = T[2 * c + 1], f = S[c] - 1;
  for (const i of members[c]) {
    if (MV[i]) { X[i] = tx + RX[i]; Y[i] = ty + RY[i]; }
    else { X[i] = X0[i] + tx + f * (X0[i] - C0x[c]); Y[i] = Y0[i] + ty + f * (Y0[i] - C0y[c]); }
  }
}
const recomputeAll = () => { for (let c = 0; c < C; c++) recompute(c); };

function fit() {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < N; i++) {
    x0 = Math.min(x0, X[i]); x1 = Math.max(x1, X[i]);
    y0 = Math.min(y0, Y[i]); y1 = Math.max(y1, Y[i]);
  }
  if (!isFinite(x0)) { x0 = -1; x1 = 1; y0 = -1; y1 = 1; }
  cam.cx = (x0 + x1) / 2; cam.cy = (y0 + y1) / 2;
  cam.k = 0.88 * Math.min(cam.W / Math.max(x1 - x0, 1e-9), cam.H / Math.max(y1 - y0, 1e-9));
}

function resize() {
  const W = canvas.clientWidth, H = canvas.clientHeight;
  if (!W || !H) return;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  cam.W = W; cam.H = H;
  if (!fitted) { fit(); fitted = true; }
  draw();
}

// ---- edits and undo ------------------------------------------------------------------
function snapshotOf(kind, index) {
  if (kind === "class") return { kind, index, tx: T[2 * index], ty: T[2 * index + 1], s: S[index] };
  return { kind, index, mv: MV[index], rx: RX[index], ry: RY[index], la: LA[index], ex: EX[index] };
}

function restore(e) {
  if (e.kind === "class") {
    T[2 * e.index] = e.tx; T[2 * e.index + 1] = e.ty; S[e.index] = e.s; recompute(e.index);
  } else if (e.kind === "point") {
    MV[e.index] = e.mv; RX[e.index] = e.rx; RY[e.index] = e.ry; recompute(LAB[e.index]);
    LA[e.index] = e.la; EX[e.index] = e.ex;
  } else if (e.kind === "batch") { // several items at once (e.g. "relabel all similar")
    for (const one of e.list.slice().reverse()) restore(one);
  } else {
    T.set(e.T); S.set(e.S); MV.set(e.MV); RX.set(e.RX); RY.set(e.RY); LA.set(e.LA); EX.set(e.EX);
    recomputeAll();
  }
}

// Whether item i's label state differs from the snapshot's (what this gate changes).
const labelChanged = (i) => LA[i] !== CUR0[i] || EX[i] !== EXC0[i];

function edited() {
  if (MV.some((v) => v) || T.some((v) => v !== 0) || S.some((v) => v !== 1)) return true;
  for (let i = 0; i < N; i++) if (labelChanged(i)) return true;
  return false;
}

function undo() {
  if (locked || !undoStack.length) return;
  restore(undoStack.pop());
  say("Undone."); changed();
}

function reset() {
  if (locked || !edited()) return;
  undoStack.push({ kind: "all", T: T.slice(), S: S.slice(), MV: MV.slice(), RX: RX.slice(), RY: RY.slice(), LA: LA.slice(), EX: EX.slice() });
  T.fill(0); S.fill(1); MV.fill(0); LA.set(CUR0); EX.set(EXC0); recomputeAll();
  say("Reset to the model's layout and the snapshot's labels (undo brings the edits back)."); changed();
}

function changed() {
  schedule(); requestReadout(); syncControls(); refreshPanels();
}

// ---- what the page sends to Python ---------------------------------------------------
function ops() {
  const offsets = [], scales = Array.from(S), moved = [];
  for (let c = 0; c < C; c++) offsets.push([T[2 * c], T[2 * c + 1]]);
  const labels = []; // [sample_id, label_after, excluded] where they differ from the snapshot
  for (let i = 0; i < N; i++) {
    if (MV[i]) moved.push([IDS[i], X[i], Y[i]]);
    if (labelChanged(i)) labels.push([IDS[i], LA[i], EX[i] === 1]);
  }
  return { offsets, scales, moved, labels };
}

// Rows for every point whose position differs from the snapshot, that was moved by hand, or
// whose label state this gate changes; each states its label after the gate and exclusion.
function payload() {
  const rows = [];
  for (let i = 0; i < N; i++) {
    if (MV[i] || X[i] !== X0[i] || Y[i] !== Y0[i] || labelChanged(i)) {
      rows.push({ sample_id: IDS[i], x: X[i], y: Y[i], moved: MV[i] === 1, label_after: LA[i], excluded: EX[i] === 1 });
    }
  }
  return { rows };
}
