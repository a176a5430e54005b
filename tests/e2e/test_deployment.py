"""Deploy this repo's prefect.yaml to a local Prefect server and run a deployment twice, as a data team would.

A real ``prefect server``, a process work pool, ``prefect deploy`` with the pool overridden, a
``--run-once`` worker and ``prefect deployment run ... --watch``; the flow run talks to the emulators
(in this process) and to moto_server through blocks saved by ``python -m tasks.save_blocks``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from emulators.knack import KnackEmulator, generate_app
from emulators.provision import agol_definition, socrata_schema
from tasks.domain.config import load_config
from tests.fixtures.pipeline import write_config
from tests.fixtures.s3 import free_port
from tests.fixtures.socrata import SOCRATA_APP_TOKEN, SOCRATA_PASSWORD, SOCRATA_USERNAME

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPLOYMENT = "sync/demo-object-1-dev"


def cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run a command from the repo root; fail the test with its output when it fails."""
    proc = subprocess.run(list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Prefect server on a free loopback port; yields the environment that points at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_CLI_PROMPT": "false", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
                             "--no-ui"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("prefect server did not become healthy")
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_deployment(env: dict[str, str], *params: str) -> None:
    """A ``--run-once`` worker, and ``prefect deployment run ... --watch`` (exit 0 = Completed)."""
    worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "ci-process", "--run-once",
                               "--install-policy", "never"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        args = [str(BIN / "prefect"), "--no-prompt", "deployment", "run", DEPLOYMENT, "--watch",
                "--watch-interval", "1", "--watch-timeout", "300"]
        for param in params:
            args += ["--param", param]
        proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=360,
                              stdin=subprocess.DEVNULL)
        output, _ = worker.communicate(timeout=120)
        assert proc.returncode == 0, f"deployment run failed:\n{proc.stdout[-3000:]}\n--- worker:\n{output[-6000:]}"
        assert "Completed" in proc.stdout
    finally:
        if worker.poll() is None:
            worker.kill()


def sent_rows(socrata: Any, resource_id: str) -> int:
    return sum(len(r["body"]) for r in socrata.requests
               if r["method"] == "POST" and resource_id in r["path"] and isinstance(r["body"], list))


def sent_features(arcgis: Any, item_layer_path: str) -> int:
    return sum(r["sizes"].get("adds", 0) + r["sizes"].get("updates", 0) for r in arcgis.requests
               if r["path"].endswith("/applyEdits") and item_layer_path in r["path"])


def test_deploy_and_run_twice(server: dict[str, str], tmp_path: Path, moto_server: Any,
                              socrata_emulator: Any, arcgis_emulator: Any) -> None:
    client = moto_server.client()
    bucket = "e2e-knack-services"
    client.create_bucket(Bucket=bucket)
    app = generate_app(records=400, seed=5)
    knack = KnackEmulator(app, rate_limit_per_second=10)
    knack.start()
    try:
        config_path = write_config(tmp_path / "knack-services.yaml", bucket)
        cfg = load_config(config_path).container("demo", "object_1")
        socrata_emulator.create_dataset(cfg.socrata_resource_id, socrata_schema(app["metadata"], cfg))
        arcgis_emulator.create_layer(cfg.service_id, agol_definition(app["metadata"], cfg), layer_id=0)

        env = dict(server)
        env.update({"KNACK_SERVICES_CONFIG": str(config_path), "PROJECT_DIR": str(ROOT), "SKIP_IMAGE_BUILD": "1",
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_ENDPOINT_URL": moto_server.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
                    "KNACK_APP_ID": knack.app_id, "KNACK_API_KEY": knack.api_key, "KNACK_API_URL": knack.api_url,
                    "SOCRATA_DOMAIN": socrata_emulator.url, "SOCRATA_APP_TOKEN": SOCRATA_APP_TOKEN,
                    "SOCRATA_USERNAME": SOCRATA_USERNAME, "SOCRATA_PASSWORD": SOCRATA_PASSWORD,
                    "AGOL_URL": arcgis_emulator.portal_url, "AGOL_USERNAME": arcgis_emulator.username,
                    "AGOL_PASSWORD": arcgis_emulator.password, "AGOL_CA_BUNDLE": str(arcgis_emulator.ca_bundle)})
        prefect = str(BIN / "prefect")
        cli(env, prefect, "--no-prompt", "work-pool", "create", "ci-process", "--type", "process", "--overwrite")
        cli(env, prefect, "--no-prompt", "block", "register", "-m", "blocks")
        saved = cli(env, sys.executable, "-m", "tasks.save_blocks", "--env", "dev", "--app", "demo", "--bucket", bucket)
        assert {"saved block knack-demo-dev", "saved block socrata-dev", "saved block agol-dev",
                "saved block s3-dev"} <= set(saved.stdout.splitlines())
        # the run must get its credentials from the blocks, not from this environment
        for name in [k for k in env if k.startswith(("KNACK_A", "SOCRATA_", "AGOL_", "AWS_"))]:
            env.pop(name)
        cli(env, prefect, "--no-prompt", "deploy", "--name", "demo-object-1-dev", "--pool", "ci-process")
        deployed = yaml.safe_load((ROOT / "prefect.yaml").read_text())
        assert any(d["name"] == "demo-object-1-dev" for d in deployed["deployments"])

        run_deployment(env)
        ids = sorted(r["id"] for r in knack.records("object_1"))
        stored = sorted(o["Key"].rsplit("/", 1)[1][:-5] for p in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="dev/demo/object_1/") for o in p.get("Contents", []))
        assert stored == ids
        assert sorted(r["id"] for r in socrata_emulator.rows(cfg.socrata_resource_id)) == ids
        assert sorted(f["attributes"]["id"] for f in arcgis_emulator.features(cfg.service_id, 0)) == ids

        edited = set(knack.edit_random("object_1", 6, seed=9))
        socrata_emulator.reset_log()
        arcgis_emulator.reset_log()
        run_deployment(env)
        manifest = json.loads(client.get_object(Bucket=bucket, Key="dev/demo/_state/object_1/manifest.json")
                              ["Body"].read())
        latest = manifest["generation"]
        rewritten = {rid for rid, (_, _, gen) in manifest["records"].items() if gen == latest}
        assert rewritten == edited
        assert sent_rows(socrata_emulator, cfg.socrata_resource_id) == 6
        assert sent_features(arcgis_emulator, cfg.service_id) == 6
    finally:
        knack.stop()
