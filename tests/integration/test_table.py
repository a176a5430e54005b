"""The analytics table (Delta Lake) end to end: Knack emulator → store (moto S3 or a local folder) → table.

Promise: after a full sync the table's rows are Knack's records with real types; an incremental run
rewrites exactly the edited rows; deletes reach the table only once confirmed (a full refresh); a field
added in Knack adds a column and a renamed one rewrites the table under the new names; two writers
racing for a commit both land; a table that cannot be written never holds back the store or the other
destinations (and its cursor stays). The nightly full run reads the table back (drift audit): after no
change it merges nothing; a row edited or deleted there by hand is merged again, and only that row.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
import yaml
from arro3.core import DataType, Field, Schema
from botocore.credentials import Credentials
from deltalake import DeltaTable, QueryBuilder, write_deltalake

from flows.metadata_to_s3 import metadata_to_s3
from tasks.domain.knack import knack_instant
from tasks.domain.table import ADDRESS, BOOL, DOUBLE, LIST, STRING, TIMESTAMP, to_record_batch
from tasks.table.client import TableLocation, merge_rows, open_table, s3_storage_options, stream, table_ids
from tests.faults.fixtures import agol_secret, make_rig, secret_log  # noqa: F401
from tests.faults.harness import Rig, error_of

pytestmark = pytest.mark.integration

CENTRAL = ZoneInfo("America/Chicago")  # the generated app's "Central Time (US & Canada)"
RECORDS = 40


@pytest.fixture(params=["s3", "local"])
def rig(request: pytest.FixtureRequest, make_rig: Any, tmp_path: Any, moto_server: Any,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    """A pipeline whose object_1 publishes to Socrata, ArcGIS and its table, on S3 or on a local folder."""
    settings: dict[str, Any] = {"tables": True}
    if request.param == "local":
        settings |= {"store": "local", "local_store": str(tmp_path / "store")}
    made: Rig = make_rig(records=RECORDS, settings=settings)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)  # moto itself, not the S3 fault proxy
    made.store_kind = request.param  # type: ignore[attr-defined]
    made.local_root = tmp_path / "store"  # type: ignore[attr-defined]
    yield made


def location(rig: Rig, container: str = "object_1") -> TableLocation:
    key = f"{rig.env}/{rig.app}/_tables/{container}"
    if rig.store_kind == "local":  # type: ignore[attr-defined]
        return TableLocation(str(rig.local_root / key), {})  # type: ignore[attr-defined]
    return TableLocation(f"s3://{rig.bucket}/{key}", s3_storage_options(rig.s3, Credentials("testing", "testing")))


def table(rig: Rig) -> DeltaTable:
    found = open_table(location(rig))
    assert found is not None, "no table was written"
    return found


def rows(rig: Rig) -> dict[str, dict[str, Any]]:
    """The table's rows by id, read through DuckDB as an analyst would (from delta-rs's Arrow stream)."""
    arrow = QueryBuilder().register("held", table(rig)).execute("SELECT * FROM held")  # noqa: F841 - by name
    result = duckdb.sql("SELECT * FROM arrow ORDER BY id")
    return {r["id"]: r for r in (dict(zip(result.columns, row, strict=True)) for row in result.fetchall())}


def last_commit(rig: Rig) -> dict[str, Any]:
    return table(rig).history(1)[0]


def table_cursor(rig: Rig) -> dict[str, Any] | None:
    if rig.store_kind == "local":  # type: ignore[attr-defined]
        import json

        path = rig.local_root / f"{rig.env}/{rig.app}/_state/object_1/cursor-table.json"  # type: ignore[attr-defined]
        return json.loads(path.read_text()) if path.exists() else None
    return rig.state_doc("object_1", "cursor-table")


def data_files(rig: Rig) -> list[str]:
    """The table's Parquet files in the store."""
    key = f"{rig.env}/{rig.app}/_tables/object_1/"
    if rig.store_kind == "local":  # type: ignore[attr-defined]
        return [p.name for p in (rig.local_root / key).glob("*.parquet")]  # type: ignore[attr-defined]
    listed = rig.s3.list_objects_v2(Bucket=rig.bucket, Prefix=key).get("Contents", [])
    return [o["Key"].rsplit("/", 1)[-1] for o in listed if o["Key"].endswith(".parquet")]


def utc(raw_date: dict[str, Any]) -> datetime:
    """Knack's wall time (labelled UTC) read in the app's timezone, as a UTC instant (an hour that occurs
    twice when clocks go back is read as the project reads it everywhere)."""
    return knack_instant(raw_date, CENTRAL).astimezone(UTC)


def test_full_sync_rows_are_knacks_records_with_real_types(rig: Rig) -> None:
    report = rig.ok()
    knack = {r["id"]: r for r in rig.knack.records("object_1")}
    assert report["published"]["table"]["upserted"] == len(knack) == RECORDS
    schema = table(rig).schema().to_arrow()
    types = {f.name: f.type for f in schema}
    assert types["id"] == STRING
    assert types["lane_count"] == DOUBLE and types["install_cost"] == DOUBLE
    assert types["pedestrian_signal"] == BOOL
    assert types["date_time_start"] == TIMESTAMP and types["_knack_modified"] == TIMESTAMP
    assert types["_synced_at"] == TIMESTAMP
    assert DataType.is_list(types["status"]) and DataType.is_list(types["corridor"])
    assert LIST.value_type == types["corridor"].value_type
    assert DataType.is_struct(types["location"]) and types["location"].num_fields == ADDRESS.num_fields
    got = rows(rig)
    assert sorted(got) == sorted(knack)
    for rid, record in knack.items():
        row = got[rid]
        assert row["location_name"] == (record["field_2"] or None)
        assert row["lane_count"] == (float(record["field_6_raw"]) if record.get("field_6_raw") not in (None, "")
                                     else None)
        assert row["pedestrian_signal"] is record.get("field_11_raw")
        status = record.get("field_12_raw")
        assert row["status"] == ([status] if isinstance(status, str) and status else status or None)
        assert row["corridor"] == ([c["identifier"] for c in record["field_21_raw"]] or None
                                   if record.get("field_21_raw") else None)
        place = record.get("field_19_raw")
        if isinstance(place, dict) and place.get("latitude") not in (None, ""):
            assert row["location"]["latitude"] == pytest.approx(float(place["latitude"]))
            assert row["location"]["longitude"] == pytest.approx(float(place["longitude"]))
        assert row["_knack_modified"] == utc(record["field_27_raw"])
        if isinstance(record.get("field_22_raw"), dict):
            assert row["date_time_start"] == utc(record["field_22_raw"])
    assert rig.socrata_ids("object_1") == rig.agol_ids("object_1") == sorted(knack)
    assert table_cursor(rig)["generation"] == report["store"]["generation"]


def test_k_edits_rewrite_exactly_those_rows(rig: Rig) -> None:
    rig.ok()
    before = rows(rig)
    edited = set(rig.knack.edit_random("object_1", 5, seed=4))
    report = rig.ok()
    assert report["published"]["table"]["upserted"] == 5
    commit = last_commit(rig)
    assert commit["operation"] == "MERGE"
    metrics = commit["operationMetrics"]
    assert (metrics["num_target_rows_updated"], metrics["num_target_rows_inserted"],
            metrics["num_source_rows"]) == (5, 0, 5)
    after = rows(rig)
    knack = {r["id"]: r for r in rig.knack.records("object_1")}
    assert sorted(after) == sorted(before)
    for rid in after:
        if rid in edited:
            assert after[rid]["_knack_modified"] == utc(knack[rid]["field_27_raw"])
            assert after[rid]["_synced_at"] > before[rid]["_synced_at"]
        else:
            assert after[rid] == before[rid], f"row {rid} changed without an edit"
    version = table(rig).version()
    assert rig.ok()["published"]["table"]["upserted"] == 0
    assert table(rig).version() == version  # nothing changed: no commit


def test_deletes_reach_the_table_only_once_confirmed(rig: Rig) -> None:
    rig.ok()
    gone = rig.knack_ids("object_1")[:3]
    for rid in gone:
        rig.knack.delete_record("object_1", rid)
    rig.ok()
    assert set(gone) <= set(rows(rig))  # Knack has no deletion feed: only a full refresh confirms them
    report = rig.ok(full=True)
    assert report["published"]["table"]["deleted"] == 3
    assert sorted(rows(rig)) == rig.knack_ids("object_1")
    assert "DELETE" in [c["operation"] for c in table(rig).history(3)]


def test_a_field_added_in_knack_adds_a_column(rig: Rig) -> None:
    rig.ok()
    fields = next(o for o in rig.knack.state.meta["objects"] if o["key"] == "object_1")["fields"]
    saved = [dict(f) for f in fields]
    try:
        fields.append({"key": "field_50", "name": "Inspector Remarks", "type": "number", "required": False,
                       "unique": False})
        knack = rig.knack.state.tables["object_1"]
        edited = rig.knack.edit_random("object_1", 2, seed=1)
        for rid in edited:
            knack.put({**knack.rows[rid], "field_50": "7", "field_50_raw": 7})
        metadata_to_s3(app=rig.app, env=rig.env, refresh=True, config_path=str(rig.config_path))
        rig.ok()
        got = rows(rig)
        assert table(rig).schema().to_arrow().field("inspector_remarks").type == DOUBLE
        assert {rid for rid, row in got.items() if row["inspector_remarks"] == 7.0} == set(edited)
        assert len(got) == RECORDS
    finally:
        fields[:] = saved
        metadata_to_s3(app=rig.app, env=rig.env, refresh=True, config_path=str(rig.config_path))


def test_a_renamed_field_rewrites_the_table_under_the_new_names(rig: Rig) -> None:
    rig.ok()
    fields = {f["key"]: f for f in next(o for o in rig.knack.state.meta["objects"]
                                        if o["key"] == "object_1")["fields"]}
    saved = {k: dict(f) for k, f in fields.items()}
    try:
        fields["field_4"]["name"] = "Field Notes"  # was "Notes"
        metadata_to_s3(app=rig.app, env=rig.env, refresh=True, config_path=str(rig.config_path))
        report = rig.ok()
        assert report["published"]["table"]["upserted"] == RECORDS  # every row again
        names = table(rig).schema().to_arrow().names
        assert "field_notes" in names and "notes" not in names
        knack = {r["id"]: r for r in rig.knack.records("object_1")}
        for rid, row in rows(rig).items():
            assert row["field_notes"] == (knack[rid]["field_4"] or None)
        assert last_commit(rig)["operation"] in ("WRITE", "CREATE OR REPLACE TABLE")
    finally:
        for key, body in saved.items():
            fields[key].clear()
            fields[key].update(body)
        metadata_to_s3(app=rig.app, env=rig.env, refresh=True, config_path=str(rig.config_path))


def test_a_failing_table_write_blocks_neither_the_store_nor_the_other_destinations(rig: Rig) -> None:
    where = location(rig)
    if rig.store_kind == "local":  # type: ignore[attr-defined]
        log = rig.local_root / f"{rig.env}/{rig.app}/_tables/object_1/_delta_log"  # type: ignore[attr-defined]
        log.mkdir(parents=True)
        (log / "00000000000000000000.json").write_text("this is not a Delta log entry")
    else:
        rig.s3.put_object(Bucket=rig.bucket, Key=f"{where.uri.split('/', 3)[3]}/_delta_log/00000000000000000000.json",
                          Body=b"this is not a Delta log entry")
    state = rig.run()
    assert state.is_failed()
    assert "publishing to table failed" in error_of(state)
    knack_ids = rig.knack_ids("object_1")
    assert rig.socrata_ids("object_1") == rig.agol_ids("object_1") == knack_ids
    if rig.store_kind == "s3":  # type: ignore[attr-defined]
        assert rig.stored_ids("object_1") == knack_ids  # the table's files are not records
    assert table_cursor(rig) is None  # the table cursor did not move


def test_compaction_and_vacuum_every_n_commits(rig: Rig) -> None:
    raw = yaml.safe_load(rig.config_path.read_text())
    raw.update({"table_compact_every": 2, "table_retention_hours": 0})
    rig.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    rig.ok()
    for seed in (1, 2, 3):
        rig.knack.edit_random("object_1", 2, seed=seed)
        rig.ok()
    operations = [c["operation"] for c in reversed(table(rig).history())]
    merges_before_tidy = [op for op in operations[:operations.index("VACUUM START")] if op != "OPTIMIZE"]
    assert merges_before_tidy == ["WRITE", "MERGE"]  # tidied after the second commit, not before
    assert operations.count("VACUUM END") == 2  # and again two commits later
    found = table(rig)
    active = {uri.rsplit("/", 1)[-1] for uri in found.file_uris()}
    on_disk = {name for name in data_files(rig)}
    assert on_disk == active  # vacuumed: no file that no version reads (retention 0 here)
    assert sorted(rows(rig)) == rig.knack_ids("object_1")


def test_a_no_change_full_run_reads_the_table_back_and_merges_nothing(rig: Rig) -> None:
    rig.ok()
    version = table(rig).version()
    result = rig.ok(full=True)["published"]["table"]
    assert (result["held"], result["differed"], result["missing"], result["upserted"]) == (RECORDS, 0, 0, 0)
    assert table(rig).version() == version  # no commit


def test_rows_edited_or_deleted_by_hand_in_the_table_are_merged_again(rig: Rig) -> None:
    rig.ok()
    before = rows(rig)
    ids = sorted(before)
    edited, removed = ids[3], ids[4]
    found = table(rig)
    found.update(predicate=f"id = '{edited}'", new_values={"location_name": "Edited By Hand", "lane_count": 99.5})
    found.delete(f"id = '{removed}'")
    assert rows(rig)[edited]["location_name"] == "Edited By Hand" and removed not in rows(rig)

    assert rig.ok()["published"]["table"]["upserted"] == 0  # an incremental run knows nothing of it
    result = rig.ok(full=True)["published"]["table"]
    assert (result["differed"], result["missing"], result["upserted"]) == (1, 1, 2), result
    metrics = last_commit(rig)["operationMetrics"]
    assert (metrics["num_source_rows"], metrics["num_target_rows_updated"],
            metrics["num_target_rows_inserted"]) == (2, 1, 1)
    after = rows(rig)
    assert sorted(after) == ids
    for rid in ids:
        if rid in (edited, removed):
            assert {**after[rid], "_synced_at": None} == {**before[rid], "_synced_at": None}, rid
            assert after[rid]["_synced_at"] > before[rid]["_synced_at"]
        else:
            assert after[rid] == before[rid], f"row {rid} was written again"
    version = table(rig).version()
    again = rig.ok(full=True)["published"]["table"]  # repaired: the next audit finds nothing
    assert (again["differed"], again["missing"], again["upserted"]) == (0, 0, 0)
    assert table(rig).version() == version


def test_racing_writers_both_commit(rig: Rig) -> None:
    """Two writers (beside any run's lock) committing at once: each commit lands at its own version."""
    where = location(rig, "object_9")
    schema = Schema([Field("id", STRING), Field("value", DOUBLE)])
    merge_rows(where, None, stream(schema, iter([to_record_batch([{"id": "seed", "value": 0.0}], schema)])))
    errors: list[str] = []
    start = threading.Barrier(4)

    def write(n: int) -> None:
        start.wait()
        try:
            write_deltalake(where.uri, to_record_batch([{"id": f"w{n}", "value": float(n)}], schema),
                            mode="append", storage_options=where.storage_options or None)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(repr(exc))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    found = open_table(where)
    assert table_ids(found) == {"seed", "w0", "w1", "w2", "w3"}  # no commit lost or overwritten
    assert found.version() == 4
    assert [c["version"] for c in found.history()] == [4, 3, 2, 1, 0]


def test_the_writer_reaches_s3_like_the_store_and_never_shows_its_keys(moto_server: Any) -> None:
    options = s3_storage_options(moto_server.client(), Credentials("testing", "testing"))
    assert options["AWS_ENDPOINT_URL"] == moto_server.endpoint and options["AWS_ALLOW_HTTP"] == "true"
    assert options["AWS_CONDITIONAL_PUT"] == "etag"  # commits by conditional PUT: no lock table needed
    assert options["AWS_REGION"] == "us-east-1" and options["AWS_ACCESS_KEY_ID"] == "testing"
    where = TableLocation("s3://bucket/dev/demo/_tables/object_1", options)
    assert "testing" not in repr(where) and "testing" not in str(where)
