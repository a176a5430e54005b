"""The app metadata cached for an hour in the store itself, so every run of the app reuses it, in any container.

A stamp ``<env>/<app>/_state/metadata-fetched.json`` ({"app_id", "fetched_at", "sha256"}) is written next
to ``metadata.json`` whenever metadata just fetched from Knack is stored. A run then takes the stored
metadata instead of asking Knack while the stamp is under an hour old, names the Knack app id the run's
credentials name, and matches the stored ``metadata.json`` byte for byte. Nothing of it lives in the
process or in Prefect's result storage, both of which are empty in a new container.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tasks.domain.layout import STATE_DIR, metadata_key, serialize_record
from tasks.store.records import RecordStore

MAX_AGE = timedelta(hours=1)


@dataclass(frozen=True)
class Fetched:
    """Metadata as fetched from Knack: which app, when, and the digest of its stored bytes."""

    app_id: str
    fetched_at: datetime
    sha256: str


def stamp_key(env: str, app: str) -> str:
    return f"{env}/{app}/{STATE_DIR}/metadata-fetched.json"


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def fetched(app_id: str, fetched_at: datetime, metadata: dict[str, Any]) -> Fetched:
    return Fetched(app_id, fetched_at, digest(serialize_record(metadata)))


def cached(store: RecordStore, app_id: str, now: datetime) -> tuple[dict[str, Any], timedelta] | None:
    """The stored metadata and its age, when it is fresh enough and of this app; None otherwise."""
    body = store.storage.get(stamp_key(store.env, store.app))
    if not body:
        return None
    try:
        stamp = json.loads(body)
        age = now - datetime.fromisoformat(stamp["fetched_at"])
    except (ValueError, KeyError, TypeError):
        return None
    if stamp.get("app_id") != app_id or not timedelta(0) <= age < MAX_AGE:
        return None
    stored = store.storage.get(metadata_key(store.env, store.app))
    if stored is None or digest(stored) != stamp.get("sha256"):
        return None
    return json.loads(stored), age


def write_stamp(store: RecordStore, fetch: Fetched, metadata: dict[str, Any]) -> bool:
    """Stamp the stored metadata with its fetch, if ``metadata`` is what was fetched; True if stamped."""
    if digest(serialize_record(metadata)) != fetch.sha256:
        return False
    stamp = {"app_id": fetch.app_id, "fetched_at": fetch.fetched_at.isoformat(), "sha256": fetch.sha256}
    store.storage.put(stamp_key(store.env, store.app), json.dumps(stamp).encode())
    return True
