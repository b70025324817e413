"""A gate's snapshot: a stratified sample of training items with their view positions.

Each row also carries a small preview of its item (column ``item``), so the gate page can show
what a point *is* on hover without the page process having the data set. The previews stay
small enough to live in the snapshot's Parquet (see :func:`item_preview`); a snapshot without
them (an older file) simply shows no picture.
"""

from __future__ import annotations

import base64
import io
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from hill_core.evaluate import latents_of
from hill_core.sampling import stratified_sample

log = logging.getLogger(__name__)

THUMB_PX = 32  # images are shown at most this many pixels a side (larger ones are shrunk)
SIGNAL_SIZE = (96, 36)  # px of a signal window's sparkline
SIGNAL_CHANNELS = 3  # channels drawn per signal window
ROW_FEATURES = 8  # features of a table row shown before "... (+N more)"
PREVIEW_INK = ((31, 119, 180), (214, 39, 40), (44, 160, 44))  # one colour per drawn channel
# Items per forward pass of a snapshot: what one pass holds, whatever the snapshot's size. The
# CPU allocator keeps freed activations, so this sets the snapshot's peak: for CIFAR-10's CPU
# net (32 x 32 x 32 x 32 float32 = 4 MB a layer) ~33 MB at 32 items, ~90 MB at 128.
CHUNK = 32
PREVIEW_CHUNK = 1024  # previews turned into one Arrow chunk at a time (~0.5 MB of text)
# Suspects are ranked within a stratified pool of at most this many training items, whatever
# the snapshot's size: the probe's cost stays bounded on large data sets (5-fold logistic
# regression on 5,000 x 128 takes a few seconds on one CPU core).
SUSPECT_POOL = 5000
SKETCH_DIMS = 128  # latents wider than this are randomly projected to it for the probe


def take_snapshot(state, size: int | None = None, corrections=None) -> pd.DataFrame:
    """Snapshot table of ``size`` training items, the items already corrected, and the top
    suspects; columns sample_id, label, class_name, pred, x, y, item, current_label, excluded,
    suspect_score, suspect_pred (see ``hill_core.edits``).

    The same stratified items are drawn at every gate of a run (seeded by base.seed), so gates
    compare. On top come every item that ``corrections`` (the label corrections in force)
    relabels or excludes, so a later gate shows them and can undo them, and the
    ``hill.suspects`` items whose given labels look most wrong (:mod:`hill_core.suspects`), out
    of a stratified pool of at most :data:`SUSPECT_POOL` items (only those are scored; the
    others' ``suspect_score`` is NaN). ``label`` is always the data set's label;
    ``current_label`` is the one training uses now. Positions are ``P(z)`` in view units; the
    model is left in eval mode. ``item`` is each item's preview (:func:`item_preview`). A
    ``size`` beyond the training set takes all of it, with a log warning; the table's
    ``attrs["note"]`` then says so in one line.

    Memory does not grow with ``size`` beyond the table itself: the items go through the model
    :data:`CHUNK` at a time and only their view positions, predictions and a
    :data:`SKETCH_DIMS`-wide sketch of the latents are kept, never the (N, d) latents
    (50,000 x 4,096 float32 = 820 MB for the prototype CIFAR net).
    """
    if state.projection is None:
        raise ValueError("no frozen projection yet: a snapshot needs hill.freeze_epoch passed")
    from hill_core.corrections import Corrections
    from hill_core.suspects import rank, suspect_scores

    cfg = state.config
    size = cfg.hill.snapshot_size if size is None else size
    data = state.data.train_eval
    corrections = corrections or Corrections.none()
    note = size_note(size, len(data))
    if note:
        log.warning(note)
    sample = stratified_sample(data.labels, size, cfg.base.seed)
    pool = stratified_sample(data.labels, SUSPECT_POOL, cfg.base.seed)  # the items scored
    current = corrections.label_of(data.ids, data.labels)  # (N,) labels training uses
    excluded = corrections.is_excluded(data.ids)  # (N,)
    pool_xy, pool_pred, sketch = view_positions(state, data.subset(pool, data.transform), True)
    pool_score, pool_suspect = suspect_scores(
        sketch, current[pool], state.data.num_classes, cfg.base.seed
    )
    corrected = np.flatnonzero(excluded | (current != data.labels))
    shown = np.union1d(sample, corrected)
    ranked = pool[rank(np.where(excluded[pool], np.nan, pool_score))]
    top = ranked[~np.isin(ranked, shown)][: cfg.hill.suspects]
    rows = np.union1d(shown, top)  # sorted positions in the training set
    at = np.searchsorted(pool, rows).clip(max=len(pool) - 1)
    scored = pool[at] == rows  # (R,) rows the probe scored; the rest are positioned here
    xy, pred = np.empty((len(rows), 2)), np.empty(len(rows), np.int64)
    xy[scored], pred[scored] = pool_xy[at[scored]], pool_pred[at[scored]]
    if (~scored).any():
        xy[~scored], pred[~scored] = view_positions(
            state, data.subset(rows[~scored], data.transform)
        )
    score = np.where(scored, pool_score[at], np.nan)
    suspect_pred = np.where(scored, pool_suspect[at], -1)
    names = np.asarray(state.data.class_names, dtype=object)
    table = pd.DataFrame(
        {
            "sample_id": data.ids[rows],
            "label": data.labels[rows],
            "class_name": names[data.labels[rows]],
            "pred": pred,
            "x": xy[:, 0],
            "y": xy[:, 1],
            "item": previews(data.subset(rows), state.data.preview),
            "current_label": current[rows],
            "excluded": excluded[rows],
            "suspect_score": score,
            "suspect_pred": suspect_pred,
        }
    )
    if note:
        table.attrs["note"] = note
    return table


def view_positions(state, sample, sketch: bool = False):
    """View positions (N, 2) float64 and predicted classes (N,) int64 of ``sample``'s items,
    :data:`CHUNK` items per forward pass; with ``sketch``, also (N, k) float32 latents (k =
    d up to :data:`SKETCH_DIMS`, else a fixed random projection to that width, which keeps
    distances and linear separability roughly; seeded, so the same at every gate)."""
    xy = np.empty((len(sample), 2), np.float64)
    pred = np.empty(len(sample), np.int64)
    sketches, basis = [], None
    for start in range(0, len(sample), CHUNK):
        part = np.arange(start, min(start + CHUNK, len(sample)))
        z, logits = latents_of(state.model, sample.subset(part, sample.transform), state.device)
        with torch.no_grad():
            xy[part] = state.projection(z.to(state.device)).cpu().numpy()
        pred[part] = logits.argmax(1).numpy()
        if sketch:
            z = z.reshape(len(part), -1).double().numpy()
            if basis is None and z.shape[1] > SKETCH_DIMS:
                rng = np.random.default_rng(state.config.base.seed)
                basis = rng.normal(size=(z.shape[1], SKETCH_DIMS)) / np.sqrt(SKETCH_DIMS)
            sketches.append((z if basis is None else z @ basis).astype(np.float32))
    if not sketch:
        return xy, pred
    width = min(SKETCH_DIMS, sketches[0].shape[1]) if sketches else 0
    return xy, pred, np.concatenate(sketches) if sketches else np.zeros((0, width), np.float32)


def previews(raw, preview=None) -> pd.api.extensions.ExtensionArray:
    """:func:`item_preview` of each of ``raw``'s items (as the data set returns them), as the
    table's text column (pandas' Arrow-backed ``str``, None where there is no preview).
    ``preview`` is the data set's own (see :func:`user_preview`), if it has one.

    Built :data:`PREVIEW_CHUNK` items at a time straight into Arrow, so 50,000 previews (~26 MB
    for CIFAR) are held once, not first as Python strings and then again as the column (for
    20,000 CIFAR previews that peaked at 53 MB, this at 15 MB). The column's buffers come from
    the system allocator: Arrow's default pool (mimalloc) keeps what it frees (24 MB there).
    """
    show = item_preview if preview is None else lambda x: user_preview(preview, x)
    chunks = [_preview_chunk(raw, start, show) for start in range(0, len(raw), PREVIEW_CHUNK)]
    return pd.array(pa.chunked_array(chunks, type=pa.large_string()), dtype="str")


def _preview_chunk(raw, start: int, show) -> pa.Array:
    """Previews of items ``start`` to ``start + PREVIEW_CHUNK`` (at most) of ``raw``."""
    stop = min(start + PREVIEW_CHUNK, len(raw))
    texts = [show(raw.get_x(i)) for i in range(start, stop)]
    return pa.array(texts, pa.large_string(), memory_pool=pa.system_memory_pool())


def size_note(requested: int, available: int) -> str:
    """One line when ``hill.snapshot_size`` asks for more items than the training set holds."""
    if requested <= available:
        return ""
    return (
        f"hill.snapshot_size={requested} is larger than the training set ({available} items): "
        f"the snapshot shows all {available}"
    )


def item_preview(x) -> str | None:
    """A small preview of one raw item (as the data set returns it, before normalising).

    - an image (1 or 3, H, W): a PNG data URL (grey) or WebP (colour, lossy; PNG where Pillow
      lacks WebP), shrunk to at most :data:`THUMB_PX` a side. 8x8 digits take ~0.2 KB, a
      32x32 CIFAR image ~0.4 KB.
    - a signal window (channels, T), e.g. PAMAP2's (27, 200): a PNG sparkline of
      :data:`SIGNAL_CHANNELS` channels spread over the channel list (for PAMAP2 the x axis of
      the hand, chest and ankle accelerometers), ~1 KB.
    - a feature row (F,): text, the first :data:`ROW_FEATURES` values (standardised, as the
      model sees them).

    Anything else gives None (no preview).
    """
    values = np.asarray(torch.as_tensor(x).detach().cpu().numpy())
    if values.ndim == 3 and values.shape[0] in (1, 3):
        return _image_url(values)
    if values.ndim == 2:
        return _signal_url(values.astype(np.float64))
    if values.ndim == 1:
        return _row_text(values.astype(np.float64))
    return None


def user_preview(preview, x) -> str | None:
    """A data set's own ``preview(x)`` as the page shows it: text as it is; a PIL image or an
    image array (C, H, W) or (H, W) as a picture (:func:`item_preview`)."""
    shown = preview(x)
    if shown is None or isinstance(shown, str):
        return shown
    if hasattr(shown, "getbands"):  # a PIL image: (H, W) grey or (H, W, 3) colour
        values = np.asarray(shown.convert("RGB" if len(shown.getbands()) > 1 else "L"))
        shown = values[None] if values.ndim == 2 else np.moveaxis(values, -1, 0)
    values = np.asarray(torch.as_tensor(shown).detach().cpu().numpy())
    return item_preview(values[None] if values.ndim == 2 else values)


def _image_url(values: np.ndarray) -> str:
    from PIL import Image, features

    if values.dtype != np.uint8:  # floats in [0, 1]
        values = np.clip(np.nan_to_num(values.astype(np.float64)) * 255.0 + 0.5, 0, 255)
        values = values.astype(np.uint8)
    grey = values.shape[0] == 1
    image = Image.fromarray(values[0] if grey else np.moveaxis(values, 0, -1))
    if max(image.size) > THUMB_PX:
        image.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    lossy = not grey and features.check("webp")
    fmt, mime, options = ("WEBP", "webp", {"quality": 80}) if lossy else ("PNG", "png", {})
    return _data_url(image, fmt, mime, options)


def _signal_url(values: np.ndarray) -> str:
    from PIL import Image, ImageDraw

    width, height = SIGNAL_SIZE
    channels, steps = values.shape
    picks = np.unique(np.linspace(0, channels, SIGNAL_CHANNELS, endpoint=False).astype(int))
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    xs = np.linspace(1, width - 2, max(steps, 2))
    for colour, c in zip(PREVIEW_INK, picks, strict=False):
        line = np.nan_to_num(values[c])
        low, high = float(line.min()), float(line.max())
        scaled = (line - low) / (high - low) if high > low else np.full(steps, 0.5)
        ys = (height - 3) - scaled * (height - 5)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=False)), fill=colour, width=1)
    return _data_url(image, "PNG", "png", {"optimize": True})


def _row_text(values: np.ndarray) -> str:
    shown = " · ".join(f"{v:.3g}" for v in values[:ROW_FEATURES])
    more = len(values) - ROW_FEATURES
    return f"features {shown}" + (f" … (+{more} more)" if more > 0 else "")


def _data_url(image, fmt: str, mime: str, options: dict) -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return f"data:image/{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"
