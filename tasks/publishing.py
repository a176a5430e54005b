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

from prefect.logging import get_run_logger

from tasks.domain.config import ContainerConfig, Settings
from tasks.domain.errors import StoreError
from tasks.domain.formatting import (
    ContainerSchema,
    container_schema,
    destination_names,
    format_record,
    format_value,
)
from tasks.domain.layout import Manifest
from tasks.domain.plan import PublishPlan, plan_publish
from tasks.store.open import open_store
from tasks.store.records import RecordStore, run_name


def load_schema(store: RecordStore, container: str) -> tuple[dict[str, Any], ContainerSchema]:
    """The stored metadata (publishers never ask Knack) and the container's schema from it."""
    metadata = store.read_metadata()
    if metadata is None:
        raise StoreError(f"no metadata stored for app {store.app} ({store.env}); "
                         f"run metadata_to_s3 or sync first")
    return metadata, container_schema(metadata, container)


def formatted_batches(store: RecordStore, container: str, ids: list[str], schema: ContainerSchema,
                      batch: int, unfit: list[tuple[str, str]] | None = None
                      ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """(record id, formatted values) in batches, read with concurrent GETs.

    A record with a value that cannot be read (a malformed date) is left out and noted in ``unfit``
    as (id, "field_N: why"), so the others still publish; without ``unfit`` it raises ValueError.
    """
    for docs in store.read_records(container, ids, batch=batch):
        rows = []
        for doc in docs:
            try:
                rows.append((doc["id"], format_record(doc, schema)))
            except (ValueError, TypeError, KeyError) as exc:
                why = _unreadable_fields(doc, schema) or str(exc)
                if unfit is None:
                    raise ValueError(f"record {doc.get('id')}: {why}") from None
                unfit.append((str(doc.get("id")), why))
        yield rows


def _unreadable_fields(doc: Mapping[str, Any], schema: ContainerSchema) -> str:
    """Which fields of ``doc`` cannot be formatted, and why."""
    problems = []
    for fld in schema.fields:
        try:
            format_value(fld, doc.get(fld.key), doc.get(f"{fld.key}_raw"), schema.timezone)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"{fld.key} ({fld.label}): {exc}")
    return "; ".join(problems)


def advance_cursor(store: RecordStore, container: str, plan: PublishPlan, counts: Mapping[str, int]) -> None:
    """Record that the destination now holds everything up to ``plan.target``."""
    if plan.advance:
        store.write_cursor(container, plan.destination, {"generation": plan.target, **counts,
                                                         "columns": dict(plan.columns)})


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
                            full=full, since=since, columns=names)
        if plan.remapped:
            get_run_logger().warning("%s/%s → %s: the columns changed since the last publish (%s): every row "
                                     "is published again, so no column mixes two fields", app, cfg.key,
                                     destination, "; ".join(plan.remapped))
        yield PublishContext(store, schema, names, manifest, plan)
