"""One publish driver for every destination: plan → read the changed records once → the destination.

A destination's cursor is the last store generation it published completely. A run publishes the
records written after it (all of them on a full refresh) and the deletes recorded after it, then
moves the cursor to the generation it read. A failure anywhere leaves the cursor where it was, so
the next run publishes the same records again; upserts keyed by record id make that harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from prefect.logging import get_run_logger

from tasks.deadline import TimeLimitReached, time_limit
from tasks.domain.config import ContainerConfig, Settings, delete_guard
from tasks.domain.destinations import AuditCounts, Capabilities, PublishCounts
from tasks.domain.drift import drifted, rows_after
from tasks.domain.errors import DeletesHeldBack, StoreError
from tasks.domain.formatting import (
    ContainerSchema,
    container_schema,
    destination_names,
    format_record,
    format_value,
)
from tasks.domain.layout import Manifest
from tasks.domain.plan import PublishPlan, plan_publish, received_after, with_missing, with_suspects
from tasks.domain.results import PublishResult
from tasks.fence import fenced, unfenced
from tasks.store.locks import Held, run_name
from tasks.store.open import open_store
from tasks.store.records import RecordStore
from tasks.store.shared_reads import SharedReader, shared_reader


def load_schema(store: RecordStore, container: str) -> tuple[dict[str, Any], ContainerSchema]:
    """The stored metadata (publishers never ask Knack) and the container's schema from it."""
    metadata = store.read_metadata()
    if metadata is None:
        raise StoreError(f"no metadata stored for app {store.app} ({store.env}); "
                         f"run metadata_to_s3 or sync first")
    return metadata, container_schema(metadata, container)


def formatted_batches(store: RecordStore, container: str, ids: list[str], schema: ContainerSchema,
                      batch: int, unreadable: list[tuple[str, str]], shared: SharedReader | None = None
                      ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """(record id, formatted values) in batches, read with concurrent GETs (once for every destination
    of the run, with ``shared``).

    A record with a value that cannot be read (a malformed date) is left out and noted in
    ``unreadable`` as (id, "field_N: why"), so the others still publish.
    """
    for docs in store.read_records(container, ids, batch=batch, shared=shared):
        rows = []
        for doc in docs:
            try:
                rows.append((doc["id"], format_record(doc, schema)))
            except (ValueError, TypeError, KeyError) as exc:
                unreadable.append((str(doc.get("id")), _unreadable_fields(doc, schema) or str(exc)))
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


def advance_cursor(ctx: PublishContext, container: str, plan: PublishPlan, *, upserted: int, deleted: int) -> None:
    """Record what the destination now holds: the records it was sent, then everything up to ``plan.target``
    (the cursor notes how many rows the run upserted and deleted)."""
    store = ctx.store
    received = received_after(ctx.received or {}, ctx.manifest, plan.changed)
    if received != ctx.received:
        store.write_received(container, plan.destination, received)
    rows = rows_after(ctx.rows, ctx.sent_rows, ctx.manifest.records)
    if rows != ctx.rows:
        store.write_row_digests(container, plan.destination, rows)
    if plan.advance:
        store.write_cursor(container, plan.destination, {"generation": plan.target, "upserted": upserted,
                                                         "deleted": deleted,
                                                         "columns": dict(plan.columns)})
    store.clear_suspects(container, ctx.notes)  # their records were sent again in this run


@dataclass
class PublishContext:
    """Everything a publisher reads from the store before it talks to its destination."""

    store: RecordStore
    schema: ContainerSchema
    names: dict[str, str]
    manifest: Manifest
    plan: PublishPlan
    received: dict[str, str] | None = None  # what the destination last received (None: nothing recorded)
    shared: SharedReader | None = None      # the reads shared with the run's other destinations
    held: Held | None = None                # the destination's lock: the run's write fence
    notes: list[str] = field(default_factory=list)  # notes of runs that lost their lock, acted on by this run
    rows: dict[str, str] = field(default_factory=dict)       # id → digest of the row last sent (drift audit)
    sent_rows: dict[str, str] = field(default_factory=dict)  # id → digest of the row this run sent


@contextmanager
def publishing(app: str, cfg: ContainerConfig, env: str, settings: Settings, destination: str, *,
               full: bool, since: datetime | None, republish: bool = False) -> Iterator[PublishContext]:
    """Open the store, hold the destination's lock for the container, and plan the run."""
    with open_store(env, app, settings) as store, \
            store.lock(cfg.key, run_name(), destination, timedelta(seconds=settings.lock_ttl_seconds)) as held, \
            fenced(held):
        _, schema = load_schema(store, cfg.key)
        names = destination_names(schema, cfg.socrata_field_map)
        manifest = store.load_manifest(cfg.key)
        received = store.read_received(cfg.key, destination)
        plan = plan_publish(manifest, store.read_cursor(cfg.key, destination), destination, full=full,
                            since=since, columns=names, received=received, republish=republish)
        notes = store.read_suspects(cfg.key, destination)
        plan = with_suspects(plan, manifest, {rid for ids in notes.values() for rid in ids})
        # the digests of the rows last sent: read only by a run that sends or audits something
        rows = store.read_row_digests(cfg.key, destination) if plan.full or plan.changed or plan.deleted else {}
        if plan.suspect:
            get_run_logger().warning("%s/%s → %s: %d records are sent again: a run that lost its lock may have "
                                     "sent them after another run took over", app, cfg.key, destination,
                                     len(plan.suspect))
        if plan.remapped:
            get_run_logger().warning("%s/%s → %s: the columns changed since the last publish (%s): every row "
                                     "is published again, so no column mixes two fields", app, cfg.key,
                                     destination, "; ".join(plan.remapped))
        with shared_reader(env, app, cfg.key, destination, manifest.records) as shared:
            if shared is not None:
                shared.want(plan.changed)
            yield PublishContext(store, schema, names, manifest, plan, received, shared, held=held,
                                 notes=list(notes), rows=rows)


class Destination(Protocol):
    """A destination as ``publish`` sees it before the store opens: making one raises any config mistake."""

    role: str                   # its lock and cursor name: "socrata", "agol" or "table"
    capabilities: Capabilities  # what a run may do there (from the container config)

    # connect, check, log the columns it cannot take: the destination, ready
    def open(self, ctx: PublishContext) -> OpenDestination: ...


class OpenDestination(Protocol):
    """A destination connected for one run (``Destination.open``): every field set."""

    name: str        # in logs: "Socrata abcd-1234", "ArcGIS Signals"
    batch_size: int  # records read (and sent) per batch

    # a record as a row or feature; None if refused there (kept aside, then named)
    def to_payload(self, record_id: str, values: dict[str, Any]) -> dict[str, Any] | None: ...
    # send them all; ``upserted`` being the number sent
    def upsert(self, payloads: Iterator[dict[str, Any]]) -> PublishCounts: ...
    # every record id it holds
    def ids(self) -> set[str]: ...
    # ids already gone are fine (a re-run repeats them); how many it deleted (None: it does not count)
    def delete(self, ids: list[str]) -> int | None: ...
    # the error naming every record left out (unreadable here, refused there), if any
    def left_out(self, unreadable: list[tuple[str, str]]) -> Exception | None: ...
    # the counts of the run's last log line
    def outcome(self, result: PublishResult, cursor: int) -> str: ...
    # the drift audit, where the destination can read its rows back (Socrata, ArcGIS, the table):
    # ``digest(payload)``, a sent row's digest; ``held_rows()``, id → digest of every row it holds


def doomed_ids(destination: OpenDestination, capabilities: Capabilities, ctx: PublishContext, cfg: ContainerConfig,
               held: set[str] | None, log: logging.Logger | logging.LoggerAdapter[logging.Logger]
               ) -> tuple[list[str], int]:
    """(record ids to delete downstream, how many records the container holds there).

    Incremental: the deletes the store recorded since the cursor (each confirmed gone by Knack). A full
    refresh (or a first publish): the rows the destination holds and the store lacks, but only when the
    store holds a complete, confirmed listing (a new store started with ``-d`` holds a few records, and
    the dataset may be full from an older system) and never where ``capabilities`` keep them (a
    ``no_replace_socrata`` dataset).
    ``held``: every id the destination held when the run started (listed on a full refresh).
    """
    plan = ctx.plan
    if not plan.full:
        return plan.deleted, len(ctx.manifest.records) + len(plan.deleted)
    where = f"{ctx.store.app}/{cfg.key} → {destination.name}"
    # the deletes recorded since the cursor go in any case (each confirmed gone by Knack)
    recorded = sorted(ctx.manifest.deleted_since(plan.cursor)) if plan.cursor else []
    if (kept := capabilities.strays_note()) is not None:
        log.info("%s: %s", where, kept)
        return recorded, len(ctx.manifest.records) + len(recorded)
    if ctx.store.read_complete_listing(cfg.key) is None:
        log.info("%s: the store holds no complete listing of Knack yet (a full offload writes it): rows the "
                 "store lacks are left in place", where)
        return recorded, len(ctx.manifest.records) + len(recorded)
    held = destination.ids() if held is None else held
    strays = held - set(ctx.manifest.records)
    # a stray goes once Knack confirmed it gone, as the store's own candidates are: the deletes the store
    # recorded; the others wait for the next full offload, which asks Knack about them
    unconfirmed = sorted(rid for rid in strays if rid not in ctx.manifest.deleted)
    if unconfirmed != ctx.store.read_strays(cfg.key, plan.destination):
        ctx.store.write_strays(cfg.key, plan.destination, unconfirmed)
    if unconfirmed:
        log.info("%s: %d rows the store lacks are not confirmed gone by Knack yet: the next full offload asks "
                 "Knack about them (%s)", where, len(unconfirmed), ", ".join(unconfirmed[:10]))
    return sorted(strays - set(unconfirmed)), len(held)


def _audit(destination: OpenDestination, ctx: PublishContext, plan: PublishPlan
           ) -> tuple[set[str], PublishPlan, AuditCounts | None]:
    """A reconcile's read of what the destination holds: (every id there, the plan with what is missing
    and what drifted added, the audit's counts). A destination that can read its rows back (``held_rows``)
    is compared row by row with the digests of what it was last sent; another only by its ids."""
    held_rows = getattr(destination, "held_rows", None)
    if held_rows is None or plan.republish:
        held = destination.ids()
        plan = with_missing(plan, ctx.manifest, held)
        return held, plan, AuditCounts(len(held), len(plan.missing)) if held_rows is None else None
    digests = held_rows()
    held = set(digests)
    plan = with_missing(plan, ctx.manifest, held)
    changed = set(plan.changed)
    off = [rid for rid in drifted(ctx.rows, digests, ctx.manifest.records) if rid not in changed]
    if off:
        get_run_logger().warning("%s → %s: %d rows differ from what they were last sent (edited there, or "
                                 "written by another run): sent again (%s)", ctx.store.app, destination.name,
                                 len(off), ", ".join(off[:10]) + (" ..." if len(off) > 10 else ""))
        plan = replace(plan, changed=sorted(changed | set(off)), drifted=off)
    return held, plan, AuditCounts(len(held), len(plan.missing), differed=len(off))


def note_late_writes(ctx: PublishContext, container: str, sent: list[str],
                     log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
    """When a write of this run ended after its lease lapsed (``tasks/store/locks.py``), leave a note naming
    what it was sending, so that the next run sends it again over any older values that landed late."""
    if ctx.held is None or not ctx.held.late or not sent:
        return
    try:
        with unfenced():
            key = ctx.store.write_suspects(container, ctx.plan.destination, ctx.held.owner, sent)
    except StoreError as exc:
        log.error("%s/%s → %s: a write ended after this run's lease and the note for the next run could not be "
                  "saved (%s): run a full refresh with --republish", ctx.store.app, container, ctx.plan.destination,
                  exc)
        return
    log.warning("%s/%s → %s: %d writes ended after this run's lease lapsed; %d records are noted in %s for the "
                "next run to send again", ctx.store.app, container, ctx.plan.destination, ctx.held.late, len(sent),
                key)


def publish(destination: Destination, app: str, cfg: ContainerConfig, env: str, settings: Settings, *,
            full: bool, since: datetime | None, allow_mass_delete: bool = False,
            republish: bool = False) -> PublishResult:
    """Upsert changed records and delete deleted ones. A full refresh reconciles: it upserts what the
    destination did not receive or lost, then deletes strays; ``republish`` upserts every record.

    Never a replace: the destination is never empty or partial while this runs. The cursor moves
    only when everything was sent, no record was left out and no delete was held back by the guard.
    It stops at ``publish_time_limit_seconds`` (a hung destination), with the same guarantees.
    """
    where = f"{app}/{cfg.key} → {destination.role}"
    with time_limit(settings.publish_time_limit_seconds, where) as deadline:
        try:
            return _publish(destination, app, cfg, env, settings, full=full, since=since,
                            allow_mass_delete=allow_mass_delete, republish=republish)
        except Exception as exc:
            if deadline.remaining() <= 0 and not isinstance(exc, TimeLimitReached):
                raise deadline.reached() from None  # the timeout it caused says less than this
            raise


def _publish(destination: Destination, app: str, cfg: ContainerConfig, env: str, settings: Settings, *,
             full: bool, since: datetime | None, allow_mass_delete: bool, republish: bool) -> PublishResult:
    log = get_run_logger()
    clock = time.monotonic()
    with publishing(app, cfg, env, settings, destination.role, full=full, since=since,
                    republish=republish) as ctx:
        plan = ctx.plan
        if not (plan.full or plan.changed or plan.deleted):  # nothing to send: the destination stays closed
            result = PublishResult(mode="incremental", read=0, upserted=0, deleted=0, generation=plan.target,
                                   seconds=round(time.monotonic() - clock, 3))
            advance_cursor(ctx, cfg.key, plan, upserted=0, deleted=0)
            log.info("%s/%s → %s: nothing to send", app, cfg.key, destination.role)
            return result
        target = destination.open(ctx)
        held = None
        audit: AuditCounts | None = None
        if plan.full:  # a reconcile also restores what was lost downstream; the same listing finds strays
            held, plan, audit = _audit(target, ctx, plan)
            if ctx.shared is not None:
                ctx.shared.want(plan.missing + plan.drifted)
        log.info("%s/%s → %s: %s", app, cfg.key, target.name, plan.summary())
        unreadable: list[tuple[str, str]] = []  # records whose stored values cannot be read: left out, then named
        digest = getattr(target, "digest", None)

        def payloads() -> Iterator[dict[str, Any]]:
            for batch in formatted_batches(ctx.store, cfg.key, plan.changed, ctx.schema, target.batch_size,
                                           unreadable, ctx.shared):
                for record_id, values in batch:
                    if (payload := target.to_payload(record_id, values)) is not None:
                        if digest is not None:
                            ctx.sent_rows[record_id] = digest(payload)
                        yield payload

        try:
            counts = target.upsert(payloads())
        except BaseException:
            note_late_writes(ctx, cfg.key, plan.changed, log)
            raise
        doomed, population = doomed_ids(target, destination.capabilities, ctx, cfg, held, log)
        held_back = delete_guard(settings, allow_mass_delete).refusal(
            len(doomed), population, f"{app}/{cfg.key} in {target.name}")
        if held_back:
            log.warning("%s", held_back)
            doomed = []
        counts = counts.with_removed(target.delete(doomed))
        error = target.left_out(unreadable)  # the rest is published and deleted; the cursor stays
        if error is not None:
            raise error
        if held_back:
            raise DeletesHeldBack(f"{held_back}; the cursor stays until they are deleted")
        result = PublishResult(mode="full" if plan.full else "incremental", read=len(plan.changed),
                               upserted=counts.upserted, deleted=len(doomed), generation=plan.target,
                               seconds=round(time.monotonic() - clock, 3),
                               counts=counts.as_dict() | (audit.with_strays(len(doomed)).as_dict() if audit is not None else {}))
        try:
            advance_cursor(ctx, cfg.key, plan, upserted=result.upserted, deleted=result.deleted)
        except BaseException:
            note_late_writes(ctx, cfg.key, plan.changed, log)
            raise
    log.info("%s/%s → %s: %s", app, cfg.key, target.name,
             target.outcome(result, plan.target if plan.advance else plan.cursor))
    return result
