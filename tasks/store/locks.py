"""Run locks in the store: one writer per container and role, fenced by conditional writes.

A lock is a small JSON object under ``<env>/<app>/_state/<container>/lock-<role>.json`` naming its
owner (the flow run) and when it expires. Every write of it is conditional:

- taken with a conditional create (``If-None-Match: *``), so two runs cannot both create it;
- a dead run's lock is taken over with ``If-Match`` on the ETag the taker read, so of two runs that
  find the same dead lock exactly one gets it;
- the heartbeat (every quarter of ``ttl``) rewrites it with ``If-Match`` on the holder's own last
  ETag: a refusal means another run took it over, and the holder has lost it;
- release is a conditional delete on the holder's last ETag, so it never deletes another run's lock.

A lock is dead when it expired (a few missed beats), or at once when the Prefect API says its flow run
already ended (crashed, failed, cancelled). A run that finds a live-looking lock watches it until it
expires: a holder killed with ``kill -9`` is taken over within one ``ttl``, while a living holder shows
a heartbeat within a quarter of it and the watcher fails naming it.

Before a run commits state (manifest, cursor), ``Held.confirm`` beats once more, conditionally: a run
that lost its lock stops there, and the state writes are themselves conditional on what the run read
(``records.py``), so two runs never both commit.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.domain.errors import StoreError
from tasks.domain.layout import serialize_record
from tasks.store.backends import Storage

BEATS_PER_TTL = 4  # a lock expires after this many missed heartbeats
FINAL_STATES = frozenset({"CRASHED", "FAILED", "CANCELLED", "COMPLETED"})
_RUN_ID = re.compile(r"\(([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\)$")

HolderEnded = Callable[[dict[str, Any]], bool]
log = logging.getLogger(__name__)


class Held:
    """The holder's side of a lock: its last ETag, its expiry, and whether it has been lost."""

    def __init__(self, storage: Storage, key: str, owner: str, ttl: timedelta, what: str,
                 etag: str, expires: datetime, acquired: str) -> None:
        self.storage = storage
        self.key = key
        self.owner = owner
        self.ttl = ttl
        self.what = what
        self.etag = etag
        self.expires = expires
        self.acquired = acquired
        self.lost: str | None = None
        self._mutex = threading.Lock()

    def body(self, now: datetime) -> bytes:
        return lock_body(self.owner, self.acquired, now + self.ttl, self.ttl)

    def beat(self) -> None:
        """Push the expiry forward, conditional on the holder's own last write; a refusal loses the lock.
        A failed write raises ``StoreError``; past the expiry it loses the lock as well."""
        with self._mutex:
            if self.lost:
                raise StoreError(self.lost)
            now = datetime.now(UTC)
            try:
                etag = self.storage.put_if(self.key, self.body(now), if_match=self.etag)
            except StoreError:
                if datetime.now(UTC) >= self.expires:
                    self.lost = (f"{self.what}: this run lost its lock (its heartbeats failed past the "
                                 f"expiry, {self.expires.isoformat()}); it stops without saving state")
                raise
            if etag is None:
                self.lost = (f"{self.what}: this run lost its lock (another run took it over); "
                             "it stops without saving state")
                raise StoreError(self.lost)
            self.etag, self.expires = etag, now + self.ttl

    def confirm(self) -> None:
        """Raise unless this run still holds the lock (checked by a conditional write, now)."""
        self.beat()

    def release(self) -> None:
        with self._mutex:
            if not self.lost:
                self.storage.delete_if(self.key, self.etag)  # refused: another run holds it now; keep it


def lock_body(owner: str, acquired: str, expires: datetime, ttl: timedelta) -> bytes:
    doc: dict[str, Any] = {"owner": owner, "acquired": acquired, "expires": expires.isoformat(),
                           "beat_seconds": ttl.total_seconds() / BEATS_PER_TTL}
    if (match := _RUN_ID.search(owner)) is not None:
        doc["flow_run_id"] = match.group(1)
    return serialize_record(doc)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
        datetime.fromisoformat(doc["expires"])
        return doc if isinstance(doc, dict) else {}
    except (ValueError, KeyError, TypeError):
        return {}  # unreadable: treated as expired


def _expired(doc: dict[str, Any], now: datetime) -> bool:
    return not doc or datetime.fromisoformat(doc["expires"]) <= now


def _held_error(what: str, doc: dict[str, Any]) -> StoreError:
    return StoreError(f"{what} is held by run {doc.get('owner')} since {doc.get('acquired')}, and it is "
                      f"alive (its heartbeat moved on); try again after it ends (the lock expires at "
                      f"{doc.get('expires')} if that run dies)")


def acquire(storage: Storage, key: str, owner: str, ttl: timedelta, *, what: str,
            holder_ended: HolderEnded | None = None) -> Held:
    """Take the lock, or take over a dead holder's; raise ``StoreError`` naming a living holder."""
    beat = ttl.total_seconds() / BEATS_PER_TTL
    poll = max(0.1, min(2.0, beat / 4))
    deadline = time.monotonic() + ttl.total_seconds() + 2 * beat  # a lock never outlives its own ttl
    acquired = datetime.now(UTC).isoformat()
    watched: str | None = None
    asked: set[str] = set()  # the ETags whose holder the Prefect API was asked about

    def ended(doc: dict[str, Any], seen: str) -> bool:
        if holder_ended is None or seen in asked:
            return False
        asked.add(seen)
        return holder_ended(doc)

    while True:
        now = datetime.now(UTC)
        body = lock_body(owner, acquired, now + ttl, ttl)
        etag = storage.put_if(key, body, if_none_match=True)
        if etag is not None:
            return Held(storage, key, owner, ttl, what, etag, now + ttl, acquired)
        current, seen = storage.get_versioned(key)
        if current is None or seen is None:
            continue  # released in between
        doc = _parse(current)
        why = "it expired" if _expired(doc, now) else "its flow run ended" if ended(doc, seen) else None
        if why is not None:
            etag = storage.put_if(key, body, if_match=seen)  # fenced: only one taker wins
            if etag is not None:
                log.warning("%s: took over the lock of run %s (%s)", what, doc.get("owner"), why)
                return Held(storage, key, owner, ttl, what, etag, now + ttl, acquired)
            watched = None
            continue  # another run took it over first: look again
        if watched is not None and seen != watched:
            raise _held_error(what, doc)  # it beat while we watched: alive
        if time.monotonic() > deadline:
            raise _held_error(what, doc)
        watched = seen
        until_expiry = (datetime.fromisoformat(doc["expires"]) - now).total_seconds()
        time.sleep(max(0.05, min(poll, until_expiry + 0.05)))


@contextmanager
def hold_lock(storage: Storage, key: str, owner: str, ttl: timedelta, *, what: str,
              thread_name: str = "lock", holder_ended: HolderEnded | None = None) -> Iterator[Held]:
    """Hold the lock at ``key`` for ``owner`` while the block runs; ``what`` names it in the error a
    second run gets ("demo/object_1 (knack) is held by run ...")."""
    held = acquire(storage, key, owner, ttl, what=what, holder_ended=holder_ended)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(ttl.total_seconds() / BEATS_PER_TTL):
            try:
                held.beat()
            except StoreError:
                if held.lost:
                    return  # the run finds out at its next commit (``confirm``)
                # a failed beat is retried at the next one

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


def prefect_run_ended(doc: dict[str, Any]) -> bool:
    """True when the Prefect API (if one is configured and answers) says the lock's flow run ended."""
    run_id = doc.get("flow_run_id")
    if not run_id:
        return False
    try:
        from prefect.client.orchestration import get_client
        from prefect.context import FlowRunContext

        if FlowRunContext.get() is None:
            return False  # not in a flow run: no API to ask
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
        return state is not None and state.type.value in FINAL_STATES
    except Exception:  # noqa: BLE001 - no API, no such run, a timeout: the lock's expiry decides
        return False


def run_name() -> str:
    """The current flow run's name and id (a lock's owner: what a user sees and can cancel), or ``local``."""
    from prefect.context import FlowRunContext, TaskRunContext

    flow_ctx = FlowRunContext.get()
    task_ctx = TaskRunContext.get()
    run = (flow_ctx.flow_run if flow_ctx else None) or (task_ctx.task_run if task_ctx else None)
    return f"{run.name} ({run.id})" if run else "local"
