"""``make bench``: every benchmark in turn, one table, and ``benchmarks/results.md``.

Each benchmark runs in its own process (so one's memory and threads do not colour the next) and
measures its figures side by side within that run; this script only gathers them. Every figure
that misses its target is marked MISS in the table and in the file. Run it on a quiet machine:
anything else running (tests, helpers, a browser) shows up in the figures.

    python benchmarks/run_all.py [--only NAME ...] [--readme docs/benchmarks.md]

``--readme`` (docs/benchmarks.md) also replaces the table between the ``<!-- bench:start -->`` and
``<!-- bench:end -->`` markers of that file with the one printed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import Figure, read_figures

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# name -> (script, arguments); in the order they run. Each prints its own lines as it goes.
BENCHMARKS = {
    "loss": ("loss_overhead.py", ["--runs", "3"]),
    "train_loop": ("train_loop.py", []),
    "latent_tap": ("latent_tap.py", []),
    "flow": ("flow_overhead.py", []),
    "launch": ("launch.py", []),
    "gate_page": ("gate_app.py", []),
    "gate_service": ("gate_service_scale.py", []),
    "gate_service_load": ("gate_service_load.py", []),
    "snapshot_memory": ("snapshot_memory.py", []),
    "data_load": ("data_load.py", []),
    "cuda": ("cuda_preset.py", []),
}


def run(name: str, folder: Path) -> tuple[list[Figure], float]:
    """Run one benchmark; its figures (one MISS figure if it failed) and its seconds."""
    script, extra = BENCHMARKS[name]
    out = folder / f"{name}.json"
    print(f"== {name}: {script} {' '.join(extra)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(HERE / script), *extra, "--json", str(out)])
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not out.is_file():
        failed = Figure(f"{name} benchmark", float("nan"), "", "<=", 0.0,
                        f"{script} exited {done.returncode}")  # fmt: skip
        return [failed], seconds
    return read_figures(out), seconds


def machine() -> str:
    """One line: CPU, cores, memory, accelerator, torch."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GiB; {gpu}; "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    sha = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return sha + (" (with uncommitted changes)" if git("status", "--porcelain", "-uno") else "")


def table(figures: list[Figure]) -> str:
    """A Markdown table: figure, value, target, verdict, how."""
    rows = ["| Figure | Measured | Target | | How |", "|---|---|---|---|---|"]
    for f in figures:
        target = f"{f.op} {f.target:g} {f.unit}" if f.op else "reported"
        value = "not measured" if f.value != f.value else f"{f.value:.3g} {f.unit}"
        verdict = {"ok": "ok", "MISS": "**MISS**"}.get(f.verdict, "")
        rows.append(f"| {f.name} | {value} | {target} | {verdict} | {f.detail} |")
    return "\n".join(rows)


def results_file(figures: list[Figure], seconds: dict[str, float]) -> str:
    today = datetime.date.today().isoformat()
    misses = sum(f.verdict == "MISS" for f in figures)
    took = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    return (
        f"# Benchmark results\n\nWritten by `make bench` on {today} at commit {commit()}.\n\n"
        f"- Machine: {machine()}\n- Time: {sum(seconds.values()) / 60:.1f} min ({took})\n"
        f"- Misses: {misses} of {sum(bool(f.op) for f in figures)} figures with a target\n\n"
        f"{table(figures)}\n"
    )


def replace_readme_table(readme: Path, text: str) -> None:
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    body = readme.read_text()
    if start not in body or end not in body:
        raise SystemExit(f"{readme}: no {start} ... {end} markers to put the table between")
    head, rest = body.split(start, 1)
    readme.write_text(f"{head}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--readme", type=Path, default=None)
    args = parser.parse_args()
    figures, seconds = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or BENCHMARKS:
            found, seconds[name] = run(name, Path(tmp))
            figures += found
    print("\n" + table(figures))
    args.out.write_text(results_file(figures, seconds))
    print(f"\nwritten: {args.out} ({sum(seconds.values()) / 60:.1f} min)")
    if args.readme is not None:
        replace_readme_table(args.readme, table(figures))


if __name__ == "__main__":
    main()
