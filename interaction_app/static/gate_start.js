// Gate page, last part: start-up, once every part has declared its state; hooks for tests.

Object.assign(root.hill, {
  classCount: () => C,
  labelAfter: (i) => LA[i],
  excluded: (i) => EX[i] === 1,
  corrections: correctionCounts,
  cardItem: () => cardItem,
  similar: () => (offer ? Array.from(offer.rows) : []),
  suspect: () => ({ cursor, row: suspectAt(), order: Array.from(ORDER.slice(0, 50)) }),
  redraw: () => { version += 1; draw(); }, // the fast path, from scratch
  drawReference, // the same picture, one path per point: tests compare the two canvases
  useReference: (on) => { useReference = !!on; schedule(); },
  paintMs: paint.samples, // ms from each drag's pointer event to its frame painted
});

if (GATE.note) { const note = $(".hill-note"); note.textContent = GATE.note; note.style.display = "block"; }
buildLegend();
renderSuspects();
syncControls();
new ResizeObserver(resize).observe(canvas);
resize();
pollStatus();
