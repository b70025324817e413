"""Writers of the real on-disk formats, small for unit tests or at full size for benchmarks.

Tests import this module directly; benchmarks put ``tests/`` on ``sys.path`` first:

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from data_writers import write_cifar, write_pamap2

    write_cifar(root, per_batch=10_000)  # full size: 5 x 10,000 training images + 10,000 test
    write_idx(root, "FashionMNIST", *IDX_FULL)  # full size: 60,000 + 10,000 idx images
    write_pamap2(root, rows_per_subject=PAMAP2_FULL_ROWS)  # full size: about 1.3 GB of text
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from hill_core.data.pamap2 import ACTIVITIES

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
CIFAR_NAMES += ["truck"]
CIFAR_FULL_PER_BATCH = 10_000  # the official batches: 5 x 10,000 training, 10,000 test

PAMAP_IDS = list(ACTIVITIES)  # activity id of each class, in label order
PAMAP2_FULL_ROWS = 380_000  # rows at 100 Hz per subject, about the real files' (63 min)
PAMAP2_SEGMENT_ROWS = 30_000  # after the first 420 rows, the activity changes every 5 min
PAMAP2_CHUNK_ROWS = 50_000  # rows drawn and formatted at once: ~30 MB of scratch memory


# --- CIFAR-10: cifar-10-batches-py/ ---


def write_cifar(root: Path, per_batch: int = 20) -> Path:
    """cifar-10-batches-py/ with 5 training batches and a test batch of ``per_batch`` images.

    Synthetic pixels in the real format: each batch is a pickled dict with ``data`` (N, 3072)
    uint8 (R, G, B planes of 32 x 32), ``labels`` (N ints), ``batch_label`` and ``filenames``;
    ``batches.meta`` holds ``label_names``. Files are pickled as the official Python 2 files are
    (protocol 2, byte strings: read them with ``encoding="latin1"``, keys come back as str),
    except ``data_batch_5``: a Python 3 protocol-2 pickle with bytes keys, the other form a
    loader meets. ``per_batch=CIFAR_FULL_PER_BATCH`` gives the full-size set (about 180 MB).
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    meta = {b"label_names": [n.encode() for n in CIFAR_NAMES]}
    meta |= {b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(python2_pickle(meta))
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(per_batch)]
        label = f"training batch {k + 1} of 5" if k < 5 else "testing batch 1 of 1"
        files = [f"{CIFAR_NAMES[y]}_s_{k * per_batch + i:06d}.png" for i, y in enumerate(labels)]
        batch = {"batch_label": label, "labels": labels, "data": data, "filenames": files}
        if name == "data_batch_5":
            batch = {key.encode(): value for key, value in batch.items()}
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        else:
            batch = {key.encode(): _as_bytes(value) for key, value in batch.items()}
            (folder / name).write_bytes(python2_pickle(batch))
    return folder


def _as_bytes(value):
    """str -> bytes, and inside lists: what a Python 2 ``str`` is."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return [_as_bytes(v) for v in value]
    return value


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: ``bytes`` as (SHORT_)BINSTRING, not ``_codecs.encode``.

    Python 3 pickles bytes at protocol 2 as a call of ``_codecs.encode`` on a latin-1 string
    (1.5x the size for random bytes); the official CIFAR files hold raw byte strings.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def python2_pickle(obj) -> bytes:
    """``obj`` pickled at protocol 2 as Python 2's cPickle did (bytes as byte strings)."""
    from io import BytesIO

    out = BytesIO()
    _Python2Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


# --- torchvision's idx sets: <Name>/raw/*-idx?-ubyte ---

IDX_FULL = (60_000, 10_000)  # the official MNIST / FashionMNIST / KMNIST training and test sizes
IDX_SIDE = 28  # pixels
# Classes of each EMNIST split; the letters split labels its 26 classes 1..26 (0 is "N/A").
EMNIST_CLASSES = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 26, "digits": 10,
                  "mnist": 10}  # fmt: skip
IDX_IMAGES_MAGIC = 0x00000803  # 0x08: unsigned bytes, 3 dims (N, 28, 28)
IDX_LABELS_MAGIC = 0x00000801  # 0x08: unsigned bytes, 1 dim (N,)


def bar_images(labels: np.ndarray, side: int, channels: int, seed: int) -> np.ndarray:
    """Images (N, channels, side, side) uint8 a model can learn: dim noise (0..63) plus, for
    class c, a bright 2-pixel horizontal bar at row 2 + 2 (c % 10) and a vertical one at column
    2 + 2 (c // 10) (both drawn in channel c % channels): a distinct pattern per class up to
    100 classes, for side >= 24."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 64, (len(labels), channels, side, side), dtype=np.uint8)
    labels = np.asarray(labels)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        at = 2 + 2 * (c % 10), 2 + 2 * (c // 10)
        x[rows, c % channels, at[0] : at[0] + 2, :] = 230
        x[rows, c % channels, :, at[1] : at[1] + 2] = 230
    return x


def idx_arrays(name: str, n: int, part: str, split: str | None = None):
    """What :func:`write_idx` writes for ``part`` ("train" or "test"): images (n, 28, 28) uint8
    upright and labels (n,) uint8 as stored (EMNIST letters: 1..26), balanced over the classes
    in shuffled order."""
    classes = EMNIST_CLASSES[split or "balanced"] if name == "EMNIST" else 10
    seed = [n, part == "test", classes]
    labels = np.random.default_rng(seed).permutation(np.arange(n) % classes)
    images = bar_images(labels, IDX_SIDE, 1, seed=n + (part == "test"))[:, 0]
    first = 1 if name == "EMNIST" and split == "letters" else 0
    return images, (labels + first).astype(np.uint8)


def write_idx(
    root: Path,
    name: str = "FashionMNIST",
    n_train: int = 200,
    n_test: int = 50,
    split: str | None = None,
) -> Path:
    """``<root>/<name>/raw/`` with the four uncompressed idx files torchvision's ``name`` reads
    (MNIST, FashionMNIST, KMNIST or EMNIST of ``split``, default balanced).

    The real format: a big-endian header (magic 0x00000803 and dims N, 28, 28 for images;
    0x00000801 and N for labels), then the bytes, row-major. File names: ``train-`` and
    ``t10k-images-idx3-ubyte`` / ``-labels-idx1-ubyte``; EMNIST's
    ``emnist-<split>-train-images-idx3-ubyte`` etc., each image stored transposed as in the
    official EMNIST files. Pixels and labels: :func:`idx_arrays`. ``IDX_FULL`` gives the real
    size (60,000 + 10,000: about 55 MB).
    """
    split = (split or "balanced") if name == "EMNIST" else None
    folder = root / name / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        images, labels = idx_arrays(name, n, part, split)
        if name == "EMNIST":
            images = images.transpose(0, 2, 1)  # the official files hold each image transposed
            prefix = f"emnist-{split}-{part}"
        else:
            prefix = "train" if part == "train" else "t10k"
        header = struct.pack(">IIII", IDX_IMAGES_MAGIC, n, IDX_SIDE, IDX_SIDE)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        header = struct.pack(">II", IDX_LABELS_MAGIC, n)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())
    return folder


# --- CIFAR-100: cifar-100-python/{train,test,meta} ---

# The official names, index = label (in the real meta file).
CIFAR100_FINE = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach
couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house
kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree
plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew
skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank
telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf
woman worm""".split()  # noqa: SIM905 - a list of 100 strings is 100 lines
CIFAR100_COARSE = """aquatic_mammals fish flowers food_containers fruit_and_vegetables
household_electrical_devices household_furniture insects large_carnivores
large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores
medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1
vehicles_2""".split()  # noqa: SIM905
CIFAR100_FULL = (50_000, 10_000)  # the official training and test sizes


def write_cifar100(root: Path, n_train: int = 1000, n_test: int = 200) -> Path:
    """cifar-100-python/ with ``train``, ``test`` and ``meta``, pickled as the official Python 2
    files are (protocol 2, byte strings).

    ``train`` and ``test``: dicts with ``data`` (N, 3072) uint8 (R, G, B planes of 32 x 32, a
    class-dependent bar pattern: :func:`bar_images`), ``fine_labels`` (N ints, 0..99, balanced),
    ``coarse_labels`` (here fine % 20, not the official grouping), ``batch_label`` and
    ``filenames``; ``meta``: ``fine_label_names`` (100) and ``coarse_label_names`` (20).
    A stratified val split needs n_train >= 100 / val_fraction.
    """
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    meta = {"fine_label_names": CIFAR100_FINE, "coarse_label_names": CIFAR100_COARSE}
    (folder / "meta").write_bytes(
        python2_pickle({k.encode(): _as_bytes(v) for k, v in meta.items()})
    )
    for part, n in (("train", n_train), ("test", n_test)):
        fine = np.random.default_rng([n, part == "test"]).permutation(np.arange(n) % 100)
        data = bar_images(fine, 32, 3, seed=n + (part == "test")).reshape(n, 3072)
        batch = {
            "filenames": [f"{CIFAR100_FINE[y]}_s_{i:06d}.png" for i, y in enumerate(fine)],
            "batch_label": f"{'training' if part == 'train' else 'testing'} batch 1 of 1",
            "fine_labels": fine.tolist(),
            "coarse_labels": (fine % 20).tolist(),
            "data": data,
        }
        (folder / part).write_bytes(
            python2_pickle({k.encode(): _as_bytes(v) for k, v in batch.items()})
        )
    return folder


# --- PAMAP2: PAMAP2_Dataset/Protocol/subject10N.dat ---


def pamap2_values(subject: int, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` (n, 54) float64 of one subject's recording at 100 Hz, NaN as in the
    real files.

    Activity A for the first 420 rows, then B, then every 5 minutes the next activity (so a
    full-size subject does all 13). Noise elsewhere, offset by 10 for subject 6 (val); hand acc
    16g x (column 4) is a ramp, to check interpolation; the hand IMU (columns 3..19) drops out
    for the first 5 rows and for rows 500..519 of every 10,000; heart rate at ~9 Hz.
    Deterministic for a row, whatever the chunks asked (each 50,000 rows has its own seed).
    """
    parts = []
    for chunk in range(start // PAMAP2_CHUNK_ROWS, (stop - 1) // PAMAP2_CHUNK_ROWS + 1):
        first = chunk * PAMAP2_CHUNK_ROWS
        lo, hi = max(start - first, 0), min(stop - first, PAMAP2_CHUNK_ROWS)
        # The first hi rows of the chunk's stream: a draw of fewer rows is a prefix of it.
        values = np.random.default_rng([subject, chunk]).normal(size=(hi, 54))[lo:]
        values += 10.0 if subject == 6 else 0.0
        parts.append(_fill_columns(values, first + np.arange(lo, hi), subject))
    return np.concatenate(parts)


def _fill_columns(values: np.ndarray, rows: np.ndarray, subject: int) -> np.ndarray:
    """Timestamp, activity, heart rate, the ramp and the dropouts of ``rows`` (n,) into (n, 54)."""
    values[:, 0] = rows / 100.0  # timestamp, s
    segment = np.where(rows < 420, 0, 1 + (rows - 420) // PAMAP2_SEGMENT_ROWS)
    values[:, 1] = np.array(PAMAP_IDS)[(subject + 5 * segment) % 13]  # integers, as real files
    values[:, 2] = np.where(rows % 10 == 0, 100.0, np.nan)  # heart rate: ~9 Hz
    values[:, 4] = rows * 0.01  # hand acc 16g x: a ramp
    dropout = (rows < 5) | ((rows % 10_000 >= 500) & (rows % 10_000 < 520))
    values[dropout, 3:20] = np.nan  # hand IMU: 0.05 s at the start, 0.2 s every 100 s
    return values


PAMAP2_DECIMALS = [2, 0, 0] + [4] * 51  # timestamp, activityID, heart rate, IMU columns


def write_pamap2(
    root: Path, subjects=range(1, 10), rows_per_subject: int = 1000, full: bool = False
) -> Path:
    """PAMAP2_Dataset/Protocol/subject10N.dat for ``subjects``: 54 space-separated columns,
    ``NaN`` for missing values, ``rows_per_subject`` rows at 100 Hz each.

    ``full=True`` (or ``rows_per_subject=PAMAP2_FULL_ROWS``) gives the full size: 9 x 380,000
    rows, about 1.35 GB. The text is formatted by :func:`format_rows` in chunks of 50,000 rows.
    """
    rows_per_subject = PAMAP2_FULL_ROWS if full else rows_per_subject
    folder = root / "PAMAP2_Dataset" / "Protocol"
    folder.mkdir(parents=True)
    for s in subjects:
        with (folder / f"subject{100 + s}.dat").open("wb") as f:
            for start in range(0, rows_per_subject, PAMAP2_CHUNK_ROWS):
                stop = min(start + PAMAP2_CHUNK_ROWS, rows_per_subject)
                f.write(format_rows(pamap2_values(s, start, stop), PAMAP2_DECIMALS))
    return folder


INT_DIGITS = 5  # format_rows writes |values| < 100,000
MAX_DECIMALS = 4


def format_rows(values: np.ndarray, decimals: list[int]) -> bytes:
    """Lines of ``values`` (R, C): fixed-point numbers with ``decimals`` (C,) digits (0..4) after
    the point (none: an integer), one space between, ``NaN`` for NaN, "\\n" after each row.

    What ``np.savetxt`` or ``DataFrame.to_csv`` write, without their Python call per number:
    every field is built right-aligned in a fixed width of W characters, one character
    position at a time over all fields (planes of (R, C) uint8), and the padding (0 bytes) is
    dropped at the end. About 5x faster than ``to_csv``.
    """
    width = 1 + INT_DIGITS + 1 + MAX_DECIMALS + 1  # sign, digits, point, decimals, separator
    # Each value rounded to its column's decimals, as an integer count of 1e-4 (< 1e9: int32).
    scale = 10 ** np.asarray(decimals, np.int64)  # (C,)
    q = np.rint(np.abs(np.nan_to_num(values)) * scale) * (10**MAX_DECIMALS // scale)
    if q.max(initial=0) >= 10 ** (INT_DIGITS + MAX_DECIMALS):
        raise ValueError(f"format_rows writes |values| < 1e{INT_DIGITS}")
    q = q.astype(np.int32)
    out = np.empty((width, *values.shape), np.uint8)  # out[k]: character k of every field
    out[0] = 0
    out[-1] = ord(" ")
    out[-1, :, -1] = ord("\n")
    _write_digits(out, q)
    # A sign before the first digit of negative numbers (not of those that round to 0).
    digits = 1 + sum((q >= 10 ** (MAX_DECIMALS + k)).astype(np.int8) for k in range(1, INT_DIGITS))
    r, c = np.nonzero((values < 0) & (q > 0))
    out[width - 3 - MAX_DECIMALS - digits[r, c], r, c] = ord("-")
    for column, d in enumerate(decimals):  # fewer decimals: drop the last digits (and point)
        if d < MAX_DECIMALS:
            out[width - 1 - (MAX_DECIMALS - d) - (d == 0) : width - 1, :, column] = 0
    r, c = np.nonzero(np.isnan(values))
    out[:-1, r, c] = 0
    out[width - 4 : width - 1, r, c] = np.frombuffer(b"NaN", np.uint8)[:, None]
    flat = np.ascontiguousarray(out.transpose(1, 2, 0)).reshape(-1)  # row by row, field by field
    return flat[flat != 0].tobytes()


def _write_digits(out: np.ndarray, q: np.ndarray) -> None:
    """Decimal digits of ``q`` (R, C), fixed point with MAX_DECIMALS, into planes 1..W-2 of
    ``out``; leading zeros of the integer part become padding (0), but one digit stays."""
    width = out.shape[0]
    rest = q
    for k in range(MAX_DECIMALS):
        rest, digit = np.divmod(rest, 10)
        out[width - 2 - k] = ord("0") + digit
    out[width - 2 - MAX_DECIMALS] = ord(".")
    for k in range(INT_DIGITS):
        rest, digit = np.divmod(rest, 10)
        shown = (q >= 10 ** (MAX_DECIMALS + k)) | (k == 0)
        out[width - 3 - MAX_DECIMALS - k] = np.where(shown, ord("0") + digit, 0)


# --- ImageFolder and tables ---


def write_imagefolder(root: Path, classes=("cat", "dog", "frog"), per_class: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            (image.convert("L") if i == 0 else image).save(root / c / f"{i:03d}.png")
    return root


def table_frame(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(5.0, 3.0, (rows, 4)), columns=["f0", "f1", "f2", "f3"])
    frame["label"] = np.array(["b", "a", "c"])[np.arange(rows) % 3]
    frame["id"] = rng.permutation(rows) + 1000
    return frame
