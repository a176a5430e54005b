"""One page of records against the manifest and a listing: the PUTs a write makes (tasks/domain/write_plan.py)."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from tasks.domain.errors import RecordError
from tasks.domain.layout import Manifest, ManifestEntry, body_etag, content_hash, record_key, serialize_record
from tasks.domain.write_plan import ABSENT, WritePlan, group_size, in_flight_limit, plan_page

pytestmark = pytest.mark.unit

A, B, C = "a" * 24, "b" * 24, "c" * 24
GEN = 7
key_of = partial(record_key, "dev", "demo", "object_3")


def rec(rid: str, title: str = "x") -> dict[str, Any]:
    return {"id": rid, "field_1": title, "stamp": f"stamp-{rid[0]}"}


def stored(*records: dict[str, Any], generation: int = 3, etags: bool = True) -> Manifest:
    """A manifest that wrote these records at ``generation``, with the ETags plain PUTs gave them."""
    manifest = Manifest(generation=generation)
    for r in records:
        body = serialize_record(r)
        manifest.mark_written(r["id"], content_hash(body), None, generation, body_etag(body) if etags else None)
    return manifest


def plan(page: list[dict[str, Any]], manifest: Manifest, seen: set[str] | None = None,
         present: dict[str, str] | None = None) -> WritePlan:
    return plan_page(page, manifest=manifest, seen=seen or set(), generation=GEN, key_of=key_of,
                     modified_of=lambda r: r["stamp"], present=present)


def test_a_new_record_is_written_with_the_run_generation_and_expected_absent() -> None:
    p = plan([rec(A)], Manifest())
    body = serialize_record(rec(A))
    assert len(p.puts) == 1
    put = p.puts[0]
    assert (put.key, put.rid, put.body, put.digest) == (f"dev/demo/object_3/{A}.json", A, body, content_hash(body))
    assert (put.modified, put.generation, put.expect) == ("stamp-a", GEN, ABSENT)
    assert (p.fetched, p.unchanged, p.repairs, p.seen) == (1, 0, 0, frozenset({A}))


def test_an_unchanged_record_is_skipped_and_counted() -> None:
    p = plan([rec(A), rec(B)], stored(rec(A)))
    assert [put.rid for put in p.puts] == [B]
    assert (p.fetched, p.unchanged, p.repairs) == (2, 1, 0)
    assert p.seen == {A, B}


def test_a_changed_record_is_written_with_the_run_generation_if_its_object_is_what_the_manifest_wrote() -> None:
    manifest = stored(rec(A, "old"))
    p = plan([rec(A, "new")], manifest)
    assert [(put.rid, put.generation) for put in p.puts] == [(A, GEN)]
    assert p.puts[0].expect == manifest.etags[A] == body_etag(serialize_record(rec(A, "old")))  # If-Match
    assert (p.fetched, p.unchanged, p.repairs) == (1, 0, 0)


def test_a_changed_record_of_an_older_manifest_without_etags_is_written_unconditionally() -> None:
    p = plan([rec(A, "new")], stored(rec(A, "old"), etags=False))
    assert p.puts[0].expect is None


def test_the_listing_decides_the_expected_etag_when_there_is_one() -> None:
    manifest = stored(rec(A, "old"))
    p = plan([rec(A, "new"), rec(B)], manifest, present={key_of(A): "listed-etag"})
    assert {put.rid: put.expect for put in p.puts} == {A: "listed-etag", B: ABSENT}


def test_an_id_seen_earlier_in_the_run_or_the_page_is_skipped_and_not_counted_again() -> None:
    p = plan([rec(A), rec(B), rec(B, "again"), rec(C)], Manifest(), seen={A})
    assert [put.rid for put in p.puts] == [B, C]
    assert p.puts[0].body == serialize_record(rec(B))  # the first copy in the page wins
    assert (p.fetched, p.seen) == (2, frozenset({B, C}))


@pytest.mark.parametrize("listed", [None, "0" * 32, "not-md5-but-not-recorded"], ids=["missing", "damaged", "other"])
def test_an_unchanged_record_whose_object_is_missing_or_differs_is_repaired_at_its_old_generation(
        listed: str | None) -> None:
    manifest = stored(rec(A), rec(B), generation=3)
    present = {key_of(B): manifest.etags[B]}
    if listed is not None:
        present[key_of(A)] = listed
    p = plan([rec(A), rec(B)], manifest, present=present)
    assert [(put.rid, put.generation, put.expect) for put in p.puts] == [(A, 3, listed if listed else ABSENT)]
    assert (p.fetched, p.unchanged, p.repairs) == (2, 1, 1)


def test_without_a_listing_an_unchanged_record_is_never_repaired() -> None:
    p = plan([rec(A)], stored(rec(A)))
    assert (p.puts, p.repairs, p.unchanged) == ((), 0, 1)


def test_a_bad_id_stops_the_page_naming_the_container_and_the_id() -> None:
    seen = {C}
    with pytest.raises(RecordError, match=r"container object_3, record '\.\./etc'") as err:
        plan([rec(A), {"id": "../etc"}], Manifest(), seen=seen)
    assert (err.value.container, err.value.record_id) == ("object_3", "../etc")
    assert seen == {C}  # the run's ids are only read


def test_the_inputs_are_only_read() -> None:
    manifest = stored(rec(A, "old"))
    before = (dict(manifest.records), dict(manifest.etags), manifest.generation)
    seen = {C}
    plan([rec(A, "new"), rec(B)], manifest, seen=seen, present={})
    assert (dict(manifest.records), dict(manifest.etags), manifest.generation) == before
    assert manifest.records[A] == ManifestEntry(content_hash(serialize_record(rec(A, "old"))), None, 3)
    assert seen == {C}


def test_groups_keep_every_worker_busy_and_stay_small() -> None:
    assert group_size(0, 16, 8) == 1
    assert group_size(10, 16, 8) == 1
    assert group_size(100, 16, 8) == 7
    assert group_size(10_000, 16, 8) == 8


def test_fewer_pool_tasks_are_in_flight_while_the_fetch_runs() -> None:
    assert (in_flight_limit(16, busy=True), in_flight_limit(16, busy=False)) == (4, 32)
    assert in_flight_limit(2, busy=True) == 1
