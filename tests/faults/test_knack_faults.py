"""Knack misbehaving: 5xx, 429 storms, hangs past the timeout, dropped connections, the quota floor.

Pages are shrunk to 10 rows so a run makes a dozen requests and the faults land on page fetches,
not only on the metadata call. Every case ends with a converged run: the store, Socrata and ArcGIS
hold exactly Knack's records, each once, with Knack's latest values.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.harness import Rig, error_of

pytestmark = pytest.mark.integration


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    """Knack clients time requests out after 1 s (30 s in production), so a 2.5 s hang is "past the timeout"."""
    import tasks.knack.tasks

    original = tasks.knack.tasks.knack_client

    def client(*args: Any, **kwargs: Any) -> Any:
        made = original(*args, **kwargs)
        made.timeout = 1.0
        return made

    monkeypatch.setattr(tasks.knack.tasks, "knack_client", client)
    return 1.0


def test_thirty_percent_5xx(make_rig) -> None:
    rig: Rig = make_rig(records=60, page_rows=5)
    rig.knack.set_faults(error_rate=0.3, error_status=503, seed=5)
    rig.ok()
    rig.knack.edit_random("object_1", 9, seed=2)
    report = rig.ok()
    assert report["store"]["written"] == 9
    assert rig.knack.counters()["by_status"].get("503", 0) >= 2  # the faults really happened
    rig.assert_converged()


def test_429_storms_are_waited_out(make_rig) -> None:
    rig: Rig = make_rig(records=60, page_rows=10)
    rig.knack.set_limits(rate_limit_per_second=4)  # the app's real limit is below what the config says
    rig.knack.set_faults(burst_429=12)  # more in a row than the 8 attempts a failing request gets
    report = rig.ok()
    assert rig.knack.counters()["by_status"].get("429", 0) >= 12
    assert report["store"]["written"] == 60
    rig.assert_converged()


def test_hangs_past_the_timeout_are_retried(make_rig, short_timeout: float) -> None:
    rig: Rig = make_rig(records=100, page_rows=10)
    rig.knack.set_faults(hang_rate=0.25, hang_seconds=short_timeout + 1.5, seed=3)
    report = rig.ok()
    pages = 100 // 10
    assert report["store"]["knack_requests"] > pages  # some requests timed out and were sent again
    rig.assert_converged()


def test_dropped_connections_are_retried(make_rig) -> None:
    rig: Rig = make_rig(records=60, page_rows=10)
    rig.knack.set_faults(drop_rate=0.3, seed=8)
    rig.ok()
    rig.knack.edit_random("object_1", 4, seed=9)
    rig.ok()
    assert rig.knack.counters()["by_status"].get("dropped", 0) >= 2
    rig.assert_converged()


def test_quota_floor_refuses_before_anything_is_written(make_rig) -> None:
    rig: Rig = make_rig(records=100, page_rows=10, app_settings={"quota_floor": 50})
    rig.knack.set_limits(rate_limit_per_second=None, daily_quota=58)
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    assert "quota" in message and "floor is 50" in message and "object_1" in message, message
    assert rig.stored_ids("object_1") == [], "a refused fetch must not write records"
    assert rig.cursors() == {"knack": None, "socrata": None, "agol": None}

    rig.knack.set_limits(rate_limit_per_second=None, daily_quota=None)  # the next day
    rig.ok()
    rig.assert_converged()
