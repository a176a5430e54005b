"""The S3 endpoint misbehaving, through a fault-injecting proxy in front of moto_server: boto3 meets
real ``503 SlowDown`` and ``500 InternalError`` replies, and an endpoint that answers nothing at all.

Every case ends with a converged run: store, Socrata and ArcGIS equal Knack, no duplicate ids.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import Rig, error_of

pytestmark = pytest.mark.integration


def test_slowdown_and_5xx_on_a_share_of_puts_are_retried(make_rig) -> None:
    rig: Rig = make_rig(records=40)
    rig.proxy.set_faults(fail_put_rate=0.1, fail_status=503, seed=1)
    first = rig.ok()
    assert first["store"]["written"] == 40
    slowdowns = rig.proxy.counts["failed"]
    assert slowdowns >= 2, "the proxy should have refused some PUTs"

    rig.knack.edit_random("object_1", 6, seed=4)
    rig.proxy.set_faults(fail_put_rate=0.25, fail_status=500, seed=2)
    second = rig.ok()
    assert second["store"]["written"] == 6
    assert rig.proxy.counts["failed"] > slowdowns
    rig.assert_converged()


def test_endpoint_down_for_a_whole_run_fails_clearly_and_moves_no_cursor(make_rig, monkeypatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # fail within seconds rather than after 8 backed-off tries
    rig: Rig = make_rig(records=40)
    rig.ok()
    before = rig.cursors()
    edited = rig.knack.edit_random("object_1", 5, seed=6)
    rig.proxy.set_faults(down=True)
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    assert "cannot reach the S3 endpoint" in message and rig.bucket in message, message
    assert rig.cursors() == before
    knack = {r["id"]: r for r in rig.knack.records("object_1")}
    rows = {r["id"]: r for r in rig.socrata_rows()}
    assert all(rows[i].get("notes") != knack[i]["field_4"] for i in edited), "nothing was published"

    rig.proxy.set_faults()
    report = rig.ok()
    assert report["store"]["written"] == 5
    assert report["published"]["socrata"]["upserted"] == 5
    rig.assert_converged()


@pytest.mark.timing
def test_endpoint_lost_mid_write_keeps_manifest_and_cursor_and_recovers(make_rig, monkeypatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    # a 6 s lock: its 3 s lease outlasts the refused PUT's two attempts (a 2 s lock's 1 s lease ran out
    # first on a loaded machine, and the run then named its lost lock rather than the failing write)
    rig: Rig = make_rig(records=60, settings={"lock_ttl_seconds": 6})
    rig.proxy.set_faults(down_after_puts=25)  # some records land, then nothing answers
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    assert "PUT s3://" in message and "/dev/demo/object_1/" in message, message  # the write that failed
    assert 0 < len(rig.stored_ids("object_1")) < 60
    assert rig.state_doc("object_1", "manifest") is None
    assert rig.cursors() == {"knack": None, "socrata": None, "agol": None}
    assert rig.socrata_rows() == [] and rig.agol_features() == []

    rig.proxy.set_faults()
    if rig.locks():  # the lost endpoint kept the lock from being released: it expires on its own
        time.sleep(6.5)
    rig.ok()
    rig.assert_converged()
