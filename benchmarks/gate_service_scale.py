"""The gate service with many waiting gates: start-up, idle cost, first page, memory.

    .venv/bin/python benchmarks/gate_service_scale.py [--gates 100] [--points 2000] [--cycles 80]

Writes ``--gates`` tickets of ``--points``-point snapshots (as suspended runs leave them), starts
the service in this process on loopback (as ``hill gates serve`` configures it), and measures:

- seconds from start until ``/api/gates`` lists every gate;
- idle CPU, in % of one core, over 10 s with every gate waiting and nobody looking;
- a page's first request (its state is built then: snapshot, recorder) and a later one,
  median over 10 gates;
- RSS growth after ``--cycles`` gates were, one after the other, opened, decided through the
  JSON API and freed (the service scans every 0.5 s here, so a cycle takes about a second).

No Prefect: the resume is a no-op. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' writers

from report import Figure, add_json_argument, emit  # noqa: E402
from test_gate_service import running_service, write_gate  # noqa: E402

IDLE_S = 10.0


def rss_mib() -> float:
    """This process's resident set now, MiB (Linux: /proc/self/statm, pages)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=100)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--cycles", type=int, default=80)
    add_json_argument(parser)
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="hill-gates-")) / "runs"
    tokens = {}
    for k in range(args.gates):
        ticket, token = write_gate(run_dir, run=f"r{k:03d}", n=args.points)
        tokens[ticket.page_path()] = token
    start = time.perf_counter()
    with (
        running_service(
            run_dir, refresh_s=3.0, close_after_s=0.5, resume=lambda t, d: None
        ) as base,
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        while len(client.get("/api/gates").json()) < args.gates:
            time.sleep(0.05)
        listed_s = time.perf_counter() - start
        cpu0, wall0 = cpu_s(), time.perf_counter()
        time.sleep(IDLE_S)  # what the service costs while nobody looks
        idle = 100 * (cpu_s() - cpu0) / (time.perf_counter() - wall0)
        first, again = [], []
        for path, token in list(tokens.items())[:10]:
            t0 = time.perf_counter()
            assert client.get(f"{path}/", params={"token": token}).status_code == 200
            first.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.get(f"{path}/", params={"token": token})
            again.append(time.perf_counter() - t0)
        before = rss_mib()
        for path, token in list(tokens.items())[10 : 10 + args.cycles]:
            client.get(f"{path}/", params={"token": token})
            body = {"decision": "approve", "rows": []}
            decided = client.post(f"{path}/api/decision", params={"token": token}, json=body)
            assert decided.status_code == 200, decided.text
            while client.get(f"{path}/", params={"token": token}).status_code != 410:
                time.sleep(0.1)  # decided, then freed at the scan after close_after_s
        growth = rss_mib() - before
    n = f"{args.gates} gates of {args.points} points"
    emit(
        [
            Figure(f"all gates listed after start, {n}", listed_s, "s", "<=", 10.0),
            Figure(f"idle CPU, {n}", idle, "% core", "<=", 5.0, f"over {IDLE_S:.0f} s"),
            Figure(
                "a page's first request (builds it)",
                1000 * statistics.median(first),
                "ms",
                "",
                None,
                "median of 10",
            ),  # fmt: skip
            Figure(
                "a page's later request",
                1000 * statistics.median(again),
                "ms",
                "<=",
                250.0,
                "median of 10",
            ),  # fmt: skip
            Figure(
                f"RSS growth after {args.cycles} gates opened, decided and freed",
                growth,
                "MiB",
                "<=",
                50.0,
            ),  # fmt: skip
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
