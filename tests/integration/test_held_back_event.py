"""A held-back delete, in the store or at a destination, sends the event the alert listens for
(``knack-services.deletes.held-back``) with the counts and the command that allows it, once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows._events import HELD_BACK
from flows.records_to_s3 import records_to_s3
from flows.records_to_socrata import records_to_socrata
from flows.sync import sync
from tests.fixtures.pipeline import Pipeline

pytestmark = pytest.mark.integration

KEY = "object_1"


def held_back_events(since: datetime, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The held-back events the Prefect API has stored since ``since`` (waiting up to ``timeout`` for ``count``)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    event_filter = EventFilter(occurred=EventOccurredFilter(since=since, until=datetime.now(UTC) + timedelta(hours=1)),
                               event=EventNameFilter(name=[HELD_BACK]))
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            response = client.request("POST", "/events/filter", json={"filter": event_filter.model_dump(mode="json"),
                                                                      "limit": 50})
        events = response.json()["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def test_held_back_deletes_in_the_store_and_at_a_destination_each_send_one_event(pipeline: Pipeline) -> None:
    p = pipeline
    sync(app=p.app, container=KEY, env=p.env, config_path=str(p.config_path))
    for rid in p.knack_ids(KEY)[:100]:
        p.knack.delete_record(KEY, rid)

    started = datetime.now(UTC)
    with pytest.raises(Exception, match=r"100 of 300 records would be deleted"):
        records_to_s3(app=p.app, container=KEY, env=p.env, full=True, config_path=str(p.config_path))
    events = held_back_events(started, 1)
    assert len(events) == 1, events
    payload = events[0]["payload"]
    assert {k: payload[k] for k in ("app", "container", "env", "destination", "deletes_held_back", "records")} == {
        "app": p.app, "container": KEY, "env": p.env, "destination": "store", "deletes_held_back": 100,
        "records": 300}
    assert payload["allow_command"] == (f"prefect deployment run sync/{p.app}-object-1-{p.env} --param full=true "
                                        "--param allow_mass_delete=true")
    assert events[0]["resource"]["prefect.resource.id"] == f"knack-services.container.{p.env}.{p.app}.{KEY}"
    assert any(r["prefect.resource.id"].startswith("prefect.flow-run.") for r in events[0]["related"])

    records_to_s3(app=p.app, container=KEY, env=p.env, full=True, allow_mass_delete=True,
                  config_path=str(p.config_path))
    started = datetime.now(UTC)
    with pytest.raises(Exception, match=r"100 of 300 records would be deleted"):
        records_to_socrata(app=p.app, container=KEY, env=p.env, config_path=str(p.config_path))
    events = held_back_events(started, 2, timeout=5)  # waits a little for a second one that must not come
    assert [e["payload"]["destination"] for e in events] == ["socrata"], events
    assert events[0]["payload"]["deletes_held_back"] == 100
