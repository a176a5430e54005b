"""The Knack quota plan: each account's daily Knack requests, projected from the schedules and the store.

Pure: the caller reads the deployments (``prefect.yaml``) and each container's record count (the
store's manifest) and passes them in. A day's requests, per container, on the busiest day of its
schedules (a weekly or monthly schedule counts as if it ran that day):

- an incremental run asks for its changed records: one request (a page of up to ``rows_per_page``
  changes; a busier hour costs one more per extra page);
- a full run (``full: true``, the nightly reconcile) lists every record: ``ceil(records /
  rows_per_page)`` requests, at least 1, and one more (the closing check) when that is more than 1; confirming its delete candidates comes on top, at most
  ``max(min(delete_lookups_per_run, records) + 1, pages)``: one look-up per candidate (plus one) up to
  the cap, or a second whole listing beyond it (a container never stored has no candidates);
- the app's metadata is fetched at most once an hour (the cache in the store): one request for each
  hour of the day in which any of its containers runs.

Apps with the same ``quota_account`` share one daily quota. An account whose projection exceeds
``daily_quota - quota_floor`` (the largest floor of its apps) breaks the floor: Knack would answer 429
for the rest of the day once the quota is spent, and runs refuse to start below the floor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks.domain.config import Config
from tasks.domain.errors import ConfigError

SYNC_ENTRYPOINT = "flows/sync.py:sync"
_NAMES = {
    "month": {n: i for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                          "nov", "dec"], 1)},
    "dow": {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


@dataclass(frozen=True)
class Schedule:
    """One schedule of a container's ``sync`` deployment."""

    runs_per_day: int
    full: bool
    hours: frozenset[int] = frozenset(range(24))  # hours of the day it runs in (for the metadata cache)
    text: str = ""


def cron_field(text: str, lo: int, hi: int, names: Mapping[str, int] | None = None) -> set[int]:
    """The values one cron field allows: ``*``, ``n``, ``a-b``, ``*/s``, ``a-b/s``, ``n/s``, lists."""
    values: set[int] = set()
    for part in text.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} in {text!r}")

        def number(token: str) -> int:
            value = names[token] if names and token in names else int(token)
            if not lo <= value <= hi + (1 if names is _NAMES["dow"] else 0):  # 7 is Sunday too
                raise ValueError(f"{token!r} is outside {lo}-{hi} in {text!r}")
            return value

        if body == "*":
            first, last = lo, hi
        elif "-" in body:
            a, b = body.split("-", 1)
            first, last = number(a), number(b)
        else:
            first = number(body)
            last = hi if step_text else first
        values.update(range(first, last + 1, step))
    return values


def cron_schedule(expression: str, full: bool) -> Schedule:
    """Runs on the busiest day of a five-field cron expression (``minute hour day month weekday``)."""
    text = _MACROS.get(expression.strip().lower(), expression)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"cron {expression!r}: expected five fields (minute hour day month weekday)")
    minutes = cron_field(fields[0], 0, 59)
    hours = cron_field(fields[1], 0, 23)
    cron_field(fields[2], 1, 31)
    cron_field(fields[3], 1, 12, _NAMES["month"])
    cron_field(fields[4], 0, 6, _NAMES["dow"])
    return Schedule(len(minutes) * len(hours), full, frozenset(hours), expression)


def interval_schedule(seconds: float, full: bool) -> Schedule:
    """Runs a day of an interval schedule (counted from midnight)."""
    if seconds <= 0:
        raise ValueError(f"interval {seconds!r}: must be positive")
    runs = math.ceil(86400 / seconds)
    return Schedule(runs, full, frozenset(int(k * seconds % 86400 // 3600) for k in range(runs)),
                    f"every {seconds:g} s")


def schedules_from_deployments(doc: Mapping[str, Any], env: str) -> dict[tuple[str, str], list[Schedule]]:
    """The active schedules of every ``sync`` deployment of ``env`` in a prefect.yaml document, by
    (app, container). A deployment's ``full`` parameter applies unless a schedule sets its own."""
    out: dict[tuple[str, str], list[Schedule]] = {}
    for deployment in doc.get("deployments") or []:
        params = deployment.get("parameters") or {}
        if deployment.get("entrypoint") != SYNC_ENTRYPOINT or params.get("env") != env:
            continue
        where = f"deployment {deployment.get('name')!r}"
        key = (str(params.get("app")), str(params.get("container")))
        found = out.setdefault(key, [])
        for schedule in deployment.get("schedules") or []:
            if not schedule.get("active", True):
                continue
            full = bool({**params, **(schedule.get("parameters") or {})}.get("full", False))
            try:
                if "cron" in schedule:
                    found.append(cron_schedule(str(schedule["cron"]), full))
                elif "interval" in schedule:
                    found.append(interval_schedule(float(schedule["interval"]), full))
                else:
                    raise ValueError("only cron and interval schedules can be projected")
            except ValueError as exc:
                raise ConfigError(f"{where}: schedule {schedule}: {exc}") from None
    return out


@dataclass(frozen=True)
class ContainerCost:
    app: str
    container: str
    incremental_runs: int
    full_runs: int
    records: int | None  # from the store's manifest; None: never stored yet
    pages: int           # requests of one full run's listing
    extra: int = 0       # requests of the runs about to start (a fan-out), on top of the schedules
    confirm: int = 0     # at most this many more per full run, confirming delete candidates

    @property
    def requests(self) -> int:
        return self.incremental_runs + self.full_runs * (self.pages + self.confirm) + self.extra


@dataclass(frozen=True)
class AccountPlan:
    account: str
    daily_quota: int
    quota_floor: int
    apps: list[str]
    metadata: int  # requests for the apps' metadata
    containers: list[ContainerCost] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.metadata + sum(c.requests for c in self.containers)

    @property
    def budget(self) -> int:
        """What the schedules may spend: the quota less the floor kept for everything else."""
        return self.daily_quota - self.quota_floor

    @property
    def breaks_floor(self) -> bool:
        return self.requests > self.budget

    def slow_down(self) -> list[ContainerCost]:
        """The costliest containers, largest first, until they account for the excess over the budget."""
        excess, named = self.requests - self.budget, []
        for cost in sorted(self.containers, key=lambda c: (-c.requests, c.app, c.container)):
            if excess <= 0:
                break
            named.append(cost)
            excess -= cost.requests
        return named


def listing_cost(pages: int) -> int:
    """Requests of one whole listing: its pages, and the closing check of a listing of several pages."""
    return pages + (1 if pages > 1 else 0)


def confirm_cost(records: int | None, pages: int, cap: int) -> int:
    """The most one full run spends confirming delete candidates: a look-up per candidate (plus one of
    a listed record) while they are at most ``cap``, else a second whole listing (``pages``). Only
    stored records can be candidates."""
    if not records:
        return 0
    return max(min(cap, records) + 1, pages)


def project(config: Config, schedules: Mapping[tuple[str, str], Iterable[Schedule]],
            records: Mapping[tuple[str, str], int | None], apps: Iterable[str] | None = None,
            starting: Mapping[tuple[str, str], bool] | None = None) -> list[AccountPlan]:
    """The plan of every account holding one of ``apps`` (default: every configured app); ``starting``
    adds the runs about to start (a fan-out), each full (True) or incremental, to today's requests."""
    rows = config.settings.knack_rows_per_page
    cap = config.settings.delete_lookups_per_run
    chosen = set(apps) if apps is not None else set(config.apps)
    accounts = sorted({config.app(name).account for name in chosen})
    plans = []
    for account in accounts:
        members = [a for a in config.apps.values() if a.account == account]
        quotas = {a.daily_quota for a in members}
        if len(quotas) > 1:
            raise ConfigError(f"{config.path}: apps {', '.join(a.name for a in members)} share quota_account "
                              f"{account!r} but set different daily_quota ({', '.join(map(str, sorted(quotas)))})")
        costs, metadata = [], 0
        for app in members:
            hours: set[int] = set()
            for key in app.containers:
                found = list(schedules.get((app.name, key), []))
                count = records.get((app.name, key))
                for schedule in found:
                    hours |= schedule.hours
                pages = listing_cost(max(1, math.ceil((count or 0) / rows)))
                confirm = confirm_cost(count, pages, cap)
                now = (starting or {}).get((app.name, key))
                costs.append(ContainerCost(
                    app.name, key, incremental_runs=sum(s.runs_per_day for s in found if not s.full),
                    full_runs=sum(s.runs_per_day for s in found if s.full), records=count, pages=pages,
                    extra=0 if now is None else (pages + confirm if now else 1), confirm=confirm))
            metadata += len(hours)
        plans.append(AccountPlan(account, quotas.pop(), max(a.quota_floor for a in members),
                                 [a.name for a in members], metadata, costs))
    return plans


def render(plans: Iterable[AccountPlan], env: str) -> str:
    """The plan as markdown: one table per account, then the verdict and the containers to slow down."""
    out = [f"# Knack quota plan ({env})", ""]
    for plan in plans:
        out += [f"## {plan.account}: {plan.requests:,} requests a day of {plan.daily_quota:,} "
                f"(floor {plan.quota_floor:,}, so {plan.budget:,} for the schedules)", "",
                "| app | container | incremental runs | full runs | records | pages per full run | "
                "delete confirmation per full run (at most) | requests a day |", "|---|---|---|---|---|---|---|---|"]
        for c in plan.containers:
            known = f"{c.records:,}" if c.records is not None else "unknown (not stored yet: 1 page assumed)"
            extra = f" (+{c.extra} now)" if c.extra else ""
            out.append(f"| {c.app} | {c.container} | {c.incremental_runs} | {c.full_runs} | {known} | {c.pages} "
                       f"| {c.confirm} | {c.requests:,}{extra} |")
        out.append(f"| {', '.join(plan.apps)} | metadata (once an hour at most) | | | | | | {plan.metadata} |")
        out.append("")
        if plan.breaks_floor:
            names = ", ".join(f"{c.app}/{c.container} ({c.requests:,} a day)" for c in plan.slow_down())
            out.append(f"**Over by {plan.requests - plan.budget:,}**: the schedules would leave less than the "
                       f"floor of {plan.quota_floor:,}. Slow down (fewer full refreshes, a longer interval), "
                       f"largest first: {names}.")
        else:
            out.append(f"Within the quota: {plan.budget - plan.requests:,} requests a day to spare above the floor.")
        out.append("")
    return "\n".join(out)


def refusal(plans: Iterable[AccountPlan]) -> str | None:
    """Why runs must not start (every account that breaks its floor), or None."""
    broken = [p for p in plans if p.breaks_floor]
    if not broken:
        return None
    return "; ".join(
        f"Knack account {p.account!r} ({', '.join(p.apps)}) would spend {p.requests:,} requests a day of its "
        f"{p.daily_quota:,} with a floor of {p.quota_floor:,}; slow down "
        + ", ".join(f"{c.app}/{c.container} ({c.requests:,} a day)" for c in p.slow_down())
        for p in broken)
