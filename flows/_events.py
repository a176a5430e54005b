"""Events the flows send to Prefect for the alerts (scripts/alerts.py): what happened, with the counts and
the command that resolves it. Never a secret: app, container, env, counts and the guard's own message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HELD_BACK = "knack-services.deletes.held-back"
_GUARD = re.compile(r"(\d+) of (\d+) records would be deleted")
_MISSING = re.compile(r"(\d+) records (?:are )?missing from the listing")


def held_back_payload(app: str, container: str, env: str, message: str, destination: str = "store") -> dict[str, Any]:
    """The event's fields: who, the counts read from the guard's message, and the command that allows it."""
    deletes = population = None
    if m := _GUARD.search(message):
        deletes, population = int(m.group(1)), int(m.group(2))
    elif m := _MISSING.search(message):
        deletes = int(m.group(1))
    deployment = f"sync/{app}-{container.replace('_', '-')}-{env}"
    return {"app": app, "container": container, "env": env, "destination": destination,
            "deletes_held_back": deletes, "records": population, "message": message,
            "allow_command": f"prefect deployment run {deployment} --param full=true --param allow_mass_delete=true",
            "runbook": "RUNBOOK.md#held-back-delete"}


def emit_held_back(app: str, container: str, env: str, message: str, destination: str = "store") -> None:
    """Send ``knack-services.deletes.held-back`` for one container (related to the current flow run)."""
    from prefect.events import emit_event

    emit_event(event=HELD_BACK,
               resource={"prefect.resource.id": f"knack-services.container.{env}.{app}.{container}",
                         "prefect.resource.name": f"{app}/{container} ({env})"},
               payload=held_back_payload(app, container, env, message, destination))


@contextmanager
def alerting_held_back(app: str, container: str, env: str, destination: str) -> Iterator[None]:
    """A destination's deletes held back inside this block send ``knack-services.deletes.held-back``
    (the alert), then the error goes on."""
    from tasks.domain.errors import DeletesHeldBack

    try:
        yield
    except DeletesHeldBack as exc:
        emit_held_back(app, container, env, str(exc), destination=destination)
        raise


def sync_run_name() -> str:
    """``sync-<app>-<container>-<env>``, with ``-full`` for a full run (the alerts tell them apart by name)."""
    from prefect.runtime import flow_run

    p = flow_run.parameters
    name = f"sync-{p['app']}-{p['container']}-{p['env']}"
    return name + "-full" if p.get("full") else name
