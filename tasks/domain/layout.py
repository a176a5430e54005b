"""The store's layout (a public contract) and its per-container state, as pure code.

Records: ``<env>/<app>/<container>/<record-id>.json``; metadata: ``<env>/<app>/metadata.json``;
everything else under ``<env>/<app>/_state/`` where no record listing can mistake it for a record.

Change tracking is a per-container *manifest*: record id → (content hash, Knack modified instant,
generation). Every run that changes the store gets the next generation number; a record's generation
says in which run it last changed (or was deleted). A destination's cursor is the last generation it
published, so "changed since the Socrata cursor" is a comparison of integers, immune to clock skew.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from tasks.domain.errors import RecordError
from tasks.domain.knack import is_knack_id

STATE_DIR = "_state"
TABLES_DIR = "_tables"


def record_key(env: str, app: str, container: str, record_id: object) -> str:
    """The object key of one record; anything but a Knack id is refused (no ``../``, no slashes)."""
    if not is_knack_id(record_id):
        raise RecordError("record id is not a Knack id (24 lowercase hex characters); not stored",
                          app=app, container=container, record_id=str(record_id)[:80])
    return f"{env}/{app}/{container}/{record_id}.json"


def container_prefix(env: str, app: str, container: str) -> str:
    return f"{env}/{app}/{container}/"


def record_id_from_key(key: str) -> str | None:
    """The record id of a record key, or None for anything else under the prefix."""
    name = key.rsplit("/", 1)[-1]
    stem = name[:-5] if name.endswith(".json") else ""
    return stem if is_knack_id(stem) else None


def metadata_key(env: str, app: str) -> str:
    return f"{env}/{app}/metadata.json"


def table_key(env: str, app: str, container: str) -> str:
    """A container's analytics table, ``<env>/<app>/_tables/<container>``: a sibling of ``_state``, never
    under a container's prefix."""
    return f"{env}/{app}/{TABLES_DIR}/{container}"


def state_key(env: str, app: str, container: str, name: str) -> str:
    """``<env>/<app>/_state/<container>/<name>.json``: manifest, cursors, lock."""
    return f"{env}/{app}/{STATE_DIR}/{container}/{name}.json"


def serialize_record(record: Mapping[str, Any]) -> bytes:
    """The stored document: the record exactly as Knack returned it, compact UTF-8 JSON.

    orjson writes it (the store's hottest step: a full sync serializes every record); what it
    refuses (a lone surrogate, a non-string key) goes through the standard library instead, with
    non-ASCII characters escaped: the same data, still valid JSON.
    """
    try:
        return orjson.dumps(record)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(record, separators=(",", ":")).encode("ascii")


def content_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def body_etag(body: bytes) -> str:
    """The ETag S3 gives a plain single-part PUT of ``body`` (its MD5), and the local store's ETag."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def is_plain_etag(etag: str) -> bool:
    """An MD5-shaped ETag (a plain PUT); SSE-KMS and multipart ETags are not the body's MD5."""
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag)


class ManifestEntry(NamedTuple):
    """One stored record, as its container's manifest knows it (a JSON list of these three, in order)."""

    digest: str            # the hash of the record's stored JSON bytes
    modified: str | None   # its Knack modified stamp (ISO 8601), when the container has a modified field
    generation: int        # the store generation that last wrote it


@dataclass
class Manifest:
    """What the store holds for one container, and when (in generations) each record last changed."""

    generation: int = 0
    records: dict[str, ManifestEntry] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)                          # id -> gen of the delete
    etags: dict[str, str] = field(default_factory=dict)   # id -> the ETag its object had when written

    @classmethod
    def from_json(cls, body: bytes | None) -> Manifest:
        if not body:
            return cls()
        data = json.loads(body)
        return cls(generation=int(data["generation"]),
                   records={k: ManifestEntry(v[0], v[1], int(v[2])) for k, v in data["records"].items()},
                   deleted={k: int(v) for k, v in data.get("deleted", {}).items()},
                   etags={k: str(v) for k, v in data.get("etags", {}).items()})

    def to_json(self) -> bytes:
        return json.dumps({"version": 1, "generation": self.generation,
                           "records": {k: list(v) for k, v in self.records.items()},
                           "deleted": self.deleted, "etags": self.etags}, separators=(",", ":")).encode("utf-8")

    def is_unchanged(self, record_id: str, digest: str) -> bool:
        entry = self.records.get(record_id)
        return entry is not None and entry.digest == digest

    def mark_written(self, record_id: str, digest: str, modified: str | None, generation: int,
                     etag: str | None = None) -> None:
        self.records[record_id] = ManifestEntry(digest, modified, generation)
        self.deleted.pop(record_id, None)
        if etag:
            self.etags[record_id] = etag
        else:
            self.etags.pop(record_id, None)

    def mark_deleted(self, record_id: str, generation: int) -> None:
        self.records.pop(record_id, None)
        self.etags.pop(record_id, None)
        self.deleted[record_id] = generation

    def prune_deleted(self, applied_by_all: int) -> list[str]:
        """Forget the deletes every destination has applied (generation at or below ``applied_by_all``)."""
        gone = [rid for rid, gen in self.deleted.items() if gen <= applied_by_all]
        for rid in gone:
            del self.deleted[rid]
        return gone

    def needs_repair(self, record_id: str, body: bytes, stored_etag: str | None) -> bool:
        """Is the stored object of an unchanged record missing, or not the bytes this manifest wrote?

        Its ETag is compared with the one recorded at the write; without one (a manifest from before
        ETags were kept), an MD5-shaped ETag is compared with the body's MD5, and any other is trusted.
        """
        if stored_etag is None:
            return True
        recorded = self.etags.get(record_id)
        if recorded is not None:
            return recorded != stored_etag
        return is_plain_etag(stored_etag) and stored_etag != body_etag(body)

    def changed_since(self, generation: int) -> list[str]:
        """Ids written after ``generation`` (all of them when it is 0)."""
        return [rid for rid, entry in self.records.items() if entry.generation > generation]

    def deleted_since(self, generation: int) -> list[str]:
        return [rid for rid, gen in self.deleted.items() if gen > generation]
