"""The Knack quota plan's arithmetic, on a config of several apps and schedules, checked by hand."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.domain.config import parse_config
from tasks.domain.errors import ConfigError
from tasks.domain.quota import (
    confirm_cost,
    cron_schedule,
    project,
    refusal,
    render,
    schedules_from_deployments,
)

pytestmark = pytest.mark.unit


def container(**extra: Any) -> dict[str, Any]:
    return {"modified_date_field_id": "field_9", **extra}


CONFIG = {
    "knack_rows_per_page": 1000,
    "apps": {
        "signals": {"daily_quota": 5000, "quota_floor": 500, "containers": {
            "object_1": container(), "view_2": container(scene_id="scene_4"), "object_3": container()}},
        "work-orders": {"daily_quota": 2250, "quota_floor": 100, "quota_account": "city",
                        "containers": {"object_1": container()}},
        "purchasing": {"daily_quota": 2250, "quota_floor": 200, "quota_account": "city",
                       "containers": {"object_2": container()}},
    },
}


def sync(app: str, key: str, *schedules: dict[str, Any], env: str = "prod") -> dict[str, Any]:
    return {"name": f"{app}-{key}-{env}", "entrypoint": "flows/sync.py:sync",
            "parameters": {"app": app, "container": key, "env": env}, "schedules": list(schedules)}


DEPLOYMENTS = {"deployments": [
    sync("signals", "object_1", {"cron": "7 * * * *"}, {"cron": "37 2 * * *", "parameters": {"full": True}}),
    sync("signals", "view_2", {"cron": "*/15 * * * *"}, {"cron": "0 3 * * 0", "parameters": {"full": True}}),
    sync("signals", "object_3", {"cron": "0 6-18/2 * * 1-5"}),
    sync("work-orders", "object_1", {"cron": "*/5 * * * *"}, {"cron": "@hourly", "parameters": {"full": True}}),
    sync("purchasing", "object_2", {"interval": 600}, {"cron": "0 0 * * *", "active": False}),
    sync("signals", "object_1", {"cron": "* * * * *"}, env="dev"),   # another env: not counted
    {"name": "demo-prod", "entrypoint": "flows/sync_app.py:sync_app", "parameters": {"env": "prod"},
     "schedules": [{"cron": "* * * * *"}]},                         # not a sync deployment
]}

RECORDS = {("signals", "object_1"): 50_000, ("signals", "view_2"): 2_500, ("signals", "object_3"): None,
           ("work-orders", "object_1"): 12_345, ("purchasing", "object_2"): 0}


def plans(starting: dict | None = None) -> dict[str, Any]:
    config = parse_config(CONFIG, "cfg.yaml")
    found = project(config, schedules_from_deployments(DEPLOYMENTS, "prod"), RECORDS, starting=starting)
    return {p.account: p for p in found}


def test_requests_a_day_per_container_and_account() -> None:
    by_account = plans()
    signals, city = by_account["signals"], by_account["city"]
    cost = {(c.app, c.container): c.requests for p in by_account.values() for c in p.containers}
    # signals/object_1: hourly incremental, 24 × 1, + one nightly full of ceil(50,000 / 1,000) = 50 pages and
    # its closing check, + confirming its delete candidates: at most 50 look-ups (delete_lookups_per_run) and
    # one more, 51
    assert cost[("signals", "object_1")] == 24 + 51 + 51
    # signals/view_2: every 15 minutes, 4 × 24 = 96, + a weekly full counted on its day: ceil(2,500/1,000) = 3
    # pages and the closing check, and 51 for its candidates
    assert cost[("signals", "view_2")] == 96 + 4 + 51
    # signals/object_3: minute 0 of hours 6, 8, ..., 18 (7 hours) on weekdays; never stored: 1 page assumed
    assert cost[("signals", "object_3")] == 7
    # metadata: once in each hour any container of the app runs (object_1 runs every hour): 24
    assert signals.metadata == 24
    assert signals.requests == 126 + 151 + 7 + 24 == 308
    assert (signals.daily_quota, signals.quota_floor, signals.budget) == (5000, 500, 4500)
    assert not signals.breaks_floor
    # work-orders/object_1: every 5 minutes, 12 × 24 = 288, + an hourly full, 24 × (ceil(12,345/1,000) + 1 + 51)
    assert cost[("work-orders", "object_1")] == 288 + 24 * (14 + 51) == 1848
    # purchasing/object_2: every 600 s, 86,400 / 600 = 144; its paused midnight schedule is not counted; no
    # stored record, so no delete candidate to confirm
    assert cost[("purchasing", "object_2")] == 144
    # city: both apps share one quota of 2,250; the floor is the larger one, 200; metadata 24 + 24
    assert city.apps == ["work-orders", "purchasing"] and city.metadata == 48
    assert city.requests == 1848 + 144 + 48 == 2040
    assert city.budget == 2250 - 200 == 2050 and not city.breaks_floor
    assert refusal(by_account.values()) is None


def test_runs_about_to_start_that_break_the_floor_are_refused_naming_the_costliest_containers() -> None:
    # a full fan-out of work-orders adds one full run of object_1: 14 + 51; 2,040 + 65 = 2,105 > 2,050
    by_account = plans(starting={("work-orders", "object_1"): True})
    city = by_account["city"]
    assert city.requests == 2105 and city.breaks_floor
    assert [(c.app, c.container) for c in city.slow_down()] == [("work-orders", "object_1")]
    why = refusal(by_account.values())
    assert why is not None and "'city'" in why and "2,105" in why and "work-orders/object_1 (1,913 a day)" in why
    text = render(by_account.values(), "prod")
    assert "**Over by 55**" in text
    assert "| work-orders | object_1 | 288 | 24 | 12,345 | 14 | 51 | 1,913 (+65 now) |" in text
    assert "unknown (not stored yet: 1 page assumed)" in text
    # an incremental fan-out adds one request per container: 2,040 + 1 = 2,041, within the 2,050
    assert not plans(starting={("work-orders", "object_1"): False})["city"].breaks_floor


def test_the_issues_example_four_apps_of_twenty_containers_spend_a_pro_plan() -> None:
    # 20 containers hourly, each with a nightly full refresh of 50,000 records: 20 × 24 + 20 × (51 + 51) =
    # 2,520 (50 pages and the closing check; 51 confirming delete candidates, at most), plus the metadata,
    # 24 an app: 2,544 an app; four such apps on one Pro account (5,000) need 10,176
    apps = {f"app-{n}": {"daily_quota": 5000, "quota_account": "pro", "containers": {
        f"object_{i}": container() for i in range(1, 21)}} for n in range(4)}
    config = parse_config({"apps": apps}, "cfg.yaml")
    doc = {"deployments": [sync(a, f"object_{i}", {"cron": "7 * * * *"},
                                {"cron": "37 2 * * *", "parameters": {"full": True}})
                           for a in apps for i in range(1, 21)]}
    records = {(a, f"object_{i}"): 50_000 for a in apps for i in range(1, 21)}
    (plan,) = project(config, schedules_from_deployments(doc, "prod"), records)
    assert plan.requests == 4 * (20 * 24 + 20 * (51 + 51) + 24) == 10176 and plan.breaks_floor
    one_app = project(config, schedules_from_deployments(doc, "prod"), records, apps=["app-0"])
    assert one_app[0].apps == list(apps)  # an app is planned with every app of its account
    # 5,176 over: each container costs 126 a day, so 42 of them are named (42 × 126 = 5,292 ≥ 5,176)
    assert len(plan.slow_down()) == 42


@pytest.mark.parametrize(("cron", "runs"), [("7 * * * *", 24), ("*/15 * * * *", 96), ("0 6-18/2 * * 1-5", 7),
                                             ("0,30 9-17 * * mon-fri", 18), ("@daily", 1), ("5 4 1 jan *", 1)])
def test_runs_on_the_busiest_day(cron: str, runs: int) -> None:
    assert cron_schedule(cron, False).runs_per_day == runs


def test_a_schedule_that_cannot_be_read_names_the_deployment() -> None:
    doc = {"deployments": [sync("signals", "object_1", {"cron": "61 * * * *"})]}
    with pytest.raises(ConfigError, match="deployment 'signals-object_1-prod'.*outside 0-59"):
        schedules_from_deployments(doc, "prod")


def test_quota_settings_are_checked_strictly() -> None:
    base = {"containers": {"object_1": container()}}
    with pytest.raises(ConfigError, match="app 'x': daily_quota: Input should be a valid integer"):
        parse_config({"apps": {"x": {**base, "daily_quota": "5000"}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="daily_quota: Input should be greater than or equal to 1"):
        parse_config({"apps": {"x": {**base, "daily_quota": 0}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match=r"quota_floor \(5000\) must be below daily_quota \(5000\)"):
        parse_config({"apps": {"x": {**base, "quota_floor": 5000}}}, "cfg.yaml")
    config = parse_config({"apps": {"a": {**base, "quota_account": "one"},
                                    "b": {**base, "quota_account": "one", "daily_quota": 1000}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="apps a, b share quota_account 'one' but set different daily_quota"):
        project(config, {}, {})


def test_delete_confirmation_costs_look_ups_up_to_the_cap_then_a_second_listing() -> None:
    assert confirm_cost(None, 1, 50) == 0 and confirm_cost(0, 1, 50) == 0   # nothing stored: no candidate
    assert confirm_cost(300, 1, 50) == 51          # 50 look-ups and one of a listed record
    assert confirm_cost(10, 1, 50) == 11           # never more candidates than stored records
    assert confirm_cost(200_000, 200, 50) == 200   # beyond the cap: a second listing of 200 pages
