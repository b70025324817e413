"""Peak memory of taking a gate snapshot of 50,000 items, above the loaded data and model.

    .venv/bin/python benchmarks/snapshot_memory.py [--items 50000] [--data digits|cifar]
        [--json out.json]

``digits`` (the default) takes ~30 s here; ``cifar`` runs 50,000 images through the CIFAR CPU
net, ~1.5 to 3 minutes on this 2-core machine.

A fresh child process builds a training set of ``--items`` synthetic items held in memory as
hill's loaders hold them (``tensor_dataset`` + ``in_memory_bundle``): ``cifar`` is
CIFAR-10-shaped, uint8 (3, 32, 32) images normalised per batch, with the CIFAR-10 CPU model
(cifar_small_cnn, d = 64 by default) and WebP previews; ``digits`` is digits-shaped, float
(1, 8, 8), with digits_cnn (d = 64) and PNG previews. The pixels are smooth (upsampled 4x4
noise), so previews compress about as real images do. It builds the model, fits the
projection, collects garbage and trims the heap (glibc ``malloc_trim``): its anonymous resident
memory (RssAnon) then is the baseline, the loaded data and model. Then ``take_snapshot(state)`` runs
(hill.snapshot_size = items).

This process reads the child's RssAnon from /proc about every millisecond (from outside, so the
child's GIL cannot delay a reading) and reports the highest reading during the snapshot minus
the baseline. RssAnon rather than RSS: on a machine short of memory the kernel drops shared
library pages from RSS at will, which would hide allocations. The child's own VmHWM (peak
RSS, reset at the baseline through /proc/self/clear_refs) is given as a cross-check.
MB are 10^6 bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # report.py, when imported

from report import Figure, add_json_argument, emit  # noqa: E402

from hill_core.config import Config  # noqa: E402
from hill_core.data.base import DataBundle, in_memory_bundle, tensor_dataset  # noqa: E402
from hill_core.evaluate import latents_of  # noqa: E402
from hill_core.models import AUTO_PRESET  # noqa: E402
from hill_core.projection import fit_projection  # noqa: E402
from hill_core.snapshot import take_snapshot  # noqa: E402
from hill_core.train import init_state  # noqa: E402

MB = 1e6
NUM_CLASSES = 10
HELD_OUT = 1_000  # items in each of val and test (not part of the snapshot)
SHAPES = {"cifar": ("cifar10", (3, 32, 32)), "digits": ("digits", (1, 8, 8))}


def status_bytes(field: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` field (RssAnon, VmRSS, VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def settle() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc ``malloc_trim``), so resident
    memory counts live memory: building the data leaves freed heap behind that a snapshot
    would otherwise reuse unseen."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: freed heap may then stay counted
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where it cannot be written."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def smooth_images(n: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """(n, *shape) images in [0, 1]: 4x4 noise upsampled bilinearly, plus a little grain."""
    g = torch.Generator().manual_seed(seed)
    channels, size = shape[0], shape[-1]
    low = torch.rand(n, channels, 4, 4, generator=g)
    images = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (images + 0.03 * torch.randn(images.shape, generator=g)).clamp(0, 1)


def synthetic_bundle(kind: str, items: int, seed: int = 0) -> DataBundle:
    """``items`` training items (plus val and test) of ``kind``, held as hill's loaders hold
    them: CIFAR-shaped as uint8 normalised per batch, digits-shaped as float32."""
    name, shape = SHAPES[kind]
    total = items + 2 * HELD_OUT
    chunks = [smooth_images(min(8192, total - s), shape, seed + s) for s in range(0, total, 8192)]
    if kind == "cifar":
        x = torch.cat([(c * 255).round().to(torch.uint8) for c in chunks])  # (N, 3, 32, 32)
        transform = normalise_uint8
    else:
        x, transform = torch.cat(chunks), None  # digits are floats in [0, 1], used as they are
    labels = np.random.default_rng(seed).integers(0, NUM_CLASSES, total)
    full = tensor_dataset(x, labels, np.arange(total))
    rows = np.arange(total)
    splits = (rows[:items], rows[items : items + HELD_OUT], rows[items + HELD_OUT :])
    names = [f"class {c}" for c in range(NUM_CLASSES)]
    return in_memory_bundle(name, full, splits, names, shape, transform=transform)


def normalise_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (..., 3, H, W) -> floats about 0, for an item or a batch alike."""
    return (x.to(torch.float32) / 255.0 - 0.5) / 0.25


def loaded_state(kind: str, items: int):
    """A state ready for a gate: data in memory, model built, projection fitted on 1,000 items."""
    data = synthetic_bundle(kind, items)
    cfg = Config().replace(
        **{"data.name": SHAPES[kind][0], "base.device": "cpu", "hill.snapshot_size": items}
    )
    state = init_state(cfg, data)
    fit_rows = np.arange(0, items, max(1, items // 1000))
    fit = data.train_eval.subset(fit_rows, data.train_eval.transform)
    z, _ = latents_of(state.model, fit, state.device)
    state.projection = fit_projection(z.numpy(), fit.labels)
    return state


def child(kind: str, items: int) -> None:
    """Load, then snapshot; print one JSON line per phase, with times on the monotonic clock
    (one clock for every process on Linux), for the sampling parent."""
    state = loaded_state(kind, items)
    settle()
    say(phase="loaded", anon=status_bytes("RssAnon"), rss=status_bytes("VmRSS"))
    hwm = reset_peak()
    t0 = time.monotonic()
    snapshot = take_snapshot(state)
    t1 = time.monotonic()
    peak_rss = status_bytes("VmHWM") if hwm else float("nan")
    rows, table = len(snapshot), float(snapshot.memory_usage(deep=True).sum())
    del snapshot
    settle()
    model = f"{AUTO_PRESET[SHAPES[kind][0]]} (d = {state.model.latent_dim})"
    say(phase="done", start=t0, end=t1, peak_rss=peak_rss, rows=rows, table=table,
        anon=status_bytes("RssAnon"), model=model)  # fmt: skip


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def sample_child(kind: str, items: int) -> tuple[list[tuple[float, int]], dict, dict]:
    """Run :func:`child`, reading its RssAnon every millisecond; the readings (t, bytes) and
    its two phase lines."""
    command = [sys.executable, __file__, "--child", "--data", kind, "--items", str(items)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(phase_lines(proc.stdout)))
    reader.start()
    samples = []
    while proc.poll() is None:
        with contextlib.suppress(OSError, RuntimeError):  # the child may exit mid-read
            samples.append((time.monotonic(), status_bytes("RssAnon", proc.pid)))
        time.sleep(0.001)
    reader.join()
    if proc.returncode != 0 or len(lines) != 2:
        raise RuntimeError(f"the snapshot child failed (exit {proc.returncode})")
    return samples, lines[0], lines[1]


def phase_lines(stream) -> list[dict]:
    """The child's JSON lines (whatever else a library prints is skipped)."""
    return [json.loads(line) for line in stream if line.startswith("{")]


def measure(kind: str, items: int) -> list[Figure]:
    """The peak above the loaded state while taking the snapshot, and what it left behind."""
    samples, loaded, done = sample_child(kind, items)
    during = [b for t, b in samples if done["start"] <= t <= done["end"]]
    hwm = (done["peak_rss"] - loaded["rss"]) / MB
    name = f"snapshot of {items:,} items"
    return [
        Figure(
            f"{name}, peak memory above loaded data",
            (max(during, default=float("nan")) - loaded["anon"]) / MB,
            "MB",
            "<=",
            100.0,
            f"{kind}-shaped, {done['model']}; peak RssAnon of {len(during)} readings, 1 ms "
            f"apart, minus {loaded['anon'] / MB:.0f} MB loaded (data, model, projection); "
            f"VmHWM cross-check {hwm:.0f} MB; {done['rows']} rows in "
            f"{done['end'] - done['start']:.1f} s",
        ),
        Figure(
            f"{name}, memory kept after",
            (done["anon"] - loaded["anon"]) / MB,
            "MB",
            detail=f"RssAnon after dropping the table, gc and trim, minus loaded; the table "
            f"itself {done['table'] / MB:.1f} MB (deep)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--data", choices=sorted(SHAPES), default="digits")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args()
    if args.child:
        child(args.data, args.items)
    else:
        emit(measure(args.data, args.items), args.json)


if __name__ == "__main__":
    main()
