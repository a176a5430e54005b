"""A publish's time limit, kept by our own code.

Prefect's flow timeout cannot stop a thread that is blocked reading a socket (each destination publishes
in its own thread), so a hung destination could hold its lock long past the flow's limit. Inside
``time_limit``, every request of a guarded session or client (``tasks/wire.py``) must be over by the
time left, and no retry starts or waits past it; the publish then fails with ``TimeLimitReached``, its
lock is released and its cursor stays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from tasks.domain.errors import KnackServicesError


class TimeLimitReached(KnackServicesError):
    """A publish ran out of its time (``publish_time_limit_seconds``)."""


@dataclass(frozen=True)
class Deadline:
    at: float       # time.monotonic() when time is up
    seconds: float  # the limit, for messages
    what: str       # e.g. "demo/object_1 → Socrata abcd-1234"

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def reached(self) -> TimeLimitReached:
        return TimeLimitReached(f"{self.what}: stopped at its time limit of {self.seconds:g} s "
                                f"(publish_time_limit_seconds); the cursor stays, the next run resumes")


_CURRENT: ContextVar[Deadline | None] = ContextVar("knack_services_deadline", default=None)


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[Deadline]:
    """Run the block under a deadline ``seconds`` from now (this thread and contexts copied from it)."""
    deadline = Deadline(time.monotonic() + seconds, seconds, what)
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def current() -> Deadline | None:
    return _CURRENT.get()


def time_left() -> float | None:
    """Seconds left before the current deadline; None when no limit is set."""
    deadline = _CURRENT.get()
    return None if deadline is None else deadline.remaining()
