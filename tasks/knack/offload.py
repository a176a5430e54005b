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
from datetime import datetime, timedelta
from typing import Any, Protocol

from tasks.domain.config import ContainerConfig
from tasks.domain.deletes import DELETE_LOOKUPS_PER_RUN, DeleteGuard
from tasks.domain.errors import KnackQuotaError
from tasks.domain.formatting import container_schema
from tasks.domain.knack import record_modified_at
from tasks.domain.listing import Listing
from tasks.domain.plan import ids_to_delete, new_generation, plan_since
from tasks.domain.results import OffloadResult
from tasks.store.records import RecordStore, WriteStats

# The cursor trails the fetch start (on Knack's clock): Knack stamps edits to the minute (an edit at
# 12:00:45 reads 12:00). Anything edited after the fetch began is stamped after the cursor, so fetched again.
SAFETY_LAG = timedelta(minutes=2)
PAGES_IN_MEMORY = 4  # pages read ahead of the store and kept in memory; more wait in a temporary file
# how long a consumer that stops early waits for the fetch thread to wind down: the fetch writes nothing,
# so a run past its time limit never waits for a page still arriving (each Knack request has a deadline too)
FETCH_WIND_DOWN_SECONDS = 1.0


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
    state: dict[str, Any] = {"held": 0, "done": False, "error": None}
    stop = threading.Event()

    def produce(spool: int) -> None:
        source = iter(pages)
        end = 0
        try:
            for page in source:
                if stop.is_set():
                    break
                with cond:
                    keep = state["held"] < in_memory
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
                    state["held"] += int(keep)
                    cond.notify()
        except BaseException as exc:  # handed to the consumer, raised there
            state["error"] = exc
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # stops the fetch's in-flight pages when the consumer gave up
            with cond:
                state["done"] = True
                cond.notify()
            if fetched is not None:
                fetched.set()

    with tempfile.TemporaryFile(prefix="knack-pages-") as spool:
        thread = threading.Thread(target=produce, args=(spool.fileno(),), name="knack-read-ahead", daemon=True)
        thread.start()
        try:
            while True:
                with cond:
                    while not ready and not state["done"]:
                        cond.wait()
                    if not ready:
                        break
                    page, offset, size = ready.popleft()
                    state["held"] -= int(page is not None)
                yield page if page is not None else pickle.loads(os.pread(spool.fileno(), size, offset))
            if state["error"] is not None:
                raise state["error"]
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


def _lookup_refusal(knack: KnackSource, cfg: ContainerConfig, count: int, cap: int, whole: bool) -> str | None:
    """Why ``count`` candidates are not looked up one by one: a view, over the per-run cap, or the quota.

    A view's record route may answer for any record of its object, in the view's filter or not
    (knack-api.md): a 200 there does not prove a record is still in the view, so after a ``whole``
    listing a view's candidates are confirmed by a second whole listing of the view. After a listing
    that was not whole they are looked up: a 200 keeps a record (never a wrong delete)."""
    if cfg.scene_id is not None and whole:
        return "the candidates are a view's, whose record route may answer for records its filter leaves out"
    if count > cap:
        return f"{count} candidates are more than delete_lookups_per_run ({cap})"
    try:
        knack.check_quota(count + 1, cfg.key)
    except KnackQuotaError as exc:
        return str(exc)
    return None


def offload_container(store: RecordStore, fetch_pages: Callable[[datetime | None], Iterable[list[dict]]],
                      cfg: ContainerConfig, metadata: Mapping[str, Any], *, since: datetime | None,
                      full: bool, started: datetime, log: logging.Logger | logging.LoggerAdapter,
                      on_progress: Callable[[WriteStats], None] | None = None,
                      knack: KnackSource | None = None, guard: DeleteGuard | None = None,
                      cursor_lag: timedelta = SAFETY_LAG, destinations: list[str] | None = None,
                      lookup_cap: int = DELETE_LOOKUPS_PER_RUN) -> OffloadResult:
    """Copy one container's changed records into the store; objects → manifest → Knack cursor.

    A full fetch also repairs objects missing from the store or damaged in it, and deletes the records
    Knack has confirmed gone (``confirm_gone``), within the mass-delete ``guard``. The Knack cursor moves
    only past a listing that was whole (``tasks/domain/listing.py``), to Knack's own clock at the fetch
    start less ``cursor_lag``. ``destinations``: the container's; deletes every one of them has published
    are forgotten (no destination: all of them). Candidates are looked up one by one while they are at
    most ``lookup_cap`` and the quota allows; otherwise a second whole listing confirms them all.
    """
    clock = time.monotonic()
    guard = guard or DeleteGuard()
    schema = container_schema(metadata, cfg.key)
    manifest = store.load_manifest(cfg.key)
    pruned: list[str] = []
    if destinations is not None:
        published = [int((store.read_cursor(cfg.key, name) or {}).get("generation", 0)) for name in destinations]
        pruned = manifest.prune_deleted(min(published) if published else manifest.generation)
    cursor = store.read_cursor(cfg.key, "knack")
    fetch_from, may_advance = plan_since(cursor, since, full)
    is_full = fetch_from is None
    log.info("%s/%s: %s fetch%s", store.app, cfg.key, "full" if is_full else "incremental",
             f" of records modified since {fetch_from.isoformat()}" if fetch_from else "")

    generation = new_generation(manifest)
    unknown: set[str] = set()
    fetched = threading.Event()
    pages = _watch_fields(read_ahead(fetch_pages(fetch_from), fetched=fetched), {f.key for f in schema.fields},
                          unknown)

    def modified_of(record: dict[str, Any]) -> str | None:
        instant = record_modified_at(record, cfg.modified_date_field_id, schema.timezone)
        return instant.isoformat() if instant else None

    objects = store.list_objects(cfg.key) if is_full else None  # what the store holds, with ETags
    known = set(manifest.records)  # before this fetch: a record stamped during it and not here was created then
    stats = store.write_records(cfg.key, pages, manifest, generation, modified_of, on_page=on_progress,
                                busy=lambda: not fetched.is_set(), present=objects)
    listing = knack.last_listing if knack is not None else None
    problems = listing.problems(known) if listing is not None else ["the listing was not reported"]
    where = f"{store.app}/{cfg.key}"
    if problems:
        log.warning("%s: Knack's listing was not whole (%s): it deletes nothing by itself, and the Knack "
                    "cursor stays where it was, so the next run reads this window again", where, "; ".join(problems))

    deleted: list[str] = []
    held_back: str | None = None
    lookups = 0
    confirmed_by: str | None = None
    if is_full and objects is not None:
        stored_ids = store.stored_ids(objects, manifest)
        # rows a destination holds that the store never had: confirmed with Knack like the store's own
        strays = {rid for name in destinations or [] for rid in store.read_strays(cfg.key, name)}
        candidates = sorted(set(ids_to_delete(stored_ids, stats.seen_ids)) | (strays - stats.seen_ids))
        population = len(stored_ids | stats.seen_ids | strays)
        held_back = guard.refusal(len(candidates), population, f"{where} in the store")
        if held_back:
            log.warning("%s", held_back)
        elif candidates and knack is None:
            held_back = f"{where}: {len(candidates)} records missing from the listing could not be checked with Knack"
        elif candidates and knack is not None:
            why_not = _lookup_refusal(knack, cfg, len(candidates), lookup_cap, whole=not problems)
            if why_not is None:
                answer, confirmed_by = confirm_gone(knack, cfg, candidates, stats.seen_ids), "lookups"
                doubt = "Knack did not find a record it had just listed either"
            else:
                answer, doubt = None, f"the first listing was not whole and look-ups were refused ({why_not})"
                if not problems:  # gone means absent from two whole listings
                    log.info("%s: %s: a second whole listing confirms them instead", where, why_not)
                    try:
                        answer = confirm_by_listing(knack, fetch_pages(None), candidates,
                                                    known | stats.seen_ids)
                        confirmed_by = "listing"
                    except KnackQuotaError as exc:
                        why_not = str(exc)
                    doubt = f"a second whole listing could not confirm them ({why_not})"
            if answer is None:
                held_back = (f"{where}: {len(candidates)} records are missing from the listing, but {doubt}; "
                             "nothing was deleted")
                log.warning("%s", held_back)
            else:
                gone, alive, lookups = answer
                if alive:  # live records the listing skipped: stored (or refreshed) from their own answers
                    log.info("%s: %d records missing from the listing are still in Knack: kept (%s)", where,
                             len(alive), ", ".join(str(r.get("id")) for r in alive[:10]))
                    more = store.write_records(cfg.key, [alive], manifest, generation, modified_of)
                    stats.written += more.written
                deleted = store.delete_records(cfg.key, gone, manifest, generation)
                for name in destinations or []:  # asked and answered: each destination deletes what is gone
                    if store.read_strays(cfg.key, name):
                        store.write_strays(cfg.key, name, [])

    if stats.written or deleted:
        manifest.generation = generation
    if stats.written or deleted or stats.repaired or pruned:
        store.save_manifest(cfg.key, manifest)

    new_cursor = None
    if may_advance and not problems and listing is not None:
        base = listing.knack_time
        if base is None:
            base = started
            log.warning("%s: Knack sent no Date header: the cursor follows this worker's clock", where)
        new_cursor = (base - cursor_lag).replace(second=0, microsecond=0).isoformat()
        store.write_cursor(cfg.key, "knack", {"instant": new_cursor, "generation": manifest.generation})
    if is_full and not problems and held_back is None and listing is not None:
        store.mark_complete_listing(cfg.key, {"complete": True, "generation": manifest.generation,
                                                "records": len(manifest.records), "at": new_cursor})
    if deleted:
        log.info("%s: deleted %d records Knack confirmed gone: %s", where, len(deleted),
                 ", ".join(deleted[:20]) + (" ..." if len(deleted) > 20 else ""))
    if stats.repaired:
        log.warning("%s: %d objects were missing from the store or not what was written: written again",
                    where, stats.repaired)
    return OffloadResult(
        container=cfg.key, mode="full" if is_full else "incremental",
        since=fetch_from.isoformat() if fetch_from else None, cursor=new_cursor,
        fetched=stats.fetched, written=stats.written, unchanged=stats.unchanged, deleted=len(deleted),
        generation=manifest.generation, unknown_fields=sorted(unknown),
        seconds=round(time.monotonic() - clock, 3), listing_consistent=not problems,
        listing_problems=problems, lookups=lookups, repaired=stats.repaired, held_back=held_back,
        confirmed_by=confirmed_by if lookups else None,
    )
