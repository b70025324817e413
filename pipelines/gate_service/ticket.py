"""A waiting gate, as a file: what the gate service needs to serve it with no flow process.

When a run waits at a gate it writes ``runs/<run>/gate_<epoch>.ticket.json`` (atomically): the
flow run to resume, the snapshot, the page's context, when the gate times out, and the SHA-256
of the gate's secret token (the token itself is only in the link given to the person). The
gate is open while its ticket exists and its edits file does not: recording the decision closes
it, whoever records it (the page, Prefect's resume form, the timeout, `hill gates decide`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hill_core.errors import HillError
from hill_core.losses import LossWeights

TICKET_VERSION = 1
TICKET_GLOB = "*/gate_*.ticket.json"


class TicketError(HillError):
    """A ticket file is missing or unreadable; the message names the file, in one line."""


@dataclass(frozen=True)
class GateTicket:
    """One waiting gate.

    Attributes:
        run_name: the hill run (its folder under base.run_dir and data/edits).
        epoch: the gate's epoch.
        flow_run_id: the Prefect flow run to resume with the decision.
        snapshot_path: the gate's snapshot Parquet.
        context: ``interaction_app.context.GateContext`` as JSON (see :func:`context_json`).
        token_sha256: hex SHA-256 of the gate's secret token.
        deadline: when ``on_timeout`` applies, Unix seconds.
        on_timeout: ``gate.on_timeout`` of the run (skip or stop).
    """

    run_name: str
    epoch: int
    flow_run_id: str
    snapshot_path: str
    context: dict[str, Any]
    token_sha256: str
    deadline: float
    on_timeout: str
    version: int = TICKET_VERSION

    @property
    def edits_path(self) -> Path:
        return Path(self.context["edits_path"])

    def is_open(self) -> bool:
        """True until the gate's decision is recorded (its edits file exists)."""
        return not self.edits_path.exists()

    def accepts(self, token: str | None) -> bool:
        """True when ``token`` is this gate's secret (compared in constant time)."""
        if not token:
            return False
        return hmac.compare_digest(token_digest(token), self.token_sha256)

    def page_path(self) -> str:
        """The gate page's path on the gate service: ``/<run>/gate/<epoch>``."""
        return f"/{self.run_name}/gate/{self.epoch}"

    def link(self, base_url: str, token: str) -> str:
        return f"{base_url.rstrip('/')}{self.page_path()}?token={token}"


def new_token() -> tuple[str, str]:
    """A fresh secret for one gate, and its digest (the only form written to disk)."""
    token = secrets.token_urlsafe(24)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ticket_path(run_dir: str | Path, run_name: str, epoch: int) -> Path:
    return Path(run_dir) / run_name / f"gate_{epoch:04d}.ticket.json"


def write_ticket(run_dir: str | Path, ticket: GateTicket) -> Path:
    """Write atomically (a reader never sees half a ticket)."""
    path = ticket_path(run_dir, ticket.run_name, ticket.epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(dataclasses.asdict(ticket), handle, indent=1)
    os.replace(tmp, path)
    return path


def read_ticket(path: str | Path) -> GateTicket:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        if raw.get("version") != TICKET_VERSION:
            raise TicketError(f"{path}: ticket version {raw.get('version')}, expected 1")
        return GateTicket(**raw)
    except (OSError, ValueError, TypeError) as err:
        if isinstance(err, TicketError):
            raise
        raise TicketError(f"{path}: not a readable gate ticket ({err})") from None


def open_tickets(run_dir: str | Path) -> list[GateTicket]:
    """Every open gate under ``run_dir``, oldest deadline first; unreadable tickets are skipped."""
    found = []
    for path in Path(run_dir).glob(TICKET_GLOB):
        try:
            ticket = read_ticket(path)
        except TicketError:
            continue
        if ticket.is_open():
            found.append(ticket)
    return sorted(found, key=lambda t: t.deadline)


def expired(ticket: GateTicket, now: float | None = None) -> bool:
    return (time.time() if now is None else now) >= ticket.deadline


def context_json(context) -> dict[str, Any]:
    """A ``GateContext`` as plain JSON (paths as strings, the loss weights as a dict)."""
    raw = dataclasses.asdict(context)
    raw["edits_path"] = str(context.edits_path)
    return raw


def context_of(raw: dict[str, Any]):
    """The ``GateContext`` a ticket carries."""
    from interaction_app.context import GateContext

    fields = dict(raw)
    fields["edits_path"] = Path(fields["edits_path"])
    fields["weights"] = LossWeights(**fields["weights"])
    return GateContext(**fields)
