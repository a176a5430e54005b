"""Socrata and ArcGIS misbehaving: a 5xx or a 400 on one chunk, timeouts (one of them applied although
its reply was lost), per-feature refusals, a token expiring mid-run.

A destination that fails keeps its cursor, so its next run publishes the same records again; the
other destination publishes regardless. Every case ends with a converged run.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

import tasks.agol.task
from tests.faults.harness import Rig, error_of

pytestmark = pytest.mark.integration

SMALL_CHUNKS = {"socrata_chunk_size": 20, "agol_chunk_size": 20}


def test_socrata_5xx_on_one_chunk_is_retried(make_rig) -> None:
    rig: Rig = make_rig(records=60, settings=SMALL_CHUNKS)
    rig.socrata.set_faults(fail_writes_after=1, fail_writes_count=1, fail_status=503)
    report = rig.ok()
    assert report["published"]["socrata"]["upserted"] == 60
    assert [r["status"] for r in rig.socrata.requests if r["method"] == "POST"].count(503) == 1
    rig.assert_converged()


def test_socrata_400_on_one_chunk_names_the_ids_and_keeps_the_cursor(make_rig) -> None:
    rig: Rig = make_rig(records=60, settings=SMALL_CHUNKS)
    rig.socrata.set_faults(fail_writes_after=1, fail_writes_count=1, fail_status=400)
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    chunk = [row["id"] for row in next(r["body"] for r in rig.socrata.requests
                                         if r["method"] == "POST" and r["status"] == 400)]
    assert f"Socrata dataset {rig.container('object_1').socrata_resource_id} rejected rows [" in message, message
    assert chunk[0] in message and "chunk 2" in message, message
    assert rig.cursors()["socrata"] is None                      # the Socrata cursor did not move
    assert rig.agol_ids("object_1") == rig.knack_ids("object_1")  # ArcGIS published regardless
    assert rig.stored_ids("object_1") == rig.knack_ids("object_1")

    rig.socrata.set_faults()
    report = rig.ok()
    assert report["published"]["socrata"]["upserted"] == 60  # everything again, chunk 1 included
    assert report["published"]["agol"]["upserted"] == 0
    rig.assert_converged()


def test_agol_timeouts_including_an_applied_edit_whose_reply_was_lost(make_rig) -> None:
    rig: Rig = make_rig(records=60, settings=SMALL_CHUNKS)
    rig.arcgis.set_faults(fail_edits_after=1, fail_edits_count=1, fail_edits_mode="apply")
    rig.ok()
    rig.knack.edit_random("object_1", 8, seed=5)
    rig.arcgis.set_faults(timeout_rate=0.2, seed=4)
    rig.ok()
    timeouts = [r for r in rig.arcgis.requests if r.get("error_code") == 504]
    assert len(timeouts) >= 2
    rig.assert_converged()


def test_agol_per_feature_refusals_name_the_records(make_rig) -> None:
    rig: Rig = make_rig(records=40, layer_hook=_unique_signal_code)  # a stricter layer than Knack
    records = rig.knack.records("object_1")
    twin, clash = records[3], records[17]
    rig.knack.update_record("object_1", clash["id"], {"field_3": twin["field_3"]})  # two signals, one code
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    assert "refused features [" in message and (twin["id"] in message or clash["id"] in message), message
    assert rig.cursors()["agol"] is None
    assert len(rig.agol_features()) == 39  # everything else landed
    assert rig.socrata_ids("object_1") == rig.knack_ids("object_1")

    rig.knack.update_record("object_1", clash["id"], {"field_3": "SIG-99999"})  # fixed at the source
    rig.ok()
    rig.assert_converged()


def test_agol_token_expiring_mid_run_signs_in_again(make_rig, monkeypatch) -> None:
    rig: Rig = make_rig(records=60, settings=SMALL_CHUNKS)
    original = tasks.agol.task.to_agol_feature
    built = itertools.count()

    def expiring(*args: Any, **kwargs: Any) -> Any:
        if next(built) == SMALL_CHUNKS["agol_chunk_size"]:  # the first chunk has landed
            rig.arcgis.expire_tokens()
        return original(*args, **kwargs)

    monkeypatch.setattr(tasks.agol.task, "to_agol_feature", expiring)
    rig.arcgis.reset_log()
    report = rig.ok()
    assert report["published"]["agol"]["upserted"] == 60
    assert any(r.get("error_code") == 498 for r in rig.arcgis.requests)
    assert "token rejected" in rig.log.text and "signing in again" in rig.log.text
    rig.assert_converged()


def _unique_signal_code(container: str, definition: dict[str, Any]) -> None:
    """Knack field_3 ("ID", published as ``_id``) gets a unique index on the layer."""
    for fld in definition["fields"]:
        if fld["name"] == "_id":
            fld["unique"] = True


def test_agol_real_5xx_after_an_applied_edit_adds_no_duplicate(make_rig) -> None:
    """The gateway answers 502 after the edit was applied: the session must not resend the POST itself;
    the pipeline's retry looks the ids up first and turns the adds into updates."""
    rig: Rig = make_rig(records=60, settings=SMALL_CHUNKS)
    rig.arcgis.set_faults(fail_edits_after=1, fail_edits_count=1, fail_edits_mode="apply-5xx", error_status=502)
    report = rig.ok()
    edits = [r for r in rig.arcgis.requests if r["path"].endswith("/applyEdits")]
    assert [r["status"] for r in edits].count(502) == 1, edits
    assert report["published"]["agol"]["upserted"] == 60
    rig.assert_converged()  # each id once in the layer



@pytest.mark.parametrize("hung", ["socrata", "agol"])
def test_a_hung_destination_stops_at_its_time_limit(make_rig, hung: str) -> None:
    """Every request to one destination hangs for five minutes: its publish stops at its 10 s limit (its
    thread is blocked reading a socket, which Prefect's flow timeout cannot interrupt), releases its lock
    and keeps its cursor; the other destination publishes; the next run converges."""
    rig: Rig = make_rig(records=30, settings={"publish_time_limit_seconds": 10})
    emulator = rig.socrata if hung == "socrata" else rig.arcgis
    emulator.set_faults(latency_ms=300_000)
    started = time.monotonic()
    state = rig.run()
    took = time.monotonic() - started
    assert state.is_failed()
    assert f"object_1 → {hung}: stopped at its time limit of 10 s" in error_of(state), error_of(state)
    assert took < 150, f"the run took {took:.0f} s: the hung requests were not cut at the limit"
    assert rig.locks() == [], "the hung destination's lock must be released"
    cursors = rig.cursors()
    assert cursors[hung] is None, "the hung destination's cursor must not move"
    other = "agol" if hung == "socrata" else "socrata"
    assert cursors[other] is not None and cursors[other]["upserted"] == 30

    emulator.set_faults()
    report = rig.ok()
    assert report["published"][hung]["upserted"] == 30
    rig.assert_converged()
