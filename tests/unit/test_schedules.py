"""The generated schedules: start minutes spread by a stable hash of the deployment name, a nightly reconcile
that waits rather than being cancelled, nothing in the local daylight-saving hours, and the docker job's
limits (auto_remove, memory, platform)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from scripts.deployments import MEM_LIMIT, cron_hours, name_hash, render, spread_minutes
from tasks.domain.config import ENVS, parse_config
from tasks.domain.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
PREFECT_YAML: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())


def big_config(containers: int) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
    raw["apps"]["demo"]["containers"] = {f"object_{i}": {"modified_date_field_id": "field_1"}
                                         for i in range(1, containers + 1)}
    return raw


def syncs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load(text)["deployments"] if d["entrypoint"] == "flows/sync.py:sync"]


def dst_hours(timezone: str, year: int = 2026) -> set[int]:
    """Local hours that are skipped or repeated in ``timezone`` during ``year`` (from zoneinfo): walking UTC
    hour by hour, the local clock jumps two hours (one skipped) or stands still (one repeated)."""
    tz, found = ZoneInfo(timezone), set()
    t = datetime(year, 1, 1, tzinfo=UTC)
    while t.year == year:
        before, after = t.astimezone(tz), (t + timedelta(hours=1)).astimezone(tz)
        step = (after.hour - before.hour) % 24
        if step == 2:
            found.add((before.hour + 1) % 24)  # skipped
        elif step == 0:
            found.add(after.hour)  # repeated
        t += timedelta(hours=1)
    return found


def fires_in(cron: str, hours: set[int]) -> set[int]:
    return cron_hours(cron.split()[1]) & hours


def test_the_hash_is_stable_and_minutes_of_one_app_are_all_different_while_free_ones_remain() -> None:
    assert name_hash("demo-object-1-prod") == int.from_bytes(
        hashlib.sha256(b"demo-object-1-prod").digest()[:8], "big")  # not Python's salted hash()
    assert name_hash("demo-object-1-prod") % 60 == spread_minutes(["demo-object-1-prod"])["demo-object-1-prod"]
    for size in (4, 45, 60):
        deployments = syncs(render(parse_config(big_config(size), "x.yaml")))
        for env in ENVS:
            hourly = [int(d["schedules"][0]["cron"].split()[0]) for d in deployments if d["parameters"]["env"] == env]
            assert len(hourly) == size and len(set(hourly)) == size, (size, sorted(hourly))
            nightly = [int(d["schedules"][1]["cron"].split()[0]) for d in deployments
                       if d["parameters"]["env"] == env]
            assert len(set(nightly)) == size
    # 70 deployments: every minute used, none used three times
    minutes = list(spread_minutes([f"demo-object-{i}-prod" for i in range(70)]).values())
    assert set(minutes) == set(range(60)) and max(minutes.count(m) for m in minutes) == 2


def test_a_minute_depends_on_the_name_not_on_the_machine_or_the_order_of_unrelated_apps() -> None:
    once = spread_minutes(["demo-object-1-prod", "demo-view-1-prod"])
    again = spread_minutes(["demo-object-1-prod", "demo-view-1-prod"])
    assert once == again
    alone = spread_minutes(["demo-view-1-prod"])
    assert alone["demo-view-1-prod"] == name_hash("demo-view-1-prod") % 60


def test_the_shipped_schedules_spread_the_sync_deployments_of_each_app() -> None:
    deployments = [d for d in PREFECT_YAML["deployments"] if d["entrypoint"] == "flows/sync.py:sync"]
    by_app_env: dict[tuple[str, str], list[str]] = {}
    for dep in deployments:
        key = (dep["parameters"]["app"], dep["parameters"]["env"])
        by_app_env.setdefault(key, []).append(dep["schedules"][0]["cron"].split()[0])
        hourly, nightly = (int(s["cron"].split()[0]) for s in dep["schedules"][:2])
        assert hourly != nightly, dep["name"]  # the reconcile never starts with its own hourly
    for key, minutes in by_app_env.items():
        assert len(minutes) == len(set(minutes)), key


def test_no_schedule_fires_in_an_hour_daylight_saving_skips_or_repeats() -> None:
    assert dst_hours("America/Chicago") == {1, 2}  # 02:xx skipped in March, 01:xx twice in November
    assert dst_hours("UTC") == set()
    assert fires_in("37 2 * * *", dst_hours("America/Chicago")) == {2}  # the check catches the old nightly
    for text in (render(parse_config(RAW, "x.yaml")), render(parse_config(big_config(60), "x.yaml"))):
        for dep in syncs(text):
            for schedule in dep["schedules"]:
                assert not fires_in(schedule["cron"], dst_hours(schedule["timezone"])), (dep["name"], schedule)


def test_a_republish_cron_inside_the_daylight_saving_hours_is_refused_by_name() -> None:
    raw = big_config(2)
    raw["republish_cron"] = "37 2 * * 0"
    with pytest.raises(ConfigError, match=r"republish_cron '37 2 \* \* 0' fires at 02h, inside the daylight-saving"):
        render(parse_config(raw, "x.yaml"))


def test_docker_jobs_are_removed_when_done_memory_limited_and_built_for_amd64() -> None:
    build = PREFECT_YAML["build"][1]["prefect_docker.deployments.steps.build_docker_image"]
    assert build["platform"] == "linux/amd64"
    assert MEM_LIMIT == "1800m"  # 1,197 MB measured peak (50,000 records, tables on) + 50%
    for dep in PREFECT_YAML["deployments"]:
        jobs = dep["work_pool"]["job_variables"]
        assert jobs["auto_remove"] is True and jobs["mem_limit"] == jobs["memswap_limit"] == MEM_LIMIT, dep["name"]
        env = dep.get("parameters", {}).get("env")
        assert jobs["env"].get("KNACK_SERVICES_ENV") == env, dep["name"]  # None for the env-free services
