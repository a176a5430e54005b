"""Knack → store through the real client and the emulator, on S3 (moto) and on the local folder:
exact keys and bodies, exactly k PUTs for k edits, exactly d deletes, and crashes that lose nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from blocks.knack import KnackCredentials
from emulators.knack import KnackEmulator
from tasks.clock import utc_now
from tasks.domain.config import parse_config
from tasks.domain.errors import StoreError
from tasks.domain.layout import serialize_record
from tasks.knack.client import KnackClient
from tasks.knack.offload import OffloadRequest, offload_container
from tasks.knack.ratelimit import LocalRateLimiter
from tasks.store.backends import LocalStorage, S3Storage
from tasks.store.records import RecordStore
from tests.fixtures.store import CountingStorage, OpenStore

pytestmark = pytest.mark.integration

CONFIG = parse_config({"apps": {"demo": {"containers": {
    "object_1": {"modified_date_field_id": "field_27"}}}}}, "test.yaml")
CFG = CONFIG.container("demo", "object_1")
LOG = logging.getLogger("test-offload")


class FailingStorage(CountingStorage):
    """A real backend that fails the first PUT of keys containing ``fail_on`` (a crash at that point)."""

    def __init__(self, inner: Any, fail_on: str) -> None:
        super().__init__(inner)
        self.fail_on = fail_on

    def _crash(self, key: str) -> None:
        if self.fail_on and self.fail_on in key:
            self.fail_on = ""
            raise StoreError(f"injected failure writing {key}")

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> str | None:
        self._crash(key)
        return super().put(key, body, content_type)

    def put_if(self, key: str, body: bytes, *, if_match: str | None = None,
               if_none_match: bool = False) -> str | None:
        self._crash(key)  # state (manifest, cursors) is written conditionally
        return super().put_if(key, body, if_match=if_match, if_none_match=if_none_match)


@pytest.fixture(params=["s3", "local"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "s3":
        client, bucket = request.getfixturevalue("s3_bucket")
        return S3Storage(client, bucket)
    return LocalStorage(tmp_path / "store")


def offload(storage: Any, emu: KnackEmulator, *, full: bool = False) -> Any:
    client = KnackClient(KnackCredentials(app_id=emu.app_id, api_key=emu.api_key, api_url=emu.api_url), "demo",
                         limiter=LocalRateLimiter(1000))
    metadata = client.get_metadata()

    def pages(since: datetime | None) -> Any:
        return client.iter_records("object_1", since=since, modified_field="field_27",
                                   tz="Central Time (US & Canada)")

    with RecordStore(storage, "dev", "demo", workers=4) as store:
        return offload_container(store, pages, CFG, metadata, OffloadRequest(since=None, full=full, started=utc_now()),
                                 log=LOG, knack=client)


def stored(storage: Any) -> dict[str, bytes]:
    return {k.rsplit("/", 1)[1][:-5]: storage.get(k) for k in storage.list_keys("dev/demo/object_1/")}


def knack_bodies(emu: KnackEmulator) -> dict[str, bytes]:
    return {r["id"]: serialize_record(r) for r in emu.records("object_1")}


def test_exact_keys_bodies_then_k_puts_then_d_deletes(backend: Any, knack_emulator: KnackEmulator) -> None:
    storage = CountingStorage(backend)
    first = offload(storage, knack_emulator)
    assert (first.mode, first.written) == ("full", 200)
    assert stored(storage) == knack_bodies(knack_emulator)

    edited = knack_emulator.edit_random("object_1", 9, seed=4)
    storage.puts.clear()
    second = offload(storage, knack_emulator)
    assert second.mode == "incremental" and second.written == 9
    record_puts = sorted(k for k in storage.puts if "/_state/" not in k)
    assert record_puts == sorted(f"dev/demo/object_1/{rid}.json" for rid in edited)
    assert stored(storage) == knack_bodies(knack_emulator)

    doomed = [r["id"] for r in knack_emulator.records("object_1")[:3]]
    for rid in doomed:
        knack_emulator.delete_record("object_1", rid)
    storage.deletes.clear()
    third = offload(storage, knack_emulator, full=True)
    assert third.deleted == 3 and third.written == 0
    assert sorted(storage.deletes) == sorted(f"dev/demo/object_1/{rid}.json" for rid in doomed)
    assert stored(storage) == knack_bodies(knack_emulator)


@pytest.mark.parametrize("crash_at", ["/object_1/", "manifest", "cursor-knack"])
def test_a_crash_at_any_write_then_a_rerun_ends_equal_to_knack(backend: Any, knack_emulator: KnackEmulator,
                                                               crash_at: str, record_store: OpenStore) -> None:
    offload(backend, knack_emulator)
    cursor = record_store(backend).read_cursor("object_1", "knack")
    edited = knack_emulator.edit_random("object_1", 6, seed=8)
    crashing = FailingStorage(backend, crash_at)
    with pytest.raises(StoreError, match="injected failure"):
        offload(crashing, knack_emulator)
    assert record_store(backend).read_cursor("object_1", "knack") == cursor  # not advanced
    rerun = offload(CountingStorage(backend), knack_emulator)
    assert stored(backend) == knack_bodies(knack_emulator)
    manifest = record_store(backend).load_manifest("object_1")
    assert set(manifest.changed_since(1)) == set(edited)  # every edit is marked for the publishers
    assert rerun.written <= 6


def test_cursor_trails_the_fetch_start(backend: Any, knack_emulator: KnackEmulator, record_store: OpenStore) -> None:
    before = utc_now()
    offload(backend, knack_emulator)
    took = utc_now() - before
    cursor = datetime.fromisoformat(record_store(backend).read_cursor("object_1", "knack")["instant"])
    # Knack's Date header (whole seconds) less page 1's time, less the 2-minute lag, down to the minute
    earliest = before - timedelta(minutes=3, seconds=1) - took
    assert earliest <= cursor <= before - timedelta(minutes=1)
    assert cursor.second == 0 and cursor.microsecond == 0
