"""The Knack quota plan's inputs: the deployments' schedules and each container's record count.

``tasks/domain/quota.py`` does the arithmetic; this module reads what it needs: the schedules from a
``prefect.yaml`` file or from the Prefect API (the deployments as they were deployed), and the record
counts from each container's manifest in the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tasks.domain.config import Config
from tasks.domain.quota import AccountPlan, Schedule, project, schedules_from_deployments

Key = tuple[str, str]


def schedules_from_file(path: str | Path, env: str) -> dict[Key, list[Schedule]]:
    """The active schedules of the ``sync`` deployments of ``env`` in a prefect.yaml file."""
    return schedules_from_deployments(yaml.safe_load(Path(path).read_text()) or {}, env)


def schedules_from_api(env: str) -> dict[Key, list[Schedule]]:
    """The active schedules of the ``sync`` deployments of ``env`` saved on the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    with get_client(sync_client=True) as client:
        deployments = []
        offset = 0
        while True:
            page = client.read_deployments(limit=200, offset=offset)
            deployments += page
            if len(page) < 200:
                break
            offset += 200
    doc: dict[str, Any] = {"deployments": []}
    for d in deployments:
        schedules = []
        for s in d.schedules or []:
            entry: dict[str, Any] = {"active": s.active, "parameters": s.parameters or {}}
            schedule = s.schedule
            if isinstance(schedule, CronSchedule) and schedule.cron:
                entry["cron"] = schedule.cron
            elif isinstance(schedule, IntervalSchedule) and schedule.interval:
                entry["interval"] = schedule.interval.total_seconds()
            else:
                entry["rrule"] = str(getattr(schedule, "rrule", ""))
            schedules.append(entry)
        doc["deployments"].append({"name": d.name, "entrypoint": d.entrypoint, "parameters": d.parameters or {},
                                   "schedules": schedules})
    return schedules_from_deployments(doc, env)


def stored_records(config: Config, env: str, apps: Iterable[str]) -> dict[Key, int | None]:
    """Records each container holds in the store (its manifest); None for one never stored."""
    from tasks.store.open import open_store

    out: dict[Key, int | None] = {}
    for name in apps:
        with open_store(env, name, config.settings) as store:
            for key in config.app(name).containers:
                manifest = store.load_manifest(key)
                out[(name, key)] = len(manifest.records) if manifest.generation or manifest.records else None
    return out


def quota_plan(config: Config, env: str, apps: Iterable[str] | None, schedules: Mapping[Key, list[Schedule]],
               starting: Mapping[Key, bool] | None = None) -> list[AccountPlan]:
    """The plan of the accounts holding ``apps`` (every configured app when None), with the runs about
    to start (``starting``: full or not) on top of the schedules."""
    chosen = list(apps) if apps is not None else list(config.apps)
    accounts = {config.app(a).account for a in chosen}
    members = [a.name for a in config.apps.values() if a.account in accounts]
    return project(config, schedules, stored_records(config, env, members), chosen, starting)
