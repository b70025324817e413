"""The gate service under load: 100 gates, 50 editors at once, real Prefect flow runs to resume.

    .venv/bin/python benchmarks/gate_service_load.py [--gates 100] [--points 2000] [--editors 50]
        [--stress]

Starts a Prefect test server, suspends one real flow run per gate on it (as a deployment's run
suspends at its gate: Suspended, waiting for ``GateDecisionInput``), writes each gate's ticket
and ``--points``-point snapshot, starts the service in this process on loopback, and lets
``--editors`` threads use the pages as a browser's tab does, each with its own connection:
the page, its script and opening (its points), the snapshot API, the live readout per drag,
the status poll, an item preview, a reload, then the decision through the JSON API: what a
browser's trace of a tab shows (Gradio's ``/config`` is not among them: the page carries its
config), less its heartbeat stream. Editors
work in pairs on the same gate and send their decisions at the same moment: one wins (200),
the other must get 409. Editors keep a person's pace (``PERSON``: arriving over 5 s, a 1 s
look before dragging, readouts 80 ms apart, as the page sends them); ``--stress`` drops every
pause. The service runs in its own process, so its CPU use (one core at most: one event loop)
is a figure too, and so is the editors' own (one process: its threads queue for one
interpreter lock, and that wait is in every latency they measure).

Prints the p95 latency of each request kind (target 250 ms), how long until every gate was
listed, and the decisions and resumes counted. Start-up, idle CPU and the RSS growth after 80
gates opened and freed are ``benchmarks/gate_service_scale.py``'s figures. The test
``tests/test_gate_service_load.py`` runs the same driver and asserts only correctness.
Run it on a quiet machine: the service, the editors and Prefect share this machine's cores.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' writers

from flow_helpers import prefect_test_server  # noqa: E402
from report import Figure, add_json_argument, emit  # noqa: E402
from test_gate_service import running_service, write_gate  # noqa: E402

# The page's request kinds, in the order an editor makes them (first_page builds the gate's
# state; script is the page's script, opening its fetch of the points, side panel and title).
KINDS = (
    "first_page", "page", "script", "opening", "snapshot", "readout", "status", "item", "decision"
)  # fmt: skip
DRAGS = 5  # readout calls per editor per gate: the page sends one per drag
HOST = "127.0.0.1"
P95_TARGET_MS = 250.0
DECISIONS = ("approve", "skip")  # the two editors of a pair ask for different ones
SUSPEND_S = 3600  # the flow runs' suspend timeout: longer than any run of this driver


@dataclass(frozen=True)
class Pace:
    """How fast an editor works, seconds. ``STRESS`` sends each request as soon as the last
    answered; ``PERSON`` paces them as a person and the page's script do: a look at the plot
    before the first drag, readouts at most every 80 ms (gate_ui.js READOUT_MS), and editors
    arriving over the first seconds rather than in the same millisecond."""

    arrive_s: float = 0.0  # editor k starts k / editors of this late
    look_s: float = 0.0  # from the page shown to the first drag
    readout_s: float = 0.0  # between readouts of a drag


STRESS = Pace()
PERSON = Pace(arrive_s=5.0, look_s=1.0, readout_s=0.08)


@dataclass(frozen=True)
class LoadGate:
    """A gate under load: its page path, token, ticket and flow run."""

    path: str
    token: str
    ticket: object  # pipelines.gate_service.ticket.GateTicket


@dataclass
class LoadResult:
    """What the editors saw: latencies (s) per request kind, and each decision's answer."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    answers: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)  # unexpected answers, one line each
    lock: threading.Lock = field(default_factory=threading.Lock)
    driver_busy: float = float("nan")  # the editors' process's CPU while they worked, % of a core

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)

    def p95_ms(self, kind: str) -> float:
        times = sorted(self.latencies.get(kind, []))
        if not times:
            return float("nan")
        return 1000 * times[min(len(times) - 1, int(0.95 * len(times)))]


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[None]:
    """A Prefect test server (its SQLite under ``home``) for this thread's context."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["PREFECT_HOME"] = str(home)
    with prefect_test_server():
        yield


def suspended_flow_runs(names: list[str]) -> dict[str, str]:
    """One real flow run per name, suspended as a deployment's run suspends at its gate.

    What ``suspend_flow_run(wait_for_input=GateDecisionInput)`` does from inside a run, done
    from outside it: a Suspended state with the input's keyset, proposed while Running, and the
    input's schema saved under that keyset (the resume validates ``run_input`` against it).
    Suspending needs a deployment, so the runs are made from one (no worker ever picks them).
    """
    from prefect import get_client
    from prefect.input.run_input import keyset_from_paused_state
    from prefect.states import Running, Suspended

    from pipelines.gate import GateDecisionInput

    ids = {}
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("hill-load-gate")
        deployment_id = client.create_deployment(flow_id, "load")
        for name in names:
            run = client.create_flow_run_from_deployment(deployment_id, name=name)
            client.set_flow_run_state(run.id, Running(), force=True)
            state = Suspended(timeout_seconds=SUSPEND_S, pause_key=f"gate-{name}")
            state.state_details.run_input_keyset = keyset_from_paused_state(state)
            answer = client.set_flow_run_state(run.id, state)
            assert answer.state.is_paused(), f"flow run {run.id} not suspended: {answer}"
            GateDecisionInput.save(state.state_details.run_input_keyset, flow_run_id=run.id)
            ids[name] = str(run.id)
    return ids


def write_gates(run_dir: Path, flow_run_ids: dict[str, str], points: int) -> list[LoadGate]:
    """A ticket and snapshot per flow run (the run's name is the hill run's)."""
    gates = []
    for name, flow_run_id in flow_run_ids.items():
        ticket, token = write_gate(run_dir, run=name, n=points, flow_run_id=flow_run_id)
        gates.append(LoadGate(ticket.page_path(), token, ticket))
    return gates


def wait_all_listed(base: str, count: int, timeout_s: float = 120.0) -> float:
    """Seconds until ``/api/gates`` lists ``count`` gates (polled; raises after ``timeout_s``)."""
    start = time.perf_counter()
    with httpx.Client(base_url=base, timeout=timeout_s) as client:
        while len(client.get("/api/gates").json()) < count:
            if time.perf_counter() - start > timeout_s:
                raise AssertionError(f"not all {count} gates listed within {timeout_s:.0f} s")
            time.sleep(0.05)
    return time.perf_counter() - start


def run_editors(base: str, gates: list[LoadGate], editors: int, pace: Pace = STRESS) -> LoadResult:
    """``editors`` threads, in pairs; pair ``i`` edits gates ``i, i + pairs, ...`` together and
    sends its two decisions at the same moment (a barrier), so every gate's decision is raced."""
    pairs = max(1, editors // 2)
    result = LoadResult()
    barriers = {g.path: threading.Barrier(2, timeout=120) for g in gates}

    def editor(k: int) -> None:
        mine = gates[k // 2 :: pairs]
        time.sleep(pace.arrive_s * (k // 2) / pairs)  # a pair arrives together
        with httpx.Client(base_url=base, timeout=120) as client:
            for n, gate in enumerate(mine):
                try:
                    visit = (DECISIONS[k % 2], barriers[gate.path], result, pace, k, n)
                    edit_gate(client, gate, *visit)
                except Exception as err:  # noqa: BLE001 - counted; the test fails on any
                    barriers[gate.path].abort()  # the partner stops waiting too
                    with result.lock:
                        result.errors.append(f"editor {k} at {gate.path}: {type(err).__name__}: "
                                             f"{str(err)[:200]}")  # fmt: skip

    with ThreadPoolExecutor(max_workers=2 * pairs) as pool:
        list(pool.map(editor, range(2 * pairs)))
    return result


def edit_gate(client, gate: LoadGate, decision, barrier, result: LoadResult, pace, k, n) -> None:
    """One editor's visit of one gate, timed per request kind."""
    session = f"load{k:02d}x{n:02d}"  # the tab's id in its status polls
    page = f"{gate.path}/"
    timed(result, "first_page", lambda: client.get(page, params={"token": gate.token}))
    timed(result, "script", lambda: client.get(f"{gate.path}/api/page/script"))  # first visit
    page_call(client, gate, result, "opening", None)  # the page's points
    snapshot = timed(result, "snapshot", lambda: client.get(f"{gate.path}/api/snapshot")).json()
    ids, xs, ys = snapshot["sample_id"], snapshot["x"], snapshot["y"]
    moved = []
    time.sleep(pace.look_s)
    for drag in range(DRAGS):  # a drag moves one more point; the page sends the whole state
        if drag:
            time.sleep(pace.readout_s)  # the page's spacing of readouts within a drag
        moved.append([ids[drag], xs[drag] + 0.5, ys[drag] - 0.5])
        page_call(client, gate, result, "readout", {"moved": moved})
    page_call(client, gate, result, "status", {"page": session})
    page_call(client, gate, result, "item", ids[DRAGS])
    timed(result, "page", lambda: client.get(page))  # a reload: the cookie is the token now
    rows = [{"sample_id": s, "x": x, "y": y, "moved": True} for s, x, y in moved]
    barrier.wait()  # both editors of the pair decide at the same moment
    answer = timed(result, "decision", lambda: client.post(
        f"{gate.path}/api/decision", json={"decision": decision, "rows": rows}))  # fmt: skip
    body = answer.json()
    won = body.get("decision") if answer.status_code == 200 else body.get("error", "")
    with result.lock:
        result.answers[gate.path].append((answer.status_code, won))


def page_call(client, gate: LoadGate, result, name, data):
    """One of the page script's calls (opening, readout, status, item), as the script makes it."""
    return timed(result, name, lambda: client.post(f"{gate.path}/api/page/{name}", json=data))


def timed(result: LoadResult, kind: str, request) -> httpx.Response:
    """Make ``request``, record its latency under ``kind``; a refusal other than the decision's
    409 is an error (raised, so the editor's visit stops there)."""
    start = time.perf_counter()
    response = request()
    result.add(kind, time.perf_counter() - start)
    if response.status_code != 200 and not (kind == "decision" and response.status_code == 409):
        raise AssertionError(f"{kind}: {response.status_code} {response.text[:160]}")
    return response


def resumes(flow_run_id: str) -> tuple[int, dict | None]:
    """How many times the flow run was resumed (its "Resuming" states), and its run input."""

    from prefect import get_client
    from prefect.input.run_input import keyset_from_paused_state

    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(flow_run_id)
        resumed = sum(s.name == "Resuming" for s in states)
        paused = next(s for s in states if s.is_paused())
        key = keyset_from_paused_state(paused)["response"]
        try:
            value = client.read_flow_run_input(flow_run_id, key)
        except Exception:  # noqa: BLE001 - not there: never resumed with input
            return resumed, None
    return resumed, json.loads(value)


def wait_resumed(gates: list[LoadGate], timeout_s: float) -> dict[str, tuple[int, dict | None]]:
    """Each gate's flow run's resumes and run input, once every run was resumed at least once
    (or ``timeout_s`` passed: the caller finds which were not). The service resumes in its own
    threads, and retries a resume Prefect refused with a 5xx at its next scan."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = {g.path: resumes(g.ticket.flow_run_id) for g in gates}
        if all(count for count, _ in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)  # a poll of 100 flow runs' states: not faster than Prefect answers


# A decided page stays up a minute, so the pair's loser gets 409 (decided), not 410 (closed).
SERVICE = {"refresh_s": 3.0, "close_after_s": 60.0}


def cpu_s(pid: int) -> float:
    """A process's CPU seconds so far, user and system (Linux: /proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def service_process(run_dir: Path, busy: list | None = None) -> Iterator[str]:
    """The service in its own process (this script's ``--serve``), so the editors' threads do
    not share its interpreter lock; it resumes through the Prefect server of this context.

    ``busy``: gets the service's CPU use while it served (after start-up), % of one core."""
    import subprocess

    from prefect.settings import PREFECT_API_URL

    from interaction_app.gate_checks import free_port

    port = free_port(HOST)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    command = [sys.executable, __file__, "--serve", str(run_dir), "--port", str(port)]
    process = subprocess.Popen(command, env=env)
    base = f"http://{HOST}:{port}"
    try:
        wait_healthy(base, process)
        cpu0, wall0 = cpu_s(process.pid), time.perf_counter()
        yield base
        if busy is not None:
            busy.append(100 * (cpu_s(process.pid) - cpu0) / (time.perf_counter() - wall0))
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_healthy(base: str, process, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, f"service exited {process.returncode}"
        assert time.monotonic() < deadline, "service did not start"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        time.sleep(0.05)


def serve(run_dir: Path, port: int) -> None:
    """``--serve``: the service as ``running_service`` configures it, until terminated."""
    import uvicorn

    from hill_core.config import GateConfig
    from pipelines.gate_service.service import create_app, uvicorn_config

    app = create_app(run_dir, **SERVICE)
    config = uvicorn_config(app, GateConfig(), host=HOST, port=port, log_config=None)
    uvicorn.Server(config).run()


def run_load(
    run_dir: Path,
    gates_n: int,
    points: int,
    editors: int,
    resume_s: float = 120.0,
    pace: Pace = STRESS,
    service=None,
):
    """The whole scenario on a Prefect server already running in this context: returns the
    gates, seconds until all were listed, the editors' result and each flow run's resumes.

    ``service(run_dir)``: a context manager that serves ``run_dir`` and yields its URL;
    default the service in a thread of this process (as the tests run it).
    """
    names = [f"r{k:03d}" for k in range(gates_n)]
    gates = write_gates(run_dir, suspended_flow_runs(names), points)
    service = service or (lambda folder: running_service(folder, **SERVICE))
    start = time.perf_counter()
    with service(run_dir) as base:
        listed_s = time.perf_counter() - start + wait_all_listed(base, gates_n)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = run_editors(base, gates, editors, pace)
        result.driver_busy = 100 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        decided = [g for g in gates if any(code == 200 for code, _ in result.answers[g.path])]
        resumed = wait_resumed(decided, resume_s)  # retries happen while the service runs
    return gates, listed_s, result, resumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=100)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--editors", type=int, default=50)
    parser.add_argument("--stress", action="store_true", help="no think time (see Pace)")
    parser.add_argument(
        "--look-s",
        type=float,
        default=PERSON.look_s,
        help="seconds an editor looks at a gate before the first drag",
    )
    parser.add_argument("--arrive-s", type=float, default=PERSON.arrive_s,
                        help="editors arrive spread over this many seconds")  # fmt: skip
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.port)
    tmp = Path(tempfile.mkdtemp(prefix="hill-gates-load-"))
    pace = STRESS if args.stress else Pace(args.arrive_s, args.look_s, PERSON.readout_s)
    busy = []
    with prefect_server(tmp / "prefect"):
        gates, listed_s, result, resumed = run_load(
            tmp / "runs", args.gates, args.points, args.editors, pace=pace,
            service=functools.partial(service_process, busy=busy),
        )  # fmt: skip
    wins = sum(sum(code == 200 for code, _ in result.answers[g.path]) for g in gates)
    once = sum(resumed.get(g.path, (0, None))[0] == 1 for g in gates)
    load = os.getloadavg()[0]
    where = f"{args.gates} gates of {args.points} points, {args.editors} editors"
    where += ", no think time" if args.stress else f", {pace.look_s:g} s look per gate"
    figures = [Figure(f"all gates listed after start, {where}", listed_s, "s", "<=", 10.0)]
    for kind in KINDS:
        times = result.latencies.get(kind, [])
        median = 1000 * statistics.median(times) if times else float("nan")
        figures.append(Figure(f"p95 latency, {kind}, {where}", result.p95_ms(kind), "ms", "<=",
                              P95_TARGET_MS, f"{len(times)} requests, median {median:.0f} ms, "
                              f"load avg {load:.1f}"))  # fmt: skip
    figures.append(Figure("gates with one decision won", wins, "gates", ">=", len(gates),
                          f"of {len(gates)}; {len(result.errors)} errors"))  # fmt: skip
    figures.append(Figure("flow runs resumed exactly once", once, "runs", ">=", len(gates)))
    figures.append(Figure("service CPU while serving the load", busy[0], "% core", "", None,
                          "its own process; 100 % = one core saturated"))  # fmt: skip
    figures.append(Figure("editors' CPU (this driver, one process)", result.driver_busy,
                          "% core", "", None, "50 threads under one interpreter lock: near 100 "
                          "% its own queueing adds to every latency"))  # fmt: skip
    emit(figures, args.json)
    for line in result.errors[:10]:
        print("error:", line)


if __name__ == "__main__":
    main()
