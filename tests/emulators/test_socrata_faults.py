"""The Socrata emulator's auth rules, fault knobs, dataset-delete refusal, admin routes and CLI."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest
import requests
from requests.exceptions import ConnectionError, HTTPError, ReadTimeout

from tests.fixtures.socrata import sodapy_client

pytestmark = pytest.mark.integration

DATASET = "abcd-1234"
SCHEMA = {"name": "Work orders", "row_identifier": "id", "columns": [
    {"fieldName": "id", "name": "ID", "dataTypeName": "text"},
    {"fieldName": "n", "name": "N", "dataTypeName": "number"}]}


@pytest.fixture
def emu(socrata_emulator):
    socrata_emulator.create_dataset(DATASET, SCHEMA)
    return socrata_emulator


def test_writes_without_credentials_are_403_must_be_logged_in(emu):
    client = sodapy_client(emu, username=None, password=None)
    with pytest.raises(HTTPError) as caught:
        client.upsert(DATASET, [{"id": "a"}])
    assert caught.value.response.status_code == 403
    assert caught.value.response.json() == {"error": True, "message": "You must be logged in to access this resource"}
    assert client.get(DATASET) == []  # reads of a public dataset need no login
    assert emu.rows(DATASET) == []


def test_wrong_credentials_are_401_and_the_app_token_is_recorded(emu):
    with pytest.raises(HTTPError, match="401"):
        sodapy_client(emu, password="wrong").upsert(DATASET, [{"id": "a"}])
    sodapy_client(emu).upsert(DATASET, [{"id": "a"}])
    assert [(e["auth_user"], e["app_token"], e["status"]) for e in emu.requests] == [
        ("key-id", "test-app-token", 401), ("key-id", "test-app-token", 200)]
    assert "key-secret" not in json.dumps(emu.requests)


def test_a_foreign_app_token_is_refused_and_a_missing_one_accepted(emu):
    with pytest.raises(HTTPError, match="403"):
        sodapy_client(emu, app_token="someone-elses").get(DATASET)
    assert sodapy_client(emu, app_token=None).get(DATASET) == []
    assert emu.requests[-1]["app_token"] is None


def test_deleting_the_dataset_is_refused_and_recorded(emu):
    client = sodapy_client(emu)
    client.upsert(DATASET, [{"id": "a"}])
    with pytest.raises(HTTPError) as caught:
        client.delete(DATASET)
    assert caught.value.response.status_code == 403
    assert (emu.requests[-1]["method"], emu.requests[-1]["path"]) == ("DELETE", f"/api/views/{DATASET}.json")
    assert emu.rows(DATASET) == [{"id": "a"}]


def test_scripted_failure_hits_exactly_the_third_of_five_chunks(emu):
    client = sodapy_client(emu)
    emu.set_faults(fail_writes_after=2, fail_writes_count=1, fail_status=503)
    outcomes = []
    for chunk in range(5):
        try:
            client.upsert(DATASET, [{"id": f"c{chunk}"}])
            outcomes.append("ok")
        except HTTPError as exc:
            outcomes.append(exc.response.status_code)
    assert outcomes == ["ok", "ok", 503, "ok", "ok"]
    assert [r["id"] for r in emu.rows(DATASET)] == ["c0", "c1", "c3", "c4"]
    assert client.get(DATASET, select="count(*)") == [{"count": "4"}]  # reads do not count as writes


def test_error_rate_and_429_with_retry_after(emu):
    client = sodapy_client(emu)
    emu.set_faults(error_rate=1.0, error_status=502)
    with pytest.raises(HTTPError, match="502 Server Error"):
        client.get(DATASET)
    emu.set_faults(rate_429=1.0, retry_after=3)
    with pytest.raises(HTTPError) as caught:
        client.upsert(DATASET, [{"id": "a"}])
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "3"
    emu.set_faults()
    assert client.upsert(DATASET, [{"id": "a"}])["Rows Created"] == 1


def test_a_seeded_error_rate_repeats_the_same_sequence(emu):
    client = sodapy_client(emu)

    def statuses() -> list[int]:
        emu.set_faults(error_rate=0.5, seed=7)
        emu.reset_log()
        for _ in range(12):
            with contextlib.suppress(HTTPError):
                client.get(DATASET)
        return [e["status"] for e in emu.requests]

    first = statuses()
    assert first == statuses() and {200, 503} == set(first)


def test_latency_beyond_the_client_timeout_times_out(emu):
    emu.set_faults(latency_ms=400)
    with pytest.raises((ReadTimeout, ConnectionError)):
        sodapy_client(emu, timeout=0.05).get(DATASET)


def test_bodies_above_the_size_limit_are_413(emu):
    emu.set_faults(max_body_bytes=200)
    client = sodapy_client(emu)
    assert client.upsert(DATASET, [{"id": "a"}])["Rows Created"] == 1
    with pytest.raises(HTTPError, match="413"):
        client.upsert(DATASET, [{"id": f"row-{i}"} for i in range(50)])


def test_admin_routes(emu):
    created = requests.post(f"{emu.url}/_admin/datasets", json={"id": "efgh-5678", **SCHEMA})
    assert created.status_code == 201 and created.json()["id"] == "efgh-5678"
    sodapy_client(emu).upsert("efgh-5678", [{"id": "a", "n": 1}])
    assert requests.get(f"{emu.url}/_admin/datasets/efgh-5678/rows").json() == [{"id": "a", "n": "1"}]
    assert [e["body"] for e in requests.get(f"{emu.url}/_admin/requests").json()] == [[{"id": "a", "n": 1}]]
    assert requests.post(f"{emu.url}/_admin/faults", json={"error_rate": 1.0}).status_code == 200
    assert requests.get(f"{emu.url}/resource/efgh-5678.json").status_code == 503
    assert requests.post(f"{emu.url}/_admin/reset-log").status_code == 200
    assert emu.requests == []
    assert requests.post(f"{emu.url}/_admin/datasets", json={"id": "bad id", **SCHEMA}).status_code == 400


def test_cli_serves_datasets_from_schema_files(tmp_path):
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMA))
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", "socrata", "--port", "0", "--dataset", f"{DATASET}={schema_file}",
         "--username", "u", "--password", "p"], stdout=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["url"] == f"http://{ready['domain']}" and ready["datasets"] == [DATASET]
        client = sodapy_client(ready["domain"], username="u", password="p", app_token=None)
        assert client.upsert(DATASET, [{"id": "a"}])["Rows Created"] == 1
        assert client.get_metadata(DATASET)["columns"][0]["fieldName"] == "id"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0

