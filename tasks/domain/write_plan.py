"""What one page of records asks of the store: the PUTs to make and why, without any I/O.

``plan_page`` reads a page against the container's manifest (and, on a full run, a listing of the
objects the store holds) and says which records to write, with the bytes, the generation each write
records and the ETag the object is expected to have. ``RecordStore.write_records``
(``tasks/store/records.py``) sends the PUTs and applies the ones that succeeded to the manifest.

- a record seen earlier in the run (an earlier page, or earlier in this one) is skipped;
- a new record, or one whose stored bytes would change, is written with the run's generation;
- an unchanged record is skipped, unless the listing shows its object missing or not the bytes the
  manifest wrote: then it is written again (a repair) with the generation it already had, so no
  destination publishes it again;
- the expected ETag: the listing's when there is one, else the manifest's; ``ABSENT`` when the object
  should not exist yet, None when an older manifest kept no ETag (the PUT is then unconditional).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

from tasks.domain.layout import Manifest, content_hash, serialize_record

ABSENT = ""  # a write's expectation: the object must not exist yet


@dataclass(frozen=True)
class Put:
    """One record PUT: where, what, and what the writer expects to find there.

    ``expect`` is the content ETag the run's manifest (or a listing) says the object has, ``ABSENT`` when
    it says there is none, None when it does not know (an older manifest): the PUT is conditional on it,
    so a write of a run that lost its lock cannot land over a newer one (``tasks/store/locks.py``)."""

    key: str
    body: bytes
    rid: str
    digest: str
    modified: str | None
    generation: int
    expect: str | None


@dataclass(frozen=True)
class WritePlan:
    """One page's writes, and what the page held."""

    puts: tuple[Put, ...]
    fetched: int           # records of the page not seen earlier in the run
    unchanged: int         # of those, records whose stored bytes stay as they are (and need no repair)
    repairs: int           # of the PUTs, unchanged records written again (missing or damaged object)
    seen: frozenset[str]   # the ids this page adds to the run's


def plan_page(page: Iterable[Mapping[str, Any]], *, manifest: Manifest, seen: Set[str], generation: int,
              key_of: Callable[[object], str], modified_of: Callable[[Any], str | None],
              present: Mapping[str, str] | None = None) -> WritePlan:
    """The PUTs one page of records needs (see the module's docstring).

    ``key_of`` gives a record id's object key and raises ``RecordError`` for an id that is not one
    (``layout.record_key``): every key of the page is made first, so a bad id stops the page before any
    of it is planned. ``seen`` (the ids of the run's earlier pages) and ``manifest`` are only read.
    """
    keyed = [(record, key_of(record.get("id"))) for record in page]
    puts: list[Put] = []
    new: set[str] = set()
    unchanged = repairs = 0
    for record, key in keyed:
        rid = record["id"]
        if rid in seen or rid in new:
            continue
        new.add(rid)
        body = serialize_record(record)
        digest = content_hash(body)
        if present is not None:
            expect: str | None = present.get(key, ABSENT)
        else:
            expect = manifest.etags.get(rid) if rid in manifest.records else ABSENT
        if manifest.is_unchanged(rid, digest):
            if present is None or not manifest.needs_repair(rid, body, present.get(key)):
                unchanged += 1
                continue
            repairs += 1
            puts.append(Put(key, body, rid, digest, modified_of(record), manifest.records[rid].generation, expect))
            continue
        puts.append(Put(key, body, rid, digest, modified_of(record), generation, expect))
    return WritePlan(tuple(puts), fetched=len(new), unchanged=unchanged, repairs=repairs, seen=frozenset(new))


def group_size(puts: int, workers: int, most: int) -> int:
    """PUTs per pool task: enough groups to keep every worker busy, at most ``most`` PUTs in each."""
    return max(1, min(most, -(-puts // workers)))


def in_flight_limit(workers: int, busy: bool) -> int:
    """Pool tasks in flight before the writer waits for one: a quarter of the workers while the Knack
    fetch runs (its pacing suffers from CPU contention), else two per worker."""
    return max(1, workers // 4) if busy else workers * 2
