// Gate page, part 5: suspects first. The snapshot's items ranked by suspect_score (how likely
// the given label is wrong, hill_core/suspects.py): highest first, unscored after, items
// excluded before this gate last. Keyboard triage on the list: every key acts and moves on at
// once, so a person gets through 30-50 items in five minutes.

const panelEl = root.querySelector(".hill-suspects");
const WINDOW = 12; // rows drawn around the current one (the list may hold 10,000 items)
const ORDER = Int32Array.from({ length: N }, (_, i) => i).sort((a, b) => {
  const group = (i) => (EXC0[i] ? 2 : Number.isNaN(SCORE[i]) ? 1 : 0);
  return group(a) - group(b) || (SCORE[b] - SCORE[a] || 0) || a - b;
});
const SEEN = new Uint8Array(N); // inspected in triage (kept, relabelled or excluded)
let cursor = 0; // position in ORDER

const suspectAt = () => (SCORED ? ORDER[cursor] : -1);

function triageKey(e, target) {
  if (!SCORED || locked || e.ctrlKey || e.metaKey || e.altKey || !panelEl.contains(target)) return false;
  const i = ORDER[cursor], k = e.key;
  if (k === "j" || k === "ArrowDown") { step(1); return true; }
  if (k === "k" || k === "ArrowUp") { step(-1); return true; }
  if (k === "a") {
    if (SPRED[i] >= 0 && SPRED[i] < C) relabel(i, SPRED[i]);
  } else if (/^[0-9]$/.test(k)) {
    if (Number(k) >= C) return true; // no such class: nothing happens, nothing moves on
    relabel(i, Number(k));
  } else if (k === "x") {
    setExcluded(i, true);
  } else if (k !== " " && k !== "n") {
    return false; // y and Esc go on to "find similar"
  }
  SEEN[i] = 1;
  step(1);
  return true;
}

function step(by) {
  cursor = Math.max(0, Math.min(N - 1, cursor + by));
  renderSuspects(); schedule();
}

function renderSuspects() {
  if (!SCORED) { panelEl.style.display = "none"; return; }
  const head = document.createElement("div");
  head.className = "hill-suspects-head";
  const seen = SEEN.reduce((n, v) => n + v, 0);
  head.textContent = `Suspects · ${seen} of ${N} inspected`;
  const keys = document.createElement("div");
  keys.className = "hill-suspects-keys";
  keys.textContent = "click here, then: j/k next/previous · a as predicted · 0-9 class · n or space keep · x exclude · y relabel similar";
  const start = Math.max(0, Math.min(cursor - 2, N - WINDOW));
  const rows = [];
  for (let k = start; k < Math.min(N, start + WINDOW); k++) rows.push(suspectRow(k));
  panelEl.replaceChildren(head, keys, ...rows);
  panelEl.classList.toggle("hill-suspects-locked", locked);
}

function suspectRow(k) {
  const i = ORDER[k];
  const row = document.createElement("div");
  row.className = "hill-suspect" + (k === cursor ? " hill-suspect-current" : "") + (SEEN[i] ? " hill-suspect-seen" : "");
  row.dataset.row = String(i);
  const score = Number.isNaN(SCORE[i]) ? "not scored" : `score ${SCORE[i].toFixed(2)}`;
  const pred = SPRED[i] >= 0 ? className(SPRED[i]) : "–";
  const state = EX[i] ? "excluded" : LA[i] !== LAB[i] ? `relabelled as ${className(LA[i])}` : SEEN[i] ? "kept" : "";
  const text = document.createElement("div");
  const top = document.createElement("div");
  top.textContent = `#${k + 1} · sample ${IDS[i]} · ${score}`;
  const mid = document.createElement("div");
  mid.textContent = `given ${className(LAB[i])} · probe says ${pred}`;
  const low = document.createElement("div");
  low.className = "hill-suspect-state"; low.textContent = state;
  text.append(top, mid, low);
  row.append(thumb(i), text);
  row.addEventListener("click", () => { cursor = k; renderSuspects(); schedule(); panelEl.focus(); });
  return row;
}
