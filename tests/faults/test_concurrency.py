"""Two runs of the same container at once: the store's lock lets one in and fails the other fast,
naming the holder; nothing is corrupted and the next run converges."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.faults.harness import Rig, error_of

pytestmark = [pytest.mark.integration, pytest.mark.timing]  # 4 s locks: heartbeats every second


def test_a_second_concurrent_run_fails_fast_naming_the_holder(make_rig) -> None:
    rig: Rig = make_rig(records=60, settings={"lock_ttl_seconds": 4})  # a heartbeat every second
    rig.ok()
    rig.knack.edit_random("object_1", 5, seed=1)
    rig.knack.set_latency(base_ms=5000)  # the first run holds the Knack lock (and beats) while it fetches
    first: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: first.update(state=rig.run()))
    runner.start()
    deadline = time.monotonic() + 60
    while not rig.locks() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rig.locks() == [rig.key("object_1", "lock-knack")]
    manifest_before = rig.state_doc("object_1", "manifest")

    second = rig.run()
    runner.join(timeout=120)
    assert second.is_failed()
    message = error_of(second)
    assert "demo/object_1 (knack) is held by run sync-demo-object_1-dev (" in message, message
    assert "its lock is taken over 4 s after its last heartbeat" in message, message
    assert first["state"].is_completed(), error_of(first["state"])
    assert first["state"].result()["store"]["written"] == 5
    manifest_after = rig.state_doc("object_1", "manifest")
    assert manifest_after["generation"] == manifest_before["generation"] + 1  # one writer, one generation

    rig.knack.set_latency()
    rig.knack.edit_random("object_1", 2, seed=2)
    report = rig.ok()
    assert report["store"]["written"] == 2
    rig.assert_converged()
