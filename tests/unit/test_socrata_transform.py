"""tasks/domain/socrata.py over realistic records: the generated app and the shared knackpy test app."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from emulators.knack import schema as knack_schema
from emulators.knack.generator import generate_app
from emulators.socrata.dataset import Dataset
from tasks.domain.errors import ConfigError, SocrataError, SocrataRejectedRows
from tasks.domain.formatting import Address, container_schema, destination_names, format_record
from tasks.domain.socrata import (
    SocrataSchema,
    check_upsert_result,
    deleted_row,
    dropped_columns,
    to_socrata_row,
    to_socrata_value,
)
from tests.fixtures import KNACKPY_TEST_APP

pytestmark = pytest.mark.unit

CHICAGO = ZoneInfo("America/Chicago")
PUBLISHED = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
FIXTURE_APP = KNACKPY_TEST_APP
SIGNAL_COLUMNS = {
    "id": "text", "signal_id": "number", "location_name": "text", "_id": "text", "lane_count": "number",
    "install_cost": "money", "priority_score": "number", "pedestrian_signal": "text", "status": "text",
    "status_code": "text", "approaches": "text", "engineer": "text", "camera_feed": "url", "location": "point",
    "mailing_address": "text", "corridor": "text", "date_time_start": "calendar_date",
    "install_date": "calendar_date", "modified_date": "date", "published_at": "calendar_date",
}


def view_of(resource_id: str, columns: dict[str, str], row_identifier: str | None = "id") -> dict:
    """The /api/views object the Socrata emulator serves for these columns (pure: no server)."""
    schema = {"name": resource_id, "row_identifier": row_identifier,
              "columns": [{"fieldName": n, "name": n, "dataTypeName": t} for n, t in columns.items()]}
    return Dataset(resource_id, schema, 7001).view()


@pytest.fixture(scope="module")
def generated():
    return generate_app(records=40, seed=1)


def test_from_view_reads_types_and_row_identifier():
    view = view_of("sig1-2024", {"id": "text", "n": "number"})
    view["columns"].append({"id": 1, "fieldName": ":updated_at", "dataTypeName": "date"})
    assert SocrataSchema.from_view(view) == SocrataSchema("sig1-2024", {"id": "text", "n": "number"}, "id")
    SocrataSchema.from_view(view).check_publishable()
    for ident in (None, "n"):
        with pytest.raises(ConfigError, match=r"sig1-2024: the row identifier must be .*`id`"):
            SocrataSchema.from_view(view_of("sig1-2024", {"id": "text", "n": "number"}, ident)).check_publishable()


def test_labels_colliding_once_lower_cased_need_a_field_map(generated):
    schema = container_schema(generated["metadata"], knack_schema.SIGNALS)
    with pytest.raises(ConfigError, match=r"field_12 and field_13.*socrata_field_map"):
        destination_names(schema)
    names = destination_names(schema, {"field_13": "status_code"})
    assert (names["field_12"], names["field_13"], names["field_3"], names["field_22"]) == (
        "status", "status_code", "_id", "date_time_start")


def test_a_generated_signal_becomes_exactly_this_row(generated):
    schema = container_schema(generated["metadata"], knack_schema.SIGNALS)
    names = destination_names(schema, {"field_13": "status_code"})
    socrata = SocrataSchema.from_view(view_of("sig1-2024", SIGNAL_COLUMNS))
    record = generated["records"][knack_schema.SIGNALS][2]
    row = to_socrata_row(record["id"], format_record(record, schema), names, socrata, location_fields=["field_19"],
                         app_tz=schema.timezone, published_at=PUBLISHED, append_timestamp_column="published_at")
    assert row == {
        "id": record["id"], "signal_id": 3, "location_name": "Burnet Rd & 51st St",
        "_id": "SIG-00003", "lane_count": 5, "install_cost": None, "priority_score": 7.5,
        "pedestrian_signal": "false", "status": "Active", "status_code": "ACTIVE",
        "approaches": "East, South, North", "engineer": "Kim, Chen",
        "camera_feed": {"url": "https://cameras.example.org/feeds/3"},
        "location": {"type": "Point", "coordinates": [-97.748483, 30.368865]},
        "mailing_address": "6663 Braker Ln, Austin, TX, 78722", "corridor": "Koenig Ln Corridor 2",
        "date_time_start": None, "install_date": "2019-09-28T00:00:00",
        "modified_date": "2019-12-27T16:06:00-06:00", "published_at": "2024-07-01T07:00:00",
    }
    assert dropped_columns(names, socrata, "published_at") == [
        "notes", "description", "condition_rating", "signal_label", "contact_email", "contact_phone",
        "work_window", "peak_start", "created", "timing_sheet", "photo", "camera_snapshot", "inspector_signature"]


def test_a_view_pulling_addresses_from_connected_records_gives_a_multipoint(generated):
    schema = container_schema(generated["metadata"], "view_2")
    signals = generated["records"][knack_schema.SIGNALS]
    record = {**generated["records"][knack_schema.CORRIDORS][0],
              "field_19": "...", "field_19_raw": [signals[0]["field_19_raw"], signals[2]["field_20_raw"],
                                                  signals[2]["field_19_raw"]]}
    socrata = SocrataSchema.from_view(view_of("cor1-2024", {
        "id": "text", "corridor_id": "number", "corridor_name": "text", "district": "text", "midpoint": "location",
        "modified_date": "calendar_date", "location": "multipoint"}))
    row = to_socrata_row(record["id"], format_record(record, schema), destination_names(schema), socrata,
                         location_fields=["field_36", "field_19"], app_tz=schema.timezone)
    assert row == {
        "id": record["id"], "corridor_id": 1, "corridor_name": "Parmer Ln Corridor 1",
        "district": "South", "midpoint": {"latitude": 30.302801, "longitude": -97.804957},
        "modified_date": "2019-01-07T09:18:00",
        "location": {"type": "MultiPoint", "coordinates": [[-97.732885, 30.127385], [-97.748483, 30.368865]]},
    }


UNLOCATED = Address("6663 Braker Ln, Austin, TX, 78722", None, None)
HERE = Address("Austin, Texas, 78702", 30.127385, -97.732885)
THERE = Address("Austin, Texas, 78705", 30.368865, -97.748483)


@pytest.mark.parametrize("value, column_type, expected", [
    (UNLOCATED, "point", None),  # empty lat/long: null, never (0, 0)
    (UNLOCATED, "multipoint", None),
    ([UNLOCATED, HERE], "point", {"type": "Point", "coordinates": [-97.732885, 30.127385]}),
    (HERE, "multipoint", {"type": "MultiPoint", "coordinates": [[-97.732885, 30.127385]]}),
    (HERE, "location", {"latitude": 30.127385, "longitude": -97.732885}),
    (UNLOCATED, "text", "6663 Braker Ln, Austin, TX, 78722"),
    ([HERE, THERE], "text", "Austin, Texas, 78702, Austin, Texas, 78705"),
    (Address(None, None, None), "text", None),
    (True, "text", "true"), (False, "text", "false"), (True, "checkbox", True),
    (["North", "South"], "text", "North, South"), (["Johnny C"], "text", "Johnny C"),
    (4, "text", "4"), (12.5, "number", 12.5), ("12.5", "number", "12.5"), ("", "number", None),
    (None, "number", None), (None, "point", None), (None, "text", None),
    (datetime(2024, 1, 15, 6, 30, tzinfo=UTC), "calendar_date", "2024-01-15T00:30:00"),
    (datetime(2024, 7, 15, 6, 30, tzinfo=UTC), "calendar_date", "2024-07-15T01:30:00"),
    (datetime(2024, 1, 15, 0, 30, tzinfo=CHICAGO), "date", "2024-01-15T00:30:00-06:00"),
    (datetime(2024, 7, 15, 0, 30, tzinfo=CHICAGO), "date", "2024-07-15T00:30:00-05:00"),
    (datetime(2024, 7, 15, 0, 30, tzinfo=CHICAGO), "text", "2024-07-15T00:30:00"),
    (date(2024, 7, 15), "calendar_date", "2024-07-15"),
    ("https://example.org/a", "url", {"url": "https://example.org/a"}),
])
def test_values_for_each_column_type(value, column_type, expected):
    assert to_socrata_value(value, column_type, CHICAGO, located=True) == expected


def test_geometry_needs_a_location_field_and_one_address_per_point():
    with pytest.raises(ConfigError, match="field_19.*location_fields"):
        to_socrata_row("r1", {"field_19": HERE}, {"field_19": "location"}, SocrataSchema("x", {"location": "point"}, "id"),
                       location_fields=[], app_tz=CHICAGO)
    with pytest.raises(ConfigError, match="2 addresses.*multipoint"):
        to_socrata_value([HERE, THERE], "point", CHICAGO, located=True, where="field_19")


def test_append_timestamp_column_needs_published_at_and_a_column():
    socrata = SocrataSchema("x", {"id": "text", "published_at": "calendar_date"}, "id")
    with pytest.raises(ValueError, match="published_at"):
        to_socrata_row("r1", {}, {}, socrata, location_fields=[], app_tz=CHICAGO, append_timestamp_column="published_at")
    no_column = SocrataSchema("x", {"id": "text"}, "id")
    assert to_socrata_row("r1", {}, {}, no_column, location_fields=[], app_tz=CHICAGO, published_at=PUBLISHED,
                          append_timestamp_column="published_at") == {"id": "r1"}
    assert dropped_columns({}, no_column, "published_at") == ["published_at"]


def test_deleted_row():
    assert deleted_row("5caa0c74bddebb515d270b42") == {"id": "5caa0c74bddebb515d270b42", ":deleted": True}


def test_check_upsert_result_reads_six_or_four_keys_and_raises_on_errors():
    six = {"Errors": 0, "Rows Created": 2, "Rows Updated": 1, "Rows Deleted": 0, "By RowIdentifier": 0, "By SID": 0}
    assert check_upsert_result(six, ["a", "b", "c"], "sig1-2024") == {"created": 2, "updated": 1, "deleted": 0,
                                                                       "errors": 0}
    assert check_upsert_result({"Rows Created": 1}, ["a"], "sig1-2024")["created"] == 1
    with pytest.raises(SocrataRejectedRows) as caught:
        check_upsert_result({"Errors": 2, "Rows Created": 1, "Rows Updated": 0, "Rows Deleted": 0}, ["a", "b", "c"],
                            "sig1-2024")
    assert str(caught.value) == ("Socrata dataset sig1-2024 rejected rows [a, b, c]: 2 row error(s) in a batch of 3 "
                                 "(created 1, updated 0, deleted 0)")
    with pytest.raises(SocrataError, match="sig1-2024"):
        check_upsert_result("<html>", ["a"], "sig1-2024")


def fixture_app_columns(names: dict[str, str], schema) -> dict[str, str]:
    """A plausible dataset for the knackpy test app: one column per field, typed as a publisher would."""
    by_type = {"number": "number", "currency": "money", "rating": "number", "equation": "number",
               "auto_increment": "number", "date_time": "calendar_date", "link": "url"}
    columns = {"id": "text"}
    for field in schema.fields:
        columns[names[field.key]] = by_type.get(field.type, "text")
    columns[names["field_44"]] = "point"
    columns[names["field_21"]] = "location"
    return columns


def test_every_knackpy_test_app_record_is_accepted_by_socrata_validation():
    metadata = json.loads((FIXTURE_APP / "metadata.json").read_text())
    records = json.loads((FIXTURE_APP / "records-object_3.json").read_text())["records"]
    schema = container_schema(metadata, "object_3")
    names = destination_names(schema)
    assert names["field_125"] == "_id"  # the field literally called "id"
    columns = fixture_app_columns(names, schema)
    socrata = SocrataSchema.from_view(view_of("knpy-0003", columns))
    rows = [to_socrata_row(r["id"], format_record(r, schema), names, socrata, location_fields=["field_44", "field_21"],
                           app_tz=schema.timezone) for r in records]
    dataset = Dataset("knpy-0003", {"row_identifier": "id", "columns": [
        {"fieldName": n, "name": n, "dataTypeName": t} for n, t in columns.items()]}, 1)
    assert dataset.write(rows)["Rows Created"] == len(records) == 25  # a 400 would raise here
    first = next(r for r in rows if r["_id"] == "1")
    assert first["address_lat_lon"] == {"type": "Point", "coordinates": [10.0, 10.0]}
    assert first["address_usa"] is None  # no lat/long: no location
    assert first["yes_no"] == "true" and first["customer"] == "Johnny C" and first["number"] == 100
    assert first["date_time_w_time_default_current"] == "2018-07-03T10:26:00"
