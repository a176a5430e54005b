"""The Socrata emulator's writes, reads and validation, driven through unmodified sodapy."""

from __future__ import annotations

import pytest
import requests
from requests.exceptions import HTTPError

from tests.fixtures.socrata import sodapy_client

pytestmark = pytest.mark.integration

DATASET = "abcd-1234"
SCHEMA = {
    "name": "Signal requests",
    "row_identifier": "id",
    "columns": [
        {"fieldName": "id", "name": "ID", "dataTypeName": "text"},
        {"fieldName": "status", "name": "Status", "dataTypeName": "text"},
        {"fieldName": "count", "name": "Count", "dataTypeName": "number"},
        {"fieldName": "is_open", "name": "Is Open", "dataTypeName": "checkbox"},
        {"fieldName": "created", "name": "Created", "dataTypeName": "calendar_date"},
        {"fieldName": "modified", "name": "Modified", "dataTypeName": "date"},
        {"fieldName": "location", "name": "Location", "dataTypeName": "point"},
        {"fieldName": "old_location", "name": "Old Location", "dataTypeName": "location"},
        {"fieldName": "locations", "name": "Locations", "dataTypeName": "multipoint"},
        {"fieldName": "link", "name": "Link", "dataTypeName": "url"},
    ],
}
FULL_ROW = {
    "id": "rec1", "status": "OPEN", "count": 12.5, "is_open": True,
    "created": "2024-05-01T13:45:00", "modified": "2024-05-01T13:45:00-05:00",
    "location": {"type": "Point", "coordinates": [-97.74, 30.27]},
    "old_location": {"latitude": 30.27, "longitude": -97.74},
    "locations": {"type": "MultiPoint", "coordinates": [[-97.74, 30.27], [-97.7, 30.3]]},
    "link": {"url": "https://example.org/a", "description": "A"},
}
COUNTS = {"Errors": 0, "Rows Created": 0, "Rows Updated": 0, "Rows Deleted": 0, "By RowIdentifier": 0, "By SID": 0}


@pytest.fixture
def emu(socrata_emulator):
    socrata_emulator.create_dataset(DATASET, SCHEMA)
    return socrata_emulator


def counts(**kw: int) -> dict[str, int]:
    """The six-key upsert summary, e.g. ``counts(rows_created=2)``."""
    return {**COUNTS, **{k.replace("_", " ").title(): v for k, v in kw.items()}}


def test_upsert_creates_rows_and_reads_them_back_normalised(emu, socrata_client):
    result = socrata_client.upsert(DATASET, [FULL_ROW, {"id": "rec2", "status": None, "count": "3"}])
    assert result == counts(rows_created=2)
    assert socrata_client.get(DATASET, order="id") == [
        {"id": "rec1", "status": "OPEN", "count": "12.5", "is_open": True,
         "created": "2024-05-01T13:45:00.000", "modified": "2024-05-01T18:45:00.000Z",
         "location": {"type": "Point", "coordinates": [-97.74, 30.27]},
         "old_location": {"latitude": "30.27", "longitude": "-97.74",
                          "human_address": '{"address": "", "city": "", "state": "", "zip": ""}'},
         "locations": {"type": "MultiPoint", "coordinates": [[-97.74, 30.27], [-97.7, 30.3]]},
         "link": {"url": "https://example.org/a", "description": "A"}},
        {"id": "rec2", "count": "3"},
    ]
    assert emu.rows(DATASET) == socrata_client.get(DATASET)


def test_upsert_merges_updates_and_null_clears_a_cell(emu, socrata_client):
    socrata_client.upsert(DATASET, [{"id": "a", "status": "OPEN", "count": 1}, {"id": "b", "status": "NEW"}])
    result = socrata_client.upsert(DATASET, [{"id": "a", "count": 2}, {"id": "b", "status": None},
                                             {"id": "c", "status": "NEW"}])
    assert result == counts(rows_created=1, rows_updated=2)
    assert emu.rows(DATASET) == [{"id": "a", "status": "OPEN", "count": "2"}, {"id": "b"},
                                 {"id": "c", "status": "NEW"}]


def test_deleted_rows_are_removed_and_unknown_ids_count_as_errors(emu, socrata_client):
    socrata_client.upsert(DATASET, [{"id": "a"}, {"id": "b"}])
    result = socrata_client.upsert(DATASET, [{"id": "a", ":deleted": True}, {"id": "zz", ":deleted": True}])
    assert result == counts(rows_deleted=1, errors=1)
    assert emu.rows(DATASET) == [{"id": "b"}]


def test_an_id_repeated_in_one_batch_is_created_then_updated(emu, socrata_client):
    result = socrata_client.upsert(DATASET, [{"id": "a", "status": "X"}, {"id": "a", "count": 5}])
    assert result == counts(rows_created=1, rows_updated=1)
    assert emu.rows(DATASET) == [{"id": "a", "status": "X", "count": "5"}]


def test_a_single_object_payload_is_one_row(emu, socrata_client):
    assert socrata_client.upsert(DATASET, {"id": "solo"}) == counts(rows_created=1)
    assert emu.requests[-1]["body"] == {"id": "solo"}


def test_replace_truncates_then_loads(emu, socrata_client):
    socrata_client.upsert(DATASET, [{"id": "old1"}, {"id": "old2"}])
    assert socrata_client.replace(DATASET, [{"id": "new1"}]) == counts(rows_created=1)
    assert emu.rows(DATASET) == [{"id": "new1"}]


def test_default_page_is_1000_and_get_all_pages_without_duplicates(emu, socrata_client):
    socrata_client.upsert(DATASET, [{"id": f"r{i:05d}", "count": i} for i in range(2500)])
    assert len(socrata_client.get(DATASET)) == 1000
    emu.reset_log()
    rows = list(socrata_client.get_all(DATASET))
    assert [r["id"] for r in rows] == [f"r{i:05d}" for i in range(2500)]
    assert [(e["query"].get("$offset"), e["query"].get("$limit")) for e in emu.requests] == [
        ("0", None), ("1000", None), ("2000", None)]
    assert len(list(socrata_client.get_all(DATASET, limit=700, order="id DESC"))) == 2500


def test_queries_order_select_where_and_filters(emu, socrata_client):
    socrata_client.upsert(DATASET, [
        {"id": "a", "status": "OPEN", "count": 10}, {"id": "b", "status": "CLOSED", "count": 2},
        {"id": "c", "status": "it's", "count": None}, {"id": "d", "status": "OPEN", "count": 7}])
    assert [r["id"] for r in socrata_client.get(DATASET, order="count DESC")] == ["c", "a", "d", "b"]
    assert [r["id"] for r in socrata_client.get(DATASET, order="status, count")] == ["b", "d", "a", "c"]
    assert socrata_client.get(DATASET, select="id", where="count > '5' AND status = 'OPEN'", order="id") == [
        {"id": "a"}, {"id": "d"}]
    assert socrata_client.get(DATASET, select="id", where="status = 'it''s' OR count < 3", order="id") == [
        {"id": "b"}, {"id": "c"}]
    assert socrata_client.get(DATASET, select="id", where="count IS NULL") == [{"id": "c"}]
    assert socrata_client.get(DATASET, select="id", where="NOT count BETWEEN 3 AND 10") == [{"id": "b"}]
    assert socrata_client.get(DATASET, select="id", where="id IN ('a', 'b') AND count != 2") == [{"id": "a"}]
    assert socrata_client.get(DATASET, status="OPEN", select="id", limit=1, offset=1) == [{"id": "d"}]
    assert socrata_client.get(DATASET, select="count(*)") == [{"count": "4"}]
    assert socrata_client.get(DATASET, select=":id, id", limit=1) == [{":id": "row-0000~0000~0001", "id": "a"}]


@pytest.mark.parametrize("kwargs, code", [
    ({"where": "nope = 'x'"}, "query.soql.no-such-column"),
    ({"order": "nope"}, "query.soql.no-such-column"),
    ({"where": "upper(status) = 'X'"}, "query.compiler.malformed"),
    ({"where": "count = 'many'"}, "query.soql.type-mismatch"),
    ({"group": "status"}, "query.compiler.malformed"),
    ({"limit": -1}, "query.compiler.malformed"),
])
def test_queries_outside_the_supported_subset_are_400(emu, socrata_client, kwargs, code):
    with pytest.raises(HTTPError) as caught:
        socrata_client.get(DATASET, **kwargs)
    assert caught.value.response.status_code == 400
    assert caught.value.response.json()["code"] == code


def test_row_get_and_delete(emu, socrata_client):
    socrata_client.upsert(DATASET, [{"id": "a", "count": 1}, {"id": "b"}])
    assert socrata_client.get(f"{DATASET}/a") == {"id": "a", "count": "1"}
    assert socrata_client.delete(DATASET, row_id="a") == [{"typ": "delete", "id": "a"}]
    assert emu.rows(DATASET) == [{"id": "b"}]
    with pytest.raises(HTTPError, match="404"):
        socrata_client.delete(DATASET, row_id="a")


def test_metadata_is_a_view_object(emu, socrata_client):
    view = socrata_client.get_metadata(DATASET)
    assert view["id"] == DATASET and view["name"] == "Signal requests"
    assert [(c["fieldName"], c["name"], c["dataTypeName"], c["position"]) for c in view["columns"]] == [
        (c["fieldName"], c["name"], c["dataTypeName"], i) for i, c in enumerate(SCHEMA["columns"], start=1)]
    ids = {c["fieldName"]: c["id"] for c in view["columns"]}
    assert view["rowIdentifierColumnId"] == ids["id"] and len(set(ids.values())) == len(ids)


@pytest.mark.parametrize("row, field", [
    ({"id": "x", "status": 2}, "status"),
    ({"id": "x", "count": "N/A"}, "count"),
    ({"id": "x", "count": ""}, "count"),
    ({"id": "x", "count": True}, "count"),
    ({"id": "x", "is_open": 1}, "is_open"),
    ({"id": "x", "created": "2024-05-01T13:45:00Z"}, "created"),
    ({"id": "x", "modified": "2024-05-01T13:45:00"}, "modified"),
    ({"id": "x", "location": {"type": "Point", "coordinates": ["a", 1]}}, "location"),
    ({"id": "x", "old_location": {"latitude": 30.2}}, "old_location"),
    ({"id": "x", "locations": {"type": "Point", "coordinates": [1, 2]}}, "locations"),
    ({"id": "x", "link": "https://example.org"}, "link"),
])
def test_a_wrong_value_type_is_400_and_nothing_is_written(emu, socrata_client, row, field):
    with pytest.raises(HTTPError) as caught:
        socrata_client.upsert(DATASET, [{"id": "good"}, row])
    assert caught.value.response.status_code == 400
    assert f"`{field}`" in caught.value.response.json()["message"]
    assert emu.rows(DATASET) == []


def test_an_illegal_field_name_is_400_and_nothing_is_written(emu, socrata_client):
    with pytest.raises(HTTPError) as caught:
        socrata_client.upsert(DATASET, [{"id": "good"}, {"id": "x", "switch_comm": "y"}])
    assert caught.value.response.status_code == 400
    assert caught.value.response.json() == {"code": "invalid_request", "error": True,
                                            "message": "Illegal field name sent: switch_comm"}
    assert emu.rows(DATASET) == []


@pytest.mark.parametrize("row", [{"status": "no id"}, {"id": None, "status": "null id"}])
def test_a_missing_or_null_row_identifier_is_400(emu, socrata_client, row):
    with pytest.raises(HTTPError, match="400 Client Error") as caught:
        socrata_client.upsert(DATASET, [{"id": "good"}, row])
    assert "row identifier" in caught.value.response.json()["message"]
    assert emu.rows(DATASET) == []


def test_nan_is_not_json_and_is_400(emu, socrata_client):
    with pytest.raises(HTTPError, match="400"):
        socrata_client.upsert(DATASET, [{"id": "a", "count": float("nan")}])
    assert emu.rows(DATASET) == []


def test_bodies_are_json_whatever_the_content_type_and_replies_say_json(emu):
    auth = ("key-id", "key-secret")
    ok = requests.post(f"{emu.url}/resource/{DATASET}.json", data='[{"id": "a"}]', auth=auth,
                       headers={"Content-Type": "text/plain"})
    missing = requests.get(f"{emu.url}/resource/zzzz-9999.json")
    for reply in (ok, missing, requests.get(f"{emu.url}/api/views/{DATASET}.json")):
        assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert ok.status_code == 200 and missing.status_code == 404
    assert missing.json()["error"] is True


def test_a_dataset_without_row_identifier_appends(socrata_emulator):
    socrata_emulator.create_dataset("noid-0001", {"name": "log", "columns": [
        {"fieldName": "msg", "name": "Msg", "dataTypeName": "text"}]})
    client = sodapy_client(socrata_emulator)
    client.upsert("noid-0001", [{"msg": "a"}])
    client.upsert("noid-0001", [{"msg": "a"}])
    assert socrata_emulator.rows("noid-0001") == [{"msg": "a"}, {"msg": "a"}]
    assert "rowIdentifierColumnId" not in client.get_metadata("noid-0001")
