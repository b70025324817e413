"""PAMAP2 Protocol recordings as 4-second windows of 27 IMU channels, split by subject.

Each ``subjectNNN.dat`` file has 54 space-separated columns at 100 Hz: timestamp, activityID,
heart rate, then three IMUs (hand, chest, ankle) of 17 columns each: temperature, acc 16g xyz,
acc 6g xyz, gyroscope xyz, magnetometer xyz, orientation (4, invalid). Missing values are "NaN".

Processing, as in the authors' prototype: keep acc 16g, gyroscope and magnetometer of the three
IMUs (27 channels); fill gaps per subject (linear, then nearest at the ends); resample to 50 Hz;
cut windows of 200 samples every 50 samples, labelled by their majority activity; standardise
every channel with the mean and std of the training subjects.

Parsing the text is the slow part (about 1.3 GB for the real files), so each subject's 50 Hz
recording is kept once as a NumPy file beside the raw files, in ``<Protocol>/.hill-cache/``,
named by a key of the raw file (name, size, mtime) and of the processing settings. Later loads
map it from disk; standardising and windowing are cheap and run on every load.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hill_core.config import DataConfig
from hill_core.data.base import DataBundle, DataError, IndexedDataset

log = logging.getLogger(__name__)

# Activity id -> name; the label of an activity is its rank here (id 0 first, as in the prototype).
ACTIVITIES = {
    0: "no activity",
    1: "lying",
    2: "sitting",
    3: "standing",
    4: "walking",
    5: "running",
    6: "cycling",
    7: "Nordic walking",
    12: "ascending stairs",
    13: "descending stairs",
    16: "vacuum cleaning",
    17: "ironing",
    24: "rope jumping",
}
SPLITS = {"train": (1, 2, 4, 5, 8), "val": (6,), "test": (3, 7)}  # subject 9 is not used
IMU_FIRST_COLUMNS = (3, 20, 37)  # hand, chest, ankle: the temperature column of each block
# Within a block: acc 16g xyz at +1..+3, gyroscope xyz at +7..+9, magnetometer xyz at +10..+12.
CHANNEL_COLUMNS = tuple(
    c + k for c in IMU_FIRST_COLUMNS for k in (1, 2, 3, 7, 8, 9, 10, 11, 12)
)  # 27 columns
ACTIVITY_COLUMN = 1
NUM_COLUMNS = 54
DOWNSAMPLE = 2  # 100 Hz -> 50 Hz
WINDOW = 200  # samples at 50 Hz: 4 s
STEP = 50  # samples at 50 Hz: 1 s
ID_BASE = 1_000_000  # sample id = subject * ID_BASE + window index within that subject

CACHE_FOLDER = ".hill-cache"  # inside the Protocol folder
# Bump when what a cache file holds, or how it is computed from the text, changes.
CACHE_VERSION = 1
_unwritable: set[Path] = set()  # cache folders this process could not write (warned once)


def load_pamap2(cfg: DataConfig, seed: int) -> DataBundle:
    """PAMAP2 windows (27, 200) with 13 classes, split by subject.

    The split is fixed by subject (train 1, 2, 4, 5, 8; val 6; test 3, 7; subject 9 unused), so
    ``seed``, ``val_fraction`` and ``test_fraction`` do not change it. Sample id =
    subject * 1,000,000 + index of the window within the subject's recording.

    Args:
        cfg: ``root`` is the Protocol folder (or a folder above it holding ``Protocol/`` or
            ``PAMAP2_Dataset/Protocol/``).
        seed: unused; kept for the common loader signature.
    """
    del seed  # the subject split is the data set's own, as the paper uses it
    folder = _find_folder(Path(cfg.root))
    _check_splits(folder)
    # Every file is parsed (or its cache mapped) before any split is built, in subject order.
    recordings = {s: _subject_signals(_subject_file(folder, s)) for s in _present_subjects(folder)}
    joined = {
        name: _join_recordings([(s, recordings.pop(s)) for s in subjects if s in recordings])
        for name, subjects in SPLITS.items()
    }
    mean, std = _channel_stats(joined["train"].signal)  # before it is standardised in place
    splits = {}
    for name, recording in joined.items():
        _standardise(recording.signal, mean, std)
        splits[name] = _windows_dataset(recording)
    for name, ds in splits.items():
        if len(ds) == 0:
            raise DataError(f"pamap2: the {name} split has no {WINDOW}-sample window in {folder}")
    return DataBundle(
        name="pamap2",
        train=splits["train"],
        train_eval=splits["train"],
        val=splits["val"],
        test=splits["test"],
        class_names=list(ACTIVITIES.values()),
        input_shape=(len(CHANNEL_COLUMNS), WINDOW),
    )


def source_files(root: Path) -> list[Path]:
    """The subject files :func:`load_pamap2` reads for ``root``; empty when it would fail."""
    try:
        folder = _find_folder(Path(root))
    except DataError:
        return []
    return [_subject_file(folder, s) for s in _present_subjects(folder)]


def _subject_file(folder: Path, subject: int) -> Path:
    return folder / f"subject{100 + subject}.dat"


def _present_subjects(folder: Path) -> list[int]:
    used = sorted(s for subjects in SPLITS.values() for s in subjects)
    return [s for s in used if _subject_file(folder, s).is_file()]


def _find_folder(root: Path) -> Path:
    """The folder with the subject files: ``root``, ``root/Protocol`` or deeper."""
    for folder in (root, root / "Protocol", root / "PAMAP2_Dataset" / "Protocol"):
        if any(folder.glob("subject10?.dat")):
            return folder
    raise DataError(
        f"pamap2: no subject10?.dat files in {root} (nor in its Protocol/ or "
        "PAMAP2_Dataset/Protocol/); unpack the UCI PAMAP2 Protocol folder there"
    )


def _check_splits(folder: Path) -> None:
    """Every split needs at least one of its subjects; name the missing files if not."""
    present = set(_present_subjects(folder))
    for name, subjects in SPLITS.items():
        if not present.intersection(subjects):
            missing = ", ".join(_subject_file(folder, s).name for s in subjects)
            raise DataError(f"pamap2: the {name} split is empty in {folder}: missing {missing}")


# --- one subject's 50 Hz recording: from the cache, else parsed and cached ---


def _subject_signals(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Channels (27, T) float32 and activity ids (T,) int64 of ``path`` at 50 Hz.

    Read from the cache when it holds this exact file; otherwise parsed and then cached. The
    cache is written per subject as soon as it is parsed, so an error in a later file loses no
    finished work; a file that fails to parse is never cached.
    """
    key = _cache_key(path)
    cache = path.parent / CACHE_FOLDER / f"{path.stem}-{key}.npy"
    cached = _read_cache(cache)
    if cached is not None:
        return cached
    channels, activity = _read_subject(path)
    if _cache_key(path) == key:  # not rewritten while it was parsed
        _write_cache(cache, channels, activity)
    return channels, activity


def _cache_key(path: Path) -> str:
    """16 hex digits naming the raw file's version and every setting the cached arrays depend on."""
    stat = path.stat()
    settings = (CACHE_VERSION, DOWNSAMPLE, WINDOW, STEP, ACTIVITY_COLUMN, CHANNEL_COLUMNS)
    text = repr((path.name, stat.st_size, stat.st_mtime_ns, settings))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(channels (27, T) float32 memory-mapped, activity (T,) int64), or None when ``path`` is
    missing or is not a whole cache file (torn, truncated, another layout): it is then rewritten.

    Layout: one .npy array (28, T) float32; row 0 the activity ids (small integers, exact in
    float32), rows 1..27 the channels.
    """
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as e:  # numpy's words for a torn or foreign file
        log.info("pamap2: ignoring the cache file %s (%s)", path, e)
        return None
    rows = 1 + len(CHANNEL_COLUMNS)
    whole = (
        isinstance(data, np.memmap)
        and data.dtype == np.float32
        and data.ndim == 2
        and data.shape[0] == rows
        and data.flags.c_contiguous
        and data.offset + data.nbytes == size  # nothing missing, nothing appended
    )
    if not whole:
        log.info("pamap2: ignoring the cache file %s (not a (%d, T) float32 array)", path, rows)
        return None
    activity = np.asarray(data[0])
    if not (np.isfinite(activity).all() and (activity == np.round(activity)).all()):
        log.info("pamap2: ignoring the cache file %s (activity ids are not integers)", path)
        return None
    return data[1:], activity.astype(np.int64)


def _write_cache(path: Path, channels: np.ndarray, activity: np.ndarray) -> None:
    """Write the cache file atomically (temporary file, then ``os.replace``); best effort.

    A folder that cannot be written (read-only media, no permission, disk full) only costs the
    cache: one log line, no error. Files of older versions of the same subject are removed.
    """
    data = np.concatenate([activity.astype(np.float32)[None], channels])  # (28, T)
    try:
        path.parent.mkdir(exist_ok=True)
        _save_atomic(path, data)
    except OSError as e:
        if path.parent not in _unwritable:  # one line per folder, not one per subject
            _unwritable.add(path.parent)
            log.warning("pamap2: not caching the parsed files in %s (%s)", path.parent, e)
        return
    for old in path.parent.glob(f"{path.stem.rsplit('-', 1)[0]}-*.npy"):
        if old != path:
            with contextlib.suppress(OSError):  # tidying only: a file left behind is harmless
                old.unlink()


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """``np.save`` to ``path`` so that readers see the old file or the whole new one, never part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.chmod(tmp, 0o644)  # mkstemp makes it private; others sharing the data read it too
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_subject(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One recording at 50 Hz: channels (27, T) float32 without NaN, activity ids (T,) int64."""
    columns = [ACTIVITY_COLUMN, *CHANNEL_COLUMNS]
    try:
        # The C parser with usecols reads only 28 of the 54 columns: the full files are ~1.5 GB.
        frame = pd.read_csv(path, sep=r"\s+", header=None, usecols=columns, dtype=np.float32)
    except (ValueError, pd.errors.ParserError) as e:
        msg = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise DataError(f"pamap2: {path} is not {NUM_COLUMNS} numeric columns ({msg})") from e
    activity = frame[ACTIVITY_COLUMN].to_numpy()
    if np.isnan(activity).any():
        raise DataError(f"pamap2: {path} has rows without an activityID")
    # Sensor dropouts are short gaps: linear interpolation inside, nearest value at the ends.
    channels = frame[list(CHANNEL_COLUMNS)].interpolate(limit_direction="both").to_numpy()
    channels = _downsample(channels)  # (T, 27) at 50 Hz
    # The label of a 50 Hz sample is that of the first of its two 100 Hz rows.
    activity = activity[: len(channels) * DOWNSAMPLE : DOWNSAMPLE].astype(np.int64)
    return channels.T.copy(), activity


def _downsample(values: np.ndarray) -> np.ndarray:
    """(T, C) at 100 Hz -> (T // 2, C) at 50 Hz, averaging pairs (a cheap anti-alias filter)."""
    t = len(values) // DOWNSAMPLE * DOWNSAMPLE
    return values[:t].reshape(-1, DOWNSAMPLE, values.shape[1]).mean(axis=1, dtype=np.float32)


# --- standardising and windowing: cheap, on every load ---


def _channel_stats(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (27, 1) float32 over every sample of ``signal`` (27, T); NaN-safe.

    One channel at a time in float64: no copy of the whole signal is made.
    """
    mean, std = np.zeros(len(signal)), np.ones(len(signal))
    for c, row in enumerate(signal):
        values = row[~np.isnan(row)].astype(np.float64)
        if len(values):  # a channel absent everywhere keeps mean 0 and std 1
            mean[c], std[c] = values.mean(), values.std()
    # A channel that is flat everywhere keeps its scale instead of dividing by 0.
    std = np.where(std > 0, std, 1.0)
    return mean[:, None].astype(np.float32), std[:, None].astype(np.float32)


def _standardise(signal: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """signal (27, T) = (signal - mean) / std in place, NaN -> 0 (an IMU missing from a whole
    recording: 0 after standardising = the train mean)."""
    np.subtract(signal, mean, out=signal)
    np.divide(signal, std, out=signal)
    for row in signal:  # row by row: nan_to_num's masks of the whole signal would be 0.6x it
        np.nan_to_num(row, copy=False)


def _window_labels(activity: np.ndarray) -> np.ndarray:
    """Majority class (W,) of each window of ``activity`` (T,); -1 where that is no known class."""
    ids = np.array(list(ACTIVITIES), np.int64)
    size = max(activity.max(initial=0), ids.max()) + 1
    classes = np.full(size, len(ids), np.int64)  # an unknown activity id -> an extra class
    classes[ids] = np.arange(len(ids))
    per_step = classes[np.clip(activity, 0, None)]
    windows = np.lib.stride_tricks.sliding_window_view(per_step, WINDOW)[::STEP]  # (W, WINDOW)
    counts = (windows[:, :, None] == np.arange(len(ids) + 1)).sum(axis=1)  # (W, C + 1)
    label = counts.argmax(axis=1)  # ties go to the lower class
    return np.where(label == len(ids), -1, label)


@dataclass
class _Joined:
    """The recordings of one split end to end, and where their windows are.

    Attributes:
        signal: (27, T_total) float32, subject after subject.
        starts: (N,) int64 first sample of each window in ``signal``.
        labels: (N,) int64 class of each window. ids: (N,) int64 sample ids.
    """

    signal: np.ndarray
    starts: np.ndarray
    labels: np.ndarray
    ids: np.ndarray


def _join_recordings(parts: list[tuple[int, tuple[np.ndarray, np.ndarray]]]) -> _Joined:
    """(subject, (channels (27, T), activity (T,))) recordings, in order, joined end to end.

    ``parts`` is emptied as it goes: each recording (a memory map of its cache file) is let go
    once copied, so memory peaks at the joined signals plus one recording.
    """
    total = sum(channels.shape[1] for _, (channels, _) in parts)
    signal = np.empty((len(CHANNEL_COLUMNS), total), np.float32)
    starts, labels, ids = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    offset = 0
    while parts:
        subject, (channels, activity) = parts.pop(0)
        length = channels.shape[1]
        signal[:, offset : offset + length] = channels
        del channels  # unmaps the cache file of this subject
        y = _window_labels(activity) if len(activity) >= WINDOW else np.zeros(0, np.int64)
        keep = np.flatnonzero(y >= 0)  # drops windows of an activity outside the 13 classes
        starts.append(offset + keep * STEP)  # windows never cross into the next subject
        labels.append(y[keep])
        ids.append(subject * ID_BASE + keep)
        offset += length
    return _Joined(signal, *(np.concatenate(a) for a in (starts, labels, ids)))


def _windows_dataset(joined: _Joined) -> IndexedDataset:
    """Items = windows ``signal[:, s : s + WINDOW]`` (27, 200) for s in ``joined.starts``.

    A window is a slice of the joined signal, so memory stays that of the signals (a copy of
    every window would be 4x it, at STEP = WINDOW / 4).
    """
    signal, starts = joined.signal, joined.starts
    channels, total = signal.shape
    if total >= WINDOW:
        # (T_total - 199, 27, 200) view: row s is the window at s; indexing it copies only the
        # windows asked for, each a contiguous run of 200 samples per channel.
        view = np.lib.stride_tricks.sliding_window_view(signal, WINDOW, axis=1).transpose(1, 0, 2)
    else:
        view = np.zeros((0, channels, WINDOW), np.float32)

    def get_x(i: int) -> torch.Tensor:
        start = int(starts[i])
        return torch.from_numpy(signal[:, start : start + WINDOW].copy())  # (27, 200)

    def get_batch(rows: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(view[starts[np.asarray(rows, np.int64)]])  # (B, 27, 200)

    return IndexedDataset(get_x, joined.labels, joined.ids, get_batch=get_batch)
