"""Deploy this repo's prefect.yaml to a local Prefect server and run its deployments, as a data team would.

A real ``prefect server``, a process work pool, ``prefect deploy`` with the pool overridden, ``--run-once``
workers and ``prefect deployment run``; the flow runs talk to the emulators (in this process) and to
moto_server through blocks saved by ``python -m tasks.save_blocks``. There is no Docker engine here, so
the deploys that get past the image check use a copy of prefect.yaml whose build and push steps are
``tests/e2e/docker_steps.py`` (prefect-docker's caching, no engine); everything else is the real file.
"""

from __future__ import annotations

import json
import os
import re
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
from scripts.image_tag import commit_tag
from tasks.domain.config import ENVS, load_config
from tests.fixtures.pipeline import write_config
from tests.fixtures.s3 import free_port
from tests.fixtures.socrata import SOCRATA_APP_TOKEN, SOCRATA_PASSWORD, SOCRATA_USERNAME

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPLOYMENT = "sync/demo-object-1-dev"
POOL = "knack-docker"
IMAGE = "registry.example.org/knack-services"
UUID = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}")


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
                "PREFECT_CLI_PROMPT": "false", "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
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
        # the pool prefect.yaml names, as a process pool: the docker job variables are stored and ignored
        cli(env, str(BIN / "prefect"), "--no-prompt", "work-pool", "create", POOL, "--type", "process", "--overwrite")
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def sent_rows(socrata: Any, resource_id: str) -> int:
    return sum(len(r["body"]) for r in socrata.requests
               if r["method"] == "POST" and resource_id in r["path"] and isinstance(r["body"], list))


def sent_features(arcgis: Any, item_layer_path: str) -> int:
    return sum(r["sizes"].get("adds", 0) + r["sizes"].get("updates", 0) for r in arcgis.requests
               if r["path"].endswith("/applyEdits") and item_layer_path in r["path"])


def api(env: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    response = requests.request(method, env["PREFECT_API_URL"] + path, json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def saved_deployments(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in api(env, "POST", "/deployments/filter", {"limit": 200})}


def deploy_env(server: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """What a deploy from this checkout needs, and the copy of prefect.yaml with engine-free docker steps."""
    text = (ROOT / "prefect.yaml").read_text()
    assert text.count("prefect_docker.deployments.steps.") == 2
    (tmp_path / "prefect.yaml").write_text(text.replace("prefect_docker.deployments.steps.", "tests.e2e.docker_steps."))
    return {**server, "IMAGE": IMAGE, "PROJECT_DIR": str(ROOT), "PYTHONPATH": str(ROOT),
            "DOCKER_STEPS_LOG": str(tmp_path / "docker-steps.log")}


def deploy(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(env, str(BIN / "prefect"), "--no-prompt", "deploy", "--prefect-file", str(tmp_path / "prefect.yaml"),
               *args)


def test_deploy_without_an_image_fails_and_saves_nothing(server: dict[str, str]) -> None:
    env = {k: v for k, v in server.items() if k not in ("IMAGE", "IMAGE_TAG", "PROJECT_DIR")}
    proc = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    assert "prefect deploy refused: IMAGE is not set" in proc.stdout + proc.stderr
    assert saved_deployments(server) == {}


def test_deploy_all_builds_and_pushes_once_and_every_deployment_runs_that_tag(server: dict[str, str],
                                                                                tmp_path: Path) -> None:
    env = deploy_env(server, tmp_path)
    deploy(env, tmp_path, "--all")
    tag = commit_tag()
    steps = (tmp_path / "docker-steps.log").read_text().splitlines()
    assert steps == [f"build {IMAGE}:{tag} Dockerfile", f"push {IMAGE}:{tag}"]

    expected = {d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    saved = saved_deployments(server)
    assert set(saved) == expected
    config = load_config(ROOT / "config" / "knack-services.yaml")
    syncs = {f"{app.name}-{key.replace('_', '-')}-{env_}" for app in config.apps.values()
             for key in app.containers for env_ in ENVS}
    for name, dep in saved.items():
        assert dep["job_variables"]["image"] == f"{IMAGE}:{tag}", name
        schema = dep["parameter_openapi_schema"]
        assert "env" in schema["required"], name
        assert schema["properties"]["env"]["enum"] == ["dev", "prod"], name
        if name in syncs:
            assert dep["global_concurrency_limit"]["limit"] == 1, name
            assert dep["concurrency_options"]["collision_strategy"] == "ENQUEUE", name
            assert dep["job_variables"]["auto_remove"] is True, name
            assert dep["job_variables"]["env"]["KNACK_SERVICES_ENV"] == name.rsplit("-", 1)[1], name
    assert syncs <= set(saved)
    since = saved["demo-object-1-prod"]["parameter_openapi_schema"]["properties"]["since"]
    assert {"type": "string", "format": "date-time"} in since["anyOf"]


def start_runs(env: dict[str, str], count: int) -> list[str]:
    ids = []
    for _ in range(count):
        out = cli(env, str(BIN / "prefect"), "--no-prompt", "deployment", "run", DEPLOYMENT).stdout
        ids.append(UUID.findall(out)[0])
    return ids


def work(env: dict[str, str], ids: list[str]) -> dict[str, str]:
    """A ``--run-once`` worker for the runs ``ids``; their final state types."""
    proc = subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--run-once",
                           "--install-policy", "never"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=360)
    states = {i: api(env, "GET", f"/flow_runs/{i}")["state"]["type"] for i in ids}
    assert all(s in ("COMPLETED", "CANCELLED", "FAILED", "CRASHED") for s in states.values()), \
        f"{states}\n--- worker:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return states


def work_until_done(env: dict[str, str], ids: list[str], rounds: int = 4) -> dict[str, str]:
    """``--run-once`` workers until every run of ``ids`` is final (a run waiting for its deployment's
    concurrency slot is taken by a later worker)."""
    final = ("COMPLETED", "CANCELLED", "FAILED", "CRASHED")
    states: dict[str, str] = {}
    for _ in range(rounds):
        subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--run-once", "--install-policy",
                        "never"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=360)
        states = {i: api(env, "GET", f"/flow_runs/{i}")["state"]["type"] for i in ids}
        if all(s in final for s in states.values()):
            return states
        time.sleep(1.5)  # the server's slot wait (1 s here, 30 s by default)
    return states


def state_names(env: dict[str, str], run_id: str) -> list[str]:
    return [s["name"] for s in api(env, "GET", f"/flow_run_states/?flow_run_id={run_id}")]


def test_a_dev_deployment_refuses_a_prod_run_before_anything_is_read(server: dict[str, str], tmp_path: Path) -> None:
    env = deploy_env(server, tmp_path)
    deploy(env, tmp_path, "--name", "demo-object-1-dev")
    out = cli(env, str(BIN / "prefect"), "--no-prompt", "deployment", "run", DEPLOYMENT, "--param", "env=prod").stdout
    run_id = UUID.findall(out)[0]
    assert work_until_done(env, [run_id]) == {run_id: "FAILED"}
    message = api(env, "GET", f"/flow_runs/{run_id}")["state"]["message"]
    assert "deployment sync/demo-object-1-dev belongs to env dev; a run for env prod is refused" in message, message


def test_overlapping_runs_wait_their_turn_and_a_fresh_process_reuses_the_stored_metadata(
        server: dict[str, str], tmp_path: Path, moto_server: Any, socrata_emulator: Any, arcgis_emulator: Any) -> None:
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

        env = deploy_env(server, tmp_path)
        env.update({"KNACK_SERVICES_CONFIG": str(config_path),
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_ENDPOINT_URL": moto_server.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
                    "KNACK_APP_ID": knack.app_id, "KNACK_API_KEY": knack.api_key, "KNACK_API_URL": knack.api_url,
                    "SOCRATA_DOMAIN": socrata_emulator.url, "SOCRATA_APP_TOKEN": SOCRATA_APP_TOKEN,
                    "SOCRATA_USERNAME": SOCRATA_USERNAME, "SOCRATA_PASSWORD": SOCRATA_PASSWORD,
                    "AGOL_URL": arcgis_emulator.portal_url, "AGOL_USERNAME": arcgis_emulator.username,
                    "AGOL_PASSWORD": arcgis_emulator.password, "AGOL_CA_BUNDLE": str(arcgis_emulator.ca_bundle)})
        prefect = str(BIN / "prefect")
        cli(env, prefect, "--no-prompt", "block", "register", "-m", "blocks")
        saved = cli(env, sys.executable, "-m", "tasks.save_blocks", "--env", "dev", "--app", "demo", "--bucket", bucket)
        assert {"saved block knack-demo-dev", "saved block socrata-dev", "saved block agol-dev",
                "saved block s3-dev"} <= set(saved.stdout.splitlines())
        # the runs must get their credentials from the blocks, not from this environment
        for name in [k for k in env if k.startswith(("KNACK_A", "SOCRATA_", "AGOL_", "AWS_"))]:
            env.pop(name)
        deploy(env, tmp_path, "--name", "demo-object-1-dev")

        # the hourly run and the nightly full run at once: the newcomer waits for its turn, then runs
        ids = start_runs(env, 2)
        states = work_until_done(env, ids)
        assert sorted(states.values()) == ["COMPLETED", "COMPLETED"], states
        assert any("AwaitingConcurrencySlot" in state_names(env, i) for i in ids), [state_names(env, i) for i in ids]
        assert knack.counters()["metadata"] == 1
        ids = sorted(r["id"] for r in knack.records("object_1"))
        stored = sorted(o["Key"].rsplit("/", 1)[1][:-5] for p in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="dev/demo/object_1/") for o in p.get("Contents", []))
        assert stored == ids
        assert sorted(r["id"] for r in socrata_emulator.rows(cfg.socrata_resource_id)) == ids
        assert sorted(f["attributes"]["id"] for f in arcgis_emulator.features(cfg.service_id, 0)) == ids

        # a new process with empty Prefect result storage, as in a new container: no metadata request
        edited = set(knack.edit_random("object_1", 6, seed=9))
        knack.reset_counters()
        socrata_emulator.reset_log()
        arcgis_emulator.reset_log()
        env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(tmp_path / "fresh-results")
        assert list(work(env, start_runs(env, 1)).values()) == ["COMPLETED"]
        assert knack.counters()["metadata"] == 0
        assert knack.counters()["requests"] >= 1
        manifest = json.loads(client.get_object(Bucket=bucket, Key="dev/demo/_state/object_1/manifest.json")
                              ["Body"].read())
        latest = manifest["generation"]
        rewritten = {rid for rid, (_, _, gen) in manifest["records"].items() if gen == latest}
        assert rewritten == edited
        assert sent_rows(socrata_emulator, cfg.socrata_resource_id) == 6
        assert sent_features(arcgis_emulator, cfg.service_id) == 6
    finally:
        knack.stop()
