"""The gate service's resumes: a few long-lived threads, each with one Prefect client.

A recorded decision resumes its flow run off the event loop, so the page answers at once. The
resumes used to run in a thread each, and each made its own Prefect client
(``prefect.flow_runs.resume_flow_run`` calls ``get_client``): ~20 ms of CPU a client, nearly
all of it an SSL context loading the CA bundle with the interpreter lock held, so 100 decisions
stalled the event loop 100 times (profiled, benchmarks/gate_service_load.py). Here each of
``RESUME_THREADS`` threads enters Prefect's ``SyncClientContext`` once and keeps it: inside it
``get_client(sync_client=True)``, and so ``resume_flow_run``, return that thread's one client.
Several threads, not one, so a resume waiting for its run to reach Paused
(``pipelines.gate.RESUME_WAIT_S``) holds up no other.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable

from interaction_app.http_safety import one_line

log = logging.getLogger("hill.gate_service")
RESUME_THREADS = 4
_STOP = None  # put once per thread: it ends after the tasks queued before it


class ResumeWorkers:
    """Runs ``task(*args)`` in ``threads`` threads started at the first submit, each in a copy of
    ``context`` (Prefect's settings travel in it, e.g. a test server's URL).

    ``prefect_clients``: each thread keeps one Prefect client for its life (the default resume);
    False for a resume that does not talk to Prefect (a test's), which then never starts one.
    """

    def __init__(
        self,
        context: contextvars.Context,
        prefect_clients: bool = True,
        threads: int = RESUME_THREADS,
    ):
        self._context = context
        self._prefect_clients = prefect_clients
        self._threads = threads
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the threads now (else at the first submit). With Prefect clients, first import
        what a resume imports, here, and each thread makes its client as it starts: ~1.8 s of
        CPU in all (imports under the import lock, four SSL contexts), which at the first
        decision competed with 50 editors' requests for the interpreter lock (profiled)."""
        with self._lock:
            if self._started:
                return
            if self._prefect_clients:
                import_resume_modules()
            for k in range(self._threads):
                run = self._context.copy().run
                threading.Thread(
                    target=run, args=(self._work,), name=f"gate-resume-{k}", daemon=True
                ).start()
            self._started = True

    def submit(self, task: Callable[..., object], *args: object) -> None:
        self.start()
        self._tasks.put((task, args))

    def stop(self) -> None:
        """End each thread once the tasks queued so far are done (not waited for)."""
        with self._lock:
            if self._started:
                for _ in range(self._threads):
                    self._tasks.put(_STOP)
                self._started = False

    def _work(self) -> None:
        # This thread's Prefect SyncClientContext: entered at once when a server is set (with
        # none, a client would start Prefect's temporary one: left to the first resume), or at
        # a later task when Prefect cannot be reached now.
        kept = keep_prefect_client() if self._prefect_clients and prefect_server_set() else None
        while (item := self._tasks.get()) is not _STOP:
            if self._prefect_clients and kept is None:
                kept = keep_prefect_client()
            task, args = item
            try:
                task(*args)
            except Exception as err:  # noqa: BLE001 - a failed task must not end the thread
                log.error(f"resume task failed: {type(err).__name__}: {one_line(err, 200)}")
        if kept is not None:
            kept.__exit__(None, None, None)


def prefect_server_set() -> bool:
    """True when this context's Prefect settings name a server (PREFECT_API_URL)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def import_resume_modules() -> None:
    """Import what a resume and its client import (the resume itself: registry.resume_flow)."""
    import prefect.client.orchestration  # noqa: F401
    import prefect.flow_runs  # noqa: F401
    from prefect.context import SyncClientContext  # noqa: F401

    import pipelines.gate  # noqa: F401


def keep_prefect_client():
    """Enter Prefect's ``SyncClientContext`` in this thread's context and return it (the caller
    exits it); None when Prefect cannot be reached now (its version check, once per process):
    ``resume_flow_run`` then makes its own client, meets the outage and is tried again later,
    and the next task tries to keep a client again."""
    import httpx
    from prefect.context import SyncClientContext

    try:
        return SyncClientContext().__enter__()
    except (RuntimeError, httpx.HTTPError, OSError) as err:
        log.warning(f"no Prefect client for resumes yet: {type(err).__name__}: {one_line(err)}")
        return None
