"""The write fence of the current publish: every request to a destination checks it before it goes out.

A publish holds its destination's lock (``tasks/store/locks.py``) and installs it here for the block
that talks to the destination; the sessions of the destination clients call ``check()`` before each
request (``tasks/wire.py: guard_session``), and the analytics table before each commit. A run that
lost its lock, or whose lease lapsed (no renewal within half the lock's life), stops before its next
request. A request that was already on the wire when the lease lapsed and ended after it is counted
(``late``): the publish then leaves a note for the next run to resend what it was sending.

This module imports nothing of the project, so any client module may use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class Fence(Protocol):
    def check(self) -> None: ...          # raise ``LockLost`` unless writes may start now
    def lapsed(self) -> bool: ...         # is the lease over (writes may no longer start)?
    def note_late(self) -> None: ...      # a request that began inside the lease ended after it


_CURRENT: ContextVar[Fence | None] = ContextVar("knack_services_fence", default=None)


@contextmanager
def fenced(fence: Fence) -> Iterator[Fence]:
    """Fence every request of the bound sessions in this block (this thread and contexts copied from it)."""
    token = _CURRENT.set(fence)
    try:
        yield fence
    finally:
        _CURRENT.reset(token)


def current() -> Fence | None:
    return _CURRENT.get()


def check() -> Fence | None:
    """Raise ``LockLost`` when the current fence forbids a write; the fence (None outside a publish)."""
    fence = _CURRENT.get()
    if fence is not None:
        fence.check()
    return fence


@contextmanager
def write() -> Iterator[None]:
    """Around one write to a destination: checked before it starts; counted ``late`` if it ends after
    the lease lapsed (it may have landed after another run took over)."""
    fence = check()
    try:
        yield
    finally:
        if fence is not None and fence.lapsed():
            fence.note_late()


@contextmanager
def unfenced() -> Iterator[None]:
    """Lift the fence for a write that is no state and no destination's (a note for the next run)."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def check_before_send(**_: object) -> None:
    """botocore's ``before-send`` hook: every attempt of every S3 request (retries too) checks the fence."""
    check()
