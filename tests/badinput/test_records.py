"""Records Knack should never send, but might: odd ids, unreadable dates, lat/long as strings, empty or
out of range, huge rich text, unicode everywhere.

The store mirrors Knack exactly (that is its contract), so readable records are stored as they came.
What cannot be published is left out of the destination, named with its field in the run's error, and
holds the destination's cursor until it is fixed in Knack; everything else publishes. A record whose id
is not a Knack id is never stored: the run fails naming it and writes nothing of its page.

One module-wide run of a 30-record app seeded with such records serves most cases (``weird``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from tasks.domain.agol import strip_html
from tests.faults.fixtures import generated_app
from tests.faults.harness import Rig, error_of

pytestmark = pytest.mark.integration

UNICODE_NAME = "Calle Ñandú & 5ª Av — 東京駅前 🚦 «שדרה» e\u0301\u200d👩\u200d🔧"
UNICODE_NOTES = "Línea 1\nΣήμα ✓ — ملاحظة\u202e reversed \u202c ok \U0001f6a7"
HUGE = "<p>" + "Detailed inspection narrative. " * 700 + "</p>"  # ~21,700 characters
CASES = ("unicode", "huge", "latlong_strings", "latlong_empty", "latlong_out_of_range", "no_modified",
         "bad_modified", "bad_date")


@dataclass
class Weird:
    rig: Rig
    ids: dict[str, str]      # case → record id
    state: Any               # the run's final state
    message: str             # its error

    def row(self, case: str) -> dict[str, Any] | None:
        return next((r for r in self.rig.socrata_rows() if r["id"] == self.ids[case]), None)

    def feature(self, case: str) -> dict[str, Any] | None:
        return next((f for f in self.rig.agol_features() if f["attributes"]["id"] == self.ids[case]), None)


def seed_weird_records(app: dict[str, Any]) -> dict[str, str]:
    """Turn eight generated signals into the bad-input cases; returns case → id."""
    records = app["records"]["object_1"]
    ids = {case: records[i]["id"] for i, case in enumerate(CASES, start=2)}
    by_id = {r["id"]: r for r in records}

    def record(case: str) -> dict[str, Any]:
        return by_id[ids[case]]

    def set_text(case: str, key: str, text: str) -> None:
        record(case)[key] = text
        if f"{key}_raw" in record(case):
            record(case)[f"{key}_raw"] = text

    set_text("unicode", "field_2", UNICODE_NAME)
    set_text("unicode", "field_4", UNICODE_NOTES)
    set_text("huge", "field_5", HUGE)
    located = {"city": "Austin", "state": "Texas", "zip": "78701"}
    record("latlong_strings")["field_19_raw"] = {**located, "latitude": "30.2672", "longitude": "-97.7431"}
    record("latlong_empty")["field_19_raw"] = {**located, "latitude": "", "longitude": ""}
    record("latlong_out_of_range")["field_19_raw"] = {**located, "latitude": 123.4, "longitude": -297.7}
    record("no_modified")["field_27"] = ""
    record("no_modified").pop("field_27_raw")
    record("bad_modified")["field_27_raw"] = {"date": "02/30/2024", "unix_timestamp": "not-a-time"}
    record("bad_date")["field_22_raw"] = {"date": "13/45/2024", "unix_timestamp": "garbage"}
    return ids


@pytest.fixture(scope="module")
def weird(module_rig_factory) -> Weird:
    app = generated_app(30)
    ids = seed_weird_records(app)
    rig: Rig = module_rig_factory(records=30, knack_app=app)
    state = rig.run()
    return Weird(rig, ids, state, error_of(state))


def test_the_run_fails_naming_only_the_unpublishable_records(weird: Weird) -> None:
    assert weird.state.is_failed()
    message = weird.message
    for case in ("bad_modified", "bad_date"):
        assert weird.ids[case] in message, (case, message)
    assert "Socrata dataset" in message and "ArcGIS layer" in message, message
    for case in ("unicode", "latlong_strings", "latlong_empty", "latlong_out_of_range", "no_modified"):
        assert weird.ids[case] not in message, (case, message)
    assert weird.rig.cursors()["socrata"] is None and weird.rig.cursors()["agol"] is None  # retried next run


def test_every_readable_record_is_stored_exactly_as_knack_sent_it(weird: Weird) -> None:
    knack = {r["id"]: r for r in weird.rig.knack.records("object_1")}
    assert weird.rig.stored_ids("object_1") == sorted(knack)
    for rid, record in knack.items():
        assert weird.rig.stored_doc("object_1", rid) == record, rid


def test_unicode_everywhere_arrives_unchanged(weird: Weird) -> None:
    raw = weird.rig.s3.get_object(Bucket=weird.rig.bucket,
                                  Key=f"dev/demo/object_1/{weird.ids['unicode']}.json")["Body"].read()
    assert UNICODE_NAME.encode("utf-8") in raw  # UTF-8, not \\u escapes
    row = weird.row("unicode")
    assert row is not None and row["location_name"] == UNICODE_NAME and row["notes"] == UNICODE_NOTES
    feature = weird.feature("unicode")
    assert feature is not None and feature["attributes"]["location_name"] == UNICODE_NAME
    assert feature["attributes"]["notes"] == UNICODE_NOTES


def test_huge_rich_text_is_never_truncated(weird: Weird) -> None:
    row = weird.row("huge")
    assert row is not None and row["description"] == HUGE  # Socrata text has room for it
    assert weird.feature("huge") is None                     # the layer's field holds 8000: left out, named
    assert weird.ids["huge"] in weird.message
    assert f"the value has {len(strip_html(HUGE))} characters, the field holds 8000" in weird.message, weird.message


def test_lat_long_as_numeric_strings_are_located(weird: Weird) -> None:
    feature = weird.feature("latlong_strings")
    assert feature is not None and feature["geometry"]["x"] == -97.7431 and feature["geometry"]["y"] == 30.2672
    row = weird.row("latlong_strings")
    assert row is not None and row["location"]["coordinates"] == [-97.7431, 30.2672]


@pytest.mark.parametrize("case", ["latlong_empty", "latlong_out_of_range"])
def test_empty_or_out_of_range_lat_long_publish_without_a_shape(weird: Weird, case: str) -> None:
    feature = weird.feature(case)
    assert feature is not None and feature.get("geometry") is None  # never (0, 0), never a bad shape
    row = weird.row(case)
    assert row is not None and "location" not in row


def test_a_record_without_a_modified_date_is_stored_published_and_named(weird: Weird) -> None:
    rid = weird.ids["no_modified"]
    assert weird.row("no_modified") is not None and weird.feature("no_modified") is not None
    warning = next(line for line in weird.rig.log.lines if "no readable modified date" in line)
    assert "demo/object_1: 2 records have no readable modified date in field_27" in warning, warning
    assert f"{rid}: empty" in warning and "only full refreshes see their edits" in warning, warning


def test_a_malformed_modified_date_is_stored_and_named_but_not_published(weird: Weird) -> None:
    rid = weird.ids["bad_modified"]
    warning = next(line for line in weird.rig.log.lines if "no readable modified date" in line)
    assert f"{rid}: not a Knack date value (unix_timestamp 'not-a-time')" in warning, warning
    assert weird.row("bad_modified") is None and weird.feature("bad_modified") is None
    assert f"{rid}: field_27 (Modified Date): not a Knack date value" in weird.message, weird.message


def test_a_malformed_date_in_a_published_field_is_named_with_its_field(weird: Weird) -> None:
    rid = weird.ids["bad_date"]
    assert weird.row("bad_date") is None and weird.feature("bad_date") is None
    assert f"{rid}: field_22 (Date/Time - Start): not a Knack date value (unix_timestamp 'garbage')" in weird.message
    assert "fix them in Knack and run again" in weird.message


def test_fixed_at_the_source_the_next_run_converges(weird: Weird) -> None:
    rig = weird.rig
    original = generated_app(30)["records"]["object_1"]
    table = rig.knack.state.tables["object_1"]
    for case in ("huge", "bad_modified", "bad_date"):
        rid = weird.ids[case]
        table.put(copy.deepcopy(next(r for r in original if r["id"] == rid)))
        rig.knack.update_record("object_1", rid, {"field_4": f"fixed {case} at the source"})
    report = rig.ok()
    assert report["published"]["socrata"]["upserted"] >= 3
    rig.assert_converged()


# --- ids that are not Knack ids: never stored, the run names them, nothing of their page lands -------

@pytest.mark.parametrize("bad_id", ["../x", "", "a/b/c", "5C33703C1FD79EE02543DB4B", "5c33703c1fd79ee02543db4b.json"],
                         ids=["dot-dot", "empty", "slashes", "upper-case", "suffix"])
def test_an_id_that_is_not_a_knack_id_is_refused(make_rig, bad_id: str) -> None:
    rig: Rig = make_rig(records=10)
    template = rig.knack.records("object_1")[4]
    rig.knack.state.tables["object_1"].put({**template, "id": bad_id})
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    assert "record id is not a Knack id (24 lowercase hex characters); not stored" in message, message
    assert f"record {bad_id!r}" in message, message
    assert rig.all_keys() == [], rig.all_keys()[:5]
    assert rig.socrata_rows() == [] and rig.agol_features() == []
