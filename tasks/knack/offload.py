"""Knack → store for one container: fetch since the Knack cursor, write what changed, advance the cursor."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from tasks.domain.config import ContainerConfig
from tasks.domain.delete_plan import Confirm, HeldBack, delete_candidates, plan_deletes, settle
from tasks.domain.deletes import DELETE_LOOKUPS_PER_RUN, DeleteGuard
from tasks.domain.errors import KnackQuotaError
from tasks.domain.formatting import container_schema
from tasks.domain.knack import record_modified_at
from tasks.domain.layout import Manifest
from tasks.domain.listing import Listing
from tasks.domain.plan import new_generation, plan_since
from tasks.domain.results import OffloadResult
from tasks.store.records import RecordStore, WriteStats

# The cursor trails the fetch start (on Knack's clock): Knack stamps edits to the minute (an edit at
# 12:00:45 reads 12:00). Anything edited after the fetch began is stamped after the cursor, so fetched again.
SAFETY_LAG = timedelta(minutes=2)
PAGES_IN_MEMORY = 4  # pages read ahead of the store and kept in memory; more wait in a temporary file
# how long a consumer that stops early waits for the fetch thread to wind down: the fetch writes nothing,
# so a run past its time limit never waits for a page still arriving (each Knack request has a deadline too)
FETCH_WIND_DOWN_SECONDS = 1.0


@dataclass
class _ReadAheadState:
    """What the fetch thread of ``read_ahead`` shares with its consumer (under the condition's lock)."""

    held: int = 0                        # pages waiting in memory (the rest wait in the spool file)
    done: bool = False                   # the fetch has ended: no page comes after those waiting
    error: BaseException | None = None   # what ended the fetch, raised to the consumer after the pages


def read_ahead(pages: Iterable[list[dict[str, Any]]], in_memory: int = PAGES_IN_MEMORY,
               fetched: threading.Event | None = None) -> Iterator[list[dict[str, Any]]]:
    """``pages`` in order, pulled by a thread as fast as they come, whatever the consumer's pace.

    Knack is the rate-limited, quota-limited side: its pages are fetched at the pace the limit allows
    even while the store is still writing earlier ones. The first ``in_memory`` waiting pages stay in
    memory; later ones are pickled to an unlinked temporary file, so memory stays flat in N. An error
    of the fetch is raised here, in order; when the consumer stops, the fetch is closed (waited for at
    most ``FETCH_WIND_DOWN_SECONDS``; it spools nothing more). ``fetched`` is set once the last page has
    arrived.
    """
    ready: deque[tuple[list[dict[str, Any]] | None, int, int]] = deque()  # (page, or its offset and size)
    cond = threading.Condition()
    state = _ReadAheadState()
    stop = threading.Event()

    def produce(spool: int) -> None:
        source = iter(pages)
        end = 0
        try:
            for page in source:
                if stop.is_set():
                    break
                with cond:
                    keep = state.held < in_memory
                if keep:
                    item: tuple[list[dict[str, Any]] | None, int, int] = (page, 0, 0)
                else:
                    blob = pickle.dumps(page, protocol=pickle.HIGHEST_PROTOCOL)
                    with cond:  # never after the consumer has gone (and closed the spool)
                        if stop.is_set():
                            break
                        os.pwrite(spool, blob, end)
                    item, end = (None, end, len(blob)), end + len(blob)
                with cond:
                    ready.append(item)
                    state.held += int(keep)
                    cond.notify()
        except BaseException as exc:  # handed to the consumer, raised there
            state.error = exc
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # stops the fetch's in-flight pages when the consumer gave up
            with cond:
                state.done = True
                cond.notify()
            if fetched is not None:
                fetched.set()

    with tempfile.TemporaryFile(prefix="knack-pages-") as spool:
        thread = threading.Thread(target=produce, args=(spool.fileno(),), name="knack-read-ahead", daemon=True)
        thread.start()
        try:
            while True:
                with cond:
                    while not ready and not state.done:
                        cond.wait()
                    if not ready:
                        break
                    page, offset, size = ready.popleft()
                    state.held -= int(page is not None)
                yield page if page is not None else pickle.loads(os.pread(spool.fileno(), size, offset))
            if state.error is not None:
                raise state.error
        finally:
            with cond:
                stop.set()
            thread.join(FETCH_WIND_DOWN_SECONDS)


def _field_keys(record: Mapping[str, Any]) -> set[str]:
    return {k[:-4] if k.endswith("_raw") else k for k in record if k != "id"}


def _watch_fields(pages: Iterable[list[dict[str, Any]]], known: set[str], unknown: set[str]
                  ) -> Iterator[list[dict[str, Any]]]:
    """Pass pages through, noting field keys the stored metadata does not know (schema drift)."""
    for page in pages:
        if page:
            unknown.update(_field_keys(page[0]) - known)
            unknown.update(_field_keys(page[-1]) - known)
        yield page


class KnackSource(Protocol):
    """What the offload asks of Knack beyond the pages: how whole the last listing was, and single records."""

    last_listing: Listing | None

    def get_record(self, container_key: str, record_id: str, scene_id: str | None = None
                   ) -> dict[str, Any] | None: ...

    def check_quota(self, pages_needed: int, container: str | None = None) -> None: ...


def confirm_gone(knack: KnackSource, cfg: ContainerConfig, candidates: list[str], listed: set[str]
                 ) -> tuple[list[str], list[dict[str, Any]], int] | None:
    """Ask Knack for each candidate: (confirmed gone, found alive, requests made), or None when Knack's
    answers cannot be trusted: a record of this very listing must be found first (a route that answers
    404 for everything would otherwise confirm every candidate)."""
    if not listed:
        return None
    control = min(listed)
    if knack.get_record(cfg.key, control, cfg.scene_id) is None:
        return None
    gone: list[str] = []
    alive: list[dict[str, Any]] = []
    for rid in candidates:
        record = knack.get_record(cfg.key, rid, cfg.scene_id)
        if record is None:
            gone.append(rid)
        else:
            alive.append(record)
    return gone, alive, len(candidates) + 1


def confirm_by_listing(knack: KnackSource, pages: Iterable[list[dict[str, Any]]], candidates: list[str],
                       known: Collection[str] | None = None) -> tuple[list[str], list[dict[str, Any]], int] | None:
    """Confirm ``candidates`` with a second whole listing instead of one request each: (confirmed gone,
    found alive, pages read), or None when that listing was not whole either.

    A candidate is missing from the first listing already; one also missing from a second listing that
    is whole is gone, one present in it is alive (its record as listed). The cost is the listing's
    pages, whatever the number of candidates."""
    wanted = set(candidates)
    alive: dict[str, dict[str, Any]] = {}
    read = 0
    for page in pages:
        read += 1
        for record in page:
            rid = str(record.get("id"))
            if rid in wanted:
                alive[rid] = record
    listing = knack.last_listing
    if listing is None or listing.problems(known):
        return None
    spent = (len(listing.pages) or read) + (1 if len(listing.pages) > 1 else 0)  # the pages and the closing check
    return [rid for rid in candidates if rid not in alive], list(alive.values()), spent


@dataclass(frozen=True)
class OffloadRequest:
    """What one offload of a container asks for: the window, the clock, and the delete rules.

    ``destinations``: the container's; deletes every one of them has published are forgotten (no
    destination: all of them). ``lookup_cap``: delete candidates looked up one by one at most; beyond
    it a second whole listing confirms them."""

    since: datetime | None
    full: bool
    started: datetime
    guard: DeleteGuard = DeleteGuard()
    cursor_lag: timedelta = SAFETY_LAG
    destinations: tuple[str, ...] | None = None
    lookup_cap: int = DELETE_LOOKUPS_PER_RUN


@dataclass(frozen=True)
class _Run:
    """One offload's parts, handed to each step."""

    store: RecordStore
    fetch_pages: Callable[[datetime | None], Iterable[list[dict]]]
    cfg: ContainerConfig
    request: OffloadRequest
    knack: KnackSource | None
    log: logging.Logger | logging.LoggerAdapter

    @property
    def where(self) -> str:
        return f"{self.store.app}/{self.cfg.key}"


@dataclass
class Fetched:
    """The fetch step: the pages written into the store, and what the listing said of itself."""

    manifest: Manifest
    pruned: list[str]                  # deletes every destination has published, forgotten
    fetch_from: datetime | None        # None: a full fetch
    may_advance: bool                  # may the Knack cursor move past this fetch
    generation: int                    # the generation this run's writes carry
    stats: WriteStats
    objects: dict[str, str] | None     # what the store holds, with ETags (full fetch only)
    known: set[str]                    # the manifest's ids before this fetch
    unknown_fields: set[str]
    listing: Listing | None
    problems: list[str]                # why the listing was not whole (empty: it was)
    modified_of: Callable[[dict[str, Any]], str | None]

    @property
    def is_full(self) -> bool:
        return self.fetch_from is None


class Confirmed(NamedTuple):
    """The confirm step: the candidates Knack confirmed gone, or why nothing is deleted."""

    gone: tuple[str, ...] = ()
    answered: bool = False             # Knack answered for every candidate (the strays are settled)
    held_back: str | None = None
    lookups: int = 0                   # requests spent confirming
    confirmed_by: str | None = None


class Committed(NamedTuple):
    """The commit step: the deletes applied and where the Knack cursor now stands."""

    deleted: list[str]
    cursor: str | None


def fetch(run: _Run, metadata: Mapping[str, Any], on_progress: Callable[[WriteStats], None] | None) -> Fetched:
    """List (or fetch since the cursor) the container's pages from Knack and write what changed."""
    store, cfg, request = run.store, run.cfg, run.request
    schema = container_schema(metadata, cfg.key)
    manifest = store.load_manifest(cfg.key)
    pruned: list[str] = []
    if request.destinations is not None:
        published = [int((store.read_cursor(cfg.key, name) or {}).get("generation", 0))
                     for name in request.destinations]
        pruned = manifest.prune_deleted(min(published) if published else manifest.generation)
    fetch_from, may_advance = plan_since(store.read_cursor(cfg.key, "knack"), request.since, request.full)
    is_full = fetch_from is None
    run.log.info("%s: %s fetch%s", run.where, "full" if is_full else "incremental",
                 f" of records modified since {fetch_from.isoformat()}" if fetch_from else "")

    generation = new_generation(manifest)
    unknown: set[str] = set()
    fetched = threading.Event()
    pages = _watch_fields(read_ahead(run.fetch_pages(fetch_from), fetched=fetched),
                          {f.key for f in schema.fields}, unknown)

    def modified_of(record: dict[str, Any]) -> str | None:
        instant = record_modified_at(record, cfg.modified_date_field_id, schema.timezone)
        return instant.isoformat() if instant else None

    objects = store.list_objects(cfg.key) if is_full else None
    known = set(manifest.records)  # before this fetch: a record stamped during it and not here was created then
    stats = store.write_records(cfg.key, pages, manifest, generation, modified_of, on_page=on_progress,
                                busy=lambda: not fetched.is_set(), present=objects)
    listing = run.knack.last_listing if run.knack is not None else None
    problems = listing.problems(known) if listing is not None else ["the listing was not reported"]
    if problems:
        run.log.warning("%s: Knack's listing was not whole (%s): it deletes nothing by itself, and the Knack "
                        "cursor stays where it was, so the next run reads this window again", run.where,
                        "; ".join(problems))
    return Fetched(manifest, pruned, fetch_from, may_advance, generation, stats, objects, known, unknown, listing,
                   problems, modified_of)


def _quota_refusal(knack: KnackSource, cfg: ContainerConfig, requests: int) -> str | None:
    """Why the quota refuses ``requests`` more (the client's check reads its counters, sends nothing)."""
    try:
        knack.check_quota(requests, cfg.key)
    except KnackQuotaError as exc:
        return str(exc)
    return None


def confirm(run: _Run, got: Fetched) -> Confirmed:
    """After a full fetch: confirm with Knack which records missing from the listing are gone
    (``tasks/domain/delete_plan.py`` decides how, and what is held back); store those still alive."""
    if not got.is_full or got.objects is None:
        return Confirmed()
    store, cfg, knack, log, where = run.store, run.cfg, run.knack, run.log, run.where
    seen = got.stats.seen_ids
    strays = {rid for name in run.request.destinations or [] for rid in store.read_strays(cfg.key, name)}
    found = delete_candidates(store.stored_ids(got.objects, got.manifest), seen, strays)
    quota = _quota_refusal(knack, cfg, len(found.ids) + 1) if knack is not None and found.ids else None
    plan = plan_deletes(found, where=where, whole=not got.problems, guard=run.request.guard,
                        can_ask=knack is not None, view=cfg.scene_id is not None,
                        lookup_cap=run.request.lookup_cap, quota_refusal=quota)
    if plan.held_back not in (None, HeldBack.NO_KNACK):  # without Knack the result alone reports it
        log.warning("%s", plan.message)
    if knack is None or plan.confirm is None:
        return Confirmed(held_back=plan.message)

    candidates = list(plan.candidates)
    refused: str | None = None
    answer: tuple[list[str], list[dict[str, Any]], int] | None = None
    if plan.confirm is Confirm.LOOKUPS:
        answer = confirm_gone(knack, cfg, candidates, seen)
    else:
        log.info("%s: %s: a second whole listing confirms them instead", where, plan.lookups_refused)
        try:
            answer = confirm_by_listing(knack, run.fetch_pages(None), candidates, got.known | seen)
        except KnackQuotaError as exc:
            refused = str(exc)
    decision = settle(plan, answer[0] if answer is not None else None, refused=refused)
    if answer is None or decision.held_back is not None:
        log.warning("%s", decision.message)
        return Confirmed(held_back=decision.message)

    _, alive, lookups = answer
    if alive:  # live records the listing skipped: stored (or refreshed) from their own answers
        log.info("%s: %d records missing from the listing are still in Knack: kept (%s)", where,
                 len(alive), ", ".join(str(r.get("id")) for r in alive[:10]))
        more = store.write_records(cfg.key, [alive], got.manifest, got.generation, got.modified_of)
        got.stats.written += more.written
    return Confirmed(decision.delete, answered=True, lookups=lookups, confirmed_by=plan.confirm.value)


def commit(run: _Run, got: Fetched, confirmed: Confirmed) -> Committed:
    """Apply the confirmed deletes, then save the manifest, the Knack cursor and the whole-listing mark."""
    store, cfg, log, where, request = run.store, run.cfg, run.log, run.where, run.request
    manifest, stats, listing, problems = got.manifest, got.stats, got.listing, got.problems
    deleted: list[str] = []
    if confirmed.answered:
        deleted = store.delete_records(cfg.key, confirmed.gone, manifest, got.generation)
        for name in request.destinations or []:  # asked and answered: each destination deletes what is gone
            if store.read_strays(cfg.key, name):
                store.write_strays(cfg.key, name, [])

    if stats.written or deleted:
        manifest.generation = got.generation
    if stats.written or deleted or stats.repaired or got.pruned:
        store.save_manifest(cfg.key, manifest)

    new_cursor = None
    if got.may_advance and not problems and listing is not None:
        base = listing.knack_time
        if base is None:
            base = request.started
            log.warning("%s: Knack sent no Date header: the cursor follows this worker's clock", where)
        new_cursor = (base - request.cursor_lag).replace(second=0, microsecond=0).isoformat()
        store.write_cursor(cfg.key, "knack", {"instant": new_cursor, "generation": manifest.generation})
    if got.is_full and not problems and confirmed.held_back is None and listing is not None:
        store.mark_complete_listing(cfg.key, {"complete": True, "generation": manifest.generation,
                                                "records": len(manifest.records), "at": new_cursor})
    if deleted:
        log.info("%s: deleted %d records Knack confirmed gone: %s", where, len(deleted),
                 ", ".join(deleted[:20]) + (" ..." if len(deleted) > 20 else ""))
    if stats.repaired:
        log.warning("%s: %d objects were missing from the store or not what was written: written again",
                    where, stats.repaired)
    return Committed(deleted, new_cursor)


def offload_container(store: RecordStore, fetch_pages: Callable[[datetime | None], Iterable[list[dict]]],
                      cfg: ContainerConfig, metadata: Mapping[str, Any], request: OffloadRequest, *,
                      log: logging.Logger | logging.LoggerAdapter, knack: KnackSource | None = None,
                      on_progress: Callable[[WriteStats], None] | None = None) -> OffloadResult:
    """Copy one container's changed records into the store: fetch → confirm → commit.

    A full fetch also repairs objects missing from the store or damaged in it, and deletes the records
    Knack has confirmed gone, within the mass-delete guard (``tasks/domain/delete_plan.py``). The Knack
    cursor moves only past a listing that was whole (``tasks/domain/listing.py``), to Knack's own clock
    at the fetch start less ``request.cursor_lag``.
    """
    clock = time.monotonic()
    run = _Run(store, fetch_pages, cfg, request, knack, log)
    got = fetch(run, metadata, on_progress)
    confirmed = confirm(run, got)
    committed = commit(run, got, confirmed)
    stats = got.stats
    return OffloadResult(
        container=cfg.key, mode="full" if got.is_full else "incremental",
        since=got.fetch_from.isoformat() if got.fetch_from else None, cursor=committed.cursor,
        fetched=stats.fetched, written=stats.written, unchanged=stats.unchanged, deleted=len(committed.deleted),
        generation=got.manifest.generation, unknown_fields=sorted(got.unknown_fields),
        seconds=round(time.monotonic() - clock, 3), listing_consistent=not got.problems,
        listing_problems=got.problems, lookups=confirmed.lookups, repaired=stats.repaired,
        held_back=confirmed.held_back, confirmed_by=confirmed.confirmed_by if confirmed.lookups else None,
    )
