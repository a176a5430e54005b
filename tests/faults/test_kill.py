"""``python flows/sync.py`` SIGKILLed at chosen points, then run again until everything converges.

The sync runs as a real subprocess against emulators started here (it reaches the session's Prefect
API for its blocks). Kill points are landed without any hook in the product:

- ``fetch``: Knack pages are slowed down and the kill comes once a page request has arrived;
- ``objects-manifest`` / ``manifest-cursor``: the S3 proxy holds the manifest (or Knack cursor) PUT,
  the process is killed while it waits, and the held request is dropped, never forwarded;
- ``publish-socrata`` / ``publish-agol``: a full refresh in 10-row chunks with a slow destination,
  killed once two chunks have landed.

CI runs each point once; ``pytest -m slow`` runs 10 kills at random points (seed printed).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.harness import APP, ENV, Rig, error_of, find_secrets
from tests.fixtures.pipeline import ROOT

pytestmark = pytest.mark.integration

POINTS = ("fetch", "objects-manifest", "manifest-cursor", "publish-socrata", "publish-agol")
LOCK_TTL = 2


def start_sync(rig: Rig, log_path: Path, full: bool, republish: bool = False) -> subprocess.Popen[bytes]:
    """``python flows/sync.py`` for object_1, on this session's Prefect API, output to ``log_path``."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "flows/sync.py", "-a", APP, "-c", "object_1", "-e", ENV, "--config", str(rig.config_path)]
    with log_path.open("ab") as out:
        return subprocess.Popen([*args, *(["--full"] if full else []), *(["--republish"] if republish else [])],
                                cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kill_at(rig: Rig, point: str, log_path: Path) -> None:
    """One run of the sync subprocess, SIGKILLed at ``point``."""
    full = point.startswith("publish-")
    if point == "fetch":
        rig.knack.set_latency(base_ms=1500)
        rig.knack.reset_counters()
    elif point == "objects-manifest":
        rig.proxy.hold(f"PUT /{rig.bucket}/{rig.key('object_1', 'manifest')}")
    elif point == "manifest-cursor":
        rig.proxy.hold(f"PUT /{rig.bucket}/{rig.key('object_1', 'cursor-knack')}")
    elif point == "publish-socrata":
        rig.socrata.reset_log()
        rig.socrata.set_faults(latency_ms=300)
    else:
        rig.arcgis.reset_log()
        rig.arcgis.set_faults(latency_ms=300)
    before, generation = rig.cursors(), _generation(rig)
    process = start_sync(rig, log_path, full, republish=full)  # every row goes: a publish long enough to kill
    try:
        if point == "fetch":
            wait_for(lambda: rig.knack.counters()["requests"] > rig.knack.counters()["metadata"], process,
                     "a page request")
            time.sleep(0.3)
        elif point in ("objects-manifest", "manifest-cursor"):
            wait_for(rig.proxy.held.is_set, process, f"the {point} PUT")
        elif point == "publish-socrata":
            wait_for(lambda: sum(r["method"] == "POST" for r in rig.socrata.requests) >= 2, process, "2 chunks")
        else:
            wait_for(lambda: sum(r["path"].endswith("/applyEdits") for r in rig.arcgis.requests) >= 2, process,
                     "2 chunks")
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        rig.proxy.release(forward=False)
        rig.knack.set_latency()
        rig.socrata.set_faults()
        rig.arcgis.set_faults()
    after = rig.cursors()
    if point in ("fetch", "objects-manifest", "manifest-cursor"):  # the Knack cursor moves last
        assert after["knack"] == before["knack"], point
    if point == "objects-manifest":
        assert _generation(rig) == generation, "killed before the manifest: it must be unchanged"
    if point == "manifest-cursor":
        assert _generation(rig) == generation + 1, "killed after the manifest: it must be saved"
    if point.startswith("publish-"):
        destination = point.removeprefix("publish-")
        assert after[destination] == before[destination], f"{destination} cursor moved in a killed publish"


def _generation(rig: Rig) -> int:
    manifest = rig.state_doc("object_1", "manifest")
    return int(manifest["generation"]) if manifest else 0


def kill_loop(rig: Rig, points: list[str], log_path: Path, seed: int) -> None:
    """Kill a run at each point, editing (and for full runs deleting) Knack records in between; then
    finish with a run that must complete, and a full refresh for the deletes."""
    rng = random.Random(seed)
    deleted: list[str] = []
    for number, point in enumerate(points):
        rig.knack.edit_random("object_1", rng.randint(2, 6), seed=seed * 100 + number)
        if point.startswith("publish-"):
            gone = rng.choice(rig.knack_ids("object_1"))
            rig.knack.delete_record("object_1", gone)
            deleted.append(gone)
        kill_at(rig, point, log_path)
    rig.knack.edit_random("object_1", 3, seed=seed)
    final = start_sync(rig, log_path, full=False)
    assert final.wait(timeout=300) == 0, log_path.read_text()[-3000:]
    rig.assert_converged(not_yet_deleted=deleted)
    rig.ok(full=True)  # deletes are seen on full refreshes only
    rig.assert_converged()
    output = log_path.read_text()
    assert not find_secrets(output), "a secret is in the sync process output"
    rig.texts.append(output)


def _rig(make_rig) -> Rig:
    return make_rig(records=80, settings={"lock_ttl_seconds": LOCK_TTL, "socrata_chunk_size": 10,
                                          "agol_chunk_size": 10})


def test_sigkill_at_each_point_then_converges(make_rig, tmp_path: Path) -> None:
    rig = _rig(make_rig)
    rig.ok()  # a first complete run, so later kills interrupt incremental work as well
    kill_loop(rig, list(POINTS), tmp_path / "sync.log", seed=1)


@pytest.mark.slow
def test_sigkill_at_random_points_ten_times(make_rig, tmp_path: Path) -> None:
    seed = int(os.environ.get("KILL_SEED") or random.randrange(1_000_000))
    print(f"kill loop seed {seed} (KILL_SEED={seed} repeats it)")
    rig = _rig(make_rig)
    rng = random.Random(seed)
    kill_loop(rig, [rng.choice(POINTS) for _ in range(10)], tmp_path / "sync.log", seed)


def _kill_during_fetch(rig: Rig, log_path: Path) -> None:
    rig.knack.edit_random("object_1", 4, seed=7)
    rig.knack.set_latency(base_ms=1500)
    rig.knack.reset_counters()
    process = start_sync(rig, log_path, full=False)
    try:
        wait_for(lambda: rig.knack.counters()["requests"] > rig.knack.counters()["metadata"], process,
                 "a page request")
        assert rig.locks() == [rig.key("object_1", "lock-knack")]
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        rig.knack.set_latency()


def test_a_rerun_right_after_a_kill_waits_out_the_dead_lock_and_converges(make_rig, tmp_path: Path) -> None:
    """The dead run's lock stops changing: the rerun watches it for one life on its own clock, takes it over."""
    rig = make_rig(records=40, settings={"lock_ttl_seconds": 8})
    rig.ok()
    log_path = tmp_path / "sync.log"
    _kill_during_fetch(rig, log_path)
    rerun = start_sync(rig, log_path, full=False)  # at once: the dead run's lock has not expired yet
    assert rerun.wait(timeout=120) == 0, log_path.read_text()[-3000:]
    output = log_path.read_text()
    assert "is held by run" not in output
    assert "took over the lock of run sync-demo-object_1-dev" in output and "unchanged for" in output, output[-3000:]
    rig.assert_converged()


def test_a_live_holder_that_prefect_calls_crashed_keeps_its_lock(make_rig, tmp_path: Path) -> None:
    """A crashed state is no proof that the process is gone (a worker that lost the API marks a live run
    Crashed): a second run still sees the holder's heartbeat, leaves its lock alone and fails naming it."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    rig = make_rig(records=40, settings={"lock_ttl_seconds": 4})
    rig.ok()
    log_path = tmp_path / "sync.log"
    rig.knack.edit_random("object_1", 4, seed=7)
    rig.knack.set_latency(base_ms=6000)  # the holder fetches (and beats) for a while
    rig.knack.reset_counters()
    holder = start_sync(rig, log_path, full=False)
    try:
        wait_for(lambda: rig.knack.counters()["requests"] > rig.knack.counters()["metadata"], holder,
                 "a page request")
        key = rig.key("object_1", "lock-knack")
        lock = json.loads(rig.s3.get_object(Bucket=rig.bucket, Key=key)["Body"].read())
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(lock["flow_run_id"], Crashed(message="worker lost the API"), force=True)
        state = rig.run()
        assert not state.is_completed()
        message = error_of(state)
        assert "is held by run sync-demo-object_1-dev" in message and "alive" in message, message
        assert json.loads(rig.s3.get_object(Bucket=rig.bucket, Key=key)["Body"].read())["owner"] == lock["owner"]
    finally:
        rig.knack.set_latency()
        holder.wait(timeout=120)
    rig.ok()
    rig.assert_converged()
