"""Run locks in the store: one writer per container and role, with a heartbeat and a takeover of dead runs.

A lock is a small JSON object under ``<env>/<app>/_state/<container>/lock-<role>.json`` naming its
owner (the flow run) and when it expires. It is taken with a conditional create, so two runs cannot
both hold it; while held, a heartbeat pushes its expiry forward; a lock whose run died (no heartbeat
for ``ttl``) is taken over.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta

from tasks.domain.errors import StoreError
from tasks.domain.layout import serialize_record
from tasks.store.backends import Storage


@contextmanager
def hold_lock(storage: Storage, key: str, owner: str, ttl: timedelta, *, what: str,
              thread_name: str = "lock") -> Iterator[None]:
    """Hold the lock at ``key`` for ``owner`` while the block runs; ``what`` names it in the error a
    second run gets ("demo/object_1 (knack) is held by run ...")."""

    def body() -> bytes:
        now = datetime.now(UTC)
        return serialize_record({"owner": owner, "acquired": acquired, "expires": (now + ttl).isoformat()})

    acquired = datetime.now(UTC).isoformat()
    if not storage.create_if_absent(key, body()):
        held = json.loads(storage.get(key) or b"{}")
        expires = datetime.fromisoformat(held["expires"]) if held.get("expires") else datetime.now(UTC)
        if expires > datetime.now(UTC):
            raise StoreError(f"{what} is held by run {held.get('owner')} "
                             f"since {held.get('acquired')}; try again after it ends "
                             f"(the lock expires at {held.get('expires')} if that run died)")
        storage.put(key, body())  # its run died without releasing it
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(ttl.total_seconds() / 3):
            # a failed beat is retried at the next one; the run itself fails if the store is down
            with suppress(StoreError):
                storage.put(key, body())

    beat = threading.Thread(target=heartbeat, name=thread_name, daemon=True)
    beat.start()

    def release() -> None:
        stop.set()
        beat.join()
        current = storage.get(key)
        if current and json.loads(current).get("owner") == owner:
            storage.delete(key)

    try:
        yield
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
