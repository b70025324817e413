// Gate page, part 3: pointer handling, controls, live readout, locking.

// ---- pointer handling ------------------------------------------------------------------
const local = (e) => { const b = canvas.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; };

canvas.addEventListener("pointerdown", (e) => {
  if (e.button !== 0) return;
  const [px, py] = local(e);
  const hit = locked ? { kind: "none" } : pick(px, py);
  canvas.setPointerCapture(e.pointerId);
  if (hit.kind === "class") {
    drag = { ...hit, px, py, tx: T[2 * hit.index], ty: T[2 * hit.index + 1], undo: snapshotOf("class", hit.index) };
    // px from the class's true centre to where its handle was drawn (fanned), kept while it moves
    drag.off = [DX[hit.index] - sx(hx(hit.index)), DY[hit.index] - sy(hy(hit.index))];
  } else if (hit.kind === "point") {
    const i = hit.index;
    drag = { ...hit, px, py, x: X[i], y: Y[i], undo: snapshotOf("point", i) };
  } else {
    drag = { kind: "pan", px, py, cx: cam.cx, cy: cam.cy };
  }
  drag.moved = false;
  drag.fan = [DX.slice(), DY.slice()]; // where the handles were drawn when the drag began
  tip.style.display = "none";
});

canvas.addEventListener("pointermove", (e) => {
  const [px, py] = local(e);
  if (!drag) { hover(px, py); return; }
  paint.pending.push(e.timeStamp); // event to frame painted (gate_draw.js, notePainted)
  const dx = (px - drag.px) / cam.k, dy = -(py - drag.py) / cam.k; // data units, y up
  drag.moved = drag.moved || px !== drag.px || py !== drag.py;
  if (drag.kind === "class") {
    T[2 * drag.index] = drag.tx + dx; T[2 * drag.index + 1] = drag.ty + dy;
    recompute(drag.index); requestReadout();
  } else if (drag.kind === "point") {
    const i = drag.index, c = LAB[i];
    MV[i] = 1; RX[i] = drag.x + dx - T[2 * c]; RY[i] = drag.y + dy - T[2 * c + 1];
    recompute(c); requestReadout();
    dropHint(i, px, py, moveOnly(e));
  } else {
    cam.cx = drag.cx - dx; cam.cy = drag.cy - dy;
  }
  if (drag.kind === "pan") schedule(); else scheduleMove(); // a move keeps the cached layer
});

const endDrag = (e) => {
  if (!drag) return;
  const d = drag;
  drag = null;
  tip.style.display = "none";
  if (d.kind === "class" && !d.moved) { choose(d.index); return; } // a click picks the class
  if (d.kind === "point" && !d.moved) { openCard(d.index); return; } // a click opens its card
  if (d.kind === "pan" && !d.moved && cardItem >= 0) closeCard(); // a click elsewhere closes it
  if (d.kind === "pan" || !d.moved) { schedule(); return; }
  if (d.kind === "point" && e.type === "pointerup" && dropOnClass(d, ...local(e), moveOnly(e))) return;
  undoStack.push(d.undo);
  if (d.kind === "class") mergeIfDropped(d.index, d.fan, d.off);
  else say(`Moved sample ${IDS[d.index]} (${view.class_names[LAB[d.index]]}).`);
  changed();
};
canvas.addEventListener("pointerup", endDrag);
canvas.addEventListener("pointercancel", endDrag);

function mergeIfDropped(c, fan, off) {
  // Dropped on another centre (its true place, or where its handle was drawn): merge, i.e.
  // move c's centre onto d's. Both stay classes of their own, each with its own handle. The
  // dropped spot is c's true centre or its handle as drawn (off: px from the one to the other).
  const x = sx(hx(c)), y = sy(hy(c)), ox = x + off[0], oy = y + off[1];
  const by = (d, px, py) => Math.hypot(px - sx(hx(d)), py - sy(hy(d))) <= MERGE_R
    || Math.hypot(px - fan[0][d], py - fan[1][d]) <= MERGE_R;
  for (let d = 0; d < C; d++) {
    if (d === c || !present[d]) continue;
    const near = by(d, x, y) || by(d, ox, oy);
    if (!near) continue;
    T[2 * c] = hx(d) - C0x[c]; T[2 * c + 1] = hy(d) - C0y[c]; recompute(c);
    say(`Merged ${view.class_names[c]} into ${view.class_names[d]}: both keep their own spread and handle.`);
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

canvas.addEventListener("pointerleave", () => { tip.style.display = "none"; hovered = -1; });

// ---- hover: label, prediction and the item itself ---------------------------------------
const items = new Map(); // sample id -> preview (data URL or text), null when there is none
const asking = new Set();
let hovered = -1; // row index under the pointer, -1 for none
let hoverAt = [0, 0]; // where the pointer was (canvas px)

function tipLines(i) {
  const names = view.class_names, t = LAB[i], p = PRED[i];
  const lines = [`sample ${IDS[i]}${MV[i] ? " · moved" : ""}`, `label ${names[t]} · predicted ${names[p] ?? p}`];
  lines.push(t !== p ? "✗ misclassified" : "");
  if (EX[i]) lines.push("excluded (not a valid item)");
  else if (LA[i] !== t) lines.push(`relabelled as ${names[LA[i]]}`);
  if (!locked) lines.push(`keys: 0-9 relabel · X ${EX[i] ? "include again" : "exclude"} · click: card`);
  return lines.filter((line, k) => k === 2 || line);
}

function showTip(i, px, py) {
  const rows = tipLines(i).map((text, k) => {
    const div = document.createElement("div");
    div.textContent = text;
    if (k === 2) div.className = "hill-tip-wrong";
    return div;
  }).filter((div) => div.textContent);
  const preview = items.get(IDS[i]);
  const nodes = [];
  if (typeof preview === "string" && preview.startsWith("data:image/")) {
    const img = new Image();
    img.className = "hill-thumb"; img.alt = `sample ${IDS[i]}`; img.src = preview;
    img.onload = () => { if (img.naturalWidth <= 48) img.style.width = `${Math.max(64, img.naturalWidth)}px`; };
    nodes.push(img);
  } else if (typeof preview === "string") {
    const div = document.createElement("div");
    div.className = "hill-tip-row"; div.textContent = preview;
    rows.push(div);
  } else if (GATE.has_items && !items.has(IDS[i])) {
    fetchItem(i);
  }
  const text = document.createElement("div");
  text.append(...rows);
  tip.replaceChildren(...nodes, text);
  tip.classList.toggle("hill-tip-item", nodes.length > 0);
  placeTip(px, py);
}

function placeTip(px, py) {
  tip.style.display = "flex";
  const W = canvas.clientWidth, H = canvas.clientHeight, w = tip.offsetWidth, h = tip.offsetHeight;
  const left = px + 14 + w > W ? px - 14 - w : px + 14;
  const top = py + 10 + h > H ? Math.max(0, py - 10 - h) : py + 10;
  tip.style.left = `${left}px`; tip.style.top = `${top}px`;
}

function fetchItem(i) {
  const id = IDS[i];
  if (asking.has(id)) return;
  asking.add(id);
  pageCall("item", id)
    .then((r) => { items.set(id, r && typeof r.item === "string" ? r.item : null); })
    .catch(() => { items.set(id, null); })
    .finally(() => {
      asking.delete(id);
      if (hovered === i && !drag) showTip(i, ...hoverAt);
      fillThumbs(id); // the card, the suspects list and the similar items show it too
    });
}

function hover(px, py) {
  const hit = pick(px, py);
  canvas.style.cursor = hit.kind === "none" ? "grab" : locked ? "default" : "move";
  hovered = hit.kind === "point" ? hit.index : -1;
  hoverAt = [px, py];
  if (hit.kind === "none") { tip.style.display = "none"; return; }
  if (hit.kind === "point") { showTip(hit.index, px, py); return; }
  const c = hit.index;
  const name = view.class_names[c];
  const wrong = members[c].reduce((n, i) => n + WRONG[i], 0);
  const div = document.createElement("div");
  div.textContent = `centre of ${name}: ${members[c].length} points, ${wrong} misclassified. `
    + `Drag to move, drop on a centre to merge, click to scale it.`
    + (FANNED[c] ? " (Drawn apart from centres it overlaps; the line points at its place.)" : "");
  tip.replaceChildren(div);
  tip.classList.remove("hill-tip-item");
  placeTip(px, py);
}

// ---- confusion-cell highlight ---------------------------------------------------------------
// The matrix counts validation items; the map shows the training snapshot. A click on a cell
// (or a top-confusion entry) highlights the snapshot's points of that true and predicted
// class and states both counts, since they differ: "8 snapshot points ...; the cell counts 9
// validation items". `cell`: the cell's validation count (undefined from a script: omitted).
function highlight(t, p, cell) {
  if (hi && hi.t === t && hi.p === p) { clearHighlight(); return hi; }
  const mask = new Uint8Array(N);
  let count = 0;
  for (const i of members[t] || []) if (PRED[i] === p) { mask[i] = 1; count += 1; }
  hi = { t, p, mask, count, cell };
  const names = view.class_names, s = (n) => (n === 1 ? "" : "s");
  const counted = Number.isFinite(cell) ? `; the cell counts ${cell} validation item${s(cell)}` : "";
  const line = `${count} snapshot point${s(count)} of ${names[t]} predicted as ${names[p]}${counted}.`;
  say(`${line} Click the cell again or press Esc to show all.`);
  markCells(line); schedule();
  return hi;
}

function clearHighlight() {
  if (!hi) return;
  hi = null; say("Showing every point."); markCells(""); schedule();
}

function markCells(line) {
  // The context panel is its own component: reach it through the document.
  document.querySelectorAll(".hill-ctx [data-true][data-pred]").forEach((el) => {
    el.classList.toggle("hill-cell-on", !!hi && Number(el.dataset.true) === hi.t && Number(el.dataset.pred) === hi.p);
  });
  const note = document.querySelector(".hill-ctx .hill-cell-note");
  if (note) note.textContent = line;
}

// ---- controls: undo, reset, fit, per-class scale, legend -----------------------------
const $ = (sel) => root.querySelector(sel);
const scaleInput = $(".hill-scale");
const scaleClass = $(".hill-scale-class");
let scaleGesture = false;

$(".hill-undo").addEventListener("click", undo);
$(".hill-reset").addEventListener("click", reset);
$(".hill-fit").addEventListener("click", () => { fit(); schedule(); });

// Ctrl+Z (Cmd+Z) anywhere on the page, except where it undoes typing; Esc clears a highlight.
const TEXT_INPUT = /^(text|search|email|url|tel|password|number|date|time|datetime-local|month|week)$/;
function typing(el) {
  if (!el) return false;
  if (el.isContentEditable || el.tagName === "TEXTAREA") return true;
  return el.tagName === "INPUT" && TEXT_INPUT.test(el.type || "text");
}
function onKey(e) {
  if (!root.isConnected) { document.removeEventListener("keydown", onKey, true); return; }
  const target = e.composedPath ? e.composedPath()[0] : e.target;
  if ((e.ctrlKey || e.metaKey) && !e.shiftKey && !e.altKey && e.key.toLowerCase() === "z") {
    if (typing(target)) return;
    e.preventDefault(); undo();
  } else if (triageKey(e, target) || labelKey(e, target)) {
    e.preventDefault(); e.stopPropagation();
  } else if (e.key === "Escape" && hi) {
    clearHighlight();
  }
}
document.addEventListener("keydown", onKey, true);

view.class_names.forEach((name, c) => {
  if (present[c]) scaleClass.add(new Option(name, String(c)));
});

function choose(c) {
  // The scale slider acts on this class until another is chosen (dropdown, legend or a click
  // on a centre); dragging a centre moves it without taking the slider along.
  if (!present[c]) return;
  selected = c; syncControls(); schedule();
}
scaleClass.addEventListener("change", () => choose(Number(scaleClass.value)));
scaleInput.addEventListener("input", () => {
  if (locked) return;
  if (!scaleGesture) { undoStack.push(snapshotOf("class", selected)); scaleGesture = true; }
  S[selected] = Number(scaleInput.value); recompute(selected);
  schedule(); requestReadout(); syncControls();
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
    item.addEventListener("click", () => choose(c));
    legend.append(item);
  });
  const span = (className) => Object.assign(document.createElement("span"), { className });
  const keys = span("hill-keys");
  const ring = span("hill-key-wrong");
  const moved = span("hill-key-moved");
  const relabelled = span("hill-key-relabelled");
  const excluded = span("hill-key-excluded");
  const counts = span("hill-corrections");
  keys.append(ring, ` misclassified: ${wrongCount} of ${N} (ring colour = predicted class) `, moved,
    " moved by hand ", relabelled, excluded, counts);
  legend.append(keys);
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
  scaleClass.disabled = locked;
  const n = correctionCounts();
  const counts = $(".hill-corrections");
  if (counts) counts.textContent = ` relabelled ${n.relabelled}, excluded ${n.excluded}` + (n.changed ? ` (${n.changed} changed here)` : "");
  $(".hill-moveonly-box").disabled = locked;
  root.querySelectorAll(".hill-legend-item").forEach((el) => {
    const c = Number(el.dataset.cls);
    el.classList.toggle("hill-selected", c === selected);
    el.classList.toggle("hill-edited", T[2 * c] !== 0 || T[2 * c + 1] !== 0 || S[c] !== 1);
  });
}

const say = (text) => { $(".hill-status").textContent = text; };

// ---- live readout: coalesced while dragging ---------------------------------------------
// At most one call in flight and at most one per READOUT_MS; moves in between only mark the
// readout stale, and the next call sends the edit state as it is then (latest wins), so no
// state is queued up behind a slow answer. None is dropped at the end: the drag's last move
// (and its pointerup, via changed()) marks it stale, so a call of the final layout always
// follows. The server answers from the edit state (offsets, scales, moved points: ~1 KB), not
// the N positions, in ~1 ms for 10,000 points (interaction_app/layout.py, Readout).
const READOUT_MS = 80;
let inflight = false, queued = false, lastSent = 0, timer = 0;

function requestReadout() { queued = true; pump(); }

function pump() {
  if (inflight || !queued || timer) return;
  const wait = READOUT_MS - (performance.now() - lastSent);
  if (wait > 0) { timer = setTimeout(() => { timer = 0; pump(); }, wait); return; }
  queued = false; inflight = true; lastSent = performance.now();
  pageCall("readout", ops())
    .then((r) => { showReadout(r, performance.now() - lastSent); })
    .catch((err) => { if (!locked) $(".hill-readout").textContent = `readout failed: ${err}`; })
    .finally(() => { inflight = false; pump(); });
}

function showReadout(r, ms) {
  readoutPerf.calls += 1; readoutPerf.last = ms; readoutPerf.samples.push(ms);
  if (readoutPerf.samples.length > 600) readoutPerf.samples.shift();
  const f = (v) => Number(v).toFixed(4);
  $(".hill-readout").innerHTML =
    `<b>What this edit asks of the model</b> (L_human of the current layout against the edited one): ` +
    `L_center <code>${f(r.l_center)}</code> · L_spread <code>${f(r.l_spread)}</code> · ` +
    `L_point <code>${f(r.l_point)}</code> · <b>L_human <code>${f(r.l_human)}</code></b> · ` +
    `<span class="hill-readout-labels">relabelled ${r.items_relabelled ?? 0}, excluded ${r.items_excluded ?? 0}</span> ` +
    `<span class="hill-muted">(${ms.toFixed(0)} ms)</span>`;
}

// ---- after a decision (here, in another tab, through Prefect, by timeout) ----------------
// Every page polls the server's status with its own id; once the gate is decided it locks,
// shows the decision and where the run went, tells the server (which waits for that before
// it closes) and tells the other tabs of this browser at once.
const PAGE = Math.random().toString(36).slice(2) + Date.now().toString(36);
const STATUS_MS = GATE.status_ms || 1500;
const channel = "BroadcastChannel" in window && GATE.key ? new BroadcastChannel(`hill-gate:${GATE.key}`) : null;
let decided = null; // the server's status once decided
let gone = false; // the server stopped answering before this page saw a decision
let failures = 0, pollTimer = 0, acked = false, replies = 0; // replies: status polls answered

function lock(text, soft) {
  if (text) {
    const banner = $(".hill-lock");
    banner.textContent = text;
    banner.style.display = "block";
  }
  if (locked) return;
  locked = true; drag = null; gone = !!soft && soft === "gone";
  root.classList.add("hill-locked");
  closeCard(); renderOffer(); renderSuspects();
  syncControls();
}

function unlock() {
  // Only a lock for a server that went quiet is undone, when it answers again undecided.
  if (!gone || decided) return;
  locked = false; gone = false;
  $(".hill-lock").style.display = "none";
  root.classList.remove("hill-locked");
  panel(null, "");
  syncControls();
}

function panel(head, text) {
  // The decision panel (Gradio components beside the plot): hide the buttons and say what
  // happened in a note of our own next to the status line (Gradio keeps owning that line).
  const buttons = document.getElementById("hill-decision-buttons");
  const confirm = document.getElementById("hill-decision-confirm");
  const status = document.getElementById("hill-decision-status");
  let note = document.getElementById("hill-decision-note");
  if (head === null) { // undo a "gone" lock
    if (buttons) buttons.style.display = "";
    if (status) status.style.display = "";
    if (note) note.remove();
    return;
  }
  if (buttons) buttons.style.display = "none";
  if (confirm) confirm.style.display = "none";
  if (!status || (/Decision recorded/.test(status.textContent) && !gone)) return; // it says so
  if (!note) {
    // Should Gradio then fill in the decision itself (a tab opened after it), that wins.
    new MutationObserver((_, watch) => {
      if (!/Decision recorded/.test(status.textContent)) return;
      watch.disconnect(); status.style.display = "";
      const mine = document.getElementById("hill-decision-note");
      if (mine) mine.remove();
    }).observe(status, { childList: true, subtree: true, characterData: true });
    note = document.createElement("div");
    note.id = "hill-decision-note";
    note.style.cssText = "padding:6px 10px;border-radius:6px;background:#eef3f9;border-left:3px solid #1f4e79;font-size:14px";
    status.after(note);
  }
  status.style.display = "none";
  const b = document.createElement("strong");
  b.textContent = head;
  note.replaceChildren(b, ` ${text}`);
}

function onDecided(s, fromServer) {
  const first = !decided;
  decided = s; gone = false;
  lock(s.message);
  panel(`Decision recorded: ${s.decision}.`, `${s.message} ${s.detail || ""}`);
  showRecorded(s.layout);
  if (first && channel) channel.postMessage({ decided: true, message: s.message, detail: s.detail || "", decision: s.decision });
  if (!acked) {
    acked = true;
    // The reply carries the recorded layout, which a tab told by another tab has not seen.
    pageCall("status", { page: PAGE, locked: true }).then((r) => { if (r && r.decided) showRecorded(r.layout); }).catch(() => {});
  }
  if (!fromServer) checkNow(); // heard from another tab: confirm with the server when it answers
}

let shownRecorded = false;
function showRecorded(layout) {
  // Every tab shows what was recorded, not its own edits: the file's positions, labels and
  // exclusions (interaction_app/recorder.py layout_changes: only the rows that differ from
  // the snapshot). Skip, stop and an unedited approve record the model's own layout.
  if (!layout || !Array.isArray(layout.sample_id) || shownRecorded) return;
  shownRecorded = true; drag = null; undoStack.length = 0;
  X.set(X0); Y.set(Y0); MV.fill(0); LA.set(CUR0); EX.set(EXC0); S.fill(1);
  const row = new Map();
  for (let i = 0; i < N; i++) row.set(IDS[i], i);
  layout.sample_id.forEach((id, k) => {
    const i = row.get(id);
    if (i === undefined) return;
    X[i] = layout.x[k]; Y[i] = layout.y[k]; MV[i] = layout.moved[k] ? 1 : 0;
    LA[i] = layout.label[k]; EX[i] = layout.excluded[k] ? 1 : 0;
  });
  for (let c = 0; c < C; c++) { // each handle at its class's recorded mean (C0 is the snapshot's)
    let dx = 0, dy = 0;
    for (const i of members[c]) { dx += X[i] - X0[i]; dy += Y[i] - Y0[i]; }
    const n = members[c].length || 1;
    T[2 * c] = dx / n; T[2 * c + 1] = dy / n;
    for (const i of members[c]) if (MV[i]) { RX[i] = X[i] - T[2 * c]; RY[i] = Y[i] - T[2 * c + 1]; }
  }
  const moved = layout.moved.filter(Boolean).length, shifted = layout.sample_id.length;
  $(".hill-readout").textContent = shifted
    ? `Showing the recorded layout: ${shifted} item(s) differ from the model's (${moved} moved one by one).`
    : "Showing the recorded layout: the model's own, unedited.";
  syncControls(); refreshPanels(); schedule();
}

async function pollStatus() {
  clearTimeout(pollTimer);
  try {
    // A reply that never comes (a stalled connection) counts as a failure and is retried.
    const s = await Promise.race([
      pageCall("status", { page: PAGE, locked: !!decided }),
      new Promise((_, fail) => setTimeout(() => fail(new Error("status timed out")), 4 * STATUS_MS)),
    ]);
    failures = 0;
    replies += 1;
    if (s && s.decided) { onDecided(s, true); return; }
    if (gone) unlock();
  } catch (err) {
    failures += 1;
    if (failures >= 2 && !decided && !locked) {
      // The page has gone: the gate was decided (the run went on) or the run ended.
      const text = "This gate page has closed: the gate was decided or its run ended. The layout is read-only.";
      lock(text, "gone"); panel("This gate page has closed.", "The gate was decided or its run ended.");
    }
    if (decided) return;
  }
  pollTimer = setTimeout(pollStatus, gone ? 4 * STATUS_MS : STATUS_MS);
}
const checkNow = () => { if (!decided || !acked) pollStatus(); };

if (channel) channel.onmessage = (e) => { if (e.data && e.data.decided && !decided) onDecided(e.data, false); };

// Hooks for the decision buttons (via gr.Button js=), the confusion panel, tests, benchmarks.
root.hill = {
  payload, ops, lock, checkNow, highlight, clearHighlight, perf, readoutPerf,
  pickAt: (x, y) => { const b = canvas.getBoundingClientRect(); return pick(x - b.left, y - b.top); },
  isLocked: () => locked,
  decidedHere: (s) => onDecided(s, true), // Confirm's reply: the server's own lines
  decided: () => decided,
  shownRecorded: () => shownRecorded,
  undoDepth: () => undoStack.length,
  statusReplies: () => replies, // a test waits for a tab's first poll, not for a second
  dataPerPixel: () => 1 / cam.k,
  toClient: (x, y) => { const b = canvas.getBoundingClientRect(); return [b.left + sx(x), b.top + sy(y)]; },
  handle: (c) => [hx(c), hy(c)],
  handleClient: (c) => { const b = canvas.getBoundingClientRect(); return [b.left + DX[c], b.top + DY[c]]; },
  labelBox: (c) => LABELS[c] && LABELS[c].slice(),
  fanned: (c) => FANNED[c] === 1,
  point: (i) => [X[i], Y[i]],
  selectedClass: () => selected,
  highlighted: () => (hi ? { t: hi.t, p: hi.p, count: hi.count } : null),
  wrongCount: () => wrongCount,
  tipText: () => (tip.style.display === "none" ? "" : tip.textContent),
  redraw: draw,
};
