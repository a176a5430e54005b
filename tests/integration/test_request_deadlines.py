"""Whole-request deadlines against the emulators and S3 (moto behind the fault proxy): a reply trickled
one byte at a time, which no read timeout ever trips, stops at its deadline with an error naming what
timed out; the offload stops at its run's time limit however slowly Knack answers."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from blocks.agol import ArcGISCredentials
from blocks.knack import KnackCredentials
from blocks.socrata import SocrataCredentials
from emulators.knack import KnackEmulator
from tasks.agol.client import open_target, upsert_features
from tasks.clock import utc_now
from tasks.deadline import time_limit
from tasks.domain.config import parse_config
from tasks.domain.deadlines import RequestDeadlines
from tasks.domain.errors import AgolError, KnackError, SocrataError, StoreError
from tasks.knack.client import KnackClient
from tasks.knack.offload import FETCH_WIND_DOWN_SECONDS, OffloadRequest, offload_container
from tasks.knack.ratelimit import LocalRateLimiter
from tasks.socrata.client import list_row_ids, upsert_rows
from tasks.store.backends import LocalStorage, S3Storage
from tasks.store.records import RecordStore
from tasks.wire import guard_s3_client, guard_session
from tests.faults.s3proxy import S3FaultProxy
from tests.fixtures.arcgis import AGOL_PASSWORD, AGOL_USERNAME
from tests.fixtures.socrata import SOCRATA_APP_TOKEN, SOCRATA_PASSWORD, SOCRATA_USERNAME

pytestmark = [pytest.mark.integration, pytest.mark.timing]

MARGIN = 1.5  # seconds of scheduling noise allowed past a deadline on a busy machine
TRICKLE_MS = 50  # a byte every 50 ms: far inside any read timeout, far too slow for any reply
SHORT = RequestDeadlines(read=1.5, write=1.0)


# --- Knack ----------------------------------------------------------------------------------------------

def knack_client(emu: KnackEmulator, **kwargs: Any) -> KnackClient:
    creds = KnackCredentials(app_id=emu.app_id, api_key=emu.api_key, api_url=emu.api_url)
    return KnackClient(creds, "signals-app", limiter=LocalRateLimiter(1000), timeout=30, backoff_initial=0.01,
                       backoff_max=0.05, **kwargs)


def test_a_trickling_knack_page_stops_at_its_deadline(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_faults(trickle_ms=TRICKLE_MS)
    client = knack_client(knack_emulator, max_attempts=2, deadlines=SHORT)
    start = time.monotonic()
    with pytest.raises(KnackError) as caught:
        list(client.iter_pages("object_1", rows_per_page=25))
    elapsed = time.monotonic() - start
    assert 2 * 1.5 <= elapsed < 2 * 1.5 + MARGIN, elapsed  # two attempts, each cut at 1.5 s
    message = str(caught.value)
    assert "signals-app" in message and "object_1" in message, message
    assert "Knack app signals-app: GET" in message and "deadline of 1.5 s" in message, message
    assert knack_emulator.api_key not in message
    assert knack_emulator.counters()["requests"] == 2


def test_an_offload_stops_at_its_time_limit_while_knack_trickles(knack_emulator: KnackEmulator, tmp_path) -> None:
    """Page 1 comes at once, the rest trickle; the run's time limit (raised in the consumer, as Prefect's
    flow timeout does) ends the offload without waiting for the page on the wire (its deadline is 30 s)."""
    config = parse_config({"apps": {"demo": {"containers": {"object_1": {"modified_date_field_id": "field_27"}}}}},
                          "test.yaml")
    client = knack_client(knack_emulator, deadlines=RequestDeadlines(read=30, write=30))
    metadata = client.get_metadata()
    knack_emulator.set_faults(trickle_ms=TRICKLE_MS, trickle_after=1)  # page 1 whole, then a trickle

    def pages(since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        return client.iter_records("object_1", since=since, rows_per_page=25)

    def time_is_up(signum: int, frame: Any) -> None:
        raise TimeoutError("the flow's time limit")

    limit = 1.0
    previous = signal.signal(signal.SIGALRM, time_is_up)
    start = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, limit)
        with RecordStore(LocalStorage(tmp_path / "store"), "dev", "demo", workers=2) as store, \
                pytest.raises(TimeoutError, match="time limit"):
            offload_container(store, pages, config.container("demo", "object_1"), metadata,
                              OffloadRequest(since=None, full=False, started=utc_now()),
                              log=logging.getLogger("test"), knack=client)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.monotonic() - start
    assert elapsed < limit + FETCH_WIND_DOWN_SECONDS + MARGIN, elapsed
    assert store.read_cursor("object_1", "knack") is None  # the cursor did not move


# --- Socrata --------------------------------------------------------------------------------------------

DATASET = "sig1-2024"
SCHEMA = {"name": "Traffic signals", "row_identifier": "id", "columns": [
    {"fieldName": "id", "name": "id", "dataTypeName": "text"},
    {"fieldName": "location_name", "name": "Location Name", "dataTypeName": "text"}]}


@pytest.fixture
def sodapy(socrata_emulator: Any) -> Iterator[Any]:
    socrata_emulator.create_dataset(DATASET, SCHEMA)
    creds = SocrataCredentials(domain=socrata_emulator.url, username=SOCRATA_USERNAME, password=SOCRATA_PASSWORD,
                               app_token=SOCRATA_APP_TOKEN, timeout=30)
    client = creds.get_client()
    client.session.trust_env = False
    guard_session(client.session, SHORT, f"Socrata dataset {DATASET}")
    yield client
    client.close()


def test_a_trickling_socrata_reply_stops_at_its_deadline(socrata_emulator: Any, sodapy: Any) -> None:
    socrata_emulator.set_faults(trickle_ms=TRICKLE_MS)
    rows = [{"id": f"rec{i}", "location_name": f"Lamar / {i}th"} for i in range(5)]
    start = time.monotonic()
    with pytest.raises(SocrataError) as caught:
        upsert_rows(sodapy, DATASET, rows, attempts=1)  # a write: 1 s
    assert time.monotonic() - start < 1.0 + MARGIN
    message = str(caught.value)
    assert DATASET in message and "upsert chunk 1" in message and "deadline of 1 s" in message, message
    assert SOCRATA_PASSWORD not in message and SOCRATA_APP_TOKEN not in message

    start = time.monotonic()
    with pytest.raises(SocrataError, match=r"listing row ids .* deadline of 1.5 s"):
        list_row_ids(sodapy, DATASET, attempts=1)  # a read: 1.5 s
    assert time.monotonic() - start < 1.5 + MARGIN


def test_a_publish_s_time_limit_ends_socrata_retries_at_the_limit(socrata_emulator: Any, sodapy: Any) -> None:
    socrata_emulator.set_faults(trickle_ms=TRICKLE_MS)
    start = time.monotonic()
    with time_limit(2.5, f"demo/object_1 → Socrata {DATASET}"), pytest.raises(SocrataError):
        upsert_rows(sodapy, DATASET, [{"id": "rec1", "location_name": "x"}], attempts=5, backoff=0.01)
    assert time.monotonic() - start < 2.5 + MARGIN  # two 1 s attempts, a third cut to the time left, no more
    posts = [e for e in socrata_emulator.requests if e["method"] == "POST"]
    assert len(posts) == 3


# --- ArcGIS ---------------------------------------------------------------------------------------------

def test_a_trickling_arcgis_reply_stops_at_its_deadline(arcgis_emulator: Any, make_agol_item: Any) -> None:
    item = make_agol_item()
    creds = ArcGISCredentials(url=arcgis_emulator.portal_url, username=AGOL_USERNAME, password=AGOL_PASSWORD,
                              ca_bundle=arcgis_emulator.ca_bundle)  # its own sign-in: the shared one keeps its deadlines
    target = open_target(creds, item.item_id, 0, "layer", attempts=1, backoff=0, deadlines=SHORT)
    arcgis_emulator.set_faults(trickle_ms=TRICKLE_MS)
    features = [{"attributes": {"id": f"rec{i}", "name": f"signal {i}"}, "geometry": {"x": -97.7, "y": 30.2}}
                for i in range(3)]
    start = time.monotonic()
    with pytest.raises(AgolError) as caught:
        upsert_features(target, features)
    assert time.monotonic() - start < 1.5 + MARGIN
    message = str(caught.value)
    assert "signals" in message and f"ArcGIS item {item.item_id}" in message and "deadline of" in message, message
    assert not any(token in message for token in arcgis_emulator.issued_tokens())
    assert item.features() == []  # nothing landed


# --- S3 -------------------------------------------------------------------------------------------------

@pytest.fixture
def proxied(moto_server: Any, s3_bucket: tuple[Any, str]) -> Iterator[tuple[S3FaultProxy, Any, str]]:
    """(proxy, a boto3 client through it with one attempt per call and the SHORT deadlines, bucket)."""
    import boto3
    from botocore.config import Config

    proxy = S3FaultProxy(moto_server.endpoint).start()
    client = boto3.client("s3", endpoint_url=proxy.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing",
                          config=Config(retries={"max_attempts": 0, "mode": "standard"}, read_timeout=30))
    yield proxy, guard_s3_client(client, SHORT), s3_bucket[1]
    proxy.stop()


def test_a_trickling_s3_get_stops_at_its_deadline(proxied: tuple[S3FaultProxy, Any, str]) -> None:
    proxy, client, bucket = proxied
    storage = S3Storage(client, bucket)
    key = "dev/demo/object_1/rec1.json"
    storage.put(key, b"{}" * 5000)
    proxy.set_faults(trickle_ms=1, trickle_method="GET")  # headers in ~0.3 s, the 10 kB body in ~10 s
    start = time.monotonic()
    with pytest.raises(StoreError) as caught:
        storage.get(key)  # the body is read after the call returned: still under the deadline
    assert 1.5 <= time.monotonic() - start < 1.5 + MARGIN
    message = str(caught.value)
    assert f"GET s3://{bucket}" in message and key in message and "deadline of 1.5 s" in message, message
    assert "testing" not in message
    assert proxy.counts["trickled"] == 1


def test_a_put_whose_reply_trickles_stops_at_the_write_deadline(proxied: tuple[S3FaultProxy, Any, str]) -> None:
    proxy, client, bucket = proxied
    storage = S3Storage(client, bucket)
    proxy.set_faults(trickle_ms=TRICKLE_MS, trickle_method="PUT")  # a PUT's reply is all headers
    start = time.monotonic()
    with pytest.raises(StoreError) as caught:
        storage.put("dev/demo/object_1/rec2.json", b"{}")
    assert 1.0 <= time.monotonic() - start < 1.0 + MARGIN
    assert "PUT s3://" in str(caught.value) and "deadline of 1 s" in str(caught.value), str(caught.value)


def test_s3_retries_a_cut_attempt_and_a_fast_one_lands(proxied: tuple[S3FaultProxy, Any, str]) -> None:
    proxy, _, bucket = proxied
    import boto3
    from botocore.config import Config

    retrying = guard_s3_client(boto3.client(
        "s3", endpoint_url=proxy.endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(retries={"max_attempts": 2, "mode": "standard"})), SHORT)
    storage = S3Storage(retrying, bucket)
    proxy.set_faults(trickle_ms=TRICKLE_MS, trickle_method="PUT", trickle_count=1)
    start = time.monotonic()
    storage.put("dev/demo/object_1/rec3.json", b'{"id": "rec3"}')
    assert 1.0 <= time.monotonic() - start < 1.0 + MARGIN  # one attempt cut at 1 s, the retry at once
    assert storage.get("dev/demo/object_1/rec3.json") == b'{"id": "rec3"}'
    assert proxy.counts["trickled"] == 1 and proxy.counts["PUT"] == 2
