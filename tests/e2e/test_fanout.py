"""The scale-out path end to end: the ``sync-app`` fan-out deployment on a pool with two workers.

Every container of the demo app becomes a run of its own ``sync`` deployment; the runs spread over both
workers, every one completes, and the app's Knack rate limit (a Prefect global concurrency limit shared
by the worker processes) holds across them, judged by the Knack emulator's own arrival times.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulators.knack import KnackEmulator, generate_app
from tasks.domain.config import load_config
from tests.e2e.test_deployment import (
    BIN,
    POOL,
    ROOT,
    UUID,
    api,
    cli,
    deploy,
    process_deploy_env,
    process_server,  # noqa: F401 - the fixture
)
from tests.fixtures.pipeline import write_config

# timing: it judges Knack's limit by arrival times, which a saturated machine can crowd closer together
# than the limiter spaced them (docs/guide.md, "A 429 widens the spacing"), so it runs in the timing phase
pytestmark = [pytest.mark.e2e, pytest.mark.containers, pytest.mark.timing]

LIMIT = 2  # Knack requests per second for the app, in the config and in the emulator


def store_only_config(path: Path, bucket: str) -> Path:
    """The demo app with no destinations (the fan-out is what is under test) and a low Knack limit."""
    write_config(path, bucket)
    raw = yaml.safe_load(path.read_text())
    app = raw["apps"]["demo"]
    app["rate_limit_per_second"] = LIMIT
    for container in app["containers"].values():
        for key in ("socrata_resource_id", "socrata_field_map", "append_timestamp_column", "service_id",
                    "layer_id", "agol_kind", "no_replace_socrata"):
            container.pop(key, None)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)), default=0)


def test_fan_out_over_two_workers_completes_every_container_within_the_knack_limit(
        process_server: dict[str, str], container_engine: dict[str, str], tmp_path: Path,  # noqa: F811
        moto_server: Any) -> None:
    client = moto_server.client()
    bucket = "e2e-fan-out"
    client.create_bucket(Bucket=bucket)
    knack = KnackEmulator(generate_app(records=2500, seed=3), rate_limit_per_second=LIMIT)
    knack.start()
    workers: list[subprocess.Popen[str]] = []
    try:
        config_path = store_only_config(tmp_path / "knack-services.yaml", bucket)
        containers = list(load_config(config_path).app("demo").containers)
        env = process_deploy_env(process_server, container_engine)
        env.update({"KNACK_SERVICES_CONFIG": str(config_path), "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": moto_server.endpoint,
                    "AWS_DEFAULT_REGION": "us-east-1", "KNACK_APP_ID": knack.app_id,
                    "KNACK_API_KEY": knack.api_key, "KNACK_API_URL": knack.api_url})
        names = ["demo-dev", *(f"demo-{key.replace('_', '-')}-dev" for key in containers)]
        deploy(env, *(arg for name in names for arg in ("--name", name)))

        logs = [tmp_path / f"worker-{n}.log" for n in (1, 2)]
        for n, log in enumerate(logs, 1):  # two slots each: the parent run takes one of them
            workers.append(subprocess.Popen(
                [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", f"worker-{n}", "--limit", "2",
                 "--install-policy", "never"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=log.open("w"), stderr=subprocess.STDOUT, text=True))
        parent = UUID.findall(cli(env, str(BIN / "prefect"), "--no-prompt", "deployment", "run",
                                  "sync-app/demo-dev").stdout)[0]
        for _ in range(600):
            state = api(env, "GET", f"/flow_runs/{parent}")["state"]["type"]
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(0.5)
        worker_logs = [log.read_text() for log in logs]
        assert state == "COMPLETED", f"sync-app ended {state}:\n" + "\n---\n".join(w[-4000:] for w in worker_logs)

        children = api(env, "POST", "/flow_runs/filter",
                       {"flow_runs": {"parent_flow_run_id": {"any_": [parent]}}, "limit": 50})
        runs = api(env, "POST", "/flow_runs/filter", {"limit": 200})
        syncs = {r["id"]: r for r in runs if r["id"] != parent and r.get("deployment_id")
                 and r["name"].startswith("sync-demo-")}
        assert sorted(r["parameters"]["container"] for r in syncs.values()) == sorted(containers), children
        assert {r["state"]["type"] for r in syncs.values()} == {"COMPLETED"}
        ran_on = [{rid for rid in syncs if rid in text} for text in worker_logs]
        assert ran_on[0] and ran_on[1], f"every sync run on one worker: {ran_on}"
        assert ran_on[0] | ran_on[1] == set(syncs)

        for key in containers:  # every container landed in the store
            listed = client.list_objects_v2(Bucket=bucket, Prefix=f"dev/demo/{key}/", MaxKeys=1)
            assert listed.get("KeyCount", 0) == 1, key
        counters = knack.counters()
        assert counters["requests"] >= len(containers) + 1
        assert "429" not in counters["by_status"], counters
        assert busiest_second(knack.request_times()) <= LIMIT
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=30)
        knack.stop()
