"""One app's part of the store: Knack records as JSON documents, the metadata, per-container manifests
and cursors, and the run lock (held by ``locks.py``). Keys and bytes follow ``tasks/domain/layout.py``.

Order of effects on every run: record objects, then the manifest, then the Knack cursor. A crash at
any point leaves the next run redoing work (rewriting identical objects at worst), never skipping it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from tasks.domain.batching import chunked
from tasks.domain.errors import LockLost, StoreError
from tasks.domain.layout import (
    Manifest,
    container_prefix,
    metadata_key,
    record_id_from_key,
    record_key,
    serialize_record,
    state_key,
)
from tasks.domain.write_plan import ABSENT, Put, group_size, in_flight_limit, plan_page
from tasks.fence import fenced
from tasks.store.backends import Storage
from tasks.store.locks import Held, hold_lock
from tasks.store.shared_reads import SharedReader

PUTS_PER_TASK = 8  # PUTs one pool task makes in turn (fewer when a page has few writes for the workers)

_Written = tuple[str, str, str | None, int, str | None]  # record id, content hash, modified, generation, ETag
_PutResult = tuple[list[_Written], StoreError | None]  # written, first failure


@dataclass
class WriteStats:
    """What one pass of records into the store did."""

    fetched: int = 0
    written: int = 0
    unchanged: int = 0
    repaired: int = 0   # unchanged records whose object was missing or damaged, written again
    seen_ids: set[str] = field(default_factory=set, repr=False)


def _settle(done: Iterable[Future[_PutResult]], manifest: Manifest, generation: int, stats: WriteStats) -> None:
    """Apply the PUTs of finished pool tasks to the manifest (in memory) and the counts: a write of the run's
    generation counts as written, one that kept an older generation as repaired. Then raise the first
    failure among them, if any: the cause (an endpoint lost) over the lock it then lost."""
    failure: StoreError | None = None
    for fut in done:
        written, error = fut.result()
        for rid, digest, modified, gen, etag in written:
            manifest.mark_written(rid, digest, modified, gen, etag)
            if gen == generation:
                stats.written += 1
            else:
                stats.repaired += 1
        if failure is None or (isinstance(failure, LockLost) and error is not None):
            failure = error or failure
    if failure is not None:
        raise failure


@dataclass
class _ContainerFence:
    """Every lock a store holds on one container, as one fence (``tasks/fence.py``)."""

    store: RecordStore
    container: str

    def check(self) -> None:
        self.store.fence(self.container)

    def lapsed(self) -> bool:
        return any(held.lapsed() for held in self.store._held.get(self.container, []))

    def note_late(self) -> None:
        """Record writes are conditional on the ETag the manifest recorded: a late one cannot land over newer."""


class RecordStore:
    """One app's part of the store, in one environment."""

    def __init__(self, storage: Storage, env: str, app: str, workers: int = 16) -> None:
        self.storage = storage
        self.env = env
        self.app = app
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store")
        self._versions: dict[str, str | None] = {}  # state key → the ETag this store read (None: absent)
        self._held: dict[str, list[Held]] = {}  # container → the locks this store holds on it

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------------
    def read_metadata(self) -> dict[str, Any] | None:
        body = self.storage.get(metadata_key(self.env, self.app))
        return json.loads(body) if body else None

    def write_metadata(self, metadata: Mapping[str, Any]) -> bool:
        """Store the app metadata; False (and no write) when it is unchanged."""
        body = serialize_record(metadata)
        key = metadata_key(self.env, self.app)
        if self.storage.get(key) == body:
            return False
        self.storage.put(key, body)
        return True

    # -- state ----------------------------------------------------------------------------------
    def _state(self, container: str, name: str) -> str:
        return state_key(self.env, self.app, container, name)

    def _read_state(self, key: str) -> bytes | None:
        """Read a state document and remember its ETag: a later write of it is conditional on it."""
        body, etag = self.storage.get_versioned(key)
        self._versions[key] = etag
        return body

    def fence(self, container: str) -> None:
        """Raise ``LockLost`` unless every lock this store holds on the container lets a write start now."""
        for held in self._held.get(container, []):
            held.check()

    def _fenced(self, container: str) -> AbstractContextManager[object]:
        """The container's locks as the write fence of this thread: every S3 attempt (botocore's retries
        included) checks it before it is sent (``S3Storage``)."""
        return fenced(_ContainerFence(self, container))

    def _write_state(self, container: str, key: str, body: bytes) -> None:
        """Commit a state document: only while this store still holds its locks on the container, and,
        when this store read the document, only if nobody wrote it since (else ``StoreError``)."""
        for held in self._held.get(container, []):
            held.confirm()
        if key not in self._versions:
            self.storage.put(key, body)
            return
        seen = self._versions[key]
        etag = self.storage.put_if(key, body, if_match=seen, if_none_match=seen is None)
        if etag is None:
            raise StoreError(f"{self.storage.description}/{key} was written by another run since this run "
                             "read it; this run stops without saving its state (the next run redoes its work)")
        self._versions[key] = etag

    def load_manifest(self, container: str) -> Manifest:
        body = self._read_state(self._state(container, "manifest"))
        try:
            return Manifest.from_json(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"the manifest of {self.app}/{container} is unreadable ({exc}); "
                             "run a full refresh (--full) to rebuild it") from None

    def save_manifest(self, container: str, manifest: Manifest) -> None:
        """Fenced: see ``_write_state``."""
        self._write_state(container, self._state(container, "manifest"), manifest.to_json())

    def read_cursor(self, container: str, name: str) -> dict[str, Any] | None:
        """A cursor document (``knack``: {"instant": iso}; destinations: {"generation": n})."""
        body = self._read_state(self._state(container, f"cursor-{name}"))
        return json.loads(body) if body else None

    def write_cursor(self, container: str, name: str, value: Mapping[str, Any]) -> None:
        """Fenced: see ``_write_state``."""
        self._write_state(container, self._state(container, f"cursor-{name}"), serialize_record(value))

    def read_received(self, container: str, name: str) -> dict[str, str] | None:
        """What destination ``name`` last received of each record: id → the content hash of the stored
        document it was sent from (``_state/<container>/sent-<name>.json``). None before the first record."""
        body = self._read_state(self._state(container, f"sent-{name}"))
        if not body:
            return None
        try:
            return {str(k): str(v) for k, v in json.loads(body)["records"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):  # unreadable: treated as nothing received
            return None

    def write_received(self, container: str, name: str, received: Mapping[str, str]) -> None:
        """Fenced: see ``_write_state``. Written after a publish succeeded, before its cursor."""
        self._write_state(container, self._state(container, f"sent-{name}"),
                          serialize_record({"version": 1, "records": received}))

    def read_row_digests(self, container: str, name: str) -> dict[str, str]:
        """The digest of the row destination ``name`` was last sent for each record (``tasks/domain/drift.py``),
        ``_state/<container>/rows-<name>.json``; empty before the first."""
        body = self._read_state(self._state(container, f"rows-{name}"))
        try:
            return {str(k): str(v) for k, v in json.loads(body)["rows"].items()} if body else {}
        except (ValueError, KeyError, TypeError, AttributeError):  # unreadable: every row is checked again
            return {}

    def write_row_digests(self, container: str, name: str, rows: Mapping[str, str]) -> None:
        """Fenced: see ``_write_state``. Written after a publish succeeded, before its cursor."""
        self._write_state(container, self._state(container, f"rows-{name}"),
                          serialize_record({"version": 1, "rows": rows}))

    def read_strays(self, container: str, name: str) -> list[str]:
        """Ids destination ``name`` holds that the store never had (``_state/<container>/strays-<name>.json``):
        candidates the next full offload confirms with Knack like its own. Empty when none."""
        body = self._read_state(self._state(container, f"strays-{name}"))
        try:
            return [str(i) for i in json.loads(body)["ids"]] if body else []
        except (ValueError, KeyError, TypeError):
            return []

    def write_strays(self, container: str, name: str, ids: Iterable[str]) -> None:
        """Fenced: see ``_write_state``."""
        self._write_state(container, self._state(container, f"strays-{name}"),
                          serialize_record({"version": 1, "ids": sorted(ids)}))

    def read_complete_listing(self, container: str) -> dict[str, Any] | None:
        """The mark a full offload leaves when Knack's listing was whole and every delete was confirmed:
        only then may a destination delete rows the store lacks. None before the first such run."""
        body = self._read_state(self._state(container, "listing"))
        return json.loads(body) if body else None

    def mark_complete_listing(self, container: str, value: Mapping[str, Any]) -> None:
        """Fenced like the manifest: see ``_write_state``."""
        self._write_state(container, self._state(container, "listing"), serialize_record(value))

    # -- notes of runs that lost their lock ------------------------------------------------------
    def write_suspects(self, container: str, name: str, owner: str, ids: Iterable[str]) -> str:
        """Note the records a run that lost its lock was sending to destination ``name`` when a write of it
        ended after its lease (``locks.py``): the next run sends them again. Not fenced: it is no state, and
        its key is the run's own."""
        key = self._state(container, f"suspect-{name}-{uuid.uuid4().hex}")
        self.storage.put(key, serialize_record({"owner": owner, "records": sorted(ids)}))
        return key

    def read_suspects(self, container: str, name: str) -> dict[str, list[str]]:
        """Every note for destination ``name``: key → record ids (one listing, then one read per note)."""
        notes: dict[str, list[str]] = {}
        prefix = self._state(container, f"suspect-{name}-").removesuffix(".json")
        folder = prefix.rsplit("/", 1)[0] + "/"  # the container's state folder: a handful of objects
        for key in [k for k in self.storage.list_keys(folder) if k.startswith(prefix)]:
            body = self.storage.get(key)
            try:
                notes[key] = [str(rid) for rid in json.loads(body or b"{}").get("records", [])]
            except (ValueError, AttributeError):
                notes[key] = []  # unreadable: nothing to resend; cleared with the others
        return notes

    def clear_suspects(self, container: str, keys: Iterable[str]) -> None:
        """Delete the notes a run has acted on (fenced: after its commit, under its lock)."""
        for key in keys:
            self.fence(container)
            self.storage.delete(key)

    # -- lock -----------------------------------------------------------------------------------
    @contextmanager
    def lock(self, container: str, owner: str, name: str = "knack",
             ttl: timedelta = timedelta(minutes=1)) -> Iterator[Held]:
        """One writer per container and role (``knack``, ``socrata``, ``agol``) at a time (``locks.py``);
        while it is held, this store's state writes for the container check it first."""
        with hold_lock(self.storage, self._state(container, f"lock-{name}"), owner, ttl,
                       what=f"{self.app}/{container} ({name})", thread_name=f"lock-{name}") as held:
            self._held.setdefault(container, []).append(held)
            try:
                yield held
            finally:
                self._held[container].remove(held)

    # -- writes ---------------------------------------------------------------------------------
    def write_records(self, container: str, pages: Iterable[list[dict[str, Any]]], manifest: Manifest,
                      generation: int, modified_of: Callable[[dict[str, Any]], str | None],
                      on_page: Callable[[WriteStats], None] | None = None,
                      busy: Callable[[], bool] | None = None,
                      present: Mapping[str, str] | None = None) -> WriteStats:
        """Write each new or changed record (concurrent PUTs); unchanged bytes are skipped. Which records a
        page writes, and with what expectation, is ``plan_page``'s decision (``tasks/domain/write_plan.py``).

        With ``present`` (key → ETag of every object under the container, from a listing), an unchanged
        record whose object is missing or is not what the manifest wrote is written again (a repair:
        its generation stays, so destinations do not republish it).

        A page's writes go to the pool in small groups (a task per group, not per record: per-record
        futures cost as much CPU as serializing). While ``busy()`` is true (the Knack fetch is still
        running) only a quarter of the workers write: the fetch's pacing against Knack's rate limit
        suffers from CPU contention, and it lasts seconds where the writes last minutes.

        The manifest is updated in memory for every PUT that succeeded; the caller saves it. A bad
        record id raises ``RecordError`` before anything of its page is submitted; the first failed
        PUT stops further submissions and is raised once the PUTs in flight are settled.
        """
        stats = WriteStats()
        pending: set[Future[_PutResult]] = set()
        try:
            for page in pages:
                plan = plan_page(page, manifest=manifest, seen=stats.seen_ids, generation=generation,
                                 key_of=partial(record_key, self.env, self.app, container),
                                 modified_of=modified_of, present=present)
                stats.seen_ids |= plan.seen
                stats.fetched += plan.fetched
                stats.unchanged += plan.unchanged
                for group in chunked(plan.puts, group_size(len(plan.puts), self.workers, PUTS_PER_TASK)):
                    pending.add(self._pool.submit(self._put_group, container, group))
                    if len(pending) >= in_flight_limit(self.workers, busy is not None and busy()):
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        _settle(done, manifest, generation, stats)
                if on_page is not None:
                    on_page(stats)
        finally:
            done, pending = wait(pending)
            _settle(done, manifest, generation, stats)
        return stats

    def _put_group(self, container: str, group: list[Put]) -> _PutResult:
        """PUT each document of ``group`` in turn; stop at the first failure (a lost lock too) and report it."""
        written: list[_Written] = []
        with self._fenced(container):
            for put in group:
                try:
                    etag = self._put_record(container, put)
                except StoreError as exc:
                    return written, exc
                written.append((put.rid, put.digest, put.modified, put.generation, etag))
        return written, None

    def _put_record(self, container: str, put: Put) -> str | None:
        """One fenced, conditional PUT; the object's content ETag. When the object is not what this run
        expected (a hand edit, an older system, a run that lost its lock), the holder writes it anyway."""
        self.fence(container)
        if put.expect is not None:
            version = self.storage.put_if(put.key, put.body, if_match=f'"{put.expect}"' if put.expect else None,
                                          if_none_match=put.expect == ABSENT)
            if version is not None:
                return version.strip('"') or None
            self.fence(container)
        return self.storage.put(put.key, put.body)

    def list_objects(self, container: str) -> dict[str, str]:
        """Key → ETag of every object under the container prefix (one listing)."""
        return self.storage.list_etags(container_prefix(self.env, self.app, container))

    @staticmethod
    def stored_ids(objects: Mapping[str, str], manifest: Manifest) -> set[str]:
        """Every record id in a listing of the container (``list_objects``) plus those the manifest knows."""
        return {rid for key in objects if (rid := record_id_from_key(key))} | set(manifest.records)

    def delete_records(self, container: str, ids: Iterable[str], manifest: Manifest, generation: int) -> list[str]:
        """Delete these records' objects (Knack has confirmed them gone) and record the deletes."""
        doomed = sorted(ids)

        def delete(rid: str) -> None:
            with self._fenced(container):
                self.fence(container)
                self.storage.delete(record_key(self.env, self.app, container, rid))

        futures = {self._pool.submit(delete, rid): rid for rid in doomed}
        for fut, rid in futures.items():
            fut.result()
            manifest.mark_deleted(rid, generation)
        return doomed

    # -- reads ----------------------------------------------------------------------------------
    def read_records(self, container: str, ids: Iterable[str], batch: int = 500,
                     shared: SharedReader | None = None) -> Iterator[list[dict[str, Any]]]:
        """The stored documents of ``ids``, in batches, read with concurrent GETs.

        The next batch is read while the caller works on this one (formats it, sends it), so the
        store and the destination are busy at the same time; at most two batches are held. With
        ``shared`` (the run's other destinations read the same records), each document is read once
        for all of them (``shared_reads.py``).
        """
        def read(rid: str) -> bytes | None:
            key = record_key(self.env, self.app, container, rid)
            if shared is None:
                return self.storage.get(key)
            return shared.get(rid, lambda: self.storage.get(key))

        def get(rids: list[str]) -> list[dict[str, Any]]:
            bodies = [(rid, read(rid)) for rid in rids]
            missing = [rid for rid, body in bodies if not body]
            if missing:
                raise StoreError(f"{self.app}/{container}: {len(missing)} records the manifest lists are missing "
                                 f"from the store: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}; "
                                 "a full refresh (--full) writes them again from Knack")
            return [json.loads(body) for _, body in bodies if body]

        def submit(chunk: list[str]) -> list[Future[list[dict[str, Any]]]]:
            # a few tasks per worker, not one per id: thousands of futures cost more than the GETs' CPU
            size = max(1, -(-len(chunk) // (4 * self.workers)))
            return [self._pool.submit(get, group) for group in chunked(chunk, size)]

        chunks = chunked(ids, batch)
        current = submit(next(chunks, []))
        upcoming: list[Future[list[dict[str, Any]]]] = []
        try:
            while current:
                upcoming = submit(next(chunks, []))
                yield [doc for fut in current for doc in fut.result()]
                current = upcoming
        finally:
            for fut in (*current, *upcoming):
                fut.cancel()
