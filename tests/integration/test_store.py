"""The record store on both backends: S3 (moto_server) and the local folder, through the same code."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tasks.domain.errors import RecordError, StoreError
from tasks.domain.layout import Manifest, content_hash, serialize_record
from tasks.domain.plan import ids_to_delete, new_generation
from tasks.store.backends import LocalStorage, S3Storage
from tasks.store.records import RecordStore
from tests.fixtures import KNACKPY_TEST_APP
from tests.fixtures.store import CountingStorage, OpenStore

pytestmark = pytest.mark.integration

FIXTURE = KNACKPY_TEST_APP


def real_records() -> list[dict[str, Any]]:
    return json.loads((FIXTURE / "records-object_3.json").read_text())["records"]


@pytest.fixture(params=["s3", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> CountingStorage:
    if request.param == "s3":
        client, bucket = request.getfixturevalue("s3_bucket")
        return CountingStorage(S3Storage(client, bucket))
    return CountingStorage(LocalStorage(tmp_path / "store"))


def write(store: RecordStore, manifest: Manifest, records: list[dict[str, Any]]) -> Any:
    generation = new_generation(manifest)
    stats = store.write_records("object_3", [records[:10], records[10:]], manifest, generation, lambda r: None)
    if stats.written:
        manifest.generation = generation
    store.save_manifest("object_3", manifest)
    return stats


def record_keys(storage: CountingStorage) -> list[str]:
    return [k for k in storage.list_keys("dev/demo/object_3/") if "_state" not in k]


def test_first_write_uses_the_seed_layout_and_exact_bodies(storage: CountingStorage,
                                                           record_store: OpenStore) -> None:
    records = real_records()
    store = record_store(storage, "dev", "demo", workers=4)
    stats = write(store, Manifest(), records)
    assert (stats.fetched, stats.written, stats.unchanged) == (25, 25, 0)
    keys = record_keys(storage)
    assert sorted(keys) == sorted(f"dev/demo/object_3/{r['id']}.json" for r in records)
    body = storage.get(f"dev/demo/object_3/{records[0]['id']}.json")
    assert json.loads(body) == records[0]
    assert body == serialize_record(records[0])
    state = list(storage.list_keys("dev/demo/_state/"))
    assert state == ["dev/demo/_state/object_3/manifest.json"]


def test_unchanged_records_are_not_rewritten_and_edits_are(storage: CountingStorage,
                                                           record_store: OpenStore) -> None:
    records = real_records()
    store = record_store(storage, "dev", "demo", workers=4)
    manifest = Manifest()
    write(store, manifest, records)
    storage.puts.clear()
    edited = copy.deepcopy(records)
    for rec in edited[:3]:
        rec["field_125"] = rec["field_125_raw"] = "edited"
    stats = write(store, store.load_manifest("object_3"), edited)
    assert (stats.written, stats.unchanged) == (3, 22)
    record_puts = [k for k in storage.puts if "_state" not in k]
    assert sorted(record_puts) == sorted(f"dev/demo/object_3/{r['id']}.json" for r in edited[:3])
    manifest = store.load_manifest("object_3")
    assert manifest.generation == 2
    assert sorted(manifest.changed_since(1)) == sorted(r["id"] for r in edited[:3])


def test_change_detection_ignores_object_etags(storage: CountingStorage, record_store: OpenStore) -> None:
    """KMS-encrypted buckets return ETags that are not MD5s: only our own hashes decide."""
    records = real_records()
    store = record_store(storage, "dev", "demo", workers=4)
    write(store, Manifest(), records)
    manifest = store.load_manifest("object_3")
    first = records[0]
    assert manifest.records[first["id"]][0] == content_hash(serialize_record(first))
    storage.puts.clear()
    stats = write(store, manifest, records)
    assert stats.written == 0 and [k for k in storage.puts if "_state" not in k] == []


@pytest.mark.parametrize("bad_id", ["../escape", "", "5d7964422d7159001659b27a/x", "5D7964422D7159001659B27A", None,
                                    "5d7964422d7159001659b27a\n"])
def test_bad_ids_are_refused_and_nothing_of_their_page_is_written(storage: CountingStorage, bad_id: Any,
                                                               record_store: OpenStore) -> None:
    records = real_records()[:5]
    records[2] = {**records[2], "id": bad_id}
    store = record_store(storage, "dev", "demo", workers=2)
    with pytest.raises(RecordError) as err:
        store.write_records("object_3", [records], Manifest(), 1, lambda r: None)
    assert "app demo, container object_3, record" in str(err.value)
    assert record_keys(storage) == []


def test_full_refresh_deletes_exactly_what_knack_lost(storage: CountingStorage,
                                                      record_store: OpenStore) -> None:
    records = real_records()
    store = record_store(storage, "dev", "demo", workers=4)
    manifest = Manifest()
    write(store, manifest, records)
    remaining = records[4:]
    manifest = store.load_manifest("object_3")
    generation = new_generation(manifest)
    stats = store.write_records("object_3", [remaining], manifest, generation, lambda r: None)
    candidates = ids_to_delete(store.stored_ids(store.list_objects("object_3"), manifest), stats.seen_ids)
    deleted = store.delete_records("object_3", candidates, manifest, generation)
    assert sorted(deleted) == sorted(r["id"] for r in records[:4])
    assert sorted(record_keys(storage)) == sorted(f"dev/demo/object_3/{r['id']}.json" for r in remaining)
    assert sorted(manifest.deleted_since(1)) == sorted(deleted)


def test_cursors_and_metadata_round_trip(storage: CountingStorage, record_store: OpenStore) -> None:
    store = record_store(storage, "prod", "demo", workers=2)
    assert store.read_cursor("object_3", "knack") is None
    store.write_cursor("object_3", "knack", {"instant": "2024-03-01T10:00:00+00:00"})
    assert store.read_cursor("object_3", "knack") == {"instant": "2024-03-01T10:00:00+00:00"}
    meta = json.loads((FIXTURE / "metadata.json").read_text())
    assert store.write_metadata(meta) is True
    assert store.write_metadata(meta) is False
    assert store.read_metadata() == meta
    assert storage.get("prod/demo/metadata.json") is not None


def test_lock_excludes_a_second_writer_and_expires(storage: CountingStorage, record_store: OpenStore) -> None:
    store = record_store(storage, "dev", "demo", workers=2)
    # a short life: the holder beats every 0.5 s, so the second writer sees it alive within that (with the
    # default 60 s life it watched 15 s for the first beat)
    with store.lock("object_3", "run-a", "knack", ttl=timedelta(seconds=2)):
        with pytest.raises(StoreError, match=r"held by run run-a"), store.lock("object_3", "run-b", "knack"):
            pass
        with store.lock("object_3", "run-c", "socrata"):  # another role is independent
            pass
    with store.lock("object_3", "run-b", "knack"):  # released
        pass
    key = "dev/demo/_state/object_3/lock-knack.json"
    storage.put(key, serialize_record({"owner": "dead", "acquired": "2020-01-01T00:00:00+00:00",
                                       "expires": "2020-01-01T00:10:00+00:00"}))
    started = time.monotonic()
    with store.lock("object_3", "run-d", "knack", ttl=timedelta(seconds=1)):
        # dead: its version stayed the same for one life on this run's own clock (its timestamps say nothing)
        assert time.monotonic() - started >= 1
        assert json.loads(storage.get(key))["owner"] == "run-d"
    assert storage.get(key) is None


def test_unreachable_endpoint_and_missing_bucket_are_clear(moto_server: Any) -> None:
    import boto3
    from botocore.config import Config

    dead = boto3.client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="y",
                        config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(StoreError, match="cannot reach the S3 endpoint"):
        S3Storage(dead, "atd-knack-services").check()
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        S3Storage(moto_server.client(), "no-such-bucket").check()


def test_a_listing_with_etags_repairs_missing_and_damaged_objects(storage: CountingStorage,
                                                                  record_store: OpenStore) -> None:
    records = real_records()
    store = record_store(storage, "dev", "demo", workers=4)
    manifest = Manifest()
    write(store, manifest, records)
    manifest = store.load_manifest("object_3")
    assert set(manifest.etags) == {r["id"] for r in records}  # each write recorded its object's ETag
    gone, damaged = records[0]["id"], records[1]["id"]
    storage.delete(f"dev/demo/object_3/{gone}.json")
    storage.inner.put(f"dev/demo/object_3/{damaged}.json", b'{"id":"damaged"}')
    generation = new_generation(manifest)
    before = dict(manifest.records)
    storage.puts.clear()
    stats = store.write_records("object_3", [records], manifest, generation, lambda r: None,
                                present=store.list_objects("object_3"))
    assert (stats.written, stats.repaired, stats.unchanged) == (0, 2, len(records) - 2)
    assert sorted(storage.puts) == sorted(f"dev/demo/object_3/{rid}.json" for rid in (gone, damaged))
    assert manifest.records == before  # a repair changes no generation: destinations have these already
    assert json.loads(storage.get(f"dev/demo/object_3/{damaged}.json") or b"{}") == records[1]


LOCK = "dev/demo/_state/object_3/lock-knack.json"
MANIFEST = "dev/demo/_state/object_3/manifest.json"


def dead_lock(storage: CountingStorage) -> None:
    storage.put(LOCK, serialize_record({"owner": "dead", "acquired": "2020-01-01T00:00:00+00:00",
                                        "expires": "2020-01-01T00:10:00+00:00"}))


class RacingStorage(CountingStorage):
    """Holds every reader of the lock until ``readers`` of them have read it: a forced interleaving in which
    each run sees the same dead lock (and its ETag) before any of them writes."""

    def __init__(self, inner: Any, readers: int) -> None:
        super().__init__(inner)
        self.barrier = threading.Barrier(readers, timeout=30)
        self.racing = True

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        found = self.inner.get_versioned(key)
        if key == LOCK and self.racing:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait()
            self.racing = False  # once: later reads (the loser looking again) go straight through
        return found


class StalledStorage(CountingStorage):
    """A holder whose conditional writes fail (its heartbeats), as if its store were unreachable."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.stalled = threading.Event()

    def put_if(self, key: str, body: bytes, *, if_match: str | None = None,
               if_none_match: bool = False) -> str | None:
        if self.stalled.is_set():
            raise StoreError(f"PUT {key} failed: timed out")
        return super().put_if(key, body, if_match=if_match, if_none_match=if_none_match)


def commit(store: RecordStore, owner: str, outcome: dict[str, str], inside: threading.Event) -> None:
    """A run: lock, read the manifest, write, commit the manifest and cursor."""
    try:
        with store.lock("object_3", owner, "knack", ttl=timedelta(seconds=2)):
            manifest = store.load_manifest("object_3")
            store.read_cursor("object_3", "knack")
            inside.wait(10)  # the other run tries while this one holds the lock
            manifest.generation = new_generation(manifest)
            manifest.mark_written(f"{owner}-record", "digest", None, manifest.generation)
            store.save_manifest("object_3", manifest)
            store.write_cursor("object_3", "knack", {"instant": owner})
        outcome[owner] = "committed"
    except StoreError as exc:
        outcome[owner] = str(exc)
    finally:
        inside.set()


def test_two_runs_racing_for_one_expired_lock_exactly_one_commits(storage: CountingStorage,
                                                                 record_store: OpenStore) -> None:
    dead_lock(storage)
    racing = RacingStorage(storage.inner, readers=2)
    stores = [record_store(racing, "dev", "demo", workers=2) for _ in range(2)]
    outcome: dict[str, str] = {}
    inside = threading.Event()
    runs = [threading.Thread(target=commit, args=(store, f"run-{n}", outcome, inside))
            for n, store in enumerate(stores)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=60)
    committed = [owner for owner, what in outcome.items() if what == "committed"]
    assert len(committed) == 1, outcome
    loser = next(owner for owner in outcome if owner not in committed)
    assert "is held by run" in outcome[loser] and "alive" in outcome[loser], outcome
    manifest = json.loads(storage.get(MANIFEST))
    assert manifest["generation"] == 1 and list(manifest["records"]) == [f"{committed[0]}-record"]
    assert json.loads(storage.get("dev/demo/_state/object_3/cursor-knack.json")) == {"instant": committed[0]}
    assert storage.get(LOCK) is None  # released by its holder


def test_a_stalled_holder_stops_without_state_and_its_release_keeps_the_new_lock(
        storage: CountingStorage, record_store: OpenStore) -> None:
    stalled = StalledStorage(storage.inner)
    old, new = record_store(stalled, "dev", "demo", workers=2), record_store(storage, "dev", "demo", workers=2)
    with pytest.raises(StoreError, match="lost its lock"), \
            old.lock("object_3", "run-old", "knack", ttl=timedelta(seconds=2)):
        manifest = old.load_manifest("object_3")
        stalled.stalled.set()  # its heartbeats fail from now on
        # the lock expires after its missed beats; another run takes it over (a conditional write)
        with new.lock("object_3", "run-new", "knack", ttl=timedelta(seconds=30)):
            assert json.loads(storage.get(LOCK))["owner"] == "run-new"
            stalled.stalled.clear()  # the old holder's store answers again: too late
            manifest.generation = 1
            old.save_manifest("object_3", manifest)  # refused before anything is written
    assert storage.get(MANIFEST) is None
    # and a release after a take-over: the old holder's conditional delete leaves the new holder's lock
    with new.lock("object_3", "run-new", "knack", ttl=timedelta(seconds=30)):
        held = new._held["object_3"][0]
        stale = type(held)(storage, LOCK, "run-old", timedelta(seconds=2), "demo/object_3 (knack)",
                           etag='"0123456789abcdef0123456789abcdef"', renewed=held.renewed, acquired="x")
        stale.release()
        assert json.loads(storage.get(LOCK))["owner"] == "run-new"
        held.confirm()  # still the holder
    assert storage.get(LOCK) is None


def test_state_written_by_another_run_since_it_was_read_is_not_overwritten(
        storage: CountingStorage, record_store: OpenStore) -> None:
    first, second = record_store(storage), record_store(storage)
    one, two = first.load_manifest("object_3"), second.load_manifest("object_3")
    one.generation = 1
    first.save_manifest("object_3", one)
    two.generation = 1
    two.mark_written("other-record", "digest", None, 1)  # a different commit of the same generation
    with pytest.raises(StoreError, match="written by another run since this run read it"):
        second.save_manifest("object_3", two)
    first.read_cursor("object_3", "agol"), second.read_cursor("object_3", "agol")
    first.write_cursor("object_3", "agol", {"generation": 1})
    with pytest.raises(StoreError, match="written by another run"):
        second.write_cursor("object_3", "agol", {"generation": 2})
    assert json.loads(storage.get("dev/demo/_state/object_3/cursor-agol.json")) == {"generation": 1}
    first.write_cursor("object_3", "agol", {"generation": 3})  # its own writes move its version on
    assert json.loads(storage.get("dev/demo/_state/object_3/cursor-agol.json")) == {"generation": 3}
