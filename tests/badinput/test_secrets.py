"""Secrets never leave their blocks. Every rig of both suites holds distinctive secret values, and each
test's teardown sweeps its logs, the errors it saw, every artifact and every stored object for them
(``Rig.assert_no_secrets``). This module adds what a teardown cannot see: a real ``python flows/sync.py``
process failing on a wrong password, its output, and every log line the Prefect API stored."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from blocks import SocrataCredentials
from tests.faults.harness import (
    APP,
    ENV,
    SECRETS,
    SOCRATA_USER,
    WRONG_SECRET,
    Rig,
    api_log_text,
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


def test_no_secret_in_any_log_the_prefect_api_stored(prefect_harness: None) -> None:
    """Last in this directory: every flow and task run of the suite so far logged to the session's API."""
    text = api_log_text()
    assert text, "the API should hold the suite's run logs"
    assert not [s for s in SECRETS if s in text]
