"""The metadata cache kept in the store: fresh, same Knack app, same bytes as metadata.json, or a miss."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.knack import metadata_cache
from tasks.store.backends import LocalStorage
from tasks.store.records import RecordStore

pytestmark = pytest.mark.unit

APP_ID = "5a1c0ffee00000000000a001"
METADATA = {"application": {"id": APP_ID, "name": "Signal Operations", "objects": []}}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with RecordStore(LocalStorage(tmp_path), "dev", "demo") as opened:
        yield opened


def stored(store: RecordStore, metadata: dict = METADATA, app_id: str = APP_ID) -> None:
    store.write_metadata(metadata)
    assert metadata_cache.write_stamp(store, metadata_cache.fetched(app_id, T0, metadata), metadata)


def test_a_fresh_stamp_of_the_same_app_is_a_hit_with_its_age(store: RecordStore) -> None:
    stored(store)
    assert metadata_cache.cached(store, APP_ID, T0 + timedelta(minutes=59)) == (METADATA, timedelta(minutes=59))


@pytest.mark.parametrize("now", [T0 + timedelta(hours=1), T0 - timedelta(minutes=1)], ids=["expired", "future"])
def test_an_hour_old_stamp_or_one_from_the_future_is_a_miss(store: RecordStore, now: datetime) -> None:
    stored(store)
    assert metadata_cache.cached(store, APP_ID, now) is None


def test_another_knack_app_id_is_a_miss(store: RecordStore) -> None:
    stored(store)
    assert metadata_cache.cached(store, "5a1c0ffee00000000000b002", T0) is None


def test_metadata_json_changed_since_the_stamp_is_a_miss(store: RecordStore) -> None:
    stored(store)
    store.write_metadata({**METADATA, "edited": True})
    assert metadata_cache.cached(store, APP_ID, T0) is None


def test_no_stamp_or_an_unreadable_one_is_a_miss(store: RecordStore) -> None:
    store.write_metadata(METADATA)
    assert metadata_cache.cached(store, APP_ID, T0) is None
    store.storage.put(metadata_cache.stamp_key("dev", "demo"), b"{not json")
    assert metadata_cache.cached(store, APP_ID, T0) is None


def test_metadata_other_than_what_was_fetched_is_not_stamped(store: RecordStore) -> None:
    fetch = metadata_cache.fetched(APP_ID, T0, METADATA)
    assert not metadata_cache.write_stamp(store, fetch, {**METADATA, "other": 1})
    assert store.storage.get(metadata_cache.stamp_key("dev", "demo")) is None
