"""A listing that cannot skip a record: one delete plus one create between page reads keeps every count
right while shifting a live record past a page boundary. The closing check sees the create; the listing
is then stored but trusted for nothing (no cursor, no listing mark, no delete by itself)."""

from __future__ import annotations

import pytest

from tests.fixtures.pipeline import Pipeline
from tests.integration.test_delete_safety import (
    KEY,
    assert_converged,
    configure,
    listing_order,
    run,
    socrata_deleted,
    state,
    stored,
    wipe_store,
)

pytestmark = pytest.mark.integration


def delete_and_create_after_page_one(p: Pipeline, gone: str, created: list[str]):  # noqa: ANN201
    def hook(container: str, page: int) -> None:
        if container == KEY and page == 1 and not created:
            p.knack.delete_record(KEY, gone)  # the first record of page 2 slides onto page 1, already read
            created.append(p.knack.create_record(KEY)["id"])  # and the total is what page 1 said
    return hook


def test_a_delete_and_a_create_during_a_first_run_over_full_destinations(pipeline: Pipeline) -> None:
    p = pipeline
    configure(p, knack_rows_per_page=100)
    run(p)  # the dataset and the layer hold every record, as the old scripts left them
    wipe_store(p)
    order = listing_order(p)
    skipped, created = order[100], []
    p.knack.after_page(delete_and_create_after_page_one(p, order[10], created))
    first = run(p)
    p.knack.after_page(None)
    assert created and skipped not in p.stored_ids(KEY)  # the shift hid it from this listing
    assert not first["store"]["listing_consistent"] and first["store"]["cursor"] is None
    assert any("created while the pages were read" in why for why in first["store"]["listing_problems"])
    assert state(p, "cursor-knack") is None and state(p, "listing") is None
    assert skipped in p.socrata_ids(KEY) and skipped in p.agol_ids(KEY)  # no live row deleted downstream
    assert first["published"]["socrata"]["deleted"] == 0 and first["published"]["agol"]["deleted"] == 0
    run(p)  # the next run lists everything again: now whole
    assert skipped in p.stored_ids(KEY)
    assert_converged(p, ever_live=set(order) - {order[10]})
    assert order[10] in socrata_deleted(p)  # only the record Knack lost went


def test_a_delete_and_a_create_during_an_hourly_multi_page_run(pipeline: Pipeline) -> None:
    p = pipeline
    configure(p, knack_rows_per_page=100)
    run(p)
    edited = set(p.knack.edit_random(KEY, 250, seed=9))
    window = [rid for rid in listing_order(p) if rid in edited]
    skipped, created = window[100], []
    before = state(p, "cursor-knack")
    p.knack.after_page(delete_and_create_after_page_one(p, window[5], created))
    hourly = run(p)
    p.knack.after_page(None)
    assert hourly["store"]["cursor"] is None and state(p, "cursor-knack") == before  # no cursor moved
    next_hour = run(p)  # the same window again: the edit the shift hid comes in, no nightly run needed
    assert next_hour["store"]["cursor"] is not None
    records = {r["id"]: r for r in p.knack.records(KEY)}
    assert stored(p, KEY, skipped) == records[skipped]
    assert created[0] in p.stored_ids(KEY)
    assert all(stored(p, KEY, rid) == records[rid] for rid in edited if rid in records)
