"""The alert definitions against the runbook and the flows' event: every message names app, container, env
and a RUNBOOK.md entry that exists; the held-back event carries the counts and the command that allows it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flows._events import held_back_payload
from scripts.alerts import specs

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes."""
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", markdown, re.M)}


def test_every_alert_names_app_container_env_and_an_existing_runbook_entry() -> None:
    known = anchors((ROOT / "RUNBOOK.md").read_text())
    assert len(specs()) == 5 and len({s["name"] for s in specs()}) == 5
    for spec in specs():
        body = spec["body"]
        assert all(k in body for k in ("app: ", "container: ", "env: ", "what happened: ")), spec["name"]
        entry = re.search(r"RUNBOOK\.md#([a-z0-9-]+)", body)
        assert entry and entry.group(1) in known, (spec["name"], entry and entry.group(1), sorted(known))
        assert "prod" in spec["name"]


def test_the_runbook_has_an_entry_for_each_operational_case() -> None:
    known = anchors((ROOT / "RUNBOOK.md").read_text())
    assert {"held-back-delete", "lost-lock", "listing-never-whole", "quota-refusal",
            "failed-crashed-or-timed-out-run", "cancelled-full-run", "late-deployment"} <= known


def test_the_failed_alert_leaves_held_back_deletes_to_their_own_alert_and_matches_prod_runs_only() -> None:
    failed = next(s for s in specs() if "failed" in s["name"])
    match = failed["trigger"]["match"]
    assert match["prefect.state-message"] == "!*DeletesHeldBack*"
    assert all(name.endswith(("-prod", "-prod-full")) for name in match["prefect.resource.name"])


def test_the_held_back_event_carries_the_counts_and_the_command() -> None:
    message = ("demo/object_1 in the store: 30 of 40 records would be deleted, more than the guard allows (10: 5% "
               "of the container, at least 10); nothing was deleted.")
    payload = held_back_payload("demo", "object_1", "prod", message)
    assert (payload["deletes_held_back"], payload["records"], payload["destination"]) == (30, 40, "store")
    assert payload["allow_command"] == ("prefect deployment run sync/demo-object-1-prod --param full=true "
                                        "--param allow_mass_delete=true")
    other = held_back_payload("demo", "view_1", "prod", "x: 12 records missing from the listing could not be "
                                                      "checked with Knack", destination="store")
    assert (other["deletes_held_back"], other["records"]) == (12, None)
