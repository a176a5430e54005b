"""A reconcile (``sync --full``) costs what changed; ``republish`` resends everything; the destinations of a
sync read each stored record once between them. Knack, Socrata and ArcGIS emulators, moto S3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from flows.sync import sync
from tests.fixtures.pipeline import Pipeline
from tests.fixtures.socrata import sodapy_client

pytestmark = pytest.mark.integration

C = "object_1"


def run(p: Pipeline, **kwargs: object) -> dict:
    return sync(app=p.app, container=C, env=p.env, config_path=str(p.config_path), **kwargs)


def socrata_sent(p: Pipeline) -> tuple[int, int]:
    """(rows upserted, rows deleted) sent to the container's dataset since the log was reset."""
    path = f"/resource/{p.container(C).socrata_resource_id}.json"
    rows = deleted = 0
    for entry in p.socrata.requests:
        if entry["method"] in ("POST", "PUT") and entry["path"] == path and isinstance(entry.get("body"), list):
            gone = sum(1 for row in entry["body"] if row.get(":deleted"))
            rows, deleted = rows + len(entry["body"]) - gone, deleted + gone
    return rows, deleted


def arcgis_sent(p: Pipeline) -> int:
    """Features sent in edits (adds and updates) since the log was reset."""
    return sum(max(v, 0) for entry in p.arcgis.requests for k, v in (entry.get("sizes") or {}).items()
               if k in ("adds", "updates", "features"))


def reset_logs(p: Pipeline) -> None:
    p.socrata.reset_log()
    p.arcgis.reset_log()


def sent(report: dict) -> tuple[int, int, int, int]:
    socrata, agol = report["published"]["socrata"], report["published"]["agol"]
    return socrata["upserted"], agol["upserted"], socrata["deleted"], agol["deleted"]


class RecordGets:
    """GETs of the container's record objects by this process's S3 clients (boto3's own event hooks)."""

    def __init__(self, p: Pipeline) -> None:
        self.prefix, self.bucket = f"{p.env}/{p.app}/{C}/", p.bucket
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        key = params.get("Key", "")
        if params.get("Bucket") == self.bucket and key.startswith(self.prefix):
            with self._lock:
                self.keys.append(key)


@pytest.fixture
def record_gets(pipeline: Pipeline) -> Iterator[RecordGets]:
    from tasks.store import open as store_open

    run(pipeline)  # the first sync makes the process's client
    counter = RecordGets(pipeline)
    clients = [client for client, _session in store_open._CLIENTS.values()]
    for client in clients:
        client.meta.events.register("provide-client-params.s3.GetObject", counter)
    yield counter
    for client in clients:
        client.meta.events.unregister("provide-client-params.s3.GetObject", counter)


def test_a_reconcile_after_no_change_sends_nothing(pipeline: Pipeline, record_gets: RecordGets) -> None:
    p = pipeline
    reset_logs(p)
    report = run(p, full=True)
    assert sent(report) == (0, 0, 0, 0)
    assert socrata_sent(p) == (0, 0) and arcgis_sent(p) == 0
    assert record_gets.keys == []  # nothing to send, nothing read
    assert p.socrata_ids(C) == p.agol_ids(C) == p.knack_ids(C)


def test_a_reconcile_after_k_edits_and_d_deletes_sends_k_and_deletes_d(pipeline: Pipeline,
                                                                       record_gets: RecordGets) -> None:
    p = pipeline
    edited = p.knack.edit_random(C, 6, seed=4)
    gone = [rid for rid in p.knack_ids(C) if rid not in edited][:3]
    for rid in gone:
        p.knack.delete_record(C, rid)
    reset_logs(p)
    report = run(p, full=True)
    assert report["store"]["written"] == 6 and report["store"]["deleted"] == 3
    assert sent(report) == (6, 6, 3, 3)
    assert socrata_sent(p) == (6, 3) and arcgis_sent(p) == 6
    assert sorted(record_gets.keys) == sorted(f"{record_gets.prefix}{rid}.json" for rid in edited)  # once each
    assert p.stored_ids(C) == p.socrata_ids(C) == p.agol_ids(C) == p.knack_ids(C)
    rows = {r["id"]: r for r in p.socrata.rows(p.container(C).socrata_resource_id)}
    for rid in edited:
        assert rows[rid]["location_name"] == next(r for r in p.knack.records(C) if r["id"] == rid)["field_2"]

    reset_logs(p)
    assert sent(run(p, full=True)) == (0, 0, 0, 0)  # the incremental edits are what the destinations hold


def test_edits_published_hourly_are_not_sent_again_by_the_reconcile(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    p.knack.edit_random(C, 5, seed=8)
    assert sent(run(p))[:2] == (5, 5)
    reset_logs(p)
    assert sent(run(p, full=True)) == (0, 0, 0, 0)
    assert socrata_sent(p) == (0, 0) and arcgis_sent(p) == 0


def test_a_row_deleted_by_hand_downstream_is_restored_by_the_next_reconcile(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    lost = p.socrata_ids(C)[:2]
    client = sodapy_client(p.socrata)
    client.upsert(p.container(C).socrata_resource_id, [{"id": rid, ":deleted": True} for rid in lost])
    client.close()
    assert not set(lost) & set(p.socrata_ids(C))
    reset_logs(p)
    report = run(p, full=True)
    assert sent(report) == (2, 0, 0, 0)
    assert socrata_sent(p) == (2, 0)
    assert p.socrata_ids(C) == p.knack_ids(C)


def test_republish_resends_every_record_reading_each_once(pipeline: Pipeline, record_gets: RecordGets) -> None:
    p = pipeline
    n = len(p.knack_ids(C))
    reset_logs(p)
    report = run(p, republish=True)
    assert sent(report) == (n, n, 0, 0)
    assert socrata_sent(p) == (n, 0) and arcgis_sent(p) == n
    assert len(record_gets.keys) == len(set(record_gets.keys)) == n  # one GET per record for both destinations

    reset_logs(p)
    record_gets.keys.clear()
    report = run(p, full=True, destinations=["socrata"], republish=True)  # a single destination reads alone
    assert report["published"]["socrata"]["upserted"] == len(record_gets.keys) == n


def test_a_column_remap_resends_every_row_on_a_reconcile(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    raw = yaml.safe_load(p.config_path.read_text())
    raw["apps"][p.app]["containers"][C]["socrata_field_map"]["field_2"] = "site_name"
    p.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    reset_logs(p)
    n = len(p.knack_ids(C))
    assert sent(run(p, full=True))[:2] == (n, n)
    reset_logs(p)
    assert sent(run(p, full=True)) == (0, 0, 0, 0)


def test_the_command_lines_take_republish(pipeline: Pipeline) -> None:
    from flows.records_to_socrata import main as records_to_socrata_main
    from flows.sync import main as sync_main

    p = pipeline
    n = len(p.knack_ids(C))
    args = ["-a", p.app, "-c", C, "-e", p.env, "--config", str(p.config_path)]
    assert sync_main(args) == 0
    reset_logs(p)
    assert sync_main([*args, "--full"]) == 0
    assert socrata_sent(p) == (0, 0) and arcgis_sent(p) == 0
    assert records_to_socrata_main([*args, "--republish"]) == 0  # one destination on its own
    assert socrata_sent(p) == (n, 0) and arcgis_sent(p) == 0
