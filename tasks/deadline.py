"""A publish's time limit, kept by our own code.

Prefect's flow timeout cannot stop a thread that is blocked reading a socket (each destination publishes
in its own thread), so a hung destination could hold its lock long past the flow's limit. Inside
``time_limit``, every request of a bound session is cut to the time left, and no retry starts or waits
past it; the publish then fails with ``TimeLimitReached``, its lock is released and its cursor stays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from tasks import fence
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


def cap_timeout(timeout: Any) -> Any:
    """A requests ``timeout`` (seconds, a (connect, read) pair, or None) cut to the time left."""
    deadline = _CURRENT.get()
    if deadline is None:
        return timeout
    left = deadline.remaining()
    if left <= 0:
        raise deadline.reached()
    if isinstance(timeout, tuple):
        return tuple(left if t is None else min(t, left) for t in timeout)
    return left if timeout is None else min(timeout, left)


def bound_session(session: Any) -> Any:
    """Make every request of a ``requests.Session`` respect the current deadline and write fence
    (``tasks/fence.py``): none starts once the run's lock is lost (idempotent)."""
    if getattr(session, "_bounded_by_deadline", False):
        return session
    send = session.send

    def send_in_time(request: Any, **kwargs: Any) -> Any:
        if getattr(request, "method", "GET") in ("GET", "HEAD"):
            fence.check()  # a run that lost its lock stops at its next request
            kwargs["timeout"] = cap_timeout(kwargs.get("timeout"))
            return send(request, **kwargs)
        with fence.write():
            kwargs["timeout"] = cap_timeout(kwargs.get("timeout"))
            return send(request, **kwargs)

    session.send = send_in_time
    session._bounded_by_deadline = True
    return session
