"""Secrets never leave their blocks. Every rig of both suites holds distinctive secret values, and each
test's teardown sweeps its logs, the errors it saw, every artifact, every stored object and the log lines
the Prefect API stored for them (``Rig.assert_no_secrets``, ``assert_no_secret_in_api_logs``). This
module adds a real ``python flows/sync.py`` process failing on a wrong password, and its output."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from blocks import SocrataCredentials
from tests.faults.harness import (
    APP,
    ENV,
    SOCRATA_USER,
    WRONG_SECRET,
    Rig,
    assert_no_secret_in_api_logs,
    find_secrets,
)
from tests.fixtures.pipeline import ROOT

pytestmark = pytest.mark.integration


def test_a_failing_cli_run_names_the_problem_and_no_secret(make_rig) -> None:
    from prefect.settings import PREFECT_API_URL

    rig: Rig = make_rig(records=10)
    SocrataCredentials(domain=rig.socrata.url, username=SOCRATA_USER, password=WRONG_SECRET).save(
        "socrata-dev", overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "flows/sync.py", "-a", APP, "-c", "object_1", "-e", ENV, "--config",
                           str(rig.config_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    rig.texts.append(output)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sync failed: demo/object_1: the store is up to date, but publishing to socrata failed")
    assert "HTTP 401: Invalid username or password" in last, last
    assert not find_secrets(output), find_secrets(output)
    assert rig.agol_ids("object_1") == rig.knack_ids("object_1")


def test_no_secret_in_any_log_the_prefect_api_stored(make_rig) -> None:
    """A run failing on a wrong password logs its error to the session's API: no secret in any line."""
    started = datetime.now(UTC)
    rig: Rig = make_rig(records=10)
    SocrataCredentials(domain=rig.socrata.url, username=SOCRATA_USER, password=WRONG_SECRET).save(
        "socrata-dev", overwrite=True)
    assert rig.run().is_failed()
    text = assert_no_secret_in_api_logs(started)
    assert text, "the API should hold the run's logs"


def test_the_projects_own_lines_reach_the_runs_log_in_the_api(make_rig) -> None:
    """PREFECT_LOGGING_EXTRA_LOGGERS=tasks: each Socrata chunk and ArcGIS edit batch is in a run's log."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp
    from prefect.logging.handlers import APILogWorker

    started = datetime.now(UTC)
    rig: Rig = make_rig(records=10)
    assert rig.run().is_completed()
    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(timestamp=LogFilterTimestamp(after_=started)), limit=200)
    ours = {log.name: log for log in logs if log.name.startswith("tasks.") and log.flow_run_id is not None}
    assert "chunk 1, 10 rows" in ours["tasks.socrata.client"].message, ours
    assert "chunk 1, 10 features" in ours["tasks.agol.client"].message, ours
