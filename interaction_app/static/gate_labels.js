// Gate page, part 4: label corrections. A person says what an item *is*: relabel it (drop it on
// another class, a digit key over it, its card's class menu) or exclude it ("not a valid
// item"). A relabel carries no latent pull: the point keeps its position and moved stays false
// (hill_core/teacher.py, latent_rows). Every change goes on the undo stack like a move.

// A drop joins a class when it lands on its centre handle, or inside its cluster: the nearest
// class centre, if the drop lies within DROP_SPREADS x that class's spread (mean distance of its
// points to the centre, times its scale slider). Elsewhere (empty space) it is a plain move.
const DROP_SPREADS = 1.5;
const SIMILAR_K = 5; // "find similar" offers at most this many items (hill_core/users.py)
const S0 = new Float64Array(C); // each class's spread at the gate (data units)
members.forEach((m, c) => {
  for (const i of m) S0[c] += Math.hypot(X0[i] - C0x[c], Y0[i] - C0y[c]);
  if (m.length) S0[c] /= m.length;
});
const SCORED = SPRED.some((p) => p >= 0); // the snapshot carries a suspects probe
const moveOnlyBox = root.querySelector(".hill-moveonly-box");
const cardEl = root.querySelector(".hill-card");
const similarEl = root.querySelector(".hill-similar");
const className = (c) => view.class_names[c] ?? String(c);
let cardItem = -1; // the item whose card is open, -1 for none
let offer = null; // "find similar": { from, old, to, rows }

const moveOnly = (e) => !!(e && (e.shiftKey || e.altKey)) || moveOnlyBox.checked;

function correctionCounts() {
  // In force (against the given label, as the edits file counts them) and changed here.
  let relabelled = 0, excluded = 0, changedHere = 0;
  for (let i = 0; i < N; i++) {
    if (EX[i]) excluded += 1; else if (LA[i] !== LAB[i]) relabelled += 1;
    if (labelChanged(i)) changedHere += 1;
  }
  return { relabelled, excluded, changed: changedHere };
}

function dropTarget(px, py) {
  const h = pickHandle(px, py);
  if (h >= 0) return h;
  const x = dataX(px), y = dataY(py);
  let best = -1, bestD = Infinity;
  for (let c = 0; c < C; c++) {
    if (!present[c]) continue;
    const d = Math.hypot(x - hx(c), y - hy(c));
    if (d < bestD) { best = c; bestD = d; }
  }
  return best >= 0 && bestD <= DROP_SPREADS * S0[best] * S[best] ? best : -1;
}

function dropHint(i, px, py, only) {
  // Near the pointer while dragging a point: what the drop will do.
  const c = only ? -1 : dropTarget(px, py);
  const text = c >= 0 && c !== LA[i] ? `drop: relabel as ${className(c)}` : only ? "drop: move only" : "drop: move";
  const div = document.createElement("div");
  div.textContent = text + (c >= 0 && c !== LA[i] ? " (Shift: move only)" : "");
  tip.replaceChildren(div);
  tip.classList.remove("hill-tip-item");
  placeTip(px, py);
}

function dropOnClass(d, px, py, only) {
  // A drop onto another class relabels: the point goes back where it was before the drag.
  const i = d.index, c = only ? -1 : dropTarget(px, py);
  if (c < 0 || c === LA[i] && !EX[i]) return false;
  restore(d.undo);
  relabel(i, c);
  return true;
}

function relabel(i, c, quiet) {
  if (locked || i < 0 || !(c >= 0 && c < C) || (LA[i] === c && !EX[i])) return false;
  const old = LA[i];
  undoStack.push(snapshotOf("point", i));
  LA[i] = c; EX[i] = 0;
  const back = c === LAB[i] ? " (its given label: the correction is undone)" : "";
  say(`Relabelled sample ${IDS[i]} as ${className(c)}${back}.`);
  afterLabel(i);
  if (!quiet) offerSimilar(i, old, c);
  return true;
}

function setExcluded(i, out) {
  if (locked || i < 0 || EX[i] === (out ? 1 : 0)) return false;
  undoStack.push(snapshotOf("point", i));
  EX[i] = out ? 1 : 0;
  say(out ? `Excluded sample ${IDS[i]}: it leaves training (not a valid item).`
    : `Sample ${IDS[i]} is back in training, as ${className(LA[i])}.`);
  afterLabel(i);
  return true;
}

function afterLabel(i) {
  changed();
  if (hovered === i && !drag) showTip(i, ...hoverAt);
}

function refreshPanels() {
  // After any edit (undo and reset too): the open card and the suspects list show the state.
  if (cardItem >= 0) renderCard();
  renderSuspects();
}

// Keys over a point (hovered, else the open card): 0-9 relabel, X or Delete toggle exclude;
// with "find similar" open, Y relabels all it offers and Esc dismisses it.
function labelKey(e, target) {
  if (locked || e.ctrlKey || e.metaKey || e.altKey || typing(target)) return false;
  if (target && target.tagName === "SELECT") return false;
  if (offer && (e.key === "y" || e.key === "Y")) { acceptSimilar(offer.rows.slice()); return true; }
  if (offer && e.key === "Escape") { offer = null; renderOffer(); return true; }
  const i = hovered >= 0 ? hovered : cardItem;
  if (i < 0) return false;
  if (/^[0-9]$/.test(e.key)) { relabel(i, Number(e.key)); return true; }
  if (e.key === "x" || e.key === "X" || e.key === "Delete") { setExcluded(i, !EX[i]); return true; }
  if (e.key === "Escape" && cardItem >= 0) { closeCard(); return true; }
  return false;
}

// ---- previews shared by the card, the suspects list and "find similar" ----------------
function thumb(i) {
  const preview = items.get(IDS[i]);
  if (typeof preview === "string" && !preview.startsWith("data:image/")) {
    const span = document.createElement("span");
    span.className = "hill-thumb-text"; span.textContent = preview;
    return span;
  }
  const img = new Image();
  img.className = "hill-thumb hill-thumb-small"; img.alt = `sample ${IDS[i]}`; img.dataset.sid = String(IDS[i]);
  if (typeof preview === "string") img.src = preview;
  else if (GATE.has_items && !items.has(IDS[i])) fetchItem(i);
  return img;
}

function fillThumbs(id) {
  const preview = items.get(id);
  if (typeof preview !== "string" || !preview.startsWith("data:image/")) return;
  root.querySelectorAll(`img[data-sid="${id}"]`).forEach((img) => { if (!img.src) img.src = preview; });
}

// ---- the item card: a click on a point pins it, with a class menu and exclude -----------
function openCard(i) {
  cardItem = i; renderCard(); schedule();
}

function closeCard() {
  cardItem = -1; cardEl.style.display = "none"; cardEl.replaceChildren(); schedule();
}

function renderCard() {
  const i = cardItem;
  if (i < 0 || locked) { cardEl.style.display = "none"; return; }
  const text = document.createElement("div");
  const given = LAB[i], now = LA[i];
  text.textContent = `sample ${IDS[i]} · given ${className(given)} · predicted ${className(PRED[i])}`
    + (EX[i] ? " · excluded" : now !== given ? ` · relabelled as ${className(now)}` : "");
  const menu = document.createElement("select");
  menu.className = "hill-card-class"; menu.title = "the item's class after this gate (keys 0-9)";
  view.class_names.forEach((name, c) => menu.add(new Option(c === given ? `${name} (given)` : name, String(c))));
  menu.value = String(now);
  menu.addEventListener("change", () => relabel(i, Number(menu.value)));
  const out = document.createElement("button");
  out.className = "hill-card-exclude";
  out.textContent = EX[i] ? "Include again" : "Exclude (not a valid item)";
  out.addEventListener("click", () => setExcluded(i, !EX[i]));
  const close = document.createElement("button");
  close.className = "hill-card-close"; close.textContent = "×"; close.title = "close (Esc)";
  close.addEventListener("click", closeCard);
  const row = document.createElement("div");
  row.className = "hill-card-row";
  row.append("class ", menu, out, close);
  const body = document.createElement("div");
  body.append(text, row);
  cardEl.replaceChildren(thumb(i), body);
  cardEl.style.display = "flex";
  const W = canvas.clientWidth, w = cardEl.offsetWidth, h = cardEl.offsetHeight;
  const px = sx(X[i]), py = sy(Y[i]);
  cardEl.style.left = `${Math.max(0, px + 16 + w > W ? px - 16 - w : px + 16)}px`;
  cardEl.style.top = `${Math.max(0, Math.min(py - h / 2, canvas.clientHeight - h))}px`;
}

// ---- "find similar": after a relabel from old to new, the nearest items (gate layout) that
// still carry old and whose probe predicts new, up to SIMILAR_K; nothing changes unconfirmed.
// The same rule as hill_core/users.py's similar_items, on the page's current labels.
function similarRows(i, old, to) {
  const near = [];
  for (let j = 0; j < N; j++) {
    if (j === i || LA[j] !== old || EX[j] || SPRED[j] !== to) continue;
    near.push([Math.hypot(X0[j] - X0[i], Y0[j] - Y0[i]), j]);
  }
  near.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return near.slice(0, SIMILAR_K).map((pair) => pair[1]);
}

function offerSimilar(i, old, to) {
  if (!SCORED) return;
  const rows = similarRows(i, old, to);
  offer = rows.length ? { from: i, old, to, rows } : null;
  renderOffer();
}

function acceptSimilar(rows) {
  if (locked || !offer) return;
  const to = offer.to, list = [];
  for (const j of rows) {
    if (LA[j] === to && !EX[j]) continue;
    list.push(snapshotOf("point", j)); LA[j] = to; EX[j] = 0;
  }
  if (list.length) undoStack.push({ kind: "batch", list });
  offer.rows = offer.rows.filter((j) => !rows.includes(j));
  say(`Relabelled ${list.length} similar item${list.length === 1 ? "" : "s"} as ${className(to)}.`);
  if (!offer.rows.length) offer = null;
  renderOffer(); changed();
}

function renderOffer() {
  if (!offer || locked) { similarEl.style.display = "none"; similarEl.replaceChildren(); return; }
  const head = document.createElement("div");
  head.textContent = `Find similar: ${offer.rows.length} item(s) still labelled ${className(offer.old)} that the probe `
    + `predicts as ${className(offer.to)}, nearest to sample ${IDS[offer.from]} first. Relabel them too?`;
  const list = document.createElement("div");
  list.className = "hill-similar-list";
  for (const j of offer.rows) {
    const one = document.createElement("button");
    one.className = "hill-similar-item"; one.dataset.sid = String(IDS[j]);
    one.title = `relabel sample ${IDS[j]} as ${className(offer.to)}`;
    one.append(thumb(j), ` ${IDS[j]}`);
    one.addEventListener("click", () => acceptSimilar([j]));
    list.append(one);
  }
  const all = document.createElement("button");
  all.className = "hill-similar-all"; all.textContent = `Relabel all as ${className(offer.to)} (Y)`;
  all.addEventListener("click", () => acceptSimilar(offer.rows.slice()));
  const no = document.createElement("button");
  no.className = "hill-similar-dismiss"; no.textContent = "Dismiss (Esc)";
  no.addEventListener("click", () => { offer = null; renderOffer(); });
  similarEl.replaceChildren(head, list, all, no);
  similarEl.style.display = "flex";
}

function drawFocus(r) {
  // The open card's item and the suspects list's current item: a wide two-tone ring.
  for (const i of [cardItem, suspectAt()]) {
    if (i < 0) continue;
    const px = sx(X[i]), py = sy(Y[i]);
    ctx.beginPath(); ctx.arc(px, py, r + 7, 0, 6.2832);
    ctx.lineWidth = 5; ctx.strokeStyle = "#fff"; ctx.stroke();
    ctx.lineWidth = 2.5; ctx.strokeStyle = "#e6007e"; ctx.stroke();
  }
}
