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
    """The phases run against one Prefect API server, as deployments do (a temporary server per phase
    would start three times; ``test_bench_paths_side_by_side`` runs that path)."""
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, "bench/run.py", "--records", str(RECORDS), "--changed", str(CHANGED),
                           "--deleted", str(DELETED), "--prefect-server", "--workdir", str(tmp_path / "work"),
                           "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(done.stdout[: done.stdout.rindex("}") + 1]) == result

    full, inc, rec = (result["phases"][name] for name in ("full", "incremental", "reconcile"))
    assert full["records_written"] == full["s3"]["record_puts"] == RECORDS
    # two pages of 1,000 rows, the closing check of a listing of several pages, the cold metadata request
    assert full["knack"]["requests"] == 2 + 1 + 1
    assert full["socrata"]["rows_sent"] == full["arcgis"]["features_sent"] == RECORDS
    assert inc["knack"]["requests"] == 1 and inc["metadata_cache"] == "warm"
    assert [inc["s3"]["record_puts"], inc["socrata"]["rows_sent"], inc["arcgis"]["features_sent"]] == [CHANGED] * 3
    assert rec["records_deleted"] == DELETED and rec["s3"]["record_puts"] == 0
    assert rec["delete_lookups"] == DELETED + 1  # each deleted record, and one listed record as a control
    assert rec["knack"]["requests"] == 2 + 1 + DELETED + 1  # pages, closing check, look-ups
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


@pytest.mark.timeout(1500)  # a Prefect server, six syncs and three publishing runs
def test_bench_paths_side_by_side(tmp_path: Path) -> None:
    """``--paths ephemeral,prefect --concurrent 2 --reconcile-records``: both paths in one run, their counts
    (the reconcile's three runs on the ``prefect`` path's server: ``--prefect-server``)."""
    out = tmp_path / "paths.json"
    done = subprocess.run([sys.executable, "bench/run.py", "--records", "2000", "--store-only", "--paths",
                           "ephemeral,prefect", "--concurrent", "2", "--reconcile-records", "300", "--changed", "3",
                           "--deleted", "2", "--prefect-server", "--workdir", str(tmp_path / "work"),
                           "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert "| prefect | two together | 1,000 + 1,000 |" in done.stderr
    for path in ("ephemeral", "prefect"):
        one, two = result["paths"][path]["one"], result["paths"][path]["two"]
        # two pages, the closing check of a listing of several pages, and the cold metadata
        assert one["page_requests"] == 2 + 1 and one["knack_requests"] == 4
        assert two["page_requests"] == 2 and two["records_per_run"] == [1000, 1000]
        assert one["t_star_over_t"] is not None and two["t_star_over_t"] is not None  # T* is 0 at no latency
    assert result["paths"]["ephemeral"]["one"]["prefect_api_calls_for_rate_limit"] == 0
    prefect = result["paths"]["prefect"]
    assert prefect["one"]["http_429"] == prefect["two"]["http_429"] == 0
    assert prefect["one"]["prefect_api_calls_for_rate_limit"] >= 1  # a batch at least (and creating the limit)
    assert all(not s["fallback"] for s in prefect["two"]["limiter"])
    phases = result["reconcile"]["phases"]
    assert phases["full"]["socrata_rows_sent"] == phases["full"]["arcgis_features_sent"] == 300
    assert phases["reconcile-edited"]["socrata_deleted_rows_sent"] == phases["reconcile-edited"][
        "arcgis_features_deleted"] == 2
    unchanged, edited = phases["reconcile-unchanged"], phases["reconcile-edited"]
    # after no change nothing goes out; after 3 edits and 2 deletes, 3 rows and 2 deletes to each destination
    assert unchanged["socrata_rows_sent"] == unchanged["socrata_deleted_rows_sent"] == 0
    assert unchanged["arcgis_features_sent"] == unchanged["arcgis_features_deleted"] == 0
    assert edited["socrata_rows_sent"] == edited["arcgis_features_sent"] == 3
    assert unchanged["ok"] and edited["ok"] and (unchanged["target"], edited["target"]) == (0, 5)
