"""Open the record store for an app and environment: S3 when configured, else the local folder."""

from __future__ import annotations

from tasks.credentials import s3_location
from tasks.domain.config import Settings
from tasks.storage import LocalStorage, S3Storage, Storage
from tasks.store import RecordStore


def open_storage(env: str, settings: Settings) -> Storage:
    """The storage backend for ``env`` (checked: a missing bucket or dead endpoint fails here)."""
    location = s3_location(env, settings.bucket, settings.store)
    storage: Storage
    if location is None:
        storage = LocalStorage(settings.local_store)
    else:
        storage = S3Storage(location.client(max_pool_connections=settings.store_workers + 4), location.bucket)
    storage.check()
    return storage


def open_store(env: str, app: str, settings: Settings) -> RecordStore:
    """One app's store in one environment, with a worker pool sized like the connection pool."""
    return RecordStore(open_storage(env, settings), env, app, workers=settings.store_workers)
