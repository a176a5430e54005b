"""The Knack client against the emulator: faults, auth, incremental fetches, views, limits, quota."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from blocks.knack import KnackCredentials
from emulators.knack import KnackEmulator, generate_app
from tasks.domain.errors import KnackError, KnackQuotaError
from tasks.knack.client import KnackClient
from tasks.knack.ratelimit import LocalRateLimiter

pytestmark = [pytest.mark.integration, pytest.mark.timing]

FAST = {"backoff_initial": 0.005, "backoff_max": 0.05, "min_rate_limit_wait": 0.02, "timeout": 5}


def client_for(emu: KnackEmulator, *, api_key: str | None = None, per_second: float = 1000,
               **kwargs: Any) -> KnackClient:
    creds = KnackCredentials(app_id=emu.app_id, api_key=api_key or emu.api_key, api_url=emu.api_url)
    return KnackClient(creds, "signals-app", limiter=LocalRateLimiter(per_second), **{**FAST, **kwargs})


def all_records(pages: Iterator[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [record for page in pages for record in page]


@pytest.fixture(scope="module")
def big_app() -> dict[str, Any]:
    return generate_app(records=5000, seed=11)


def test_complete_and_unique_despite_errors_429_bursts_and_drops(big_app: dict[str, Any]) -> None:
    with KnackEmulator(big_app, rate_limit_per_second=None) as emu:
        emu.set_faults(error_rate=0.2, burst_429=3, drop_rate=0.05, seed=5)
        client = client_for(emu, max_attempts=15, workers=4)
        records = all_records(client.iter_pages("object_1"))
        ids = [r["id"] for r in records]
        assert len(ids) == len(set(ids)) == 5000
        assert set(ids) == {r["id"] for r in big_app["records"]["object_1"]}
        counters = emu.counters()
        assert counters["by_status"]["429"] == 3 and counters["by_status"]["503"] > 0
        assert counters["by_status"]["dropped"] > 0
        assert client.stats.retries == counters["requests"] - counters["pages"] > 0
        assert (client.stats.pages, client.stats.records) == (5, 5000)  # exactly the 5 pages it needs


def test_hung_requests_time_out_and_are_retried(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_faults(hang_rate=0.3, hang_seconds=0.6, seed=3)
    client = client_for(knack_emulator, timeout=0.3, max_attempts=10)
    assert len(all_records(client.iter_pages("object_1", rows_per_page=25))) == 200
    assert client.stats.retries > 0 and knack_emulator.counters()["pages"] >= 9


def test_pages_are_fetched_concurrently_but_bounded(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_latency(base_ms=150)
    client = client_for(knack_emulator, workers=3)
    assert len(all_records(client.iter_pages("object_1", rows_per_page=20))) == 200
    assert knack_emulator.peak_in_flight() == 3


def test_unauthorized_fails_at_once_without_the_key(knack_emulator: KnackEmulator) -> None:
    secret = "0b7e41c2-5d9a-4f3e-a1b8-9c2d6e7f8a90"
    client = client_for(knack_emulator, api_key=secret)
    with pytest.raises(KnackError) as caught:
        all_records(client.iter_pages("object_1"))
    message = str(caught.value)
    assert "401" in message and "Unauthorized Object Access" in message
    assert "signals-app" in message and "object_1" in message and "/objects/object_1/records" in message
    assert secret not in message and secret not in repr(client) and caught.value.status == 401
    assert knack_emulator.counters()["requests"] == 1


def test_persistent_5xx_gives_up_after_max_attempts(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_faults(error_rate=1.0, error_status=502)
    client = client_for(knack_emulator, max_attempts=3)
    with pytest.raises(KnackError, match="after 3 attempts: HTTP 502"):
        client.get_metadata()
    assert knack_emulator.counters()["requests"] == 3 and client.stats.retries == 2


def test_incremental_fetch_returns_exactly_the_records_edited_since(knack_emulator: KnackEmulator) -> None:
    emu = knack_emulator
    ids = [r["id"] for r in emu.records("object_1")[:5]]
    edits = {  # 2025-03-09 is a DST day in Chicago: CST until 08:00Z, CDT after
        ids[0]: datetime(2025, 3, 8, 23, 0, tzinfo=UTC),   # the local day before: filtered by Knack
        ids[1]: datetime(2025, 3, 9, 9, 0, tzinfo=UTC),    # same local day, before the cursor: dropped by us
        ids[2]: datetime(2025, 3, 9, 12, 0, 30, tzinfo=UTC),  # stamped 12:00, equal to the cursor: kept
        ids[3]: datetime(2025, 3, 9, 20, 0, tzinfo=UTC),
        ids[4]: datetime(2025, 3, 10, 4, 59, tzinfo=UTC),  # 23:59 local on 03/09, next day in UTC
    }
    for rid, instant in edits.items():
        emu.set_now(instant)
        emu.update_record("object_1", rid, {"field_4": "retimed"})
    since = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
    client = client_for(emu)
    got = all_records(client.iter_records("object_1", since=since, modified_field="field_27",
                                          tz="Central Time (US & Canada)"))
    assert sorted(r["id"] for r in got) == sorted(ids[2:])
    assert emu.counters()["records_served"] == 4  # the day filter did the heavy lifting


def test_incremental_fetch_needs_field_and_zone(knack_emulator: KnackEmulator) -> None:
    with pytest.raises(KnackError, match="modified date field"):
        next(client_for(knack_emulator).iter_records("object_1", since=datetime.now(UTC)))


def test_views_need_scene_id(knack_emulator: KnackEmulator) -> None:
    client = client_for(knack_emulator)
    with pytest.raises(KnackError, match="view_1 needs its scene_id"):
        next(client.iter_pages("view_1"))
    assert knack_emulator.counters()["requests"] == 0
    records = all_records(client.iter_pages("view_1", scene_id="scene_1", rows_per_page=50))
    assert len(records) == 200 and "field_4" not in records[0] and "field_27" in records[0]


def test_overstated_totals_and_short_pages(knack_emulator: KnackEmulator) -> None:
    emu = knack_emulator
    emu.set_faults(inflate_total_records=50, short_page_every=3)
    client = client_for(emu)
    records = all_records(client.iter_pages("object_1", rows_per_page=20))
    counters = emu.counters()
    assert counters["requests"] == 13  # total_pages says 13; 11-13 are empty; nothing past them
    assert len(records) == len({r["id"] for r in records}) == counters["records_served"] == 197


def test_total_pages_ends_the_fetch(knack_emulator: KnackEmulator) -> None:
    client = client_for(knack_emulator)
    knack_emulator.create_record("object_1")  # 201 records: 11 pages of 20, the 11th with one record
    assert len(all_records(client.iter_pages("object_1", rows_per_page=20))) == 201
    assert knack_emulator.counters()["requests"] == 11
    knack_emulator.reset_counters()
    assert len(all_records(client.iter_pages("object_1", rows_per_page=67))) == 201
    assert knack_emulator.counters()["requests"] == 3  # 3 full pages and no empty page after them


def test_limiter_keeps_the_measured_rate_within_the_limit(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_limits(rate_limit_per_second=10)
    client = client_for(knack_emulator, per_second=10, workers=8)
    assert len(all_records(client.iter_pages("object_1", rows_per_page=8))) == 200
    times = sorted(knack_emulator.request_times())
    busiest = max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times))
    assert len(times) >= 25 and busiest <= 10  # 25 pages (more if a loaded machine retried)
    assert "429" not in knack_emulator.counters()["by_status"]


def test_quota_floor_refuses_a_fetch_that_would_cross_it(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_limits(rate_limit_per_second=None, daily_quota=20)
    client = client_for(knack_emulator, quota_floor=15)
    client.get_metadata()
    assert client.stats.quota_remaining == 19
    with pytest.raises(KnackQuotaError) as caught:
        all_records(client.iter_pages("object_1", rows_per_page=20))
    message = str(caught.value)
    assert "signals-app" in message and "18" in message and "floor is 15" in message
    assert knack_emulator.counters()["requests"] == 2


def test_exhausted_quota_is_not_retried(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_limits(rate_limit_per_second=None, daily_quota=1)
    client = client_for(knack_emulator, max_attempts=5)
    client.get_metadata()
    with pytest.raises(KnackQuotaError, match="quota is exhausted"):
        client.get_metadata()
    assert knack_emulator.counters()["requests"] == 2


def test_a_429_for_rate_widens_the_limiter_window_and_one_for_quota_does_not(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_faults(burst_429=2)  # Knack says "too fast" twice in a row although the limiter let both go
    client = client_for(knack_emulator, per_second=10, max_attempts=5)
    assert client.limiter.window == pytest.approx(1.05)
    assert len(all_records(client.iter_pages("object_1"))) == 200
    assert knack_emulator.counters()["by_status"]["429"] == 2
    assert client.limiter.window == pytest.approx(1.05 + 0.05)  # two 429s in one window: one step

    time.sleep(1.2)
    knack_emulator.set_faults(burst_429=1)  # a second episode, a window later: one more step
    client.get_metadata()
    assert client.limiter.window == pytest.approx(1.05 + 0.10)

    time.sleep(1.2)
    knack_emulator.set_faults()
    knack_emulator.set_limits(rate_limit_per_second=None, daily_quota=0)
    with pytest.raises(KnackQuotaError):
        client.get_metadata()
    assert client.limiter.window == pytest.approx(1.15)  # an empty quota is no reason to slow down


def test_metadata_is_the_whole_body(knack_emulator: KnackEmulator) -> None:
    body = client_for(knack_emulator).get_metadata()
    assert set(body) == {"application"} and body["application"]["id"] == knack_emulator.app_id


def test_local_limiter_sleeps_until_the_window_has_room() -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = LocalRateLimiter(10, margin=0.05, clock=lambda: now[0], sleep=sleep)
    grants = []
    for _ in range(35):
        limiter.acquire()
        grants.append(now[0])
    busiest = max(sum(1 for t in grants if start <= t < start + 1.0) for start in grants)
    assert busiest == 10 and sleeps == pytest.approx([1.05, 1.05, 1.05])


def test_local_limiter_after_429s_lets_fewer_requests_through_each_second_up_to_a_bound() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = LocalRateLimiter(10, margin=0.05, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):  # two episodes: the second and third 429 came together
        limiter.throttled()
        now[0] += 0.6
    grants = []
    for _ in range(21):
        limiter.acquire()
        grants.append(now[0])
    assert grants[10] - grants[0] == pytest.approx(1.15) and grants[20] - grants[0] == pytest.approx(2.30)
    for _ in range(20):
        now[0] += 2.0
        limiter.throttled()
    assert limiter.window == pytest.approx(1.05 + 0.3)


def test_make_rate_limiter_shares_one_local_limiter_per_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.knack import ratelimit

    monkeypatch.setattr(ratelimit, "prefect_api_configured", lambda: False)
    first = ratelimit.make_rate_limiter("app-a", 10)
    assert isinstance(first, LocalRateLimiter) and first is ratelimit.make_rate_limiter("app-a", 10)
    assert ratelimit.make_rate_limiter("app-b", 10) is not first
    monkeypatch.setattr(ratelimit, "prefect_api_configured", lambda: True)
    shared = ratelimit.make_rate_limiter("app-a", 10)
    assert isinstance(shared, ratelimit.PrefectRateLimiter) and shared.name == "knack-app-a"


def test_prefect_limiter_takes_a_global_limit_with_slot_decay_in_batches(prefect_harness: None) -> None:
    import threading
    import time

    from prefect.client.orchestration import get_client

    from tasks.knack.ratelimit import PrefectRateLimiter, make_rate_limiter

    limiter = make_rate_limiter("limiter-test", 10)
    assert isinstance(limiter, PrefectRateLimiter)
    grants: list[float] = []

    def worker() -> None:
        for _ in range(4):
            limiter.acquire()
            grants.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name("knack-limiter-test")
    assert (limit.limit, limit.slot_decay_per_second) == (10, pytest.approx(10 / 1.04))  # batches of ten
    assert limiter.stats.batches == 2 and limiter.stats.grants == 16
    grants.sort()
    assert len(grants) == 16
    assert max(sum(1 for t in grants if start <= t < start + 1.0) for start in grants) <= 10


def test_stopping_early_abandons_the_remaining_pages(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_latency(base_ms=50)
    client = client_for(knack_emulator, workers=2)
    pages = client.iter_pages("object_1", rows_per_page=10)
    next(pages)
    next(pages)
    pages.close()
    assert knack_emulator.counters()["requests"] <= 4  # page 1, then at most `workers` more in flight
