"""Install or update the prod alerts as Prefect automations: ``python scripts/alerts.py [--config FILE] [--block SLUG/NAME] [--check]``.

Each alert is an automation named ``knack-services prod: ...``; running the command again updates them in
place (one automation per name, duplicates removed), so it is safe to run after every deploy. They send
through the notification block the config's ``alert_block`` names (``slack-webhook/knack-alerts``,
``ms-teams-webhook/...``, ``sendgrid-email/...``, ``custom-webhook/...``: the team's choice; create it first in the
UI or with its Python class). Each message names the app, container, env, what happened and the
RUNBOOK.md entry; it carries the run's state message (the project's errors hold no secret), never a
credential. ``--check`` changes nothing and exits 1 when an alert is missing or differs.

| alert | fires when |
|---|---|
| run failed, crashed or timed out | a prod ``sync-*`` or ``metadata-to-s3-*`` run ends Failed, Crashed or TimedOut (not a held-back delete: it has its own) |
| full run cancelled | a prod full run (``sync-*-prod-full``) is cancelled |
| full run not completed by morning | a prod full run has not completed 6 hours after it was due |
| deletes held back | a run emits ``knack-services.deletes.held-back`` (counts, and the command that allows them) |
| deployment late | a prod sync deployment has not completed a run for twice its hourly interval |
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flows._events import HELD_BACK  # noqa: E402
from tasks.domain.config import load_config  # noqa: E402
from tasks.domain.errors import ConfigError  # noqa: E402

PREFIX = "knack-services prod: "
ENV = "prod"
RUNBOOK = "RUNBOOK.md"
HOURLY = timedelta(hours=1)          # the sync deployments' interval (scripts/deployments.py)
MORNING = timedelta(hours=6)         # a nightly reconcile due at 00:MM is done by 06:MM

RUNS = ["sync-*-prod", "sync-*-prod-full", "metadata-to-s3-*-prod"]
SYNC_RUNS = ["sync-*-prod", "sync-*-prod-full"]
FULL_RUNS = ["sync-*-prod-full"]

_WHO = ("app: {{ flow_run.parameters.app }}\n"
        "container: {{ flow_run.parameters.container or '-' }}\n"
        "env: {{ flow_run.parameters.env }}\n")


def _body(what: str, runbook: str, extra: str = "") -> str:
    return (_WHO + f"what happened: {what}\n" + extra
            + "run: {{ flow_run.name }} ({{ flow_run.id }})\n"
            + f"runbook: {RUNBOOK}#{runbook}\n")


def specs() -> list[dict[str, Any]]:
    """The alerts, as automation fields without the action's block (name, description, trigger, subject, body)."""
    run_resource = {"prefect.resource.id": "prefect.flow-run.*"}
    return [
        {"name": PREFIX + "run failed, crashed or timed out",
         "description": "A prod run ended Failed, Crashed or TimedOut (held-back deletes have their own alert).",
         "trigger": {"type": "event", "posture": "Reactive", "threshold": 1, "within": 0,
                     "expect": ["prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"],
                     "match": {**run_resource, "prefect.resource.name": RUNS,
                               "prefect.state-message": "!*DeletesHeldBack*"}},
         "subject": "knack-services {{ flow_run.parameters.env }}: {{ flow_run.parameters.app }}/"
                    "{{ flow_run.parameters.container or '-' }} run {{ flow_run.state.name }}",
         "body": _body("the run ended {{ flow_run.state.name }}: {{ flow_run.state.message }}",
                       "failed-crashed-or-timed-out-run")},
        {"name": PREFIX + "full run cancelled",
         "description": "A prod full run (the nightly reconcile or a republish) was cancelled before it finished.",
         "trigger": {"type": "event", "posture": "Reactive", "threshold": 1, "within": 0,
                     "expect": ["prefect.flow-run.Cancelled"],
                     "match": {**run_resource, "prefect.resource.name": FULL_RUNS}},
         "subject": "knack-services {{ flow_run.parameters.env }}: {{ flow_run.parameters.app }}/"
                    "{{ flow_run.parameters.container }} full run cancelled",
         "body": _body("the full run (reconcile) was cancelled: {{ flow_run.state.message }}; the store and "
                       "destinations were not reconciled tonight", "cancelled-full-run")},
        {"name": PREFIX + "full run not completed by morning",
         "description": f"A prod full run has not completed {MORNING} after it was due.",
         "trigger": {"type": "event", "posture": "Proactive", "threshold": 1, "within": MORNING.total_seconds(),
                     "after": ["prefect.flow-run.Pending", "prefect.flow-run.AwaitingConcurrencySlot"],
                     "expect": ["prefect.flow-run.Completed"], "for_each": ["prefect.resource.id"],
                     "match": {**run_resource, "prefect.resource.name": FULL_RUNS}},
         "subject": "knack-services {{ flow_run.parameters.env }}: {{ flow_run.parameters.app }}/"
                    "{{ flow_run.parameters.container }} full run not completed by morning",
         "body": _body(f"the full run has not completed {int(MORNING.total_seconds() // 3600)} hours after it was "
                       "due (state {{ flow_run.state.name }})", "cancelled-full-run")},
        {"name": PREFIX + "deletes held back",
         "description": "A prod run held deletes back (the mass-delete guard, or a Knack answer it cannot trust).",
         "trigger": {"type": "event", "posture": "Reactive", "threshold": 1, "within": 0,
                     "expect": [HELD_BACK],
                     "match": {"prefect.resource.id": f"knack-services.container.{ENV}.*"}},
         "subject": "knack-services {{ event.payload.env }}: {{ event.payload.app }}/{{ event.payload.container }} "
                    "deletes held back",
         "body": ("app: {{ event.payload.app }}\ncontainer: {{ event.payload.container }}\n"
                  "env: {{ event.payload.env }}\n"
                  "what happened: deletes held back in the {{ event.payload.destination }}: "
                  "{{ event.payload.deletes_held_back }} of {{ event.payload.records }} records: "
                  "{{ event.payload.message }}\n"
                  "to allow them (once Knack really lost those records): {{ event.payload.allow_command }}\n"
                  "run: {{ flow_run.name }} ({{ flow_run.id }})\n"
                  f"runbook: {RUNBOOK}#held-back-delete\n")},
        {"name": PREFIX + "deployment late",
         "description": f"A prod sync deployment has not completed a run for {2 * HOURLY} (twice its interval).",
         "trigger": {"type": "event", "posture": "Proactive", "threshold": 1, "within": (2 * HOURLY).total_seconds(),
                     "after": ["prefect.flow-run.Completed"], "expect": ["prefect.flow-run.Completed"],
                     "for_each": ["related:deployment:prefect.resource.id"],
                     "match": {**run_resource, "prefect.resource.name": SYNC_RUNS},
                     "match_related": {"prefect.resource.role": "deployment"}},
         "subject": "knack-services prod: deployment {{ deployment.name }} late",
         "body": (_WHO + f"what happened: deployment {{{{ deployment.name }}}} has not completed a run for "
                  f"{int(2 * HOURLY.total_seconds() // 3600)} hours (twice its interval); its last completed run "
                  "was {{ flow_run.name }}\n"
                  f"runbook: {RUNBOOK}#late-deployment\n")},
    ]


def automation(spec: dict[str, Any], block_document_id: Any) -> Any:
    """The Prefect automation for one alert, sending through the block ``block_document_id``."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    return AutomationCore(name=spec["name"], description=spec["description"], enabled=True,
                          trigger=EventTrigger(**{k: v for k, v in spec["trigger"].items() if k != "type"}),
                          actions=[SendNotification(block_document_id=block_document_id, subject=spec["subject"],
                                                    body=spec["body"])])


def block_id(client: Any, slug_and_name: str) -> Any:
    """The id of the notification block ``<type-slug>/<name>``; an error naming it when there is none."""
    from prefect.exceptions import ObjectNotFound

    slug, _, name = slug_and_name.partition("/")
    try:
        return client.read_block_document_by_name(name=name, block_type_slug=slug).id
    except ObjectNotFound:
        raise ConfigError(f"alert_block {slug_and_name!r}: no such Prefect block; create the notification block "
                          f"{name!r} of type {slug!r} first (docs/guide.md, 'Alerts as code')") from None


def _same(installed: Any, wanted: Any) -> bool:
    fields = ("name", "description", "enabled", "trigger", "actions")
    return all(getattr(installed, f) == getattr(wanted, f) for f in fields)


def install(block: str, *, check: bool = False) -> list[str]:
    """Create, update or (``check``) compare every alert; one line per alert saying what was done."""
    from prefect.client.orchestration import get_client

    lines = []
    with get_client(sync_client=True) as client:
        target = block_id(client, block)
        for spec in specs():
            wanted = automation(spec, target)
            found = client.read_automations_by_name(spec["name"])
            if check:
                ok = len(found) == 1 and _same(found[0], wanted)
                lines.append(f"{'ok' if ok else 'DIFFERS'}: {spec['name']}")
                continue
            if not found:
                client.create_automation(wanted)
                lines.append(f"created: {spec['name']}")
                continue
            keep, *extra = found
            for duplicate in extra:
                client.delete_automation(duplicate.id)
            if _same(keep, wanted) and not extra:
                lines.append(f"unchanged: {spec['name']}")
            else:
                client.update_automation(keep.id, wanted)
                lines.append(f"updated: {spec['name']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Install or update the prod alerts as Prefect automations.")
    p.add_argument("--config", default=None, help="config file (default: config/knack-services.yaml)")
    p.add_argument("--block", default=None, help="notification block <type-slug>/<name> (default: alert_block)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when an alert is missing or differs")
    args = p.parse_args(argv)
    try:
        block = args.block or load_config(args.config or ROOT / "config" / "knack-services.yaml").settings.alert_block
        if not block:
            raise ConfigError("no notification block: set alert_block in the config (e.g. slack-webhook/knack-alerts) "
                              "or pass --block")
        lines = install(block, check=args.check)
    except ConfigError as exc:
        print(f"alerts failed: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 1 if args.check and any(line.startswith("DIFFERS") for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
