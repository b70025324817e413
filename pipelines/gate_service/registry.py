"""The gate service's registry: which gates it serves, their pages' state, and what happens to them.

Gates are found as tickets (:mod:`pipelines.gate_service.ticket`) under ``base.run_dir``. One
page app (``interaction_app.app.build_page_app``), mounted once at ``/<run>/gate/<epoch>``,
serves them all: it asks :meth:`GateService.page_for` which gate a request is for. An open
gate gets its state (:class:`~interaction_app.page_state.GatePage`: snapshot, recorder,
readout) on its first request or at its deadline, so a hundred waiting gates cost a hundred
small files until someone opens one. A decision recorded through the gate's one recorder (by
the page, the JSON API or the timeout) resumes the flow run. A decided gate keeps its state
``close_after_s`` more, read-only, so tabs still open learn the decision and lock; then it is
freed and answers 410.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit
from uuid import UUID

from fastapi import FastAPI

from interaction_app.http_safety import one_line
from pipelines.gate_service.ticket import TICKET_GLOB, GateTicket, TicketError, expired, read_ticket

log = logging.getLogger("hill.gate_service")
REFRESH_S = 3.0  # how often the background scan looks for new, decided and expired gates
CLOSE_AFTER_S = 30.0  # a decided page stays up this long, read-only, for tabs still open
RETRY_FIRST_S = 2.0  # a resume that could not reach Prefect is tried again after this long,
RETRY_MAX_S = 60.0  # doubling up to this, for as long as the service runs
# Gradio keeps the Blocks being built in class-level globals (gradio.context.Context.root_block
# and .block), not per thread: two Blocks built at once in two threads add components to each
# other or fail ("Cannot call api() outside of a gradio.Blocks context"). Services made in
# threads of one process (tests, benchmarks) build their page app under this lock.
BUILD_LOCK = threading.Lock()


@dataclass
class PendingResume:
    """A recorded decision whose flow run could not be resumed yet (Prefect unreachable)."""

    ticket: GateTicket
    decided: object  # interaction_app.context.GateDecision
    tries: int = 1
    next_at: float = 0.0  # time.monotonic() of the next try


@dataclass(eq=False)
class Gate:
    """One gate the service knows: live (its state built), closed (decided), or broken (error)."""

    ticket: GateTicket
    page: object | None = None  # interaction_app.page_state.GatePage while live
    decided_at: float | None = None  # time.monotonic() when the service saw the decision
    error: str = ""  # why the page cannot be built (answered 503)
    closed: bool = False  # its page was built and since freed: it answers 410
    opening: asyncio.Lock = field(default_factory=asyncio.Lock)  # held while its page is built

    @property
    def live(self) -> bool:
        return self.page is not None

    @property
    def recorder(self):
        """The gate's one recorder (interaction_app.recorder.GateRecorder) while live."""
        return self.page.recorder if self.page is not None else None

    def waits_for_page(self) -> bool:
        """Open, and its page not built yet (nor failed to build, nor ever closed)."""
        built = self.page is not None or self.error or self.closed
        return not built and self.ticket.is_open()

    def decided(self) -> bool:
        recorded = self.recorder is not None and self.recorder.decision is not None
        return recorded or not self.ticket.is_open()

    def closed_line(self) -> str:
        t = self.ticket
        return f"gate at epoch {t.epoch} of {t.run_name} is decided; it no longer accepts edits"


class GateService:
    """The registry of gates, keyed by (run, epoch); mutated only on the server's event loop."""

    def __init__(
        self, run_dir: str | Path, refresh_s=REFRESH_S, close_after_s=CLOSE_AFTER_S, resume=None
    ):
        """``resume(ticket, decided)`` tells the flow run; default :func:`resume_flow` (Prefect)."""
        from pipelines.gate_service.resumes import ResumeWorkers

        self.run_dir = Path(run_dir)
        self.resume = resume or resume_flow
        # Created with the service: its context carries Prefect's settings (a test server's).
        self._resumes = ResumeWorkers(contextvars.copy_context(), prefect_clients=resume is None)
        self.refresh_s = refresh_s
        self.close_after_s = close_after_s
        self.gates: dict[tuple[str, int], Gate] = {}
        self.app: FastAPI | None = None
        self._lock = asyncio.Lock()
        # Decisions whose resume failed, by gate; written from resume threads, hence its lock.
        self.pending: dict[tuple[str, int], PendingResume] = {}
        self._pending_lock = threading.Lock()
        self._freed = 0  # pages closed since the last release of their memory

    def page_for(self, request) -> object | None:
        """The live gate's page state (GatePage) a request of the page app is for, by its path
        (``/<run>/gate/<epoch>/...``: the mount's path parameters); None when it has none."""
        from pipelines.gate_service.auth import EPOCH, GATE_PATH

        match = GATE_PATH.match(urlsplit(str(request.url)).path)
        if match is None or not EPOCH.fullmatch(match["epoch"]):
            return None
        gate = self.gates.get((unquote(match["run"]), int(match["epoch"])))
        return gate.page if gate is not None else None

    async def lookup(self, run: str, epoch: int) -> Gate | None:
        """The gate, scanning once more when it is new (its link may beat the next scan), with
        its page built if it is open and has none yet."""
        if (run, epoch) not in self.gates:
            await self.refresh()
        gate = self.gates.get((run, epoch))
        if gate is not None:
            await self.ensure_page(gate)
        return gate

    async def ensure_page(self, gate: Gate) -> None:
        """Build an open gate's page state if it has none yet: once, however many requests
        ask at the same moment (each gate has its own lock: one slow build holds up no other)."""
        if not gate.waits_for_page():
            return
        async with gate.opening:
            if gate.waits_for_page():
                await self._open(gate)

    def open_gates(self) -> list[Gate]:
        """Gates that wait for a decision, with or without a page built yet, soonest first."""
        waiting = [g for g in self.gates.values() if not g.error and not g.decided()]
        return sorted(waiting, key=lambda g: g.ticket.deadline)

    async def refresh(self) -> None:
        """Add new gates, record expired ones' timeouts, free decided and vanished ones."""
        async with self._lock:
            found = await asyncio.to_thread(scan_tickets, self.run_dir)
            for key in [k for k in self.gates if found.get(k) != self.gates[k].ticket]:
                await self._close(self.gates.pop(key))  # vanished, or rewritten (a new token)
            for key, ticket in found.items():
                if key not in self.gates:  # its page is built on its first request
                    self.gates[key] = Gate(ticket)
            await self._time_out(time.time())
            await self._close_decided(time.monotonic())
            self._release()
        await self._retry_resumes(time.monotonic())

    async def _open(self, gate: Gate) -> None:
        path = gate.ticket.page_path()
        try:
            # On the event loop: ~7 ms of pandas for 2,000 points. In a thread of its own (when
            # a page was a Gradio app, ~80 ms) it waited for the interpreter lock at each
            # hand-back while the loop kept it busy: the first page's median under 50 editors
            # went from 159 to 103 ms when built here (benchmarks/gate_service_load.py).
            gate.page = open_page(gate.ticket, self._resumer(gate))
        except Exception as err:  # noqa: BLE001 - a broken ticket must not stop the others
            gate.error = one_line(f"gate {path} cannot be served: {err}")
            log.error(gate.error)

    async def _time_out(self, now: float) -> None:
        from interaction_app.recorder import GateClosedError

        for gate in self.open_gates():
            if expired(gate.ticket, now):
                t = gate.ticket
                await self.ensure_page(gate)  # never opened: its recorder comes with its page
                if gate.recorder is None:
                    continue  # it cannot be built: gate.error says why
                try:
                    await asyncio.to_thread(
                        gate.recorder.record, t.on_timeout, None, None, None, "timeout"
                    )
                    log.warning(
                        f"{t.run_name} epoch {t.epoch}: no decision by its deadline: {t.on_timeout}"
                    )
                except GateClosedError:
                    pass  # decided in the last moment: that decision stands

    async def _close_decided(self, now: float) -> None:
        for gate in [g for g in self.gates.values() if g.live and g.decided()]:
            gate.decided_at = gate.decided_at or now
            if now - gate.decided_at >= self.close_after_s:
                await self._close(gate)

    async def _close(self, gate: Gate) -> None:
        """Free the gate's page state; it then answers 410."""
        gate.closed = gate.closed or gate.page is not None
        gate.page = None
        self._freed += 1

    def _release(self) -> None:
        """After a batch of closes: collect once (a gate's page and its recorder's callback
        form a cycle; a full collection is ~50-250 ms on the loop with the web stack loaded,
        once per gate it held every request up that long for each decided gate a scan
        closed)."""
        if self._freed:
            release_memory()
            self._freed = 0

    def start_resumes(self) -> None:
        """Start the resume threads and their Prefect clients (see ResumeWorkers.start)."""
        self._resumes.start()

    async def close_all(self) -> None:
        async with self._lock:
            for gate in self.gates.values():
                await self._close(gate)
            self._release()
        self._resumes.stop()

    def _resumer(self, gate: Gate):
        """The page's on_decision: resume the flow run in a resume thread, so the page answers
        at once."""

        def on_decision(decided) -> None:
            self._resumes.submit(self._try_resume, gate.ticket, decided, 0)

        return on_decision

    def _try_resume(self, ticket: GateTicket, decided, tries: int) -> None:
        """Resume once (in a thread); if Prefect could not be reached, try again later, with
        backoff, until it can: a decision recorded during an outage is never left behind."""
        key = (ticket.run_name, ticket.epoch)
        if self.resume(ticket, decided) is not False:  # None: a resume that does not tell
            with self._pending_lock:
                self.pending.pop(key, None)
            if tries:
                log.info(f"{ticket.run_name} epoch {ticket.epoch}: resumed after {tries + 1} tries")
            return
        wait = min(RETRY_FIRST_S * 2**tries, RETRY_MAX_S)
        with self._pending_lock:
            self.pending[key] = PendingResume(ticket, decided, tries + 1, time.monotonic() + wait)
        log.warning(
            f"{ticket.run_name} epoch {ticket.epoch}: decided, waiting to resume: Prefect did not "
            f"answer; trying again in {wait:.0f} s (try {tries + 1})"
        )

    async def _retry_resumes(self, now: float) -> None:
        """Try again each pending resume that is due, in the resume threads."""
        with self._pending_lock:
            due = [p for p in self.pending.values() if p.next_at <= now]
            for p in due:
                p.next_at = float("inf")  # taken: not due again until this try ends
        for p in due:
            self._resumes.submit(self._try_resume, p.ticket, p.decided, p.tries)


def release_memory() -> None:
    """Collect the closed pages' cycles now and hand the freed
    heap back to the system (glibc keeps it otherwise, and the service's RSS only grows)."""
    import contextlib
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc:
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
            ctypes.CDLL(libc).malloc_trim(0)


def scan_tickets(run_dir: Path) -> dict[tuple[str, int], GateTicket]:
    """Every readable ticket under ``run_dir``, open or decided (unreadable ones are skipped)."""
    found = {}
    for path in sorted(run_dir.glob(TICKET_GLOB)):
        try:
            ticket = read_ticket(path)
        except TicketError:
            continue
        found[(ticket.run_name, ticket.epoch)] = ticket
    return found


def open_page(ticket: GateTicket, on_decision):
    """The gate's page state, as the in-process gate builds it (on the event loop: ~7 ms)."""
    from hill_core.edits import read_snapshot
    from interaction_app.page_state import GatePage
    from pipelines.gate_service.ticket import context_of

    snapshot, _ = read_snapshot(ticket.snapshot_path)
    return GatePage(snapshot, context_of(ticket.context), on_decision, validated=True)


def resume_flow(ticket: GateTicket, decided) -> bool:
    """Resume the paused or suspended flow run with the decision.

    Returns False when Prefect could not be reached (the service tries again later), True
    otherwise: resumed, or nothing to resume (not found, not paused: one log line). The
    decision stays recorded either way: a flow run that is resumed later finds it.
    """
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    from pipelines.gate import GateDecisionInput, resume_when_paused

    where = f"{ticket.run_name} epoch {ticket.epoch}: {decided.decision} ({decided.source})"
    try:
        answer = GateDecisionInput(decision=decided.decision)
        resume_when_paused(UUID(ticket.flow_run_id), answer, lambda: False)
    except (httpx.TransportError, OSError) as err:  # refused, reset, timed out: an outage
        log.warning(f"{where} recorded; Prefect unreachable ({type(err).__name__})")
        return False
    except PrefectHTTPStatusError as err:
        if err.response.status_code >= 500:  # a server starting up or failing: try again
            log.warning(f"{where} recorded; Prefect answered {err.response.status_code}")
            return False
        log.warning(f"{where} recorded; could not resume flow run {ticket.flow_run_id}: {err}")
        return True
    except Exception as err:  # noqa: BLE001 - not found, not paused: nothing to try again
        log.warning(
            f"{where} recorded; could not resume flow run {ticket.flow_run_id}: "
            f"{type(err).__name__}: {one_line(err, 160)}"
        )
        return True
    log.info(f"{where} recorded; resumed flow run {ticket.flow_run_id}")
    return True
