"""A run frozen (SIGSTOP) while it writes, its lock taken over, then thawed: it writes nothing more.

Each case runs the real command line of one flow as a subprocess against the emulators and moto, stops it
in the middle of its writes, edits records in Knack, lets a second run wait out the frozen run's lock (one
life on its own clock), take it over and publish the new values, then resumes the frozen run. The frozen
run must stop at its next write (its lease lapsed) and exit non-zero, and every place must hold Knack's
latest values right after; a plain hourly run after it must leave them so (``tasks/store/locks.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import ENV, Rig, find_secrets
from tests.faults.test_kill import wait_for
from tests.fixtures.pipeline import ROOT

pytestmark = pytest.mark.integration

LOCK_TTL = 6  # a renewal every 1.5 s; under a loaded machine a 4 s lock let the takeover run lose its own
EDITED = 20


def start_flow(rig: Rig, script: str, log_path: Path, *flags: str) -> subprocess.Popen[bytes]:
    """``python flows/<script>.py`` for object_1, on this session's Prefect API, output to ``log_path``."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, f"flows/{script}.py", "-a", rig.app, "-c", "object_1", "-e", ENV,
            "--config", str(rig.config_path), *flags]
    with log_path.open("ab") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def edit(rig: Rig, ids: list[str], tag: str) -> dict[str, str]:
    """Give each record a new notes value (field_4); the values, by id."""
    values = {rid: f"{tag} {rid[-6:]}" for rid in ids}
    for rid, text in values.items():
        rig.knack.state.update("object_1", rid, {"field_4": text})
    return values


def table_notes(rig: Rig) -> dict[str, Any]:
    from botocore.credentials import Credentials

    from tasks.table.client import TableLocation, open_table, s3_storage_options, table_rows

    where = TableLocation(f"s3://{rig.bucket}/{rig.env}/{rig.app}/_tables/object_1",
                          s3_storage_options(rig.s3, Credentials("testing", "testing")))
    table = open_table(where)
    assert table is not None, "no table was written"
    return {row["id"]: row["notes"] for rows in table_rows(table, ["id", "notes"], 1000) for row in rows}


def assert_latest(rig: Rig, values: dict[str, str], table: bool = False) -> None:
    """Every place holds Knack's ids once each; the edited records carry ``values`` everywhere."""
    rig.assert_converged()
    for rid, text in values.items():
        assert rig.stored_doc("object_1", rid)["field_4"] == text, f"stored {rid} is stale"
    rows = {r["id"]: r.get("notes") for r in rig.socrata_rows()}
    features = {f["attributes"]["id"]: f["attributes"].get("notes") for f in rig.agol_features()}
    stale = {rid for rid, text in values.items() if rows.get(rid) != text or features.get(rid) != text}
    if table:
        notes = table_notes(rig)
        stale |= {rid for rid, text in values.items() if notes.get(rid) != text}
        assert sorted(notes) == sorted(r["id"] for r in rig.knack.records("object_1")), "table ids"
    assert not stale, f"{len(stale)} of {len(values)} edited rows went back to older values: {sorted(stale)[:5]}"


def notes(rig: Rig) -> list[str]:
    prefix = f"{rig.env}/{rig.app}/_state/object_1/suspect-"
    return [k for k in rig.all_keys() if k.startswith(prefix)]


def freeze_takeover_thaw(rig: Rig, frozen: subprocess.Popen[bytes], landed: Callable[[], bool], what: str,
                         log_path: Path, table: bool = False, late: str | None = None) -> dict[str, str]:
    """Stop ``frozen`` once ``landed()``, edit Knack, run a full sync that takes the lock over, thaw it.

    ``late``: the role whose request may be on the wire when the run freezes; when its reply came after
    the lease, the thawed run left a note and the next run sends those records again."""
    try:
        wait_for(landed, frozen, what)
        frozen.send_signal(signal.SIGSTOP)
        ids = sorted(r["id"] for r in rig.knack.records("object_1"))[:EDITED]
        values = edit(rig, ids, "newer")
        rig.socrata.set_faults()
        rig.arcgis.set_faults()
        rig.proxy.release(forward=True)  # a held write of the frozen run reaches the store now, late
        report = rig.ok(full=True)  # waits out the frozen run's lock, takes it over, publishes the edits
        assert report["store"]["written"] >= EDITED, report["store"]
        assert_latest(rig, values, table)
        frozen.send_signal(signal.SIGCONT)
        assert frozen.wait(timeout=120) != 0
    finally:
        if frozen.poll() is None:
            frozen.send_signal(signal.SIGCONT)
            frozen.kill()
        rig.proxy.release()
    output = log_path.read_text()
    assert "lost its lock" in output, output[-3000:]
    assert not find_secrets(output)
    rig.texts.append(output)
    assert_latest(rig, values, table)  # right after: nothing of the frozen run landed over the newer values
    noted = late is not None and "writes ended after this run's lease lapsed" in output
    if noted:  # its reply came after the lease (the freeze caught the request on the wire)
        assert [k.rsplit("/", 1)[-1].startswith(f"suspect-{late}-") for k in notes(rig)] == [True]
    report = rig.ok()  # the next plain hourly run
    if noted:
        assert report["published"][late]["upserted"] >= 60, report["published"][late]  # the noted records again
    assert not notes(rig)
    assert_latest(rig, values, table)
    return values


def _rig(make_rig: Any, **settings: Any) -> Rig:
    rig: Rig = make_rig(records=60, settings={"lock_ttl_seconds": LOCK_TTL, "socrata_chunk_size": 10,
                                              "agol_chunk_size": 10, **settings})
    return rig


def prime(rig: Rig) -> Rig:
    """A first full sync, then 20 edits synced: every place holds the "older" values."""
    rig.ok()
    edit(rig, sorted(r["id"] for r in rig.knack.records("object_1"))[:EDITED], "older")
    rig.ok()
    return rig


def test_a_frozen_socrata_publish_sends_nothing_after_a_takeover(make_rig, tmp_path: Path) -> None:
    rig = prime(_rig(make_rig))
    rig.socrata.reset_log()
    rig.socrata.set_faults(latency_ms=300)
    log_path = tmp_path / "socrata.log"
    frozen = start_flow(rig, "records_to_socrata", log_path, "--full", "--republish")
    freeze_takeover_thaw(rig, frozen, lambda: sum(r["method"] == "POST" for r in rig.socrata.requests) >= 1,
                         "the first chunk", log_path, late="socrata")


def test_a_frozen_arcgis_publish_sends_nothing_after_a_takeover(make_rig, tmp_path: Path) -> None:
    rig = prime(_rig(make_rig))
    rig.arcgis.reset_log()
    rig.arcgis.set_faults(latency_ms=300)
    log_path = tmp_path / "agol.log"
    frozen = start_flow(rig, "records_to_agol", log_path, "--full", "--republish")
    freeze_takeover_thaw(rig, frozen,
                         lambda: sum(r["path"].endswith("/applyEdits") for r in rig.arcgis.requests) >= 1,
                         "the first edit", log_path, late="agol")


def test_a_frozen_table_merge_commits_nothing_after_a_takeover(make_rig, moto_server: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Frozen once it holds the table's lock, while it streams its rows one per batch (a fence check each)."""
    rig = _rig(make_rig, tables=True, table_batch_rows=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)  # delta-rs reaches moto itself, not the proxy
    prime(rig)
    lock = rig.key("object_1", "lock-table")
    log_path = tmp_path / "table.log"
    frozen = start_flow(rig, "records_to_table", log_path, "--full", "--republish")
    freeze_takeover_thaw(rig, frozen, lambda: rig.state_doc("object_1", "lock-table") is not None,
                         f"the lock {lock}", log_path, table=True)


def test_a_frozen_store_write_lands_nothing_over_newer_objects(make_rig, tmp_path: Path) -> None:
    """The frozen run's record PUT is held in flight and reaches the store after the takeover's writes:
    it is conditional on the ETag its manifest recorded, so the store refuses it."""
    rig = prime(_rig(make_rig))
    ids = sorted(r["id"] for r in rig.knack.records("object_1"))[:EDITED]
    edit(rig, ids, "middle")  # what the frozen run fetches and starts to write
    rig.proxy.hold(f"PUT /{rig.bucket}/{rig.env}/{rig.app}/object_1/")
    log_path = tmp_path / "store.log"
    frozen = start_flow(rig, "records_to_s3", log_path)
    freeze_takeover_thaw(rig, frozen, rig.proxy.held.is_set, "a record write", log_path)


@pytest.mark.parametrize("role", ["socrata", "agol"])
def test_a_note_of_a_late_write_makes_the_next_run_send_those_records_again(make_rig, role: str) -> None:
    """What a stopped run leaves when a write of its own ended after its lease: the next run of that
    destination, even a plain hourly one with nothing new, sends the noted records again, then drops the
    note (and only it: a note of the other destination stays for that one)."""
    from tasks.domain.config import load_config
    from tasks.store.open import open_store

    rig = prime(_rig(make_rig))
    ids = sorted(r["id"] for r in rig.knack.records("object_1"))[:7]
    other = "agol" if role == "socrata" else "socrata"
    settings = load_config(rig.config_path).settings
    with open_store(rig.env, rig.app, settings) as store:
        store.write_suspects("object_1", role, "records-to-x (stopped)", [*ids, "no-such-record"])
        kept = store.write_suspects("object_1", other, "records-to-y (stopped)", ids[:2])
    report = rig.ok(destinations=[role])
    assert report["published"][role]["upserted"] == len(ids), report["published"][role]
    assert notes(rig) == [kept]
    assert rig.ok(destinations=[role])["published"][role]["upserted"] == 0  # the note was acted on once
    rig.assert_converged()
