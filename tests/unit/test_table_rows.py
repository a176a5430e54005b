"""Knack records → typed analytics table rows (tasks/domain/table.py): every field type, real and generated."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from arro3.core import DataType, Field, Schema
from deltalake import DeltaTable, write_deltalake

from emulators.knack.generator import generate_app
from tasks.domain.config import parse_config
from tasks.domain.errors import ConfigError
from tasks.domain.formatting import Address, container_schema, destination_names, format_record
from tasks.domain.table import (
    ADDRESS,
    BOOL,
    DOUBLE,
    LIST,
    STRING,
    TIMESTAMP,
    canonical_table_value,
    column_type,
    schema_drift,
    table_row_digest,
    table_schema,
    to_record_batch,
    to_table_row,
    to_table_value,
)
from tasks.table.client import stream, table_rows
from tests.fixtures import KNACKPY_TEST_APP

pytestmark = pytest.mark.unit

CHICAGO = ZoneInfo("America/Chicago")
SYNCED = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("knack_type", "expected"), [
    ("number", DOUBLE), ("currency", DOUBLE), ("rating", DOUBLE), ("equation", DOUBLE),
    ("auto_increment", DOUBLE), ("sum", DOUBLE), ("date_time", TIMESTAMP), ("boolean", BOOL),
    ("address", ADDRESS), ("multiple_choice", LIST), ("connection", LIST), ("short_text", STRING),
    ("paragraph_text", STRING), ("rich_text", STRING), ("email", STRING), ("link", STRING),
    ("phone", STRING), ("name", STRING), ("timer", STRING), ("file", STRING),
    ("image", STRING), ("signature", STRING), ("concatenation", STRING),
])
def test_each_knack_type_has_its_column_type(knack_type: str, expected: DataType) -> None:
    assert column_type(knack_type) == expected


@pytest.mark.parametrize(("value", "kind", "expected"), [
    (None, DOUBLE, None),
    (8, DOUBLE, 8.0),
    (139809.93, DOUBLE, 139809.93),
    (True, DOUBLE, None),  # a boolean is never a number
    (True, BOOL, True),
    ("yes", BOOL, None),   # formatting already turned Yes/No into booleans; anything else is unknown
    (datetime(2019, 1, 7, 9, 26, tzinfo=CHICAGO), TIMESTAMP, datetime(2019, 1, 7, 15, 26, tzinfo=UTC)),
    (datetime(2019, 7, 7, 9, 26, tzinfo=CHICAGO), TIMESTAMP, datetime(2019, 7, 7, 14, 26, tzinfo=UTC)),  # CDT
    ("Active", LIST, ["Active"]),
    (["East", None, "West"], LIST, ["East", "West"]),
    ([], LIST, None),
    (Address("Austin, TX", 30.16, -97.85), ADDRESS, {"text": "Austin, TX", "latitude": 30.16, "longitude": -97.85}),
    (Address("7050 Oltorf St", None, None), ADDRESS, {"text": "7050 Oltorf St", "latitude": None, "longitude": None}),
    ([Address("A", None, None), Address("B", 30.1, -97.7)], ADDRESS,
     {"text": "A; B", "latitude": 30.1, "longitude": -97.7}),
    (True, STRING, "true"),
    (["a", "b"], STRING, "a, b"),
    (12, STRING, "12"),
])
def test_values_take_their_column_type(value: Any, kind: DataType, expected: Any) -> None:
    assert to_table_value(value, kind) == expected


def generated() -> dict[str, Any]:
    return generate_app(records=25, seed=5)


@pytest.mark.parametrize("container", ["object_1", "view_1", "object_2", "object_3"])
def test_every_generated_record_fits_its_table_schema(container: str) -> None:
    app = generated()
    schema = container_schema(app["metadata"], container)
    names = destination_names(schema, {"field_13": "status_code"} if container in ("object_1", "view_1") else {})
    arrow = table_schema(schema, names)
    assert arrow.names[0] == "id" and arrow.names[-2:] == ["_knack_modified", "_synced_at"]
    assert len(arrow.names) == len(names) + 3
    object_key = "object_1" if container == "view_1" else container
    modified = {"object_1": "field_27", "object_2": "field_39", "object_3": "field_46"}[object_key]
    rows = [to_table_row(r["id"], format_record(r, schema), names, arrow, modified_field=modified, synced_at=SYNCED)
            for r in app["records"][object_key]]
    batch = to_record_batch(rows, arrow)  # raises on any value of the wrong type
    assert batch.num_rows == len(app["records"][object_key]) > 0
    assert set(batch.column("_synced_at").to_pylist()) == {SYNCED}
    assert None not in batch.column("_knack_modified").to_pylist()


def test_a_signal_record_as_a_whole_row() -> None:
    app = generated()
    schema = container_schema(app["metadata"], "object_1")
    names = destination_names(schema, {"field_13": "status_code"})
    arrow = table_schema(schema, names)
    record = app["records"]["object_1"][0]
    row = to_table_row(record["id"], format_record(record, schema), names, arrow, modified_field="field_27",
                       synced_at=SYNCED)
    assert set(row) == set(arrow.names)
    assert isinstance(row["signal_id"], float) and isinstance(row["pedestrian_signal"], bool)
    assert isinstance(row["status"], list) and isinstance(row["corridor"], list)
    assert row["location"]["latitude"] == float(record["field_19_raw"]["latitude"])
    assert row["_knack_modified"] == row["modified_date"] and row["_knack_modified"].tzinfo == UTC


def test_the_real_knackpy_app_every_field_type() -> None:
    metadata = json.loads((KNACKPY_TEST_APP / "metadata.json").read_text())
    records = json.loads((KNACKPY_TEST_APP / "records-object_3.json").read_text())["records"]
    schema = container_schema(metadata, "object_3")
    names = destination_names(schema)
    arrow = table_schema(schema, names)
    assert names["field_125"] == "_id"  # a field called "id" never takes the record id's column
    types = {f.name: f.type for f in arrow}
    assert types["number"] == DOUBLE and types["currency"] == DOUBLE
    assert types["yes_no"] == BOOL and types["multiple_choice"] == LIST and types["customer"] == LIST
    assert types["address_lat_lon"] == ADDRESS and types["date_time_w_time_default_current"] == TIMESTAMP
    rows = [to_table_row(r["id"], format_record(r, schema), names, arrow, modified_field="field_37",
                         synced_at=SYNCED) for r in records]
    batch = to_record_batch(rows, arrow)
    assert batch.num_rows == len(records) == 25
    assert batch.to_struct_array().to_pylist() == rows  # every value as it was given
    first = rows[0]
    assert first["number"] == 100.0 and first["currency"] == 100.43 and first["yes_no"] is True
    assert first["multiple_choice"] == ["Extra Cheese"] and first["customer"] == ["Johnny C"]
    assert first["address_lat_lon"] == {"text": "Bauchi, Nigeria", "latitude": 10.0, "longitude": 10.0}
    assert first["date_time_w_time_default_current"] == datetime(2018, 7, 3, 15, 26, tzinfo=UTC)  # 10:26 CDT
    assert first["_knack_modified"] == datetime(2019, 9, 13, 7, 43, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (True, True), (False, False), ("12.50 ", "12.50 "),  # text stays as it is
    (8, 8.0), (139809.93, 139809.93), (float("nan"), "nan"), (float("-inf"), "-inf"),
    (datetime(2019, 1, 7, 15, 26, tzinfo=UTC), 1546874760000000),
    (datetime(2019, 1, 7, 9, 26, tzinfo=CHICAGO), 1546874760000000),  # the same instant in another zone
    (datetime(2019, 1, 7, 15, 26, 0, 5), 1546874760000005),  # naive: UTC
    (["East", "West"], ["East", "West"]), ([], []),
    ({"text": "Austin, TX", "latitude": 30.16, "longitude": None},
     {"text": "Austin, TX", "latitude": 30.16, "longitude": None}),
])
def test_table_values_take_one_canonical_form(value: Any, expected: Any) -> None:
    assert canonical_table_value(value) == expected


def test_a_value_of_no_table_type_is_refused() -> None:
    with pytest.raises(TypeError, match="bytes"):
        canonical_table_value(b"raw")


def read_back(rows: list[dict[str, Any]], schema: Schema, folder: Path) -> list[dict[str, Any]]:
    """Rows written to a Delta table (Parquet) with the table's schema and read back as a run reads them."""
    write_deltalake(str(folder), stream(schema, iter([to_record_batch(rows, schema)])), mode="overwrite")
    held = [row for part in table_rows(DeltaTable(str(folder)), schema.names, 100) for row in part]
    return sorted(held, key=lambda row: [r["id"] for r in rows].index(row["id"]))


@pytest.mark.parametrize(("rows", "column"), [
    ([{"id": "a", "lanes": "two"}], "lanes"),
    ([{"id": "a", "status": "Active"}], "status"),
    ([{"id": "a", "installed": "2024-01-01"}], "installed"),
    ([{"id": "a", "location": "Austin"}], "location"),
    ([{"id": "a", "signal": "yes"}], "signal"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_its_column(rows: list[dict[str, Any]], column: str) -> None:
    schema = Schema([Field("id", STRING, nullable=False), Field("lanes", DOUBLE), Field("status", LIST),
                     Field("installed", TIMESTAMP), Field("location", ADDRESS), Field("signal", BOOL)])
    with pytest.raises(TypeError, match=f"column '{column}'"):
        to_record_batch(rows, schema)


def test_a_row_without_an_id_is_refused() -> None:
    with pytest.raises(TypeError, match="'id'.*non-nullable"):
        to_record_batch([{"id": None}], Schema([Field("id", STRING, nullable=False)]))


def test_a_row_and_the_same_row_read_back_share_a_digest_every_column_type(tmp_path: Path) -> None:
    metadata = json.loads((KNACKPY_TEST_APP / "metadata.json").read_text())
    records = json.loads((KNACKPY_TEST_APP / "records-object_3.json").read_text())["records"]
    schema = container_schema(metadata, "object_3")
    names = destination_names(schema)
    arrow = table_schema(schema, names)
    kinds = {f.type for f in arrow}
    assert {STRING, DOUBLE, BOOL, TIMESTAMP, LIST, ADDRESS} <= kinds
    rows = [to_table_row(r["id"], format_record(r, schema), names, arrow, modified_field="field_37",
                         synced_at=SYNCED) for r in records]
    held = read_back(rows, arrow, tmp_path)
    assert [table_row_digest(r) for r in rows] == [table_row_digest(r) for r in held]
    assert len({table_row_digest(r) for r in rows}) == len(rows)
    later = read_back([{**r, "_synced_at": datetime(2025, 1, 1, tzinfo=UTC)} for r in rows], arrow, tmp_path)
    assert [table_row_digest(r) for r in later] == [table_row_digest(r) for r in rows]  # per run: left out


@pytest.mark.parametrize(("column", "edit"), [
    ("number", 101.0), ("yes_no", False), ("multiple_choice", ["Extra Cheese", "Olives"]), ("multiple_choice", []),
    ("address_lat_lon", {"text": "Bauchi, Nigeria", "latitude": 10.0, "longitude": 10.5}),
    ("date_time_w_time_default_current", datetime(2018, 7, 3, 15, 26, 0, 1, tzinfo=UTC)),
    ("_knack_modified", datetime(2020, 1, 1, tzinfo=UTC)), ("short_text", "edited"), ("short_text", None),
])
def test_an_edit_of_any_column_changes_the_digest(column: str, edit: Any, tmp_path: Path) -> None:
    metadata = json.loads((KNACKPY_TEST_APP / "metadata.json").read_text())
    record = json.loads((KNACKPY_TEST_APP / "records-object_3.json").read_text())["records"][0]
    schema = container_schema(metadata, "object_3")
    names = destination_names(schema)
    arrow = table_schema(schema, names)
    row = to_table_row(record["id"], format_record(record, schema), names, arrow, modified_field="field_37",
                       synced_at=SYNCED)
    assert row[column] is not None and row[column] != edit
    (held,) = read_back([{**row, column: edit}], arrow, tmp_path)
    assert table_row_digest(held) != table_row_digest(row)


def test_a_field_taking_a_system_column_is_refused() -> None:
    app = generated()
    schema = container_schema(app["metadata"], "object_1")
    names = {**destination_names(schema, {"field_13": "status_code"}), "field_2": "_synced_at"}
    with pytest.raises(ConfigError, match="field_2 becomes column '_synced_at'.*socrata_field_map"):
        table_schema(schema, names)


def test_schema_drift_names_dropped_and_retyped_columns_only() -> None:
    stored = {"id": "string", "notes": "string", "lanes": "double"}
    assert schema_drift(None, stored) == []
    assert schema_drift(stored, {**stored, "added": "string"}) == []  # an added column merges in
    assert schema_drift(stored, {"id": "string", "field_notes": "string", "lanes": "string"}) == [
        "notes (no longer a column)", "lanes (double → string)"]


@pytest.mark.parametrize(("settings", "body", "expected"), [
    ({}, {}, []),
    ({"tables": True}, {}, ["table"]),
    ({"tables": True}, {"table": False}, []),
    ({}, {"table": True, "socrata_resource_id": "abcd-1234"}, ["socrata", "table"]),
])
def test_table_is_a_destination_per_container_or_by_default(settings: dict[str, Any], body: dict[str, Any],
                                                             expected: list[str]) -> None:
    raw = {**settings, "apps": {"a": {"containers": {"object_1": {"modified_date_field_id": "field_1", **body}}}}}
    assert parse_config(raw, "x").container("a", "object_1").destinations() == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ({"tables": "yes"}, "settings: tables: Input should be a valid boolean"),
    ({"table_compact_every": -1}, "settings: table_compact_every: Input should be greater than or equal to 0"),
    ({"table_retention_hours": "a week"}, "settings: table_retention_hours"),
    ({"apps": {"a": {"containers": {"object_1": {"modified_date_field_id": "field_1", "table": "on"}}}}},
     "app 'a', container 'object_1': table: Input should be a valid boolean"),
])
def test_table_settings_are_checked(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        parse_config({"apps": {}, **raw}, "x.yaml")
