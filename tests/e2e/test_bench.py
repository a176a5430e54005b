"""``bench/run.py`` end to end at a small N: the benchmark itself works and its count targets hold.

Timing is not judged here (that is what the benchmark is for); what is judged are counts that do not
depend on the machine: Knack requests per phase, exactly K writes downstream, D deletes and no row on reconcile.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RECORDS, CHANGED, DELETED = 1200, 7, 3


@pytest.mark.timeout(900)  # three phases of a real sync with every destination, as subprocesses
def test_bench_run_counts(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, "bench/run.py", "--records", str(RECORDS), "--changed", str(CHANGED),
                           "--deleted", str(DELETED), "--workdir", str(tmp_path / "work"), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(done.stdout[: done.stdout.rindex("}") + 1]) == result

    full, inc, rec = (result["phases"][name] for name in ("full", "incremental", "reconcile"))
    assert full["records_written"] == full["s3"]["record_puts"] == RECORDS
    assert full["knack"]["requests"] == 2 + 1  # two pages of 1,000 rows and the cold metadata request
    assert full["socrata"]["rows_sent"] == full["arcgis"]["features_sent"] == RECORDS
    assert inc["knack"]["requests"] == 1 and inc["metadata_cache"] == "warm"
    assert [inc["s3"]["record_puts"], inc["socrata"]["rows_sent"], inc["arcgis"]["features_sent"]] == [CHANGED] * 3
    assert rec["records_deleted"] == DELETED and rec["s3"]["record_puts"] == 0
    assert rec["delete_lookups"] == DELETED + 1  # each deleted record, and one listed record as a control
    assert rec["knack"]["requests"] == 2 + DELETED + 1
    assert rec["socrata"]["deleted_rows_sent"] == DELETED
    # the reconcile sends only what the destinations lack: the edits went hourly, so no row and no feature
    assert rec["socrata"]["rows_sent"] == rec["arcgis"]["features_sent"] == 0
    assert rec["s3"]["record_gets"] == 0
    assert full["table"]["rows_merged"] == full["table"]["inserted"] == RECORDS and full["table"]["bytes_written"] > 0
    assert (inc["table"]["updated"], inc["table"]["inserted"]) == (CHANGED, 0) and inc["table"]["deleted"] == 0
    assert rec["table"]["deleted"] == DELETED and rec["table"]["updated"] == rec["table"]["inserted"] == 0
    assert all(check["ok"] for name, check in result["checks"].items() if "store_writes" not in name), \
        result["checks"]
    assert result["reference"]["documents"] == RECORDS and full["store_vs_reference"] > 0
    assert 0 < full["peak_rss_mb"] < 4096

    ratio = subprocess.run([sys.executable, "bench/rss_ratio.py", str(out), str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert ratio.returncode == 0 and json.loads(ratio.stdout)["ratio"] == 1.0
