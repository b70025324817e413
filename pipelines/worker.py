"""The stack's Prefect process worker, kept running through an outage of the Prefect server.

``prefect worker start`` gives up when the server stays unreachable for a while (Prefect's
``critical_service_loop`` raises "Service exceeded error threshold" after four rounds of
failures) and exits. A gate decided during the outage is resumed by the gate service once the
server is back, and the run is then Scheduled for a worker that no longer exists: it would wait
for a person to restart one. So ``infra/up.sh`` runs the worker through :func:`main`, which
starts it again in the same process (the pid in pids/worker.pid, and its session, stay the
same) after a short pause, for as long as it runs.

    python -m pipelines.worker --pool hill-pool --name hill-worker
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

RESTART_S = 5.0  # pause before starting a worker that gave up again (the server may be down)


def start_worker(pool: str, name: str) -> None:
    """One process worker on ``pool``, until it stops (it gave up) or raises."""
    from prefect.settings import PREFECT_WORKER_HEARTBEAT_SECONDS
    from prefect.workers.process import ProcessWorker

    heartbeat = int(PREFECT_WORKER_HEARTBEAT_SECONDS.value())
    worker = ProcessWorker(name=name, work_pool_name=pool, heartbeat_interval_seconds=heartbeat)
    asyncio.run(worker.start(printer=print))  # a fresh event loop, and clients, each time


def supervise(
    start: Callable[[], None],
    restarts: int | None = None,
    pause_s: float = RESTART_S,
    wait: Callable[[float], None] = time.sleep,
) -> None:
    """Call ``start`` again whenever it returns or raises; ``restarts`` (None: no end) bounds
    how often, for tests. One line per restart says why, in the worker's log."""
    done = 0
    while True:
        try:
            start()
            why = "stopped"
        except Exception as err:  # noqa: BLE001 - an outage, or anything: the pool needs a worker
            why = f"gave up ({reason(err)})"
        if restarts is not None and done >= restarts:
            return
        done += 1
        print(f"hill worker: the Prefect worker {why}; starting it again in {pause_s:g} s",
              flush=True)  # fmt: skip
        wait(pause_s)


def reason(err: BaseException) -> str:
    """``RuntimeError: Service exceeded error threshold.``: the first error inside the task
    groups the worker's loops run in (their own message says only how many there were)."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.worker", description=__doc__)
    parser.add_argument("--pool", required=True, help="the Prefect work pool to poll")
    parser.add_argument("--name", required=True, help="the worker's name")
    args = parser.parse_args(argv)
    supervise(lambda: start_worker(args.pool, args.name))


if __name__ == "__main__":
    main()
