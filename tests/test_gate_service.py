"""The gate service (`hill gates serve`) over real HTTP: tokens, the JSON API, timeouts, resume.

The service runs in-process (uvicorn in a thread on a free loopback port) over a tmp run_dir
holding tickets written here. Scans run only when a test asks (the index, /api/gates, or a
request for a gate not seen yet), so each step is deterministic. One test resumes a real
paused Prefect flow run on a Prefect test server.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from app_helpers import synthetic_context, synthetic_snapshot
from flow_helpers import TEST_SERVER_START_S, prefect_test_server

from hill_core.config import GateConfig
from hill_core.edits import read_edits, write_snapshot
from interaction_app.recorder import GateRecorder
from interaction_app.server import free_port
from pipelines.gate_service.service import create_app, uvicorn_config
from pipelines.gate_service.ticket import GateTicket, context_json, new_token, write_ticket

pytestmark = pytest.mark.slow  # starts web servers and a Prefect test server

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]


def write_gate(
    run_dir: Path,
    run: str = "r1",
    epoch: int = 4,
    n: int = 300,
    flow_run_id: str | None = None,
    deadline_s: float = 600.0,
    on_timeout: str = "skip",
) -> tuple[GateTicket, str]:
    """A waiting gate as a suspended run leaves it (snapshot, ticket); returns ticket and token."""
    snapshot = synthetic_snapshot(n)
    snap = write_snapshot(run_dir / run / f"snapshot_{epoch:04d}.parquet", snapshot, epoch, run)
    context = synthetic_context(
        run_dir / run / "edits" / f"gate_{epoch:04d}.parquet", gate_epoch=epoch
    )
    token, digest = new_token()
    ticket = GateTicket(
        run_name=run,
        epoch=epoch,
        flow_run_id=flow_run_id or str(uuid.uuid4()),
        snapshot_path=str(snap),
        context=context_json(context),
        token_sha256=digest,
        deadline=time.time() + deadline_s,
        on_timeout=on_timeout,
    )
    write_ticket(run_dir, ticket)
    return ticket, token


@contextlib.contextmanager
def running_service(
    run_dir: Path, tls: tuple[str, str] | None = None, proxies: tuple = (), **options
) -> Iterator[str]:
    """The service on a free loopback port, configured as ``hill gates serve`` configures it;
    yields its base URL. Scans only when asked.

    ``tls``: (certfile, keyfile) to serve https, as with gate.ssl_*; ``proxies``:
    gate.trusted_proxies.
    """
    options = {"refresh_s": 3600.0, "close_after_s": 0.0, **options}
    app = create_app(run_dir, **options)
    certfile, keyfile = tls or (None, None)
    # log_config=None: reconfiguring logging here would deadlock with Prefect's log handler.
    gate = GateConfig(ssl_certfile=certfile or "", ssl_keyfile=keyfile or "",
                      trusted_proxies=list(proxies))  # fmt: skip
    config = uvicorn_config(app, gate, host=HOST, port=free_port(HOST), log_config=None)
    server = uvicorn.Server(config)
    # The thread runs in this context, so a Prefect test server's settings reach the service.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(server.run,), daemon=True
    )
    thread.start()
    # A bound on a hang, not a wait: a started server is used at once (a loaded machine took
    # seconds; uvicorn's own start has no limit).
    deadline = time.monotonic() + TEST_SERVER_START_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "service did not start"
        time.sleep(0.02)
    try:
        yield f"{'https' if tls else 'http'}://{HOST}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def one_line_error(response: httpx.Response) -> str:
    """The refusal's message, checked to be one line and no traceback."""
    text = response.text.strip()
    assert "\n" not in text and "Traceback" not in text, text
    return text


def post_decision(client: httpx.Client, path: str, token: str | None, body) -> httpx.Response:
    params = {"token": token} if token else {}
    return client.post(f"{path}/api/decision", params=params, json=body)


def wait_for(predicate, timeout_s: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return tmp_path / "runs"


def test_token_cookie_index_and_unknown_gates(run_dir):
    ticket, token = write_gate(run_dir)
    decided, decided_token = write_gate(run_dir, run="r0", epoch=2, n=50)
    recorder = GateRecorder(synthetic_snapshot(50), _context_of(decided), lambda _: None)
    recorder.record("skip", None, None, None)  # decided before the service started
    decided_bytes = decided.edits_path.read_bytes()
    page = ticket.page_path()
    with running_service(run_dir) as base, httpx.Client(base_url=base, timeout=30) as person:
        stranger = httpx.Client(base_url=base, timeout=30)
        for params in ({}, {"token": "wrong"}, {"token": decided_token}):  # another gate's
            refused = stranger.get(f"{page}/", params=params)
            assert refused.status_code == 403 and "token" in one_line_error(refused)
        assert stranger.get(f"{page}/api/snapshot").json()["error"].startswith("this gate needs")
        first = person.get(page, params={"token": token}, follow_redirects=True)
        assert first.status_code == 200 and "<html" in first.text
        cookie = first.history[0].headers["set-cookie"] if first.history else ""
        cookie = cookie or first.headers["set-cookie"]
        assert f"Path={page};" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # Gradio's own calls carry no token: the cookie lets them through, for this gate only.
        assert person.get(f"{page}/config").json()["root"].endswith(page)
        assert person.get(f"{page}/api/snapshot").json()["sample_id"][:2] == [3000, 3003]
        assert stranger.get(f"{page}/config").status_code == 403
        for unknown in ("/r1/gate/5/", "/nope/gate/4/", "/r1/gate/5/api/snapshot"):
            missing = person.get(unknown, params={"token": token})
            assert missing.status_code == 404 and "no gate" in one_line_error(missing)
        gone = stranger.get("/r0/gate/2/", params={"token": decided_token})
        assert gone.status_code == 410 and "decided" in one_line_error(gone)
        index, listed = stranger.get("/"), stranger.get("/api/gates").json()
        assert stranger.get("/healthz").text == "ok"
        stranger.close()
    assert [(g["run"], g["epoch"], g["path"]) for g in listed] == [("r1", 4, page)]
    assert 590 < listed[0]["seconds_left"] <= 600
    assert page in index.text and "shows no tokens" in index.text and "/r0/gate/2" not in index.text
    for text in (index.text, str(listed)):
        assert token not in text and ticket.token_sha256 not in text
    assert not ticket.edits_path.exists()  # refusals and reads write nothing
    assert decided.edits_path.read_bytes() == decided_bytes  # a closed gate is left alone


def test_pages_are_built_on_their_first_request_only(run_dir):
    """Twenty waiting gates: listed at once, none built; opening one builds that one alone."""
    tokens = {f"r{k}": write_gate(run_dir, run=f"r{k}", n=50)[1] for k in range(20)}
    with running_service(run_dir) as base, httpx.Client(base_url=base, timeout=60) as client:
        listed = client.get("/api/gates").json()
        assert len(listed) == 20 and not any(g["page_built"] for g in listed)
        page = client.get("/r7/gate/4/", params={"token": tokens["r7"]})
        assert page.status_code == 200 and "hill-plot" in page.text
        built = [g["run"] for g in client.get("/api/gates").json() if g["page_built"]]
        assert built == ["r7"]


def test_one_page_app_serves_each_gate_its_own_points_and_decision(run_dir):
    """Every gate is served by the one page app; what a tab gets and does is its own gate's:
    the opening (points, title), the readout (of its snapshot), the status and the decision
    through the page's buttons' recorder. Another gate stays untouched."""
    small, small_token = write_gate(run_dir, run="small", n=40)
    large, large_token = write_gate(run_dir, run="large", epoch=6, n=300)
    with running_service(run_dir) as base, httpx.Client(base_url=base, timeout=60) as client:
        for ticket, token in ((small, small_token), (large, large_token)):
            assert client.get(f"{ticket.page_path()}/", params={"token": token}).status_code == 200

        def call(ticket, name, data):
            return client.post(f"{ticket.page_path()}/api/page/{name}", json=data)

        script = client.get(f"{small.page_path()}/api/page/script")
        assert script.status_code == 200 and "pageCall('opening')" in script.text
        etag = {"If-None-Match": script.headers["etag"]}  # the browser's revalidation
        assert client.get(f"{large.page_path()}/api/page/script", headers=etag).status_code == 304
        openings = {t.run_name: call(t, "opening", None).json() for t in (small, large)}
        assert len(openings["small"]["view"]["x"]) == 40
        assert len(openings["large"]["view"]["x"]) == 300
        assert openings["large"]["title"].endswith(" · epoch 6")
        sid = openings["large"]["view"]["sample_id"][-1]  # in the large gate only
        move = {"moved": [[sid, 9.0, 9.0]]}
        assert call(large, "readout", move).json() != call(large, "readout", {}).json()
        assert call(small, "readout", move).json() == call(small, "readout", {}).json()
        decided = post_decision(client, small.page_path(), None, {"decision": "stop", "rows": []})
        assert decided.status_code == 200
        assert call(small, "status", {"page": "p1"}).json()["decision"] == "stop"
        assert call(large, "status", {"page": "p1"}).json() == {"decided": False, "message": ""}
    assert small.edits_path.exists() and not large.edits_path.exists()


def test_basic_auth_guards_the_index_not_the_gate_pages(run_dir):
    ticket, token = write_gate(run_dir, n=50)
    with running_service(run_dir, basic=("ana", "s3cret")) as base:
        anonymous = httpx.Client(base_url=base, timeout=30)
        for path in ("/", "/api/gates"):
            refused = anonymous.get(path)
            assert refused.status_code == 401 and "Basic" in refused.headers["www-authenticate"]
        assert anonymous.get("/", auth=("ana", "wrong")).status_code == 401
        assert anonymous.get("/api/gates", auth=("ana", "s3cret")).json()[0]["run"] == "r1"
        assert anonymous.get("/healthz").text == "ok"  # probes need no credentials
        page = anonymous.get(f"{ticket.page_path()}/", params={"token": token})
        assert page.status_code == 200  # the token is the gate page's credential
        anonymous.close()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A Prefect test server for this module (about 13 s to start on 2 cores)."""
    home = tmp_path_factory.mktemp("prefect")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_HOME", str(home))
        env.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_server():
            yield


def test_api_decision_resumes_the_paused_flow_run_once(run_dir, prefect_server):
    from prefect import flow
    from prefect.context import FlowRunContext
    from prefect.flow_runs import pause_flow_run

    from pipelines.gate import GateDecisionInput

    ids, outcome = queue.Queue(), queue.Queue()

    @flow(name="waits-at-a-gate", persist_result=False)
    def waits_at_gate() -> str:
        ids.put(str(FlowRunContext.get().flow_run.id))
        return pause_flow_run(
            wait_for_input=GateDecisionInput, timeout=60, poll_interval=1
        ).decision

    def run_flow() -> None:
        try:
            outcome.put(waits_at_gate())
        except BaseException as err:  # noqa: BLE001 - handed to the test
            outcome.put(err)

    threading.Thread(target=contextvars.copy_context().run, args=(run_flow,), daemon=True).start()
    ticket, token = write_gate(run_dir, flow_run_id=ids.get(timeout=60))
    page = ticket.page_path()
    rows = [
        {"sample_id": 3000, "x": 1.5, "y": -2.0, "moved": True},
        {"sample_id": 3003, "x": 0.25, "y": 0.5, "moved": False, "label": 1},
    ]
    with running_service(run_dir) as base, httpx.Client(base_url=base, timeout=30) as client:
        first = post_decision(client, page, token, {"decision": "approve", "rows": rows})
        assert first.status_code == 200, first.text
        recorded = ticket.edits_path.read_bytes()
        again = post_decision(client, page, token, {"decision": "stop"})
        assert again.status_code == 409 and "already decided: approve" in one_line_error(again)
        assert client.get("/api/gates").json() == []  # the scan closes the decided gate
        assert post_decision(client, page, token, {"decision": "stop"}).status_code == 410
        assert client.get(f"{page}/", params={"token": token}).status_code == 410
        resumed = outcome.get(timeout=60)
    assert resumed == "approve"  # the flow run got the decision the page recorded
    assert first.json()["source"] == "page" and first.json()["decision"] == "approve"
    assert ticket.edits_path.read_bytes() == recorded  # the first decision stands
    edits, meta = read_edits(ticket.edits_path, synthetic_snapshot(300))
    assert (meta.decision, meta.source) == ("approve", "page")
    assert edits.loc[0, ["x_after", "y_after"]].tolist() == [1.5, -2.0] and edits.loc[0, "moved"]
    assert edits.loc[1, ["x_after", "y_after"]].tolist() == [0.25, 0.5]


def test_timeout_is_recorded_and_a_failed_resume_is_one_log_line(run_dir, prefect_server, caplog):
    ticket, token = write_gate(run_dir, deadline_s=-1, on_timeout="stop")  # no such flow run
    caplog.set_level("INFO", logger="hill.gate_service")
    with running_service(run_dir) as base, httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/api/gates").json() == []  # the scan recorded the timeout, closed it
        assert client.get(f"{ticket.page_path()}/", params={"token": token}).status_code == 410
        line = wait_for(
            lambda: [r.getMessage() for r in caplog.records if "could not resume" in r.message],
            what="the failed resume's log line",
        )
        assert client.get("/healthz").text == "ok"  # the service carries on
    _, meta = read_edits(ticket.edits_path)
    assert (meta.decision, meta.source) == ("stop", "timeout")
    assert len(line) == 1 and "\n" not in line[0] and ticket.flow_run_id in line[0]
    assert "r1 epoch 4: stop (timeout) recorded" in line[0]


def test_a_decision_made_while_prefect_is_unreachable_is_resumed_when_it_returns(
    run_dir, monkeypatch, caplog
):
    """The resume fails twice (Prefect down), then works: the service tries again by itself,
    says so in its log, and stops once the run is resumed."""
    import pipelines.gate_service.registry as registry

    monkeypatch.setattr(registry, "RETRY_FIRST_S", 0.05)
    caplog.set_level("INFO", logger="hill.gate_service")
    tries = []

    def resume(ticket, decided):  # Prefect "down" for the first two tries
        tries.append(decided.decision)
        return len(tries) >= 3

    ticket, token = write_gate(run_dir)
    with (
        running_service(run_dir, refresh_s=0.05, resume=resume) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        decided = post_decision(client, ticket.page_path(), token, {"decision": "approve"})
        assert decided.status_code == 200, decided.text
        wait_for(lambda: len(tries) >= 3 and "resumed after 3 tries" in caplog.text,
                 what="the third try")  # fmt: skip
        assert client.get("/healthz").text == "ok"
    assert tries == ["approve"] * 3  # no try after the one that worked
    waiting = [r.message for r in caplog.records if "decided, waiting to resume" in r.message]
    assert len(waiting) == 2 and "try 1" in waiting[0] and "try 2" in waiting[1]


def test_binding_beyond_loopback_without_auth_exits_2_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HILL_GATE_AUTH"}
    hill = Path(sys.executable).with_name("hill")
    params = REPO_ROOT / "params.yaml"
    done = subprocess.run(
        [str(hill), "gates", "serve", "--host", "0.0.0.0", "--params", str(params)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "reachable from other machines" in lines[0], done.stderr
    assert "HILL_GATE_AUTH" in lines[0] and "Traceback" not in done.stdout + done.stderr


def _context_of(ticket: GateTicket):
    from pipelines.gate_service.ticket import context_of

    return context_of(ticket.context)


def test_a_closed_gate_frees_its_page(run_dir):
    """Closed gates' pages were never freed (RSS grew with every gate). After closing, nothing
    but the test's weak reference reaches the gate's page state (its snapshot, recorder)."""
    import asyncio
    import gc
    import weakref

    ticket, _ = write_gate(run_dir, n=200)
    app = create_app(run_dir, resume=lambda ticket, decided: None, refresh_s=3600.0)

    async def open_then_close() -> weakref.ref:
        gates = app.state.gates
        gate = await gates.lookup(ticket.run_name, ticket.epoch)
        assert gate.live
        page = weakref.ref(gate.page)
        await gates.close_all()
        return page

    page = asyncio.run(open_then_close())
    gc.collect()
    assert page() is None


def test_resume_threads_keep_one_prefect_client_each(prefect_server):
    """Each resume made its own Prefect client (~20 ms of CPU, the interpreter lock held: an SSL
    context loading the CA bundle), stalling the service's event loop once per decision. The
    resume threads keep one each: Prefect's resume_flow_run gets it from get_client."""
    from prefect import get_client

    from pipelines.gate_service.resumes import RESUME_THREADS, ResumeWorkers

    clients, done = queue.Queue(), threading.Semaphore(0)

    def resume_like_prefect(k: int) -> None:
        with get_client(sync_client=True) as client:  # as prefect.flow_runs.resume_flow_run
            client.hello().raise_for_status()  # it reaches the test server
            clients.put(client)
        done.release()

    workers = ResumeWorkers(contextvars.copy_context())
    tasks = 3 * RESUME_THREADS
    for k in range(tasks):
        workers.submit(resume_like_prefect, k)
    for _ in range(tasks):  # a bound on a hang, not a wait
        assert done.acquire(timeout=TEST_SERVER_START_S), "a resume task did not finish"
    workers.stop()
    used = [clients.get_nowait() for _ in range(tasks)]  # held: no id is reused
    assert len({id(client) for client in used}) <= RESUME_THREADS


def test_resume_threads_make_their_clients_at_start_not_at_the_first_decision(
    prefect_server, monkeypatch
):
    """Imports and four clients cost ~1.8 s of CPU; made at the first decision, they competed
    with 50 editors' requests (profiled). The service starts its threads as it starts: each
    keeps its client before any task; with no Prefect server set, none is made (a client would
    start Prefect's temporary server)."""
    from pipelines.gate_service import resumes

    made = threading.Semaphore(0)
    keep = resumes.keep_prefect_client

    def counted():
        kept = keep()
        made.release()
        return kept

    monkeypatch.setattr(resumes, "keep_prefect_client", counted)
    workers = resumes.ResumeWorkers(contextvars.copy_context())
    workers.start()  # no task submitted
    for _ in range(resumes.RESUME_THREADS):  # a bound on a hang, not a wait
        assert made.acquire(timeout=TEST_SERVER_START_S), "a thread made no client at start"
    workers.stop()
    assert resumes.prefect_server_set()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert not resumes.prefect_server_set()


def test_a_failing_resume_task_leaves_its_thread_serving():
    from pipelines.gate_service.resumes import ResumeWorkers

    ran = queue.Queue()

    def fails() -> None:
        raise OSError("disk full")

    workers = ResumeWorkers(contextvars.copy_context(), prefect_clients=False, threads=1)
    workers.submit(fails)
    workers.submit(ran.put, "after")
    assert ran.get(timeout=TEST_SERVER_START_S) == "after"
    workers.stop()


def test_start_up_heap_is_left_out_of_later_collections(run_dir):
    """Full collections walked the ~500,000 objects start-up made, ~220 ms on the event loop
    each under load (the load benchmark's p95 tail): the service freezes them once started."""
    import gc

    gc.unfreeze()
    with running_service(run_dir):
        assert gc.get_freeze_count() > 100_000


def test_gates_list_reads_the_gate_from_the_paused_state_itself(prefect_server):
    """A run shows as waiting from the moment its state is Suspended at a hill gate: the epoch
    comes from the state's pause key, the link from the gate's artifact when it can be read
    (the newest one), and runs paused for other reasons are not hill gates."""
    from prefect import flow, get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.states import Suspended

    from pipelines.gate_service.listing import waiting_gates

    @flow(name="guided-training")
    def placeholder() -> None: ...

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(placeholder)

        def suspended(name: str, key: str):
            run = client.create_flow_run(placeholder, name=name)
            client.set_flow_run_state(run.id, Suspended(pause_key=key), force=True)
            return run

        linked = suspended("linked", "gate-2")
        suspended("unlinked", "gate-5")
        suspended("other-pause", "approval")
        for url in ("http://127.0.0.1:1/old", "http://127.0.0.1:1/linked/gate/2?token=t"):
            markdown = ArtifactCreate(key="gate-2", type="markdown", data=f"[{url}]({url})",
                                      flow_run_id=linked.id)  # fmt: skip
            client.create_artifact(markdown)
        gates = {g.run_name: g for g in waiting_gates(client)}
    assert flow_id and set(gates) == {"linked", "unlinked"}
    assert (gates["linked"].epoch, gates["unlinked"].epoch) == (2, 5)
    assert gates["linked"].url == "http://127.0.0.1:1/linked/gate/2?token=t"
    assert gates["unlinked"].url == "(link: the run's gate-5 artifact)"
    assert gates["linked"].state == "Suspended"
