"""What a destination must publish, read only from the store: the plan, the records, the cursor.

A destination's cursor is the last store generation it published completely. A run publishes the
records written after it (all of them on a full refresh) and the deletes recorded after it, then
moves the cursor to the generation it read. A failure anywhere leaves the cursor where it was, so
the next run publishes the same records again; upserts keyed by record id make that harmless.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tasks.context import open_store
from tasks.domain.config import ContainerConfig, Settings
from tasks.domain.errors import StoreError
from tasks.domain.formatting import ContainerSchema, container_schema, destination_names, format_record
from tasks.domain.layout import Manifest
from tasks.store import RecordStore, run_name


@dataclass(frozen=True)
class PublishPlan:
    """The work of one publish run."""

    destination: str
    full: bool
    cursor: int               # the generation published before this run
    target: int               # the generation this run publishes up to
    changed: list[str]        # ids to upsert
    deleted: list[str]        # ids to delete downstream (on a full refresh: filled in by the publisher)
    advance: bool             # may the cursor move when the run succeeds

    def summary(self) -> str:
        mode = "full refresh" if self.full else "incremental"
        return (f"{self.destination}: {mode} from generation {self.cursor} to {self.target}: "
                f"{len(self.changed)} to upsert, {len(self.deleted)} to delete")


def plan_publish(manifest: Manifest, cursor_doc: Mapping[str, Any] | None, destination: str, *,
                 full: bool, since: datetime | None = None) -> PublishPlan:
    """Changed and deleted ids since the destination's cursor (everything on a full refresh or first run).

    ``since`` narrows the upserts to records whose Knack modified instant is at or after it; such a
    run does not move the cursor (it may have left earlier changes out).
    """
    cursor = int(cursor_doc["generation"]) if cursor_doc else 0
    full = full or cursor_doc is None
    changed = manifest.changed_since(0 if full else cursor)
    if since is not None:
        changed = [rid for rid in changed
                   if (modified := manifest.records[rid][1]) is None or datetime.fromisoformat(modified) >= since]
    deleted = [] if full else manifest.deleted_since(cursor)
    return PublishPlan(destination, full, cursor, manifest.generation, sorted(changed), sorted(deleted),
                       advance=since is None)


def load_schema(store: RecordStore, container: str) -> tuple[dict[str, Any], ContainerSchema]:
    """The stored metadata (publishers never ask Knack) and the container's schema from it."""
    metadata = store.read_metadata()
    if metadata is None:
        raise StoreError(f"no metadata stored for app {store.app} ({store.env}); "
                         f"run metadata_to_s3 or sync first")
    return metadata, container_schema(metadata, container)


def formatted_batches(store: RecordStore, container: str, ids: list[str], schema: ContainerSchema,
                      batch: int) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """(record id, formatted values) in batches, read with concurrent GETs."""
    for docs in store.read_records(container, ids, batch=batch):
        yield [(doc["id"], format_record(doc, schema)) for doc in docs]


def advance_cursor(store: RecordStore, container: str, plan: PublishPlan, counts: Mapping[str, int]) -> None:
    """Record that the destination now holds everything up to ``plan.target``."""
    if plan.advance:
        store.write_cursor(container, plan.destination, {"generation": plan.target, **counts})


@dataclass
class PublishContext:
    """Everything a publisher reads from the store before it talks to its destination."""

    store: RecordStore
    schema: ContainerSchema
    names: dict[str, str]
    manifest: Manifest
    plan: PublishPlan


@contextmanager
def publishing(app: str, cfg: ContainerConfig, env: str, settings: Settings, destination: str, *,
               full: bool, since: datetime | None) -> Iterator[PublishContext]:
    """Open the store, hold the destination's lock for the container, and plan the run."""
    with open_store(env, app, settings) as store, \
            store.lock(cfg.key, run_name(), destination, timedelta(seconds=settings.lock_ttl_seconds)):
        _, schema = load_schema(store, cfg.key)
        names = destination_names(schema, cfg.socrata_field_map)
        manifest = store.load_manifest(cfg.key)
        plan = plan_publish(manifest, store.read_cursor(cfg.key, destination), destination,
                            full=full, since=since)
        yield PublishContext(store, schema, names, manifest, plan)
