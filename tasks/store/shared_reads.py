"""Stored records read once per run, for every destination of the run.

A ``sync`` run publishes to its destinations at the same time, each in its own thread with its own
plan; each would GET every record it sends. Instead the run opens a *read group* for the container
(``sharing_reads``), and each destination joins it with the records it will read (id and content hash).
The first destination to need a record reads it; one that needs a record another is reading waits for
that read (single flight); a read is kept only for the destinations that still need it, and dropped
once the last of them took it. At most ``budget`` documents are kept: past that a destination reads for
itself (a second GET), so memory stays bounded and no destination waits for another's progress. A read
that failed is read again by each destination that needed it, which then fails or not on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager

from tasks.domain.layout import ManifestEntry

BUDGET = 10_000  # documents kept for destinations behind the one that read them

Key = tuple[str, str]  # record id, content hash of the stored document


class _Entry:
    """One read in flight or done, and the destinations that will still take it."""

    __slots__ = ("future", "waiting")

    def __init__(self, waiting: set[str]) -> None:
        self.future: Future[bytes | None] = Future()
        self.waiting = waiting


class ReadGroup:
    """The reads of one container shared by the destinations (``roles``) of one run."""

    def __init__(self, roles: Iterable[str], budget: int = BUDGET) -> None:
        self.roles = frozenset(roles)
        self.budget = budget
        self.gets = 0     # documents read from the store
        self.shared = 0   # documents taken from another destination's read
        self._lock = threading.Lock()
        self._entries: dict[Key, _Entry] = {}
        self._pending: dict[str, set[Key]] = {}  # role → what it will still read (once it joined)
        self._gone: set[str] = set()              # roles done (or failed)

    def join(self, role: str, keys: Iterable[Key]) -> None:
        """``role`` will read ``keys`` (added to what it declared before); reads kept for it and not
        among them are let go."""
        with self._lock:
            pending = self._pending.setdefault(role, set())
            pending.update(keys)
            for key, entry in list(self._entries.items()):
                if role in entry.waiting and key not in pending:
                    self._release(key, entry, role)

    def leave(self, role: str) -> None:
        """``role`` reads no more: nothing is kept for it any longer."""
        with self._lock:
            self._gone.add(role)
            self._pending.pop(role, None)
            for key, entry in list(self._entries.items()):
                if role in entry.waiting:
                    self._release(key, entry, role)

    def get(self, role: str, key: Key, load: Callable[[], bytes | None]) -> bytes | None:
        """The document ``key`` for ``role``: another destination's read of it, or ``load()``."""
        with self._lock:
            if (pending := self._pending.get(role)) is not None:
                pending.discard(key)
            entry = self._entries.get(key)
            if entry is not None and role in entry.waiting:
                mine = False
            elif entry is None and len(self._entries) < self.budget and (waiting := self._interested(key, role)):
                entry, mine = _Entry(waiting), True
                self._entries[key] = entry
            else:
                entry = None
        if entry is None:
            return self._load(load)
        if mine:
            return self._fill(key, entry, load)
        try:
            body = entry.future.result()
        except Exception:  # the other destination's read failed: read it here
            body = self._load(load)
        else:
            with self._lock:
                self.shared += 1
        with self._lock:
            self._release(key, entry, role)
        return body

    def _load(self, load: Callable[[], bytes | None]) -> bytes | None:
        body = load()
        with self._lock:
            self.gets += 1
        return body

    def _fill(self, key: Key, entry: _Entry, load: Callable[[], bytes | None]) -> bytes | None:
        try:
            body = self._load(load)
        except BaseException as exc:
            entry.future.set_exception(exc)
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            raise
        entry.future.set_result(body)
        with self._lock:
            if not entry.waiting and self._entries.get(key) is entry:
                del self._entries[key]
        return body

    def _interested(self, key: Key, reader: str) -> set[str]:
        """The other destinations that may still read ``key``: those that declared it, and those that
        have not declared anything yet."""
        return {role for role in self.roles - self._gone - {reader}
                if role not in self._pending or key in self._pending[role]}

    def _release(self, key: Key, entry: _Entry, role: str) -> None:
        entry.waiting.discard(role)
        if not entry.waiting and entry.future.done() and self._entries.get(key) is entry:
            del self._entries[key]

    def kept(self) -> int:
        with self._lock:
            return len(self._entries)


class SharedReader:
    """One destination's view of its run's read group: ``get(record id, load)``."""

    def __init__(self, group: ReadGroup, role: str, digests: Mapping[str, ManifestEntry]) -> None:
        self.group, self.role, self.digests = group, role, digests

    def want(self, ids: Iterable[str]) -> None:
        self.group.join(self.role, ((rid, self.digests[rid].digest) for rid in ids if rid in self.digests))

    def get(self, record_id: str, load: Callable[[], bytes | None]) -> bytes | None:
        entry = self.digests.get(record_id)
        if entry is None:
            return load()
        return self.group.get(self.role, (record_id, entry.digest), load)


_GROUPS: dict[tuple[str, str, str], ReadGroup] = {}
_GROUPS_LOCK = threading.Lock()


@contextmanager
def sharing_reads(env: str, app: str, container: str, roles: Iterable[str]) -> Iterator[ReadGroup | None]:
    """Open the read group of one run of a container published to ``roles`` (none for a single one)."""
    roles = list(roles)
    where = (env, app, container)
    with _GROUPS_LOCK:
        group = ReadGroup(roles) if len(roles) > 1 and where not in _GROUPS else None
        if group is not None:
            _GROUPS[where] = group
    try:
        yield group
    finally:
        if group is not None:
            with _GROUPS_LOCK:
                del _GROUPS[where]


@contextmanager
def shared_reader(env: str, app: str, container: str, role: str,
                  digests: Mapping[str, ManifestEntry]) -> Iterator[SharedReader | None]:
    """This destination's part of its run's read group; None when it publishes alone. Leaves on exit."""
    with _GROUPS_LOCK:
        group = _GROUPS.get((env, app, container))
    if group is None or role not in group.roles:
        yield None
        return
    try:
        yield SharedReader(group, role, digests)
    finally:
        group.leave(role)
