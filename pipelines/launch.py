"""Starting a run: every check first, then the flow on the servers `hill up` started.

``hill run``, ``hill replay`` and ``hill.run`` (the Python API) all start runs here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hill_core.config import Config
from hill_core.errors import HillError


def launch(cfg: Config, spec) -> dict[str, Any]:
    """Check everything a run can check before it trains (one line if anything is wrong), then
    run the flow with the servers `hill up` started when they answer (else a local store and a
    temporary Prefect server); returns the flow's summary.

    Args:
        spec: the flow's :class:`pipelines.flow.RunSpec`.
    """
    from pipelines.flow import guided_training
    from pipelines.preflight import check_new_run, check_run, check_strategy
    from pipelines.servers import failure_line, resolve, using

    check_strategy(spec.autopilot)
    check_new_run(cfg, spec.name)
    check_run(cfg, spec.mode, spec.name, spec.autopilot, spec.replay_from)
    servers = resolve(Path.cwd(), prefect=True)
    print(servers.line(), file=sys.stderr)  # which servers, in one line
    with using(servers):
        try:
            return guided_training(cfg.to_dict(), spec)
        except Exception as err:
            line = failure_line(err)  # a server that did not start or stopped answering
            if line is None:
                raise
            raise HillError(line) from None
