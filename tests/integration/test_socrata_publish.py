"""tasks/socrata.py with real sodapy against the Socrata emulator: chunks, edits, deletes, failures."""

from __future__ import annotations

import pytest

from blocks.socrata import SocrataCredentials
from emulators.knack import schema as knack_schema
from emulators.knack.generator import generate_app
from tasks.domain.errors import ConfigError, SocrataError, SocrataRejectedRows
from tasks.domain.formatting import container_schema, destination_names, format_record
from tasks.domain.socrata import to_socrata_row
from tasks.socrata.client import delete_rows, fetch_schema, list_row_ids, upsert_rows
from tests.fixtures.socrata import SOCRATA_APP_TOKEN, SOCRATA_PASSWORD, SOCRATA_USERNAME, sodapy_client

pytestmark = pytest.mark.integration

DATASET = "sig1-2024"
SCHEMA = {"name": "Traffic signals", "row_identifier": "id", "columns": [
    {"fieldName": "id", "name": "id", "dataTypeName": "text"},
    {"fieldName": "location_name", "name": "Location Name", "dataTypeName": "text"},
    {"fieldName": "lane_count", "name": "Lane Count", "dataTypeName": "number"},
    {"fieldName": "location", "name": "Location", "dataTypeName": "point"}]}
FAST = {"backoff": 0.001}  # retry waits in tests: milliseconds, not seconds
N = 23


def signal_row(i: int, name: str | None = None) -> dict:
    return {"id": f"5f{i:022x}", "location_name": name or f"Lamar Blvd / {i}th St", "lane_count": i % 5 + 1,
            "location": {"type": "Point", "coordinates": [-97.75 + i / 1000, 30.27]}}


def stored(row: dict) -> dict:
    """A row as the dataset returns it: numbers as strings."""
    return {**row, "lane_count": str(row["lane_count"])}


@pytest.fixture
def emu(socrata_emulator):
    socrata_emulator.create_dataset(DATASET, SCHEMA)
    return socrata_emulator


@pytest.fixture
def client(emu):
    creds = SocrataCredentials(domain=emu.url, username=SOCRATA_USERNAME, password=SOCRATA_PASSWORD,
                               app_token=SOCRATA_APP_TOKEN, timeout=5)
    sodapy = creds.get_client()
    sodapy.session.trust_env = False
    yield sodapy
    sodapy.close()


def upserted_ids(emu) -> list[list[str]]:
    """The ids each upsert request carried, in order."""
    return [[r["id"] for r in e["body"]] for e in emu.requests if e["method"] == "POST"]


def test_fetch_schema_reads_columns_and_row_identifier(emu, client):
    schema = fetch_schema(client, DATASET, **FAST)
    assert schema.column_types == {"id": "text", "location_name": "text", "lane_count": "number",
                                   "location": "point"}
    assert schema.row_identifier == "id"
    schema.check_publishable()
    emu.create_dataset("noid-2024", {"name": "no id", "columns": SCHEMA["columns"]})
    with pytest.raises(ConfigError, match="noid-2024.*row identifier"):
        fetch_schema(client, "noid-2024", **FAST).check_publishable()


def test_publish_then_k_edits_and_d_deletes_land_exactly(emu, client):
    rows = [signal_row(i) for i in range(N)]
    totals = upsert_rows(client, DATASET, rows, chunk_size=5, **FAST)
    assert totals == {"rows": N, "chunks": 5, "created": N, "updated": 0, "deleted": 0}
    assert emu.rows(DATASET) == [stored(r) for r in rows]

    emu.reset_log()
    edited = [signal_row(i, name=f"Edited {i}") for i in (3, 11, 19)]
    gone = [rows[0]["id"], rows[22]["id"]]
    assert upsert_rows(client, DATASET, edited, chunk_size=5, **FAST)["updated"] == 3
    assert delete_rows(client, DATASET, gone, chunk_size=5, **FAST)["deleted"] == 2
    expected = {r["id"]: stored(r) for r in rows}
    expected.update({r["id"]: stored(r) for r in edited})
    for rid in gone:
        del expected[rid]
    assert {r["id"]: r for r in emu.rows(DATASET)} == expected
    assert upserted_ids(emu) == [[r["id"] for r in edited], gone]  # only the k + d rows travelled


def test_failure_on_chunk_3_of_5_then_rerun_ends_correct_without_duplicates(emu, client):
    rows = [signal_row(i) for i in range(N)]
    emu.set_faults(fail_writes_after=2, fail_writes_count=99, fail_status=503)
    with pytest.raises(SocrataError) as caught:
        upsert_rows(client, DATASET, rows, chunk_size=5, attempts=3, **FAST)
    message = str(caught.value)
    assert DATASET in message and "chunk 3" in message and rows[10]["id"] in message and rows[14]["id"] in message
    assert len(emu.rows(DATASET)) == 10  # chunks 1 and 2 landed, 3 failed after 3 tries, 4 and 5 never sent
    assert [e["status"] for e in emu.requests] == [200, 200, 503, 503, 503]

    emu.set_faults()
    upsert_rows(client, DATASET, rows, chunk_size=5, **FAST)
    assert emu.rows(DATASET) == [stored(r) for r in rows]


def test_transient_faults_are_retried_and_the_run_succeeds(emu, client):
    rows = [signal_row(i) for i in range(N)]
    emu.set_faults(fail_writes_after=2, fail_writes_count=2, fail_status=503)
    assert upsert_rows(client, DATASET, rows, chunk_size=5, **FAST)["created"] == N
    assert [e["status"] for e in emu.requests] == [200, 200, 503, 503, 200, 200, 200]
    emu.set_faults(rate_429=1.0, retry_after=0)
    with pytest.raises(SocrataError, match="Too many requests"):
        list_row_ids(client, DATASET, attempts=2, **FAST)
    assert [e["status"] for e in emu.requests[-2:]] == [429, 429]


def test_a_bad_value_is_400_at_once_and_names_the_ids(emu, client):
    rows = [signal_row(i) for i in range(N)]
    rows[7]["lane_count"] = "four"
    with pytest.raises(SocrataRejectedRows) as caught:
        upsert_rows(client, DATASET, rows, chunk_size=5, **FAST)
    error = caught.value
    assert error.resource_id == DATASET and error.ids == [r["id"] for r in rows[5:10]]
    message = str(error)
    assert "chunk 2" in message and rows[5]["id"] in message and rows[9]["id"] in message
    assert "lane_count" in message  # Socrata's own message
    assert SOCRATA_PASSWORD not in message
    assert [e["status"] for e in emu.requests] == [200, 400]  # not retried
    assert len(emu.rows(DATASET)) == 5


def test_wrong_credentials_fail_at_once(emu):
    creds = SocrataCredentials(domain=emu.url, username=SOCRATA_USERNAME, password="not-the-secret")
    with pytest.raises(SocrataError, match="401|Invalid username") as caught:
        upsert_rows(creds.get_client(), DATASET, [signal_row(1)], **FAST)
    assert "not-the-secret" not in str(caught.value)
    assert len(emu.requests) == 1


def test_list_row_ids_pages_in_id_order(emu, client):
    rows = [signal_row(i) for i in range(N)]
    upsert_rows(client, DATASET, rows, **FAST)
    emu.reset_log()
    assert list_row_ids(client, DATASET, page_size=7, **FAST) == {r["id"] for r in rows}
    assert [(e["query"]["$select"], e["query"]["$order"], e["query"]["$offset"]) for e in emu.requests] == [
        ("id", "id", "0"), ("id", "id", "7"), ("id", "id", "14"), ("id", "id", "21")]


def test_deleting_ids_already_gone_is_not_an_error_but_a_survivor_is(emu, client, monkeypatch):
    rows = [signal_row(i) for i in range(4)]
    upsert_rows(client, DATASET, rows, **FAST)
    ids = [r["id"] for r in rows[:2]]
    assert delete_rows(client, DATASET, ids, **FAST)["deleted"] == 2
    assert delete_rows(client, DATASET, [*ids, "never-existed"], **FAST)["deleted"] == 0  # a re-run
    assert [r["id"] for r in emu.rows(DATASET)] == [r["id"] for r in rows[2:]]

    real_upsert = client.upsert

    def lying_upsert(resource_id, payload):  # a reply that claims errors while the rows stayed
        real_upsert(resource_id, [])
        return {"Errors": len(payload), "Rows Deleted": 0}

    monkeypatch.setattr(client, "upsert", lying_upsert)
    with pytest.raises(SocrataRejectedRows, match="still present") as caught:
        delete_rows(client, DATASET, [rows[2]["id"]], **FAST)
    assert caught.value.ids == [rows[2]["id"]]


def test_generated_signals_publish_through_the_transforms(socrata_emulator):
    """Formatted Knack records → rows → real sodapy → the emulator's validation, for every field type."""
    app = generate_app(records=60, seed=3)
    schema = container_schema(app["metadata"], knack_schema.SIGNALS)
    names = destination_names(schema, {"field_13": "status_code"})
    types = {"number": "number", "currency": "money", "rating": "number", "equation": "number",
             "auto_increment": "number", "date_time": "calendar_date", "link": "url", "boolean": "checkbox"}
    columns = [{"fieldName": "id", "name": "id", "dataTypeName": "text"}] + [
        {"fieldName": names[f.key], "name": f.label, "dataTypeName": types.get(f.type, "text")}
        for f in schema.fields if f.key in names]
    columns = [{**c, "dataTypeName": "point"} if c["fieldName"] == "location" else c for c in columns]
    columns = [{**c, "dataTypeName": "date"} if c["fieldName"] == "modified_date" else c for c in columns]
    socrata_emulator.create_dataset("sig2-2024", {"name": "signals", "row_identifier": "id", "columns": columns})
    client = sodapy_client(socrata_emulator)
    socrata = fetch_schema(client, "sig2-2024", **FAST)
    records = app["records"][knack_schema.SIGNALS]
    rows = [to_socrata_row(r["id"], format_record(r, schema), names, socrata, location_fields=["field_19"],
                           app_tz=schema.timezone) for r in records]
    assert upsert_rows(client, "sig2-2024", rows, chunk_size=25, **FAST)["created"] == 60
    stored_rows = {r["id"]: r for r in socrata_emulator.rows("sig2-2024")}
    assert set(stored_rows) == {r["id"] for r in records}
    located = [r for r in rows if r["location"] is not None]
    assert located and all(stored_rows[r["id"]]["location"] == r["location"] for r in located)
    assert all(stored_rows[r["id"]]["modified_date"].endswith(".000Z") for r in rows)
