"""tasks/store/shared_reads.py: one read per record for every destination of a run, bounded memory."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tasks.domain.layout import ManifestEntry
from tasks.store.shared_reads import ReadGroup, shared_reader, sharing_reads

pytestmark = pytest.mark.unit


class Store:
    """Counts loads of each key; ``gate`` holds a load until it is set."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def loader(self, rid: str, fail: bool = False) -> Callable[[], bytes | None]:
        def load() -> bytes | None:
            self.gate.wait(5)
            with self._lock:
                self.loads.append(rid)
            if fail:
                raise OSError(f"GET {rid} failed")
            return rid.encode()
        return load


def test_each_record_is_read_once_and_dropped_when_every_destination_took_it() -> None:
    store, group = Store(), ReadGroup(["socrata", "agol"])
    group.join("socrata", [("a", "h"), ("b", "h")])
    group.join("agol", [("a", "h"), ("b", "h")])
    assert group.get("socrata", ("a", "h"), store.loader("a")) == b"a"
    assert group.kept() == 1
    assert group.get("agol", ("a", "h"), store.loader("a")) == b"a"
    assert group.kept() == 0
    assert group.get("agol", ("b", "h"), store.loader("b")) == b"b"
    assert group.get("socrata", ("b", "h"), store.loader("b")) == b"b"
    assert store.loads == ["a", "b"] and (group.gets, group.shared, group.kept()) == (2, 2, 0)


def test_other_content_or_a_record_nobody_else_wants_is_not_kept() -> None:
    store, group = Store(), ReadGroup(["socrata", "agol"])
    group.join("socrata", [("a", "h1"), ("c", "h")])
    group.join("agol", [("a", "h1")])
    group.get("socrata", ("c", "h"), store.loader("c"))
    assert group.kept() == 0  # agol does not send c
    group.get("socrata", ("a", "h1"), store.loader("a"))
    group.get("agol", ("a", "h2"), store.loader("a"))  # another version: read again
    assert store.loads == ["c", "a", "a"]


def test_the_one_behind_waits_for_the_read_in_flight() -> None:
    store, group = Store(), ReadGroup(["socrata", "agol"])
    for role in ("socrata", "agol"):
        group.join(role, [("a", "h")])
    store.gate.clear()
    results: dict[str, bytes | None] = {}
    first = threading.Thread(target=lambda: results.update(socrata=group.get("socrata", ("a", "h"),
                                                                              store.loader("a"))))
    first.start()
    while not group.kept():
        pass
    second = threading.Thread(target=lambda: results.update(agol=group.get("agol", ("a", "h"), store.loader("a"))))
    second.start()
    store.gate.set()
    first.join(5)
    second.join(5)
    assert results == {"socrata": b"a", "agol": b"a"} and store.loads == ["a"]


def test_a_failed_read_is_read_again_by_the_one_behind() -> None:
    store, group = Store(), ReadGroup(["socrata", "agol"])
    for role in ("socrata", "agol"):
        group.join(role, [("a", "h")])
    with pytest.raises(OSError):
        group.get("socrata", ("a", "h"), store.loader("a", fail=True))
    assert group.get("agol", ("a", "h"), store.loader("a")) == b"a"
    assert store.loads == ["a", "a"] and group.kept() == 0


def test_memory_is_bounded_and_a_destination_that_leaves_frees_what_was_kept_for_it() -> None:
    store, group = Store(), ReadGroup(["socrata", "agol"], budget=2)
    keys = [(rid, "h") for rid in "abcd"]
    group.join("socrata", keys)  # agol has not said what it sends yet: kept for it, up to the budget
    for key in keys:
        group.get("socrata", key, store.loader(key[0]))
    assert group.kept() == 2
    group.join("agol", keys[:1])  # it sends only a: b is let go
    assert group.kept() == 1
    group.leave("agol")
    assert group.kept() == 0


def test_a_destination_publishing_alone_reads_for_itself() -> None:
    with sharing_reads("dev", "demo", "object_1", ["socrata"]) as group:
        assert group is None
        with shared_reader("dev", "demo", "object_1", "socrata", {"a": ManifestEntry("h", None, 1)}) as reader:
            assert reader is None
    with sharing_reads("dev", "demo", "object_1", ["socrata", "agol"]) as group:
        assert group is not None
        with shared_reader("dev", "demo", "object_1", "agol", {"a": ManifestEntry("h", None, 1)}) as reader:
            assert reader is not None and reader.get("a", lambda: b"x") == b"x"
        with shared_reader("dev", "demo", "object_2", "agol", {}) as other:
            assert other is None  # another container's run
