"""Load time of full-size data in the real on-disk formats: PAMAP2 (text, then cached) and CIFAR-10.

Writes full-size synthetic files with tests/data_writers.py (PAMAP2: nine subjects of
380,000 rows of ``.dat`` text, about 1.35 GB; CIFAR-10: five training batches of 10,000 images
and a test batch, pickled as the originals), then times ``load_data`` in fresh processes, so
that no bundle is shared in memory:

- PAMAP2, first load: parses the text and writes the cache beside it (once, the cache removed
  before);
- PAMAP2, cached: maps the cache (median of 3 processes), with the peak RSS of such a process;
- CIFAR-10 (median of 3 processes).

Each figure is the ``load_data`` call alone: imports (torch, pandas, the loader module) happen
before the clock starts and are given in the detail. The files were just written, so the text
is read from the page cache, not the disk: a cold first load is slower by the disk's time to
read 1.35 GB.

    .venv/bin/python benchmarks/data_load.py [--keep DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the data writers

from report import Figure, add_json_argument, emit  # noqa: E402

REPEATS = 3  # processes per cached figure; the first load runs once (it writes the cache)


def write_data(root: Path) -> dict[str, float]:
    """Full-size PAMAP2 and CIFAR-10 under ``root``, unless a finished copy is there; seconds
    taken per data set (absent when reused)."""
    from data_writers import CIFAR_FULL_PER_BATCH, write_cifar, write_pamap2

    taken = {}
    for name, write in (
        ("pamap2", lambda folder: write_pamap2(folder, full=True)),
        ("cifar10", lambda folder: write_cifar(folder, per_batch=CIFAR_FULL_PER_BATCH)),
    ):
        folder, done = root / name, root / name / ".complete"
        if done.is_file():
            continue
        shutil.rmtree(folder, ignore_errors=True)  # a copy left half-written
        folder.mkdir(parents=True)
        start = time.perf_counter()
        write(folder)
        taken[name] = time.perf_counter() - start
        done.touch()
    return taken


def child(name: str, root: str) -> None:
    """In a fresh process: time one ``load_data`` and print a JSON line of what was measured."""
    start = time.perf_counter()
    import importlib

    from hill_core.config import DataConfig
    from hill_core.data import load_data

    importlib.import_module(f"hill_core.data.{name}")  # the loader's own imports, not timed
    imported_s, before_mb = time.perf_counter() - start, rss_mb()
    start = time.perf_counter()
    bundle = load_data(DataConfig(name=name, root=root), seed=0)
    load_s = time.perf_counter() - start
    import torch

    rows = torch.randint(0, len(bundle.train), (512,))
    start = time.perf_counter()
    bundle.train.raw_batch(rows)
    batch_ms = (time.perf_counter() - start) * 1e3
    out = {"load_s": load_s, "imported_s": imported_s, "before_mb": before_mb}
    out |= {"peak_mb": peak_rss_mb(), "batch_ms": batch_ms, "items": len(bundle.train)}
    print(json.dumps(out))


def rss_mb() -> float:
    """Resident set size of this process now, MB (Linux)."""
    import os

    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    """Peak resident set size of this process, MB (ru_maxrss is in KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def run_child(name: str, root: Path) -> dict:
    """``child`` in a fresh interpreter."""
    command = [sys.executable, __file__, "--child", name, str(root)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} load failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(root: Path) -> list[Figure]:
    written = write_data(root)
    for name, seconds in written.items():
        print(f"wrote full-size {name} in {seconds:.1f} s ({size_mb(root / name):.0f} MB)")
    pamap2, cifar10 = root / "pamap2", root / "cifar10"
    cache = pamap2 / "PAMAP2_Dataset" / "Protocol" / ".hill-cache"
    shutil.rmtree(cache, ignore_errors=True)  # a first load, also with --keep
    first = run_child("pamap2", pamap2)
    cached = [run_child("pamap2", pamap2) for _ in range(REPEATS)]
    cifar = [run_child("cifar10", cifar10) for _ in range(REPEATS)]
    text_mb, cache_mb = size_mb(pamap2, "*.dat"), size_mb(cache)

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def spread(runs: list[dict]) -> str:
        return f"{min(r['load_s'] for r in runs):.2f}..{max(r['load_s'] for r in runs):.2f} s"

    peak = max(r["peak_mb"] for r in cached)
    return [
        Figure(
            "pamap2 full-size load, first (parses text)",
            first["load_s"],
            "s",
            detail=f"{text_mb:.0f} MB of text, writes a {cache_mb:.0f} MB cache; one process; "
            f"{first['items']} train windows; imports {first['imported_s']:.1f} s before",
        ),
        Figure(
            "pamap2 full-size load, cached",
            median(cached, "load_s"),
            "s",
            detail=f"median of {REPEATS} processes ({spread(cached)}); one batch of 512 "
            f"windows {median(cached, 'batch_ms'):.1f} ms",
        ),
        Figure(
            "pamap2 full-size load, cached: peak RSS",
            peak,
            "MB",
            detail=f"whole process; {median(cached, 'before_mb'):.0f} MB after imports, before "
            f"the load; first load peaked at {first['peak_mb']:.0f} MB",
        ),
        Figure(
            "cifar10 full-size load",
            median(cifar, "load_s"),
            "s",
            detail=f"50,000 + 10,000 images; median of {REPEATS} processes ({spread(cifar)}); "
            f"peak RSS {max(r['peak_mb'] for r in cifar):.0f} MB",
        ),
    ]


def size_mb(folder: Path, pattern: str = "*") -> float:
    return sum(p.stat().st_size for p in folder.rglob(pattern) if p.is_file()) / 1e6


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="write (or reuse) the data here")
    add_json_argument(parser)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="hill-data-load-"))
    try:
        figures = measure(root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    emit(figures, args.json)


if __name__ == "__main__":
    main()
