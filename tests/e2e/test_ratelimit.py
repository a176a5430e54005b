"""The batched rate limiter against a real Prefect server: two processes fetching one app at once.

The server is the session's (``prefect_harness``: a Prefect API server in its own process, on SQLite); the
limit's name is this test's own, so nothing else the session ran shares it.

Each process pages through a container with its own ``KnackClient`` under ``make_rate_limiter`` (the
Prefect limit ``knack-<app>``, taken in batches). The Knack emulator's own arrival times judge the
limit; the limiters' own counters say how many Prefect API calls the limit cost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from emulators.knack import KnackEmulator, generate_app
from tests.e2e.test_deployment import ROOT
from tests.e2e.test_fanout import busiest_second

pytestmark = [pytest.mark.e2e, pytest.mark.timing]

LIMIT, RECORDS = 10, 60  # 60 one-record pages per process: 60 requests each

FETCH = """
import json, sys
from blocks.knack import KnackCredentials
from tasks.knack.client import KnackClient
from tasks.knack.ratelimit import limiter_stats, make_rate_limiter

app_id, api_key, api_url, container, app = sys.argv[1:6]
creds = KnackCredentials(app_id=app_id, api_key=api_key, api_url=api_url)
with KnackClient(creds, app, limiter=make_rate_limiter(app, LIMIT)) as client:
    pages = sum(1 for _ in client.iter_pages(container, rows_per_page=1))
    print(json.dumps({"pages": pages, "requests": client.stats.requests, "limiter": limiter_stats()}))
""".replace("LIMIT", str(LIMIT))


def server_env() -> dict[str, str]:
    """This process's environment, pointed at the session's Prefect API server."""
    from prefect.settings import PREFECT_API_URL

    return os.environ | {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}


def test_two_processes_share_the_limit_with_one_api_call_per_batch(prefect_harness: None, tmp_path: Path) -> None:
    app = f"e2e-{uuid.uuid4().hex[:8]}"  # the limit knack-<app>, new to the server
    knack = KnackEmulator(generate_app(records=RECORDS, seed=3), rate_limit_per_second=LIMIT)
    knack.start()
    try:
        knack.set_latency(base_ms=50)
        script = tmp_path / "fetch.py"
        script.write_text(FETCH)
        procs = [subprocess.Popen([sys.executable, str(script), knack.app_id, knack.api_key, knack.api_url,
                                   container, app], cwd=ROOT, env=server_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for container in ("object_1", "object_1")]
        outs: list[dict[str, Any]] = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=240)
            assert proc.returncode == 0, stderr[-3000:]
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
        counters = knack.counters()
        times = knack.request_times()
    finally:
        knack.stop()
    requests = sum(out["requests"] for out in outs)
    assert all(out["pages"] == RECORDS for out in outs)
    assert requests == 2 * RECORDS and counters["requests"] == requests
    assert "429" not in counters["by_status"], counters
    assert busiest_second(times) <= LIMIT
    stats = [out["limiter"][f"knack-{app}"] for out in outs]
    assert not any(s["fallback"] for s in stats)
    batches = sum(s["batches"] for s in stats)
    calls = sum(s["api_calls"] for s in stats)
    # one call per batch of ten, the takes refused and the reads of the limit while the other process
    # held it, and creating the limit (a take that finds it missing, then a create; in each process at
    # most: both may find it missing)
    assert batches <= requests / 10 + 2
    assert calls <= batches + sum(s["refused"] + s["reads"] for s in stats) + 2 * 2
    print(f"requests {requests}, batches {batches}, API calls {calls}, stats {stats}")
