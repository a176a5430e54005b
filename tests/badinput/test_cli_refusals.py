"""Config mistakes on a flow script's command line: one line, exit 1 (2 for an env), before Prefect is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "knack-services.yaml"

# runs a flow script as ``python flows/<name>.py ...`` does, then says whether Prefect was imported
PROBE = """
import runpy, sys
script, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = script
try:
    runpy.run_path(script, run_name="__main__")
finally:
    print("prefect imported" if "prefect" in sys.modules else "prefect not imported")
"""


@pytest.mark.parametrize(("script", "args", "code", "expected"), [
    ("sync.py", ["-a", "nope", "-c", "object_1", "-e", "dev"],
     1, f"sync failed: {CONFIG}: unknown app 'nope' (configured apps: demo)"),
    ("sync.py", ["-a", "demo", "-c", "object_9", "-e", "prod"],
     1, f"sync failed: {CONFIG}: app 'demo' has no container 'object_9'"),
    ("sync.py", ["-a", "demo", "-c", "object_2", "-e", "dev", "--only", "socrata"],
     1, "sync failed: demo/object_2 does not publish to socrata (configured: agol)"),
    ("records_to_s3.py", ["-a", "demo", "-c", "object_1", "-e", "staging"],
     2, "records-to-s3 failed: env must be 'prod' or 'dev', got 'staging'"),
    ("records_to_agol.py", ["-a", "demo", "-c", "object_2", "-e", "dev", "-d", "yesterday"],
     1, "records-to-agol failed: cannot read 'yesterday' as a date"),
    ("metadata_to_s3.py", ["-a", "nope", "-e", "dev"], 1, "metadata-to-s3 failed: "),
    ("sync_app.py", ["-a", "nope", "-e", "dev", "--config", "missing.yaml"],
     1, "sync-app failed: cannot read config file missing.yaml"),
    ("sync.py", ["-a", "demo\n", "-c", "object_1", "-e", "dev"],
     1, f"sync failed: {CONFIG}: unknown app 'demo\\n' (configured apps: demo)"),
    ("sync.py", ["-a", "demo", "-c", "object_1 ", "-e", "dev"],
     1, f"sync failed: {CONFIG}: app 'demo' has no container 'object_1 '"),
    ("sync.py", ["-a", "demo", "-c", "object_1", "-e", "dev\n"],
     2, "sync failed: env must be 'prod' or 'dev', got 'dev\\n'"),
    ("records_to_s3.py", ["-a", "demo", "-c", "object_1", "-e", "dev", "-d", "0201-03-01"],
     1, "records-to-s3 failed: the date '0201-03-01' is outside the range a backfill can start from (1970-01-01 to"),
    ("sync.py", ["-a", "demo", "-c", "object_1", "-e", "dev", "-d", "9999-12-31T23:59:59-06:00"],
     1, "sync failed: the date '9999-12-31T23:59:59-06:00' is outside the range"),
], ids=["unknown-app", "unknown-container", "unconfigured-destination", "env", "date", "metadata-app", "no-config",
        "app-newline", "container-space", "env-newline", "date-too-old", "date-too-late"])
def test_a_config_mistake_is_one_line_before_prefect_is_imported(script: str, args: list[str], code: int,
                                                                  expected: str) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "flows" / script), "--config", str(CONFIG),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr  # one line, no traceback
    assert proc.stderr.startswith(expected), proc.stderr
    assert proc.stdout.strip() == "prefect not imported"


def test_a_good_command_line_gets_past_the_check_to_the_flow() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "flows" / "sync.py"), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "--only" in proc.stdout and "prefect imported" in proc.stdout
