"""The run lock's rules (``tasks/store/locks.py``) on a real S3 endpoint and on the local folder store:
expiry judged by the watcher on its own clock, and a holder that stops writing once its lease lapses."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tasks.domain.errors import LockLost, StoreError
from tasks.domain.layout import Manifest
from tasks.domain.plan import new_generation
from tasks.store.locks import acquire, hold_lock
from tests.fixtures.store import CountingStorage, OpenStore
from tests.integration import test_store
from tests.integration.test_store import StalledStorage

pytestmark = [pytest.mark.integration, pytest.mark.timing]

storage = test_store.storage  # the fixture: each test on S3 (moto) and on the local folder store

KEY = "dev/demo/_state/object_3/lock-knack.json"
SKEW = timedelta(minutes=10)


def skewed(offset: timedelta) -> Any:
    return lambda: datetime.now(UTC) + offset


def test_a_dead_holder_whose_clock_ran_ten_minutes_fast_is_taken_over_after_one_life(
        storage: CountingStorage) -> None:
    ttl = timedelta(seconds=1)
    dead = acquire(storage, KEY, "run-fast", ttl, what="demo/object_3 (knack)", wall=skewed(SKEW))
    assert datetime.fromisoformat(json.loads(storage.get(KEY) or b"{}")["expires"]) > datetime.now(UTC) + SKEW / 2
    started = time.monotonic()
    taker = acquire(storage, KEY, "run-b", ttl, what="demo/object_3 (knack)")  # it never beats again
    waited = time.monotonic() - started
    assert json.loads(storage.get(KEY) or b"{}")["owner"] == "run-b"
    assert ttl.total_seconds() <= waited < ttl.total_seconds() + 5  # one life, not the ten skewed minutes
    with pytest.raises(LockLost, match="lost its lock"):
        dead.confirm()  # its lease lapsed long before: it writes nothing more
    taker.release()


def test_a_live_holder_whose_clock_is_ten_minutes_slow_keeps_its_lock(storage: CountingStorage) -> None:
    ttl = timedelta(seconds=1)
    with hold_lock(storage, KEY, "run-slow", ttl, what="demo/object_3 (knack)", wall=skewed(-SKEW)) as held:
        assert datetime.fromisoformat(json.loads(storage.get(KEY) or b"{}")["expires"]) < datetime.now(UTC)
        with pytest.raises(StoreError, match="held by run run-slow .* alive"):
            acquire(storage, KEY, "run-b", ttl, what="demo/object_3 (knack)")
        held.confirm()  # still the holder, its lease running
        assert json.loads(storage.get(KEY) or b"{}")["owner"] == "run-slow"


def test_a_holder_that_cannot_renew_stops_writing_before_anyone_may_take_its_lock(
        storage: CountingStorage, record_store: OpenStore) -> None:
    """Half a life without a renewal: the holder's writes stop on its own clock; the watcher takes over only
    after a whole life, so nothing of the old holder is written after the take-over."""
    stalled = StalledStorage(storage.inner)
    old, new = record_store(stalled, workers=2), record_store(storage, workers=2)
    records = [{"id": f"{n:024x}", "field_1": n} for n in range(1, 6)]
    stopped: list[float] = []
    with pytest.raises(LockLost, match="lost its lock"), \
            old.lock("object_3", "run-old", "knack", ttl=timedelta(seconds=2)) as held:
        manifest = old.load_manifest("object_3")
        stalled.stalled.set()  # its heartbeats fail from now on
        while not held.lapsed():
            time.sleep(0.02)
        stopped.append(time.monotonic())
        with new.lock("object_3", "run-new", "knack", ttl=timedelta(seconds=2)):
            taken = time.monotonic()
            before = list(stalled.puts)
            with pytest.raises(LockLost):
                old.write_records("object_3", [records], manifest, new_generation(manifest), lambda r: None)
            assert stalled.puts == before  # not one record object
            old.save_manifest("object_3", manifest)
    assert stopped[0] < taken
    assert storage.get("dev/demo/_state/object_3/manifest.json") is None
    assert not [k for k in storage.list_keys("dev/demo/object_3/") if k.endswith(".json")]


def test_record_writes_are_conditional_on_what_the_manifest_recorded(storage: CountingStorage,
                                                                    record_store: OpenStore) -> None:
    """A record object changed behind the run's back (by a run that lost its lock, or by hand) is written
    over by the holder, and the manifest records the holder's own ETag."""
    store = record_store(storage, workers=2)
    record = {"id": "5f0e9c1d2b3a4c5d6e7f8091", "field_1": "first"}
    with store.lock("object_3", "run-a", "knack", ttl=timedelta(seconds=30)):
        manifest = Manifest()
        generation = new_generation(manifest)
        store.write_records("object_3", [[record]], manifest, generation, lambda r: None)
        key = f"dev/demo/object_3/{record['id']}.json"
        storage.inner.put(key, b'{"id":"5f0e9c1d2b3a4c5d6e7f8091","field_1":"stale"}')  # behind its back
        newer = {**record, "field_1": "second"}
        store.write_records("object_3", [[newer]], manifest, generation + 1, lambda r: None)
    assert json.loads(storage.get(key) or b"{}") == newer
    assert manifest.etags[record["id"]] == storage.list_etags("dev/demo/object_3/")[key]
