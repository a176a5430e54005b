"""Never delete a live record: Knack's odd listings, changes during a fetch, skewed clocks, a new store
over full datasets, a damaged store and mass deletes. Each case ends with the store, Socrata and ArcGIS
equal to Knack, and checks from the destinations' own records that no live id was ever deleted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from flows.records_to_s3 import records_to_s3
from flows.records_to_socrata import records_to_socrata
from flows.sync import sync
from tests.fixtures.pipeline import Pipeline

pytestmark = pytest.mark.integration

KEY = "object_1"


def run(p: Pipeline, container: str = KEY, **kwargs: Any) -> dict[str, Any]:
    return sync(app=p.app, container=container, env=p.env, config_path=str(p.config_path), **kwargs)


def configure(p: Pipeline, container: dict[str, Any] | None = None, **settings: Any) -> None:
    raw = yaml.safe_load(p.config_path.read_text())
    raw.update(settings)
    raw["apps"][p.app]["containers"][KEY].update(container or {})
    p.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))


def socrata_deleted(p: Pipeline, key: str = KEY) -> set[str]:
    """Every id the pipeline ever sent to the dataset as a ``:deleted`` row."""
    resource = p.container(key).socrata_resource_id
    sent: set[str] = set()
    for entry in p.socrata.requests:
        if entry["method"] == "POST" and resource in entry["path"] and isinstance(entry["body"], list):
            sent |= {row["id"] for row in entry["body"] if isinstance(row, dict) and row.get(":deleted")}
    return sent


def agol_deleted(p: Pipeline, key: str = KEY) -> set[str]:
    cfg = p.container(key)
    return {str(f[cfg.upsert_matching_field]) for f in p.arcgis.deleted_features(cfg.service_id, cfg.layer_id)}


def stored(p: Pipeline, key: str, rid: str) -> dict[str, Any]:
    return json.loads(p.s3.get_object(Bucket=p.bucket, Key=f"{p.env}/{p.app}/{key}/{rid}.json")["Body"].read())


def state(p: Pipeline, name: str, key: str = KEY) -> dict[str, Any] | None:
    try:
        body = p.s3.get_object(Bucket=p.bucket, Key=f"{p.env}/{p.app}/_state/{key}/{name}.json")["Body"].read()
    except p.s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def assert_converged(p: Pipeline, key: str = KEY, *, ever_live: set[str] | None = None) -> None:
    """Store (ids and bodies), dataset and layer equal Knack; no live id was ever sent as a delete."""
    live = p.knack_ids(key)
    assert p.stored_ids(key) == live
    records = {r["id"]: r for r in p.knack.records(key)}
    assert all(stored(p, key, rid) == records[rid] for rid in live)
    if p.container(key).socrata_resource_id:
        assert p.socrata_ids(key) == live
        assert not socrata_deleted(p, key) & (set(live) | (ever_live or set()))
    if p.container(key).service_id:
        assert p.agol_ids(key) == live
        assert not agol_deleted(p, key) & (set(live) | (ever_live or set()))


def listing_order(p: Pipeline, key: str = KEY) -> list[str]:
    import requests

    response = requests.get(f"{p.knack.api_url}/objects/{key}/records", params={"rows_per_page": 1000},
                            headers={"X-Knack-Application-Id": p.knack.app_id,
                                     "X-Knack-REST-API-Key": p.knack.api_key}, timeout=10)
    return [r["id"] for r in response.json()["records"]]


# --- Knack's odd listings ------------------------------------------------------------------------------

def test_short_pages_never_delete_a_live_record(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    p.knack.set_faults(short_page_every=1)  # each page loses its last 5%: those records are never listed
    p.knack.reset_counters()
    full = run(p, full=True)
    assert full["store"]["deleted"] == 0
    assert not full["store"]["listing_consistent"]
    # one request for the page, one lookup per record the listing missed, one lookup of a listed record
    assert full["store"]["lookups"] == 15 + 1
    assert p.knack.counters()["requests"] == 1 + 16
    p.knack.set_faults()
    assert_converged(p)


def test_short_pages_on_a_first_run_keep_the_cursor_and_mark_nothing_complete(pipeline: Pipeline) -> None:
    p = pipeline
    p.knack.set_faults(short_page_every=1)
    first = run(p)
    assert first["store"]["written"] == 285 and first["store"]["cursor"] is None
    assert state(p, "cursor-knack") is None  # the next run lists everything again
    p.knack.set_faults()
    second = run(p)
    assert second["store"]["mode"] == "full" and second["store"]["written"] == 15
    assert state(p, "cursor-knack") is not None
    assert_converged(p)


def test_an_overstated_total_keeps_the_cursor_until_a_listing_is_whole(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    before = state(p, "cursor-knack")
    edited = p.knack.edit_random(KEY, 3, seed=5)
    p.knack.set_faults(inflate_total_records=5)
    second = run(p)
    assert second["store"]["written"] == 3 and second["store"]["cursor"] is None
    assert state(p, "cursor-knack") == before
    p.knack.set_faults()
    third = run(p)
    assert third["store"]["cursor"] is not None and third["store"]["written"] == 0
    assert all(stored(p, KEY, rid) == r for r in p.knack.records(KEY) if (rid := r["id"]) in edited)
    assert_converged(p)


# --- changes during a fetch -----------------------------------------------------------------------------

def test_a_delete_during_a_full_fetch_deletes_only_what_knack_lost(pipeline: Pipeline) -> None:
    p = pipeline
    configure(p, knack_rows_per_page=100)
    run(p)
    order = listing_order(p)
    gone = order[10]

    def delete_after_page_one(container: str, page: int) -> None:
        if container == KEY and page == 1 and gone in p.knack_ids(KEY):  # once (the closing check reads page 1)
            p.knack.delete_record(KEY, gone)  # order[100] slides onto page 1, already read: never listed

    p.knack.after_page(delete_after_page_one)
    full = run(p, full=True)
    p.knack.after_page(None)
    assert full["store"]["deleted"] == 0  # the deleted record was listed; the skipped one was looked up
    assert order[100] in p.stored_ids(KEY)
    again = run(p, full=True)
    assert again["store"]["deleted"] == 1
    assert_converged(p, ever_live=set(order) - {gone})


def test_an_insert_during_a_full_fetch(pipeline: Pipeline) -> None:
    p = pipeline
    configure(p, knack_rows_per_page=100)
    run(p)
    order = listing_order(p)
    created: list[str] = []

    def insert_after_page_one(container: str, page: int) -> None:
        if container == KEY and page == 1 and not created:
            created.append(p.knack.create_record(KEY, {"field_2": "New & During"})["id"])

    p.knack.after_page(insert_after_page_one)
    run(p, full=True)
    p.knack.after_page(None)
    run(p, full=True)
    assert created[0] in p.stored_ids(KEY)
    assert_converged(p, ever_live=set(order))


def test_an_incremental_fetch_whose_offsets_shift_reads_its_window_again(pipeline: Pipeline) -> None:
    p = pipeline
    configure(p, knack_rows_per_page=100)
    run(p)
    edited = set(p.knack.edit_random(KEY, 250, seed=9))
    window = [rid for rid in listing_order(p) if rid in edited]
    gone = window[5]

    def delete_after_page_one(container: str, page: int) -> None:
        if container == KEY and page == 1 and gone in p.knack_ids(KEY):  # once (the closing check reads page 1)
            p.knack.delete_record(KEY, gone)  # the 101st edited record slides onto page 1: skipped

    before = state(p, "cursor-knack")
    p.knack.after_page(delete_after_page_one)
    second = run(p)
    p.knack.after_page(None)
    assert second["store"]["cursor"] is None and state(p, "cursor-knack") == before
    run(p)
    run(p, full=True)  # the deleted record leaves the store, the dataset and the layer
    assert_converged(p, ever_live=edited - {gone})


def test_a_record_re_sorted_onto_a_page_already_read_is_not_lost(pipeline: Pipeline) -> None:
    p = pipeline
    configure(p, knack_rows_per_page=100)
    p.knack.set_sort(KEY, "field_27", "desc")  # most recently modified first
    run(p)
    order = listing_order(p)
    moved = order[250]

    edits: list[dict] = []

    def edit_after_page_one(container: str, page: int) -> None:
        if container == KEY and page == 1 and not edits:  # once (the closing check reads page 1 too)
            edits.append(p.knack.update_record(KEY, moved, {"field_2": "Moved & Edited"}))  # now first: on page 1

    p.knack.after_page(edit_after_page_one)
    full = run(p, full=True)
    p.knack.after_page(None)
    assert full["store"]["deleted"] == 0
    assert stored(p, KEY, moved)["field_2"] == "Moved & Edited"  # the lookup brought the new version
    assert_converged(p, ever_live=set(order))


# --- clocks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("offset_minutes", [-3, 3], ids=["knack-behind", "knack-ahead"])
def test_the_cursor_follows_knacks_clock(pipeline: Pipeline, offset_minutes: int) -> None:
    p = pipeline
    p.knack.set_clock_offset(offset_minutes * 60)
    first = run(p)
    knack_now = p.knack.now()
    cursor = datetime.fromisoformat(first["store"]["cursor"])
    # Knack's instant at the fetch start, less the lag (2 minutes), cut to the minute
    assert knack_now - timedelta(minutes=3, seconds=30) <= cursor <= knack_now - timedelta(minutes=1)
    edited = p.knack.edit_random(KEY, 2, seed=1)  # stamped by Knack's clock, right after the run
    second = run(p)
    assert second["store"]["written"] == 2
    assert all(stored(p, KEY, rid) == r for r in p.knack.records(KEY) if (rid := r["id"]) in edited)
    assert_converged(p)


# --- a new store over full destinations (moving from the old scripts) ----------------------------------

def wipe_store(p: Pipeline) -> None:
    for page in p.s3.get_paginator("list_objects_v2").paginate(Bucket=p.bucket, Prefix=f"{p.env}/"):
        for item in page.get("Contents", []):
            p.s3.delete_object(Bucket=p.bucket, Key=item["Key"])


@pytest.mark.parametrize("no_replace", [False, True], ids=["replaceable", "no_replace_socrata"])
def test_a_first_run_with_a_date_over_full_destinations_deletes_nothing(pipeline: Pipeline,
                                                                         no_replace: bool) -> None:
    p = pipeline
    run(p)  # the dataset and the layer hold every record, as the old scripts left them
    wipe_store(p)
    configure(p, {"no_replace_socrata": no_replace})
    recent = p.knack.edit_random(KEY, 7, seed=2)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    first = run(p, since=since)
    assert sorted(p.stored_ids(KEY)) == sorted(recent)
    assert first["published"]["socrata"]["deleted"] == 0 and first["published"]["agol"]["deleted"] == 0
    assert p.socrata_ids(KEY) == p.knack_ids(KEY) and p.agol_ids(KEY) == p.knack_ids(KEY)
    assert not socrata_deleted(p) and not agol_deleted(p)
    run(p, full=True)  # a complete listing: now the store is whole too
    assert_converged(p)
    assert not socrata_deleted(p) and not agol_deleted(p)


def test_a_stray_row_goes_only_after_a_complete_listing(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    stray = p.knack.records(KEY)[0]["id"]
    p.knack.delete_record(KEY, stray)  # deleted in Knack while nobody ran: the destinations still hold it
    wipe_store(p)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    run(p, since=since)  # a partial store: the stray stays
    assert stray in p.socrata_ids(KEY) and stray in p.agol_ids(KEY)
    run(p, full=True)   # a complete listing: the stray is a candidate, asked about by the next full offload
    assert stray in p.socrata_ids(KEY) and stray in p.agol_ids(KEY)
    confirmed = run(p, full=True)  # Knack confirmed it gone: the stray goes
    assert confirmed["store"]["deleted"] == 1 and confirmed["store"]["confirmed_by"] == "lookups"
    assert socrata_deleted(p) == {stray} and agol_deleted(p) == {stray}
    assert_converged(p)


# --- a damaged store ------------------------------------------------------------------------------------

def test_full_rewrites_objects_missing_or_corrupted_in_the_store(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    ids = p.stored_ids(KEY)
    for rid in ids[:3]:
        p.s3.delete_object(Bucket=p.bucket, Key=f"{p.env}/{p.app}/{KEY}/{rid}.json")
    for rid in ids[3:5]:
        p.s3.put_object(Bucket=p.bucket, Key=f"{p.env}/{p.app}/{KEY}/{rid}.json", Body=b'{"id": "damaged"}')
    full = run(p, full=True)
    assert full["store"]["repaired"] == 5
    assert_converged(p)


def test_a_publisher_names_a_missing_object_and_keeps_its_cursor(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    cursor = state(p, "cursor-socrata")
    missing = p.stored_ids(KEY)[7]
    p.s3.delete_object(Bucket=p.bucket, Key=f"{p.env}/{p.app}/{KEY}/{missing}.json")
    with pytest.raises(Exception, match=missing):
        records_to_socrata(app=p.app, container=KEY, env=p.env, full=True, republish=True,  # reads every record
                           config_path=str(p.config_path))
    assert state(p, "cursor-socrata") == cursor
    run(p, full=True)  # the store is repaired from Knack, then the destinations publish
    assert_converged(p)


# --- the mass-delete guard ------------------------------------------------------------------------------

def test_the_guard_holds_back_a_mass_delete_and_finishes_the_rest(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    before = set(p.knack_ids(KEY))
    doomed = p.knack_ids(KEY)[:100]
    for rid in doomed:
        p.knack.delete_record(KEY, rid)
    edited = p.knack.edit_random(KEY, 2, seed=4)
    with pytest.raises(Exception, match=r"100 of 300 records would be deleted"):
        run(p, full=True)
    assert len(p.stored_ids(KEY)) == 300 and len(p.socrata_ids(KEY)) == 300 and len(p.agol_ids(KEY)) == 300
    rows = {r["id"]: r for r in p.socrata.rows(p.container(KEY).socrata_resource_id)}
    assert all(rows[rid]["location_name"] == stored(p, KEY, rid)["field_2"] for rid in edited)  # the rest went on
    assert not socrata_deleted(p) and not agol_deleted(p)
    run(p, full=True, allow_mass_delete=True)
    assert_converged(p, ever_live=before - set(doomed))


def test_each_destination_guards_its_own_deletes(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    doomed = p.knack_ids(KEY)[:100]
    for rid in doomed:
        p.knack.delete_record(KEY, rid)
    records_to_s3(app=p.app, container=KEY, env=p.env, full=True, allow_mass_delete=True,
                  config_path=str(p.config_path))
    assert len(p.stored_ids(KEY)) == 200
    cursor = state(p, "cursor-socrata")
    with pytest.raises(Exception, match=r"100 of 300 records would be deleted"):
        records_to_socrata(app=p.app, container=KEY, env=p.env, config_path=str(p.config_path))
    assert len(p.socrata_ids(KEY)) == 300 and state(p, "cursor-socrata") == cursor
    records_to_socrata(app=p.app, container=KEY, env=p.env, allow_mass_delete=True, config_path=str(p.config_path))
    assert socrata_deleted(p) == set(doomed)


def test_deletion_records_are_pruned_once_every_destination_applied_them(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    gone = p.knack_ids(KEY)[:3]
    for rid in gone:
        p.knack.delete_record(KEY, rid)
    run(p, full=True)
    assert sorted(state(p, "manifest")["deleted"]) == sorted(gone)  # until every destination applied them
    run(p)
    assert state(p, "manifest")["deleted"] == {}
    assert_converged(p)
