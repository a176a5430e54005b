"""Open the record store for an app and environment: S3 when configured, else the local folder.

A run opens the store in several tasks (metadata, records, each publisher); they share one S3 client
per process (boto3 clients are thread-safe), so the connection pool is set up once per run.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from tasks.credentials import StoreChoice, choose_store
from tasks.domain.config import Settings
from tasks.domain.deadlines import request_deadlines
from tasks.store.backends import LocalStorage, S3Storage, Storage
from tasks.store.metadata_reads import remembered
from tasks.store.records import RecordStore
from tasks.wire import guard_s3_client

_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CHECKED: set[str] = set()  # buckets this process found reachable (checked once, not once per step)
_LOCK = threading.Lock()


def store_choice(env: str, settings: Settings) -> StoreChoice:
    """Which store ``env`` uses and why (``tasks.credentials.choose_store``)."""
    return choose_store(env, settings.bucket, settings.store)


def describe_store(env: str, settings: Settings) -> str:
    """``s3://bucket (why)`` or ``local folder /path (why)``: a run's first log line and its artifact say it."""
    choice = store_choice(env, settings)
    where = (f"s3://{choice.location.bucket}" if choice.location is not None
             else f"local folder {Path(settings.local_store).resolve()}")
    return f"{where} ({choice.reason})"


def log_store_choice(env: str, settings: Settings, log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> str:
    """Log which store this run uses and why (a warning for prod on a local folder); returns the line."""
    choice = store_choice(env, settings)
    line = f"store: {describe_store(env, settings)}"
    log.info(line)
    if choice.warning:
        log.warning(choice.warning)
    return line


def shared_s3_client(env: str, settings: Settings) -> tuple[Any, Any, str] | None:
    """(the run's shared S3 client, the boto3 session that made it, bucket) for ``env``, made once per
    process and place; None for the local folder store. The session's ``get_credentials()`` is what the
    client signs with."""
    location = store_choice(env, settings).location
    if location is None:
        return None
    deadlines = request_deadlines(settings)
    key = (location.source, location.bucket, location.endpoint_url, settings.store_workers, deadlines)
    with _LOCK:
        if key not in _CLIENTS:
            # connections for two stores' worker pools at once: the destinations publish concurrently
            client, session = location.connect(max_pool_connections=2 * settings.store_workers + 4)
            # every attempt whole within its deadline, writes well inside half a lock's life (tasks/wire.py)
            _CLIENTS[key] = guard_s3_client(client, deadlines), session
        client, session = _CLIENTS[key]
        return client, session, location.bucket


def open_storage(env: str, settings: Settings) -> Storage:
    """The storage backend for ``env`` (checked: a missing bucket or dead endpoint fails here, on the
    process's first open of that bucket)."""
    s3 = shared_s3_client(env, settings)
    storage: Storage = LocalStorage(settings.local_store) if s3 is None else S3Storage(s3[0], s3[2])
    if storage.description not in _CHECKED:
        storage.check()
        if s3 is not None:
            with _LOCK:
                _CHECKED.add(storage.description)
    return storage


def open_store(env: str, app: str, settings: Settings) -> RecordStore:
    """One app's store in one environment, with a worker pool sized like the connection pool (a run that
    holds ``remembering_metadata`` reads the app's metadata once across its stores)."""
    return RecordStore(remembered(open_storage(env, settings), env, app), env, app,
                       workers=settings.store_workers)
