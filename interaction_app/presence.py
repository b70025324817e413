"""Which pages are open on a gate, and whether each has shown the decision yet.

Every page polls the ``status`` call (page_calls.py) with its own random id (static/gate_ui.js,
``pollStatus``) and says once it has locked on a decision. After a decision the server keeps
serving until every page seen recently has locked (or a grace period ends), so the deciding
tab gets its reply and every other tab locks instead of losing its server mid-click
(:meth:`interaction_app.server.GateServer.close`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

POLL_S = 1.5  # the page's status poll interval (gate_ui.js STATUS_MS, in seconds)
# A page not heard from for this long counts as closed (or asleep). Generous: a loaded machine
# or a background tab (browsers throttle their timers) can poll seconds late, and a page
# wrongly counted as closed loses its server before it learns the decision.
LIVE_S = 6 * POLL_S
MAX_PAGES = 512  # page ids kept; the oldest are forgotten first
MAX_ID = 64  # characters of a page id


class PollError(ValueError):
    """A status poll's ``info`` the page never sends; the message names the field."""


def check_poll(info: Any) -> None:
    """Refuse what no page sends: ``info`` is None (a bare status query) or
    ``{"page": id, "locked"?: true/false}``. A poll that is refused is not counted."""
    if info is None:
        return
    if not isinstance(info, dict):
        raise PollError(f"info must be an object {{page, locked}}, got {info!r:.40}")
    unknown = sorted(set(info) - {"page", "locked"})
    if unknown:
        raise PollError(f"info.{unknown[0]:.40} is not a field of a status poll")
    page = info.get("page")
    if not isinstance(page, str) or not page or len(page) > MAX_ID:
        raise PollError(
            f"info.page must be a page id of 1 to {MAX_ID} characters, got {page!r:.40}"
        )
    if not isinstance(info.get("locked", False), bool):
        raise PollError(f"info.locked must be true or false, got {info['locked']!r:.40}")


class Presence:
    """Thread-safe ``page id -> (last seen, locked)`` for one gate."""

    def __init__(self, live_s: float = LIVE_S, clock=time.monotonic):
        self.live_s = live_s
        self.clock = clock  # seconds, monotonic (a test passes its own)
        self._pages: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def seen(self, info: Any) -> None:
        """Record a status poll: ``{"page": id, "locked": bool}``; anything else is ignored."""
        if not isinstance(info, dict):
            return
        page, locked = info.get("page"), info.get("locked") is True
        if not isinstance(page, str) or not page or len(page) > MAX_ID:
            return
        with self._lock:
            _, was_locked = self._pages.pop(page, (0.0, False))
            self._pages[page] = (self.clock(), was_locked or locked)
            while len(self._pages) > MAX_PAGES:
                self._pages.pop(next(iter(self._pages)))

    def waiting(self, since: float | None = None) -> int:
        """Pages that have not locked yet and were heard from within ``live_s`` before
        ``since`` (a ``time.monotonic()`` instant; default now) or at any time after it.

        With ``since`` the moment a decision was recorded, a page that was open then is waited
        for even if its polls run late afterwards (a loaded machine, a slow reply).
        """
        cutoff = (self.clock() if since is None else since) - self.live_s
        with self._lock:
            return sum(1 for t, locked in self._pages.values() if t >= cutoff and not locked)

    def live(self) -> int:
        """Pages heard from within ``live_s``."""
        cutoff = self.clock() - self.live_s
        with self._lock:
            return sum(1 for t, _ in self._pages.values() if t >= cutoff)
