"""The Knack emulator over HTTP: paging, auth, views, CRUD, limits, faults and admin controls."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from emulators.knack import KnackEmulator

pytestmark = [pytest.mark.integration, pytest.mark.timing]


def auth(emu: KnackEmulator) -> dict[str, str]:
    return {"X-Knack-Application-Id": emu.app_id, "X-Knack-REST-API-KEY": emu.api_key}


def get(emu: KnackEmulator, path: str, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    return requests.get(emu.api_url + path, headers=auth(emu) if headers is None else headers, params=params,
                        timeout=10)


def test_metadata_needs_no_auth_and_has_live_counts(knack_emulator: KnackEmulator) -> None:
    response = requests.get(f"{knack_emulator.api_url}/applications/{knack_emulator.app_id}", timeout=10)
    assert response.status_code == 200
    app = response.json()["application"]
    assert app["id"] == knack_emulator.app_id
    assert app["counts"]["object_1"] == 200 and app["counts"]["total_entries"] == 200 + 10 + 20
    assert requests.get(f"{knack_emulator.api_url}/applications/{'0' * 24}", timeout=10).status_code == 404


def test_pagination_defaults_edges_and_clamp(knack_emulator: KnackEmulator) -> None:
    first = get(knack_emulator, "/objects/object_1/records").json()
    assert (first["total_pages"], first["current_page"], first["total_records"]) == (8, 1, 200)
    assert [r["field_1"] for r in first["records"]] == list(range(1, 26))
    last = get(knack_emulator, "/objects/object_1/records", rows_per_page=30, page=7).json()
    assert last["total_pages"] == 7 and len(last["records"]) == 20
    past = get(knack_emulator, "/objects/object_1/records", rows_per_page=30, page=9).json()
    assert (past["current_page"], past["total_records"], past["records"]) == (9, 200, [])
    clamped = get(knack_emulator, "/objects/object_1/records", rows_per_page=5000).json()
    assert clamped["total_pages"] == 1 and len(clamped["records"]) == 200
    tiny = get(knack_emulator, "/objects/object_1/records", rows_per_page=0).json()
    assert tiny["total_pages"] == 200 and len(tiny["records"]) == 1
    assert get(knack_emulator, "/objects/object_1/records", page="two").status_code == 400
    # knackpy asks for the list with a trailing slash
    assert get(knack_emulator, "/objects/object_1/records/", rows_per_page=2).json()["total_records"] == 200


def test_all_pages_together_hold_every_record_once(knack_emulator: KnackEmulator, knack_app: dict) -> None:
    ids = []
    for page in range(1, 5):
        ids += [r["id"] for r in get(knack_emulator, "/objects/object_1/records", rows_per_page=60,
                                     page=page).json()["records"]]
    assert sorted(ids) == sorted(r["id"] for r in knack_app["records"]["object_1"])
    assert get(knack_emulator, "/objects/object_1/records", rows_per_page=60, page=1).json()["records"][0] == \
        knack_app["records"]["object_1"][0]


def test_sorting(knack_emulator: KnackEmulator) -> None:
    desc = get(knack_emulator, "/objects/object_1/records", sort_field="field_1", sort_order="desc").json()
    assert desc["records"][0]["field_1"] == 200
    by_name = get(knack_emulator, "/objects/object_1/records", rows_per_page=1000, sort_field="field_2").json()
    names = [r["field_2"].casefold() for r in by_name["records"]]
    assert names == sorted(names)
    by_date = get(knack_emulator, "/objects/object_1/records", rows_per_page=1000, sort_field="field_27",
                  sort_order="desc").json()["records"]
    stamps = [r["field_27_raw"]["unix_timestamp"] for r in by_date]
    assert stamps == sorted(stamps, reverse=True)
    assert get(knack_emulator, "/objects/object_1/records", sort_field="field_999").status_code == 400


@pytest.mark.parametrize("headers", [
    {},
    {"X-Knack-Application-Id": "wrong"},
    {"X-Knack-REST-API-KEY": "knack"},
    {"X-Knack-REST-API-KEY": "not-the-key"},
])
def test_object_routes_need_app_id_and_key(knack_emulator: KnackEmulator, headers: dict[str, str]) -> None:
    full = {"X-Knack-Application-Id": knack_emulator.app_id, **headers}
    if "X-Knack-Application-Id" in headers:
        full["X-Knack-REST-API-KEY"] = knack_emulator.api_key
    response = get(knack_emulator, "/objects/object_1/records", headers=full)
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Unauthorized Object Access"}]}
    assert knack_emulator.api_key not in response.text


def test_header_names_are_case_insensitive(knack_emulator: KnackEmulator) -> None:
    headers = {"x-knack-application-id": knack_emulator.app_id, "X-Knack-REST-API-Key": knack_emulator.api_key}
    assert get(knack_emulator, "/objects/object_1/records", headers=headers).status_code == 200


def test_views_return_only_their_fields_with_public_access(knack_emulator: KnackEmulator) -> None:
    for key in ("knack", None):
        headers = {"X-Knack-Application-Id": knack_emulator.app_id}
        if key:
            headers["X-Knack-REST-API-KEY"] = key
        body = get(knack_emulator, "/pages/scene_1/views/view_1/records", headers=headers, rows_per_page=5).json()
        record = body["records"][0]
        plain = [k for k in record if not k.endswith("_raw")]
        assert plain == ["id", "field_1", "field_3", "field_2", "field_12", "field_13", "field_14", "field_11",
                         "field_19", "field_21", "field_22", "field_27"]
        assert body["total_records"] == 200
    wrong = {"X-Knack-Application-Id": knack_emulator.app_id, "X-Knack-REST-API-KEY": "nope"}
    assert get(knack_emulator, "/pages/scene_1/views/view_1/records", headers=wrong).status_code == 401
    assert get(knack_emulator, "/pages/scene_1/views/view_9/records").status_code == 404
    assert get(knack_emulator, "/pages/scene_2/views/view_1/records").status_code == 404


def test_view_with_connected_field_gives_one_value_per_child(knack_emulator: KnackEmulator, knack_app: dict) -> None:
    body = get(knack_emulator, "/pages/scene_2/views/view_2/records", rows_per_page=100).json()
    names = [r["field_33"] for r in body["records"]]
    assert names == sorted(names, key=str.casefold)  # the view's own sort
    corridor = body["records"][0]
    children = [s for s in knack_app["records"]["object_1"]
                if any(c["id"] == corridor["id"] for c in s["field_21_raw"]) and "field_19_raw" in s]
    assert corridor["field_19_raw"] == [s["field_19_raw"] for s in children]
    assert corridor["field_19"].count("<span") == len(children)


def test_details_and_form_views_resolve_their_fields(knack_emulator: KnackEmulator) -> None:
    details = get(knack_emulator, "/pages/scene_3/views/view_3/records", rows_per_page=1).json()["records"][0]
    assert [k for k in details if not k.endswith("_raw")] == ["id", "field_2", "field_19"]
    form = get(knack_emulator, "/pages/scene_3/views/view_4/records", rows_per_page=1).json()["records"][0]
    assert [k for k in form if not k.endswith("_raw")] == ["id", "field_12", "field_4"]


def test_crud_over_http(knack_emulator: KnackEmulator) -> None:
    emu = knack_emulator
    emu.set_now(datetime(2024, 7, 4, 17, 30, tzinfo=UTC))
    url = f"{emu.api_url}/objects/object_1/records"
    created = requests.post(url, headers=auth(emu), json={"field_2": "Guadalupe & 24th", "field_11": "yes",
                                                          "field_6": 4, "field_1": 999}, timeout=10).json()
    assert created["field_1"] == 201 and created["field_11_raw"] is True
    assert created["field_10"] == "SIG-201 Guadalupe & 24th"
    assert int(created["id"][:8], 16) == int(datetime(2024, 7, 4, 17, 30, tzinfo=UTC).timestamp())
    assert created["field_27"] == "07/04/2024 12:30pm" and created["field_26"] == "07/04/2024 12:30"
    assert created["field_21"] == "" and created["field_21_raw"] == []
    one = requests.get(f"{url}/{created['id']}", headers=auth(emu), timeout=10).json()
    assert one == created
    emu.set_now(datetime(2024, 7, 5, 5, 0, tzinfo=UTC))
    updated = requests.put(f"{url}/{created['id']}", headers=auth(emu),
                           json={"id": created["id"], "field_6": 0}, timeout=10).json()
    assert updated["field_2"] == "Guadalupe & 24th" and updated["field_6"] == 0
    assert updated["field_27"] == "07/05/2024 12:00am" and updated["field_27_raw"]["time"] == 720
    assert updated["field_26"] == created["field_26"]
    deleted = requests.delete(f"{url}/{created['id']}", headers=auth(emu), timeout=10)
    assert deleted.json() == {"delete": True}
    assert requests.get(f"{url}/{created['id']}", headers=auth(emu), timeout=10).status_code == 404
    bad = requests.post(url, headers=auth(emu), json={"field_999": 1}, timeout=10)
    assert bad.status_code == 400 and "field_999" in bad.json()["errors"][0]["message"]


def test_python_api_edits_stamp_modified_date(knack_emulator: KnackEmulator) -> None:
    emu = knack_emulator
    emu.set_now(datetime(2024, 3, 11, 4, 59, tzinfo=UTC))  # 23:59 on 03/10 in Chicago
    first = emu.records("object_1")[0]
    updated = emu.update_record("object_1", first["id"], {"field_2": "new value"})
    assert updated["field_2"] == "new value" and updated["field_27"] == "03/10/2024 11:59pm"
    assert emu.records("object_1")[0] == updated
    ids = emu.edit_random("object_1", 3, seed=1)
    assert len(set(ids)) == 3
    changed = {r["id"]: r for r in emu.records("object_1")}
    assert all(changed[i]["field_4"].startswith("edited ") and changed[i]["field_27"] == "03/10/2024 11:59pm"
               for i in ids)
    assert emu.edit_random("object_1", 3, seed=1) == ids
    fresh = emu.create_record("object_2")
    assert fresh["field_32"] == 11 and fresh["field_33"]
    emu.delete_record("object_2", fresh["id"])
    assert len(emu.records("object_2")) == 10


def test_rate_limit_answers_429_with_headers(knack_emulator: KnackEmulator) -> None:
    emu = knack_emulator
    emu.set_limits(rate_limit_per_second=3)
    statuses, last = [], None
    for _ in range(5):
        last = get(emu, "/objects/object_1/records", rows_per_page=1)
        statuses.append(last.status_code)
    assert statuses == [200, 200, 200, 429, 429]
    assert last is not None and last.text == "Rate limit exceeded"
    assert last.headers["X-RateLimit-Limit"] == "3" and last.headers["X-RateLimit-Remaining"] == "0"
    assert int(last.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert emu.counters()["by_status"] == {"200": 3, "429": 2}


def test_daily_quota_exhaustion_and_plan_headers(knack_emulator: KnackEmulator) -> None:
    emu = knack_emulator
    emu.set_limits(rate_limit_per_second=None, daily_quota=3)
    responses = [get(emu, "/objects/object_1/records", rows_per_page=1) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["X-PlanLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["X-PlanLimit-Limit"] == "3" for r in responses)
    assert emu.counters()["quota_remaining"] == 0
    emu.set_now(datetime(2099, 1, 2, tzinfo=UTC))  # a new UTC day restores the quota
    assert get(emu, "/objects/object_1/records", rows_per_page=1).status_code == 200


def test_unlimited_quota_still_sends_plan_headers(knack_emulator: KnackEmulator) -> None:
    response = get(knack_emulator, "/objects/object_1/records", rows_per_page=1)
    assert response.headers["X-PlanLimit-Limit"] == "99999999"
    assert knack_emulator.counters()["quota_remaining"] is None


def test_fault_errors_and_bursts(knack_emulator: KnackEmulator) -> None:
    emu = knack_emulator
    emu.set_faults(error_rate=1.0, error_status=502)
    assert get(emu, "/objects/object_1/records").status_code == 502
    emu.set_faults(burst_429=2)
    statuses = [get(emu, "/objects/object_1/records", rows_per_page=1).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    emu.set_faults(error_rate=0.5, seed=4)
    mixed = [get(emu, "/objects/object_1/records", rows_per_page=1).status_code for _ in range(40)]
    assert 5 < mixed.count(503) < 35 and mixed.count(200) == 40 - mixed.count(503)


def test_fault_drop_closes_the_connection(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        get(knack_emulator, "/objects/object_1/records")
    assert knack_emulator.counters()["by_status"] == {"dropped": 1}


def test_fault_hang_sleeps_then_answers(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_faults(hang_rate=1.0, hang_seconds=0.5)
    with pytest.raises(requests.Timeout):
        requests.get(f"{knack_emulator.api_url}/objects/object_1/records", headers=auth(knack_emulator),
                     timeout=0.1)
    knack_emulator.set_faults(hang_rate=1.0, hang_seconds=0.05)
    assert get(knack_emulator, "/objects/object_1/records").status_code == 200


def test_fault_inflated_totals_and_short_pages(knack_emulator: KnackEmulator) -> None:
    emu = knack_emulator
    emu.set_faults(inflate_total_records=46, short_page_every=2)
    one = get(emu, "/objects/object_1/records", rows_per_page=100, page=1).json()
    two = get(emu, "/objects/object_1/records", rows_per_page=100, page=2).json()
    three = get(emu, "/objects/object_1/records", rows_per_page=100, page=3).json()
    assert (one["total_records"], one["total_pages"]) == (246, 3)
    assert len(one["records"]) == 100 and len(two["records"]) == 95 and three["records"] == []


def test_latency_applies_without_serializing_pages(knack_emulator: KnackEmulator) -> None:
    knack_emulator.set_latency(base_ms=1500)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(get(knack_emulator, "/objects/object_1/records")
                                                              .status_code)) for _ in range(3)]
    for thread in threads:
        thread.start()
    # while the pages sleep, the state is not locked: metadata answers before any page does
    meta = requests.get(f"{knack_emulator.api_url}/applications/{knack_emulator.app_id}", timeout=10)
    pages_still_sleeping = all(thread.is_alive() for thread in threads)
    for thread in threads:
        thread.join()
    assert meta.status_code == 200 and pages_still_sleeping
    assert results == [200] * 3 and knack_emulator.peak_in_flight() >= 3


def test_admin_routes_drive_a_running_emulator(knack_emulator: KnackEmulator) -> None:
    emu, admin = knack_emulator, knack_emulator.url + "/_admin"
    info = requests.get(f"{admin}/info", timeout=10).json()
    assert info["api_url"] == emu.api_url and info["app_id"] == emu.app_id and "object_1" in info["objects"]
    assert requests.post(f"{admin}/clock", json={"now": "2024-03-10T07:30:00Z"}, timeout=10).ok
    created = requests.post(f"{admin}/objects/object_1/records", json={"field_2": "Admin St"}, timeout=10).json()
    assert created["field_27"] == "03/10/2024 1:30am"
    updated = requests.put(f"{admin}/objects/object_1/records/{created['id']}", json={"field_2": "X"}, timeout=10)
    assert updated.json()["field_2"] == "X"
    ids = requests.post(f"{admin}/objects/object_1/edit-random", json={"count": 2}, timeout=10).json()["ids"]
    assert len(ids) == 2
    assert requests.delete(f"{admin}/objects/object_1/records/{created['id']}", timeout=10).json() == {"delete": True}
    assert requests.post(f"{admin}/faults", json={"burst_429": 1}, timeout=10).ok
    assert get(emu, "/objects/object_1/records").status_code == 429
    assert requests.post(f"{admin}/latency", json={"base_ms": 0}, timeout=10).ok
    assert requests.post(f"{admin}/limits", json={"rate_limit_per_second": 1}, timeout=10).ok
    assert [get(emu, "/objects/object_1/records").status_code for _ in range(2)] == [200, 429]
    counters = requests.get(f"{admin}/counters", timeout=10).json()
    assert counters["requests"] == 3 and counters["by_status"] == {"429": 2, "200": 1}
    assert requests.post(f"{admin}/counters/reset", timeout=10).ok
    assert emu.counters()["requests"] == 0
    assert requests.post(f"{admin}/clock", json={"now": None}, timeout=10).ok
    assert abs(emu.now().timestamp() - time.time()) < 5
    assert requests.post(f"{admin}/faults", json={"nonsense": 1}, timeout=10).status_code == 400


def test_counters_track_pages_and_records(knack_emulator: KnackEmulator) -> None:
    for page in (1, 2, 3):
        get(knack_emulator, "/objects/object_1/records", rows_per_page=90, page=page)
    requests.get(f"{knack_emulator.api_url}/applications/{knack_emulator.app_id}", timeout=10)
    counters = knack_emulator.counters()
    assert counters == {"requests": 4, "by_status": {"200": 4}, "pages": 3, "records_served": 200,
                        "metadata": 1, "quota_remaining": None}
    assert len(knack_emulator.request_times()) == 4
    assert math.isclose(knack_emulator.request_times()[0], time.monotonic(), abs_tol=30)


def test_date_header_and_stamps_follow_a_skewed_clock(knack_emulator: KnackEmulator) -> None:
    from email.utils import parsedate_to_datetime

    emu = knack_emulator
    emu.set_now(None)
    response = requests.post(f"{emu.url}/_admin/clock", json={"offset_seconds": -180}, timeout=10)
    assert response.status_code == 200
    try:
        before = datetime.now(UTC)
        page = get(emu, "/objects/object_1/records", rows_per_page=1)
        served = parsedate_to_datetime(page.headers["Date"])
        assert page.headers["Date"].count(",") == 1  # one Date header (two would be folded into one value)
        # three minutes behind this machine's clock, to the second the header carries
        assert 175 <= (before - served).total_seconds() <= 185
        created = requests.post(f"{emu.api_url}/objects/object_1/records", headers=auth(emu),
                                json={"field_2": "Skewed & 1st"}, timeout=10).json()
        assert abs(int(created["id"][:8], 16) - served.timestamp()) <= 5  # its id carries Knack's clock
    finally:
        emu.set_clock_offset(0)
    assert abs((parsedate_to_datetime(get(emu, "/objects/object_1/records", rows_per_page=1).headers["Date"])
                - datetime.now(UTC)).total_seconds()) <= 2


def test_a_delete_after_page_one_shifts_the_pages_still_to_come(knack_emulator: KnackEmulator) -> None:
    emu = knack_emulator
    order = [r["id"] for r in get(emu, "/objects/object_1/records", rows_per_page=1000).json()["records"]]
    calls: list[tuple[str, int]] = []

    def hook(container: str, page: int) -> None:
        calls.append((container, page))
        if page == 1:
            emu.delete_record("object_1", order[10])

    emu.after_page(hook)
    try:
        first = get(emu, "/objects/object_1/records", rows_per_page=100, page=1).json()
        second = get(emu, "/objects/object_1/records", rows_per_page=100, page=2).json()
    finally:
        emu.after_page(None)
    assert calls == [("object_1", 1), ("object_1", 2)]
    assert [r["id"] for r in first["records"]] == order[:100] and first["total_records"] == len(order)
    # the delete moved order[100] onto page 1, which was already read: a listing skips it
    assert [r["id"] for r in second["records"]] == order[101:200] and second["total_records"] == len(order) - 1
