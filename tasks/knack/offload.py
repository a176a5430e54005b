"""Knack → store for one container: fetch since the Knack cursor, write what changed, advance the cursor."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from tasks.domain.config import ContainerConfig
from tasks.domain.formatting import container_schema
from tasks.domain.knack import record_modified_at
from tasks.domain.plan import new_generation, plan_since
from tasks.domain.results import OffloadResult
from tasks.store.records import RecordStore, WriteStats

# The cursor trails the fetch start: Knack stamps edits to the minute (an edit at 12:00:45 reads 12:00),
# and clocks drift. Anything edited after the fetch began is stamped after the cursor, so fetched again.
SAFETY_LAG = timedelta(minutes=2)
PAGES_IN_MEMORY = 4  # pages read ahead of the store and kept in memory; more wait in a temporary file


def read_ahead(pages: Iterable[list[dict[str, Any]]], in_memory: int = PAGES_IN_MEMORY,
               fetched: threading.Event | None = None) -> Iterator[list[dict[str, Any]]]:
    """``pages`` in order, pulled by a thread as fast as they come, whatever the consumer's pace.

    Knack is the rate-limited, quota-limited side: its pages are fetched at the pace the limit allows
    even while the store is still writing earlier ones. The first ``in_memory`` waiting pages stay in
    memory; later ones are pickled to an unlinked temporary file, so memory stays flat in N. An error
    of the fetch is raised here, in order; when the consumer stops, the fetch is closed. ``fetched``
    is set once the last page has arrived.
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
            stop.set()
            thread.join()


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


def offload_container(store: RecordStore, fetch_pages: Callable[[datetime | None], Iterable[list[dict]]],
                      cfg: ContainerConfig, metadata: Mapping[str, Any], *, since: datetime | None,
                      full: bool, started: datetime, log: logging.Logger | logging.LoggerAdapter,
                      on_progress: Callable[[WriteStats], None] | None = None) -> OffloadResult:
    """Copy one container's changed records into the store; objects → manifest → Knack cursor."""
    clock = time.monotonic()
    schema = container_schema(metadata, cfg.key)
    manifest = store.load_manifest(cfg.key)
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

    stats = store.write_records(cfg.key, pages, manifest, generation, modified_of, on_page=on_progress,
                                busy=lambda: not fetched.is_set())
    deleted = store.delete_missing(cfg.key, stats.seen_ids, manifest, generation) if is_full else []
    if stats.written or deleted:
        manifest.generation = generation
        store.save_manifest(cfg.key, manifest)

    new_cursor = None
    if may_advance:
        new_cursor = (started - SAFETY_LAG).replace(second=0, microsecond=0).isoformat()
        store.write_cursor(cfg.key, "knack", {"instant": new_cursor, "generation": manifest.generation})
    if deleted:
        log.info("%s/%s: deleted %d records no longer in Knack: %s", store.app, cfg.key, len(deleted),
                 ", ".join(deleted[:20]) + (" ..." if len(deleted) > 20 else ""))
    return OffloadResult(
        container=cfg.key, mode="full" if is_full else "incremental",
        since=fetch_from.isoformat() if fetch_from else None, cursor=new_cursor,
        fetched=stats.fetched, written=stats.written, unchanged=stats.unchanged, deleted=len(deleted),
        generation=manifest.generation, unknown_fields=sorted(unknown),
        seconds=round(time.monotonic() - clock, 3),
    )
