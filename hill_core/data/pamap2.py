"""PAMAP2 Protocol recordings as 4-second windows of 27 IMU channels, split by subject.

Each ``subjectNNN.dat`` file has 54 space-separated columns at 100 Hz: timestamp, activityID,
heart rate, then three IMUs (hand, chest, ankle) of 17 columns each: temperature, acc 16g xyz,
acc 6g xyz, gyroscope xyz, magnetometer xyz, orientation (4, invalid). Missing values are "NaN".

Processing, as in the authors' prototype: keep acc 16g, gyroscope and magnetometer of the three
IMUs (27 channels); fill gaps per subject (linear, then nearest at the ends); resample to 50 Hz;
cut windows of 200 samples every 50 samples, labelled by their majority activity; standardise
every channel with the mean and std of the training subjects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hill_core.config import DataConfig
from hill_core.data.base import DataBundle, DataError, IndexedDataset

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
    signals = {s: _read_subject(_subject_file(folder, s)) for s in _present_subjects(folder)}
    train_signals = [signals[s][0] for s in SPLITS["train"] if s in signals]
    mean, std = _channel_stats(train_signals)
    splits = {
        name: _windows_dataset({s: signals[s] for s in subjects if s in signals}, mean, std)
        for name, subjects in SPLITS.items()
    }
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


def _channel_stats(signals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (27, 1) over every sample of ``signals`` (each (27, T)); NaN-safe."""
    joined = np.concatenate(signals, axis=1)
    mean = np.nanmean(joined, axis=1, keepdims=True)
    std = np.nanstd(joined, axis=1, keepdims=True)
    # A channel that is flat (or absent) everywhere keeps its scale instead of dividing by 0.
    mean = np.nan_to_num(mean)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


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


def _windows_dataset(
    signals: dict[int, tuple[np.ndarray, np.ndarray]], mean: np.ndarray, std: np.ndarray
) -> IndexedDataset:
    """Windows (27, 200) of the given subjects, read lazily from their standardised recordings."""
    series, which, starts, labels, ids = [], [], [], [], []
    for k, (subject, (channels, activity)) in enumerate(sorted(signals.items())):
        # An IMU missing from a whole recording is still NaN: 0 after standardising = train mean.
        series.append(torch.from_numpy(np.nan_to_num((channels - mean) / std)))
        y = _window_labels(activity) if len(activity) >= WINDOW else np.zeros(0, np.int64)
        keep = np.flatnonzero(y >= 0)  # drops windows of an activity outside the 13 classes
        which.append(np.full(len(keep), k))
        starts.append(keep * STEP)
        labels.append(y[keep])
        ids.append(subject * ID_BASE + keep)
    which, starts = np.concatenate(which or [[]]), np.concatenate(starts or [[]])

    def get_x(i: int) -> torch.Tensor:
        # A window is a slice of its recording: memory stays that of the signals, not 4x it.
        start = int(starts[i])
        return series[int(which[i])][:, start : start + WINDOW].clone()  # (27, 200)

    return IndexedDataset(get_x, np.concatenate(labels or [[]]), np.concatenate(ids or [[]]))
