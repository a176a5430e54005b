"""The app's stored metadata (``<env>/<app>/metadata.json``) read once per run.

A ``sync`` run reads the metadata when it compares it with Knack's, when it checks the fetch stamp, and
once more in each destination (the schema it publishes with). While a run holds ``remembering_metadata``
for its app, every store it opens for that app keeps the first read (or the run's own write) of that one
object and serves it again from memory. Nothing else is kept: state documents written under locks
(manifests, cursors, locks) are always read from the store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tasks.domain.layout import metadata_key

if TYPE_CHECKING:
    from tasks.store.backends import Storage

_LOCK = threading.Lock()
_RUNS: dict[tuple[str, str], list[Any]] = {}  # (env, app) → [holders, {key: body}]


@contextmanager
def remembering_metadata(env: str, app: str) -> Iterator[None]:
    """While this is open, stores opened for ``app`` in ``env`` read its metadata at most once."""
    where = (env, app)
    with _LOCK:
        entry = _RUNS.setdefault(where, [0, {}])
        entry[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                del _RUNS[where]


def remembered(storage: Storage, env: str, app: str) -> Storage:
    """``storage``, or a view of it that remembers the app's metadata while a run holds it."""
    with _LOCK:
        entry = _RUNS.get((env, app))
    return storage if entry is None else MetadataOnce(storage, metadata_key(env, app), entry[1])


class MetadataOnce:
    """A storage that serves one key (the metadata) from memory after its first read or write."""

    def __init__(self, storage: Storage, key: str, memory: dict[str, bytes | None]) -> None:
        self._storage = storage
        self._key = key
        self._memory = memory

    def __getattr__(self, name: str) -> Any:  # everything but the metadata's get and put goes through
        return getattr(self._storage, name)

    def get(self, key: str) -> bytes | None:
        if key != self._key:
            return self._storage.get(key)
        with _LOCK:
            if key in self._memory:
                return self._memory[key]
        body = self._storage.get(key)
        with _LOCK:
            self._memory.setdefault(key, body)
        return body

    def put(self, key: str, body: bytes, *args: Any, **kwargs: Any) -> str | None:
        etag = self._storage.put(key, body, *args, **kwargs)
        if key == self._key:
            with _LOCK:
                self._memory[key] = body
        return etag
