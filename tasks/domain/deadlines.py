"""How long one request may take, from its first byte sent to the last byte of its reply.

Every request to Knack, S3, Socrata and ArcGIS has a whole-request deadline
(``request_deadline_seconds``). A write is further capped at ``WRITE_SHARE_OF_LOCK`` of the lock's
life: a holder stops writing once it has not renewed its lock within half the lock's life, so the
last write it may still have on the wire must be over (done or failed) before the lock can pass to
anyone else. ``tasks/wire.py`` enforces the deadline; inside a publish's time limit
(``tasks/deadline.py``) the time left wins when it is shorter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.domain.config import Settings

WRITE_SHARE_OF_LOCK = 0.4  # of lock_ttl_seconds: below half a lock's life, with room for the clock
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def request_deadline(settings: Settings, write: bool) -> float:
    """Seconds one request may take: ``request_deadline_seconds``, and for a write at most
    ``WRITE_SHARE_OF_LOCK × lock_ttl_seconds``."""
    seconds = float(settings.request_deadline_seconds)
    return min(seconds, WRITE_SHARE_OF_LOCK * float(settings.lock_ttl_seconds)) if write else seconds


def is_write(method: str) -> bool:
    """Any method but GET, HEAD and OPTIONS may change something (S3 PUT/DELETE/POST, Socrata upserts,
    ArcGIS edits, which are POSTs)."""
    return method.upper() not in READ_METHODS


@dataclass(frozen=True)
class RequestDeadlines:
    """The deadlines of one client's reads and writes, in seconds."""

    read: float
    write: float

    def __post_init__(self) -> None:
        if not (self.read > 0 and self.write > 0):
            raise ValueError(f"request deadlines must be positive, got read={self.read} write={self.write}")

    def of(self, method: str) -> float:
        return self.write if is_write(method) else self.read


def request_deadlines(settings: Settings) -> RequestDeadlines:
    """Both deadlines of ``settings`` (a ``Settings``)."""
    return RequestDeadlines(request_deadline(settings, write=False), request_deadline(settings, write=True))


def default_deadlines() -> RequestDeadlines:
    """The deadlines of the default settings, for a client made without them."""
    from tasks.domain.config import Settings

    return request_deadlines(Settings())
