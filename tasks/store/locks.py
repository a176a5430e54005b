"""Run locks in the store: one writer per container and role, and a lease that fences every write.

A lock is a small JSON object under ``<env>/<app>/_state/<container>/lock-<role>.json`` naming its
owner (the flow run) and its life ``L`` (``lock_ttl_seconds``). Every write of it is conditional:
taken with ``If-None-Match: *``; a dead holder's taken over with ``If-Match`` on the version the taker
watched (of two takers exactly one wins); renewed by the holder (a heartbeat every ``L/4``) with
``If-Match`` on its own last version, so a refusal means it was taken over; released with a
conditional delete, so a run never deletes another run's lock.

**Who may write.** A holder may *start* a write (a store PUT or DELETE, a destination request, a table
commit, a state commit) only while its lease runs: within ``L/2`` of the moment it sent its last
successful renewal, on its own monotonic clock (``Held.check``). Past that it stops on its own, even
if nobody took the lock: it cannot know it still holds it. Every request has a whole-request deadline
``D <= 0.4 L`` (connect, send and the whole reply, enforced while bytes trickle: ``tasks/wire.py``).

**When a lock is dead.** Judged by the watcher alone: a lock is dead when the watcher has seen the same
version of it for one life ``L`` on its own monotonic clock. The holder's timestamps (``expires``) are
for people; a clock ten minutes off on either side changes nothing. Neither does the Prefect API saying
the holder's run crashed: a crashed state is not proof that the process is gone.

**Why no stale write lands after a takeover.** Let ``r`` be the instant the holder sent its last
successful renewal, writing version ``V``. ``V`` became visible after ``r``, so a watcher first saw it
after ``r`` and takes over no earlier than ``r + L``. The holder starts no write after ``r + L/2``, and
each write ends (done, or cut at its deadline) within ``D <= 0.4 L`` of its start: by ``r + 0.9 L``.
Every write of the old holder has therefore ended before the taker may write, with ``0.1 L`` (6 s at the
default) to spare for scheduling. Monotonic clocks may differ in origin, never noticeably in rate.

**What can still slip through, and how it is repaired.** A process frozen *inside* a request (SIGSTOP,
a paused VM) after its check: its monotonic clock runs on while frozen, and when it wakes the rest of
its bytes may leave before the deadline's watchdog cuts them. The store's record writes are conditional
on the ETag the writer's manifest recorded (``records.py``), so such a write is refused when the taker
rewrote the object. A destination request is not conditional: the run sees that it ended after its
lease (``late``) and leaves a note, ``suspect-<role>-<run id>.json``, naming the records it was
sending; the next run of that destination sends them again from the store. A run killed between
such a late write and its note is the one case left to the nightly full reconcile.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

from tasks.clock import utc_now
from tasks.domain.errors import LockLost, StoreError
from tasks.domain.layout import serialize_record
from tasks.store.backends import Storage

BEATS_PER_TTL = 4     # a heartbeat every quarter of the lock's life
LEASE_SHARE = 0.5     # writes start only within this share of the life since the last renewal was sent
_RUN_ID = re.compile(r"\(([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\)$")

Wall = Callable[[], datetime]
log = logging.getLogger(__name__)


class Held:
    """The holder's side of a lock: its last version, when it last renewed, and whether it is lost.

    It is the write fence of its run (``tasks/fence.py``): ``check`` before every write."""

    def __init__(self, storage: Storage, key: str, owner: str, ttl: timedelta, what: str,
                 etag: str, renewed: float, acquired: str, wall: Wall = utc_now) -> None:
        self.storage = storage
        self.key = key
        self.owner = owner
        self.ttl = ttl
        self.what = what
        self.etag = etag
        self.renewed = renewed    # time.monotonic() when the last successful renewal was sent
        self.acquired = acquired
        self.wall = wall
        self.lost: str | None = None
        self.late = 0             # writes that ended after the lease lapsed (see the module docstring)
        self._mutex = threading.Lock()

    @property
    def lease(self) -> float:
        return self.ttl.total_seconds() * LEASE_SHARE

    def body(self) -> bytes:
        return lock_body(self.owner, self.acquired, self.wall(), self.ttl)

    def lapsed(self) -> bool:
        return self.lost is not None or time.monotonic() - self.renewed > self.lease

    def check(self) -> None:
        """Raise ``LockLost`` unless this run may start a write now (holds the lock, lease running)."""
        if self.lost is None:
            idle = time.monotonic() - self.renewed
            if idle <= self.lease:
                return
            self._lose(f"it has not renewed its lock for {idle:.0f} s, more than half the lock's life "
                       f"({self.ttl.total_seconds():g} s, lock_ttl_seconds), so another run may take it over")
        raise LockLost(self.lost or self.what)

    def note_late(self) -> None:
        with self._mutex:
            self.late += 1

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = f"{self.what}: this run lost its lock ({why}); it stops without writing or saving state"

    def beat(self) -> None:
        """Renew the lock, conditional on the holder's own last write: a refusal loses it. A failed write
        raises ``StoreError`` and is retried by the next beat while the lease runs."""
        with self._mutex:
            if self.lost:
                raise LockLost(self.lost)
            sent = time.monotonic()
            if sent - self.renewed > self.lease:
                self._lose(f"it has not renewed its lock for {sent - self.renewed:.0f} s, more than half the "
                           f"lock's life ({self.ttl.total_seconds():g} s, lock_ttl_seconds), so another run may "
                           "take it over")
                raise LockLost(self.lost or self.what)
            etag = self.storage.put_if(self.key, self.body(), if_match=self.etag)
            if etag is None:
                self._lose("another run took it over")
                raise LockLost(self.lost or self.what)
            self.etag, self.renewed = etag, sent

    def confirm(self) -> None:
        """Raise unless this run still holds the lock, checked by a conditional write now (before a commit)."""
        self.check()
        self.beat()

    def release(self) -> None:
        with self._mutex:
            if not self.lost:
                self.storage.delete_if(self.key, self.etag)  # refused: another run holds it now; keep it


def lock_body(owner: str, acquired: str, now: datetime, ttl: timedelta) -> bytes:
    """The lock document. ``renewed`` and ``expires`` are the holder's clock, for people only."""
    doc: dict[str, Any] = {"owner": owner, "acquired": acquired, "renewed": now.isoformat(),
                           "expires": (now + ttl).isoformat(), "ttl_seconds": ttl.total_seconds(),
                           "beat_seconds": ttl.total_seconds() / BEATS_PER_TTL}
    if (match := _RUN_ID.search(owner)) is not None:
        doc["flow_run_id"] = match.group(1)
    return serialize_record(doc)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
        return doc if isinstance(doc, dict) else {}
    except ValueError:
        return {}


def declared_life(doc: dict[str, Any], default: timedelta) -> float:
    """The holder's lock life (its lease is half of it); ``default`` when the document does not say."""
    for key, scale in (("ttl_seconds", 1), ("beat_seconds", BEATS_PER_TTL)):
        with suppress(TypeError, ValueError):
            value = float(doc[key]) * scale if key in doc else 0.0
            if value > 0:
                return value
    return default.total_seconds()


def _held_error(what: str, doc: dict[str, Any], life: float) -> StoreError:
    return StoreError(f"{what} is held by run {doc.get('owner')} since {doc.get('acquired')}, and it is "
                      f"alive (its heartbeat moved on while this run watched); try again after it ends "
                      f"(if that run dies, its lock is taken over {life:g} s after its last heartbeat)")


def acquire(storage: Storage, key: str, owner: str, ttl: timedelta, *, what: str, wall: Wall = utc_now) -> Held:
    """Take the lock, or take over a dead holder's; raise ``StoreError`` naming a living holder.

    A lock found in place is watched: if its version changes, its holder is alive (the error names
    it); if it stays the same for the holder's life on this process's monotonic clock, it is dead and
    taken over with a write conditional on that version."""
    acquired = wall().isoformat()
    watched: str | None = None   # the version being watched
    since = 0.0                  # time.monotonic() when it was first seen
    absent = True  # no lock seen in place: try to create it (one PUT in the common case)
    while True:
        if absent:
            sent = time.monotonic()
            etag = storage.put_if(key, lock_body(owner, acquired, wall(), ttl), if_none_match=True)
            if etag is not None:
                return Held(storage, key, owner, ttl, what, etag, sent, acquired, wall)
        current, seen = storage.get_versioned(key)
        absent = current is None or seen is None
        if current is None or seen is None:
            continue  # released in between: try to create it again
        doc = _parse(current)
        life = declared_life(doc, ttl)
        if seen != watched:
            if watched is not None:
                raise _held_error(what, doc, life)  # it beat while we watched: alive
            watched, since = seen, time.monotonic()
        elif time.monotonic() - since >= life:
            sent = time.monotonic()
            etag = storage.put_if(key, lock_body(owner, acquired, wall(), ttl), if_match=seen)
            if etag is not None:
                log.warning("%s: took over the lock of run %s (unchanged for %.0f s, its life)", what,
                            doc.get("owner"), time.monotonic() - since)
                return Held(storage, key, owner, ttl, what, etag, sent, acquired, wall)
            watched = None  # another run took it over first: watch theirs
            continue
        poll = max(0.05, min(2.0, life / 16))
        time.sleep(min(poll, max(0.01, since + life - time.monotonic())))


@contextmanager
def hold_lock(storage: Storage, key: str, owner: str, ttl: timedelta, *, what: str,
              thread_name: str = "lock", wall: Wall = utc_now) -> Iterator[Held]:
    """Hold the lock at ``key`` for ``owner`` while the block runs; ``what`` names it in the error a
    second run gets ("demo/object_1 (knack) is held by run ...")."""
    held = acquire(storage, key, owner, ttl, what=what, wall=wall)
    stop = threading.Event()
    every = ttl.total_seconds() / BEATS_PER_TTL

    def heartbeat() -> None:
        wait = every
        while not stop.wait(wait):
            try:
                held.beat()
                wait = every
            except LockLost:
                return  # the run stops at its next write (``check``)
            except StoreError:
                wait = every / 4  # a failed beat is tried again soon, while the lease runs

    thread = threading.Thread(target=heartbeat, name=thread_name, daemon=True)
    thread.start()

    def release() -> None:
        stop.set()
        thread.join()
        held.release()

    try:
        yield held
    except BaseException:
        with suppress(StoreError):  # the store is failing: the run's own error says why; the lock expires
            release()
        raise
    release()


def run_name() -> str:
    """The current flow run's name and id (a lock's owner: what a user sees and can cancel), or ``local``."""
    from prefect.context import FlowRunContext, TaskRunContext

    flow_ctx = FlowRunContext.get()
    task_ctx = TaskRunContext.get()
    run = (flow_ctx.flow_run if flow_ctx else None) or (task_ctx.task_run if task_ctx else None)
    return f"{run.name} ({run.id})" if run else "local"
