"""What serving a gate page needs, checked without importing Gradio.

A run's preflight and the gate service check the gate settings before any work starts; Gradio
costs seconds to import, so these checks live apart from :mod:`interaction_app.server`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from hill_core.config import GateConfig
from hill_core.errors import HillError


class GateServerError(HillError):
    """The gate page cannot be served as configured; the message says why, in one line."""


def check_gate(gate: GateConfig, host: str | None = None) -> tuple[str, str] | None:
    """What serving a gate needs, checked before anything starts: auth off loopback, readable
    auth, TLS files that exist. Returns the auth, if any. ``host``: the bind address, when not
    ``gate.host`` (``hill gates serve --host``).

    Raises:
        GateServerError: one line naming the setting.
    """
    where = f"gate.host={gate.host}" if host is None else f"--host {host}"
    auth = resolve_auth(gate)
    if auth is None and not is_loopback(gate.host if host is None else host):
        raise GateServerError(
            f"{where} is reachable from other machines: set "
            f"{gate.auth_env}=user:password or gate.auth_file, or bind 127.0.0.1"
        )
    for key, path in (("ssl_certfile", gate.ssl_certfile), ("ssl_keyfile", gate.ssl_keyfile)):
        if path and not Path(path).is_file():
            raise GateServerError(f"gate.{key} {path}: no such file")
    return auth


def resolve_auth(gate: GateConfig) -> tuple[str, str] | None:
    """``(user, password)`` from the variable named by gate.auth_env, else gate.auth_file."""
    raw, source = os.environ.get(gate.auth_env, ""), f"${gate.auth_env}"
    if not raw and gate.auth_file:
        path = Path(gate.auth_file)
        if not path.is_file():
            raise GateServerError(f"gate.auth_file {path}: no such file")
        raw, source = path.read_text().strip(), str(path)
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise GateServerError(f"{source}: expected user:password")
    return user, password


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str) -> int:
    """A port the OS says is free on ``host`` right now (gate.port = 0)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
