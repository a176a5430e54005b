"""The sync flow end to end in-process: Knack emulator → moto S3 → Socrata and ArcGIS emulators."""

from __future__ import annotations

import json

import pytest

from flows.sync import sync
from tests.fixtures.pipeline import Pipeline

pytestmark = pytest.mark.integration


def run(p: Pipeline, container: str, **kwargs: object) -> dict:
    return sync(app=p.app, container=container, env=p.env, config_path=str(p.config_path), **kwargs)


def test_first_run_then_incremental_publishes_exactly_the_edits(pipeline: Pipeline) -> None:
    p = pipeline
    knack_ids = p.knack_ids("object_1")
    first = run(p, "object_1")
    assert first["store"]["mode"] == "full"
    assert first["store"]["written"] == len(knack_ids) == 300
    assert p.stored_ids("object_1") == knack_ids
    assert p.socrata_ids("object_1") == knack_ids
    assert p.agol_ids("object_1") == knack_ids
    body = p.s3.get_object(Bucket=p.bucket, Key=f"dev/demo/object_1/{knack_ids[0]}.json")
    assert body["ContentType"] == "application/json"
    assert json.loads(body["Body"].read()) == next(r for r in p.knack.records("object_1") if r["id"] == knack_ids[0])
    metadata = p.s3.get_object(Bucket=p.bucket, Key="dev/demo/metadata.json")["Body"].read()
    assert json.loads(metadata)["application"]["name"] == "Signal Operations"

    edited = p.knack.edit_random("object_1", 7, seed=3)
    p.knack.reset_counters()
    second = run(p, "object_1")
    assert second["store"]["mode"] == "incremental"
    assert second["store"]["written"] == 7
    assert second["published"]["socrata"]["upserted"] == 7
    assert second["published"]["agol"]["upserted"] == 7
    assert second["store"]["knack_requests"] == p.knack.counters()["requests"]
    rows = {r["id"]: r for r in p.socrata.rows(p.container("object_1").socrata_resource_id)}
    for rid in edited:
        record = next(r for r in p.knack.records("object_1") if r["id"] == rid)
        assert rows[rid]["location_name"] == record["field_2"]

    third = run(p, "object_1")  # nothing changed: nothing written, nothing published
    assert (third["store"]["written"], third["published"]["socrata"]["upserted"],
            third["published"]["agol"]["upserted"]) == (0, 0, 0)


def test_full_refresh_propagates_deletes_everywhere(pipeline: Pipeline) -> None:
    p = pipeline
    run(p, "object_1")
    gone = p.knack_ids("object_1")[:4]
    for rid in gone:
        p.knack.delete_record("object_1", rid)
    incremental = run(p, "object_1")
    assert incremental["store"]["deleted"] == 0  # Knack has no deletion feed
    full = run(p, "object_1", full=True)
    assert full["store"]["deleted"] == 4
    remaining = p.knack_ids("object_1")
    assert p.stored_ids("object_1") == remaining
    assert p.socrata_ids("object_1") == remaining
    assert p.agol_ids("object_1") == remaining


def test_view_table_and_multipoint_containers(pipeline: Pipeline) -> None:
    p = pipeline
    view = run(p, "view_1")
    assert view["store"]["written"] == 300
    stored = json.loads(p.s3.get_object(Bucket=p.bucket, Key=f"dev/demo/view_1/{p.stored_ids('view_1')[0]}.json")
                        ["Body"].read())
    assert "field_4" not in stored  # a view holds only the fields it shows
    assert p.socrata_ids("view_1") == p.stored_ids("view_1")
    table = run(p, "object_3")
    assert table["published"]["agol"]["upserted"] == len(p.knack_ids("object_3"))
    cfg = p.container("object_3")
    assert all("geometry" not in f or f["geometry"] is None for f in p.arcgis.features(cfg.service_id, 0))


def test_one_destination_failing_does_not_block_the_other(pipeline: Pipeline) -> None:
    p = pipeline
    p.socrata.set_faults(error_rate=1.0, error_status=400)
    state = sync(app=p.app, container="object_1", env=p.env, config_path=str(p.config_path), return_state=True)
    assert state.is_failed()
    assert "publishing to socrata failed" in str(state.message) or "socrata" in str(state.message)
    assert p.agol_ids("object_1") == p.knack_ids("object_1")
    assert p.stored_ids("object_1") == p.knack_ids("object_1")
    p.socrata.set_faults()
    again = run(p, "object_1")
    assert again["store"]["written"] == 0
    assert again["published"]["socrata"]["upserted"] == 300  # its cursor had not moved
    assert again["published"]["agol"]["upserted"] == 0


def test_secrets_stay_out_of_the_store_and_the_report(pipeline: Pipeline) -> None:
    p = pipeline
    report = json.dumps(run(p, "object_2"))
    secrets = p.secrets
    assert not [s for s in secrets if s in report]
    for page in p.s3.get_paginator("list_objects_v2").paginate(Bucket=p.bucket):
        for item in page.get("Contents", []):
            body = p.s3.get_object(Bucket=p.bucket, Key=item["Key"])["Body"].read().decode()
            assert not [s for s in secrets if s in body], item["Key"]


def test_fan_out_syncs_every_container_of_the_app(pipeline: Pipeline) -> None:
    from flows.sync_app import deployment_name, sync_app

    p = pipeline
    results = sync_app(app=p.app, env=p.env, config_path=str(p.config_path))
    assert results == {f"demo/{key}": "COMPLETED" for key in ("object_1", "view_1", "object_2", "object_3")}
    assert p.stored_ids("object_2") == p.knack_ids("object_2")
    assert p.agol_ids("object_3") == p.knack_ids("object_3")
    assert p.socrata_ids("view_1") == p.stored_ids("view_1")
    assert deployment_name("demo", "object_1", "dev") == "sync/demo-object-1-dev"  # as prefect.yaml names it
