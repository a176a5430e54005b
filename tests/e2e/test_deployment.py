"""Deploy this repo's prefect.yaml to a Prefect server and run its deployments in containers, as a data team would.

A real ``prefect server``, the docker work pool prefect.yaml names, ``prefect deploy --all`` with the real
prefect-docker build and push steps (the Dockerfile built by a real container engine, pushed to a real
registry), one ``prefect worker start --type docker`` and ``prefect deployment run``. The engine is podman
serving Docker's API (``scripts/engine.sh``, the ``container_engine`` fixture); the Dockerfile's base image
is a TEST STAND-IN built from Debian's packages. Every flow run is a container on host networking that
talks to moto_server and the emulators on loopback through the blocks ``python -m tasks.save_blocks``
saved. One server, one image build and one worker for the whole module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from emulators.knack import KnackEmulator, generate_app
from emulators.provision import agol_definition, socrata_schema
from emulators.socrata import SocrataEmulator
from scripts.image_tag import commit_tag
from tasks.domain.config import ENVS, load_config
from tests.fixtures.pipeline import write_config
from tests.fixtures.s3 import free_port
from tests.fixtures.socrata import SOCRATA_APP_TOKEN, SOCRATA_PASSWORD, SOCRATA_USERNAME

pytestmark = [pytest.mark.e2e, pytest.mark.containers, pytest.mark.timeout(900)]  # the first test builds the image

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
DEPLOYMENT = "sync/demo-object-1-dev"
POOL = "knack-docker"
UUID = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}")
FINAL = ("COMPLETED", "CANCELLED", "FAILED", "CRASHED")
BUCKET = "e2e-knack-services"
SECOND_APP = "parks"
LOCK_TTL = 8  # a killed run's lock is taken over after this many seconds unchanged


def cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command from the repo root; fail the test with its output when it fails."""
    proc = subprocess.run(list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=300)
    assert not check or proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def shared() -> Iterator[Path]:
    """A folder the containers see at the same path (read-only): the run's config and the ArcGIS
    emulator's CA bundle. Readable by the image's user (10001), unlike pytest's own temp folders."""
    path = Path(tempfile.mkdtemp(prefix="knack-e2e-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running_server(home: Path, extra: dict[str, str], pool_type: str,
                   shared: Path | None = None) -> Iterator[dict[str, str]]:
    """A Prefect server on a free loopback port and the pool prefect.yaml names, of ``pool_type``; yields
    the environment that points at it (plus ``extra``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_", "KNACK_", "SOCRATA_", "AGOL_"))}
    env.update(extra)
    env.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_CLI_PROMPT": "false", "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
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
        args = [PREFECT, "--no-prompt", "work-pool", "create", POOL, "--type", pool_type, "--overwrite"]
        if shared is not None:
            # the pool's own defaults: containers on the host's network (the services are on loopback)
            # and the shared folder mounted read-only at its own path
            template = json.loads(cli(env, PREFECT, "work-pool", "get-default-base-job-template", "--type",
                                      pool_type).stdout)
            props = template["variables"]["properties"]
            props["volumes"]["default"] = [f"{shared}:{shared}:ro"]
            props["network_mode"]["default"] = "host"
            (home / "template.json").write_text(json.dumps(template))
            args += ["--base-job-template", str(home / "template.json")]
        cli(env, *args)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(container_engine: dict[str, str], shared: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The docker pool's server: its environment points at the server and at the container engine."""
    with running_server(tmp_path_factory.mktemp("prefect-home"), container_engine, "docker", shared) as env:
        yield env


@pytest.fixture(scope="module")
def process_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A server whose pool of that name is a process pool: runs from this checkout, no engine needed."""
    with running_server(tmp_path_factory.mktemp("prefect-home"), {}, "process") as env:
        yield env


def deploy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``prefect deploy`` of the real prefect.yaml (its real prefect-docker build and push steps)."""
    return cli(env, PREFECT, "--no-prompt", "deploy", *args, timeout=900)


def process_deploy_env(server: dict[str, str], engine: dict[str, str]) -> dict[str, str]:
    """A deploy for a process pool: the image is built and pushed as for any deploy; runs use the checkout."""
    return {**server, **engine, "IMAGE": f"{engine['KNACK_ENGINE_REGISTRY']}/knack-services",
            "PROJECT_DIR": str(ROOT)}


def api(env: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    response = requests.request(method, env["PREFECT_API_URL"] + path, json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def saved_deployments(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in api(env, "POST", "/deployments/filter", {"limit": 200})}


def image_name(env: dict[str, str]) -> str:
    return f"{env['KNACK_ENGINE_REGISTRY']}/knack-services"


def deploy_env(server: dict[str, str]) -> dict[str, str]:
    """What a deploy from this checkout needs (the operator's guide): the image's registry and /app."""
    return {**server, "IMAGE": image_name(server), "PROJECT_DIR": "/app"}


@dataclass
class Deployed:
    env: dict[str, str]
    image: str
    output: str
    registry_log: list[str]


@pytest.fixture(scope="module")
def deployed(server: dict[str, str]) -> Deployed:
    """``prefect deploy --all`` from this checkout with the real prefect.yaml: one image build, one push."""
    env = deploy_env(server)
    log = Path(server["KNACK_ENGINE_DIR"]) / "registry.log"
    before = log.read_text().count("\n") if log.exists() else 0
    proc = deploy(env, "--all")
    pushed = log.read_text().splitlines()[before:] if log.exists() else []
    return Deployed(env, f"{image_name(server)}:{commit_tag()}", proc.stdout + proc.stderr, pushed)


@pytest.fixture(scope="module")
def worker(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ``prefect worker start --type docker`` for every run of the module; yields its log."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen([PREFECT, "worker", "start", "--pool", POOL, "--type", "docker",
                                 "--install-policy", "never", "--limit", "4"], cwd=ROOT, env=deployed.env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class World:
    """The services the containers reach on loopback, and what the test reads back."""
    s3: Any
    knack: KnackEmulator
    parks: KnackEmulator
    socrata: SocrataEmulator
    arcgis: Any
    config_path: Path
    resource_id: str
    service_id: str


@pytest.fixture(scope="module")
def world(deployed: Deployed, shared: Path, moto_server: Any, arcgis_emulator: Any) -> Iterator[World]:
    """Two Knack apps (demo and parks), a bucket, the Socrata and ArcGIS emulators; the config in the
    shared folder and the blocks saved on the server (the containers get every credential from them)."""
    client = moto_server.client()
    client.create_bucket(Bucket=BUCKET)
    app, second = generate_app(records=400, seed=5), generate_app(records=120, seed=8)
    config_path = write_config(shared / "knack-services.yaml", BUCKET, lock_ttl_seconds=LOCK_TTL)
    raw = yaml.safe_load(config_path.read_text())
    parks = dict(raw["apps"]["demo"])
    parks["containers"] = {"object_1": {**raw["apps"]["demo"]["containers"]["object_1"],
                                        "socrata_resource_id": "prks-0001", "service_id": uuid.uuid4().hex}}
    raw["apps"][SECOND_APP] = parks
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config_path.chmod(0o644)
    ca_bundle = shared / "arcgis-ca.pem"
    shutil.copy(arcgis_emulator.ca_bundle, ca_bundle)
    ca_bundle.chmod(0o644)
    cfg = load_config(config_path).container("demo", "object_1")

    with SocrataEmulator(SOCRATA_USERNAME, SOCRATA_PASSWORD, app_token=SOCRATA_APP_TOKEN) as socrata, \
            KnackEmulator(app, rate_limit_per_second=10) as knack, KnackEmulator(second) as parks_knack:
        socrata.create_dataset(cfg.socrata_resource_id, socrata_schema(app["metadata"], cfg))
        arcgis_emulator.create_layer(cfg.service_id, agol_definition(app["metadata"], cfg), layer_id=0)
        env = {**deployed.env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_ENDPOINT_URL": moto_server.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
               "KNACK_APP_ID": knack.app_id, "KNACK_API_KEY": knack.api_key, "KNACK_API_URL": knack.api_url,
               "SOCRATA_DOMAIN": socrata.url, "SOCRATA_APP_TOKEN": SOCRATA_APP_TOKEN,
               "SOCRATA_USERNAME": SOCRATA_USERNAME, "SOCRATA_PASSWORD": SOCRATA_PASSWORD,
               "AGOL_URL": arcgis_emulator.portal_url, "AGOL_USERNAME": arcgis_emulator.username,
               "AGOL_PASSWORD": arcgis_emulator.password, "AGOL_CA_BUNDLE": str(ca_bundle)}
        cli(env, PREFECT, "--no-prompt", "block", "register", "-m", "blocks")
        saved = cli(env, sys.executable, "-m", "tasks.save_blocks", "--env", "dev", "--app", "demo", "--bucket", BUCKET)
        assert {"saved block knack-demo-dev", "saved block socrata-dev", "saved block agol-dev",
                "saved block s3-dev"} <= set(saved.stdout.splitlines())
        env.update({"KNACK_APP_ID": parks_knack.app_id, "KNACK_API_KEY": parks_knack.api_key,
                    "KNACK_API_URL": parks_knack.api_url})
        saved = cli(env, sys.executable, "-m", "tasks.save_blocks", "--env", "dev", "--app", SECOND_APP)
        assert "saved block knack-parks-dev" in saved.stdout.splitlines()
        yield World(client, knack, parks_knack, socrata, arcgis_emulator, config_path, cfg.socrata_resource_id,
                    cfg.service_id)


def start_run(env: dict[str, str], deployment: str, *params: str, job_variables: dict[str, Any] | None = None) -> str:
    """``prefect deployment run`` with ``--param k=v`` (and ``--job-variable``); the new run's id."""
    args = [PREFECT, "--no-prompt", "deployment", "run", deployment]
    for param in params:
        args += ["--param", param]
    for key, value in (job_variables or {}).items():
        args += ["--job-variable", f"{key}={json.dumps(value)}"]
    return UUID.findall(cli(env, *args).stdout)[0]


def wait_for(env: dict[str, str], ids: list[str], worker_log: Path, timeout: float = 180) -> dict[str, str]:
    """Each run's final state type once every run of ``ids`` is final."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {i: api(env, "GET", f"/flow_runs/{i}")["state"]["type"] for i in ids}
        if all(s in FINAL for s in states.values()):
            return states
        time.sleep(1)
    raise AssertionError(f"runs not final after {timeout} s: {states}\n--- worker:\n{worker_log.read_text()[-6000:]}")


def state_names(env: dict[str, str], run_id: str) -> list[str]:
    return [s["name"] for s in api(env, "GET", f"/flow_run_states/?flow_run_id={run_id}")]


def stored_ids(world: World, app: str = "demo", container: str = "object_1") -> list[str]:
    return sorted(o["Key"].rsplit("/", 1)[1][:-5] for p in world.s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=f"dev/{app}/{container}/") for o in p.get("Contents", []))


def knack_ids(knack: KnackEmulator, container: str = "object_1") -> list[str]:
    return sorted(r["id"] for r in knack.records(container))


def sent_rows(socrata: Any, resource_id: str) -> int:
    return sum(len(r["body"]) for r in socrata.requests
               if r["method"] == "POST" and resource_id in r["path"] and isinstance(r["body"], list))


def sent_features(arcgis: Any, item_layer_path: str) -> int:
    return sum(r["sizes"].get("adds", 0) + r["sizes"].get("updates", 0) for r in arcgis.requests
               if r["path"].endswith("/applyEdits") and item_layer_path in r["path"])


def removed(run_id: str, timeout: float = 60) -> bool:
    """Whether the run's container is gone (waiting for its removal after the run ended)."""
    deadline = time.monotonic() + timeout
    while podman("ps", "-a", "--filter", f"label=io.prefect.flow-run-id={run_id}", "-q").stdout.strip():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def config_param(world: World) -> str:
    return f"config_path={world.config_path}"


# -- deploying -----------------------------------------------------------------------------------------


def test_deploy_without_an_image_fails_and_saves_nothing(server: dict[str, str]) -> None:
    env = {k: v for k, v in server.items() if k not in ("IMAGE", "IMAGE_TAG", "PROJECT_DIR")}
    proc = subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    assert "prefect deploy refused: IMAGE is not set" in proc.stdout + proc.stderr
    assert saved_deployments(server) == {}


def test_deploy_all_builds_and_pushes_once_and_every_deployment_runs_that_tag(deployed: Deployed) -> None:
    env, image = deployed.env, deployed.image
    tag = commit_tag()
    # one build: the image exists in the engine under the commit's tag, and prefect-docker built it once
    inspect = json.loads(podman("image", "inspect", image).stdout)
    assert len(inspect) == 1
    # prefect-docker streams the engine's build log: the first stage starts once (podman's own step lines)
    assert len(re.findall(r"\[1/2\] STEP 1/\d+: FROM ", deployed.output)) == 1, deployed.output[-3000:]
    # one push: the registry holds that tag, and received its manifest once
    tags = requests.get(f"http://{env['KNACK_ENGINE_REGISTRY']}/v2/knack-services/tags/list", timeout=10).json()
    assert tag in tags["tags"]
    manifest_puts = [line for line in deployed.registry_log
                     if "PUT" in line and "/v2/knack-services/manifests/" in line and "response completed" in line]
    assert len(manifest_puts) == 1, manifest_puts

    expected = {d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    saved = saved_deployments(env)
    assert set(saved) == expected
    config = load_config(ROOT / "config" / "knack-services.yaml")
    syncs = {f"{app.name}-{key.replace('_', '-')}-{env_}" for app in config.apps.values()
             for key in app.containers for env_ in ENVS}
    for name, dep in saved.items():
        assert dep["job_variables"]["image"] == image, name
        assert dep["work_pool_name"] == POOL, name
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


def test_the_image_runs_as_its_own_user_and_ships_only_the_product(deployed: Deployed) -> None:
    script = ("id -u; ls /app; for tool in uv pip pip3; do command -v $tool || true; done; "
              "python -c 'import importlib.util as u; print(\"modules\", u.find_spec(\"pip\"), u.find_spec(\"uv\"))'; "
              "python -c 'import flows.sync, tasks, blocks; print(\"imports ok\")'")
    out = podman("run", "--rm", "--network", "host", deployed.image, "sh", "-c", script).stdout.splitlines()
    assert out[0] == "10001"
    listing = set(out[1:out.index(next(line for line in out if line.startswith("modules")))])
    assert {"flows", "tasks", "blocks", "config"} <= listing
    assert not listing & {"tests", "bench", "emulators", "scripts", "pyproject.toml", "uv.lock", ".venv"}, listing
    assert "modules None None" in out  # neither pip nor uv importable
    assert not [line for line in out if line.endswith(("/uv", "/pip", "/pip3"))], out  # nor on PATH
    assert out[-1] == "imports ok"


# -- runs in containers ----------------------------------------------------------------------------------


def test_a_dev_deployment_refuses_a_prod_run_before_anything_is_read(deployed: Deployed, worker: Path) -> None:
    run_id = start_run(deployed.env, DEPLOYMENT, "env=prod")
    assert wait_for(deployed.env, [run_id], worker) == {run_id: "FAILED"}
    message = api(deployed.env, "GET", f"/flow_runs/{run_id}")["state"]["message"]
    assert "deployment sync/demo-object-1-dev belongs to env dev; a run for env prod is refused" in message, message


def test_a_full_run_then_an_incremental_run_in_containers_log_no_secret(deployed: Deployed, world: World,
                                                                         worker: Path) -> None:
    env, knack = deployed.env, world.knack
    # the nightly full run, its container kept so its log can be read
    run_id = start_run(env, DEPLOYMENT, "full=true", config_param(world), job_variables={"auto_remove": False})
    assert wait_for(env, [run_id], worker) == {run_id: "COMPLETED"}
    ids = knack_ids(knack)
    assert stored_ids(world) == ids
    assert sorted(r["id"] for r in world.socrata.rows(world.resource_id)) == ids
    assert sorted(f["attributes"]["id"] for f in world.arcgis.features(world.service_id, 0)) == ids

    # the run was a container of the deployed image, kept (auto_remove off for this run) to read its log
    found = podman("ps", "-a", "--filter", f"label=io.prefect.flow-run-id={run_id}", "--format", "json").stdout
    containers = json.loads(found)
    assert len(containers) == 1, containers
    name = containers[0]["Names"][0]
    assert containers[0]["Image"] == deployed.image
    assert podman("wait", name).stdout.strip() == "0"  # the run reports Completed just before its process exits
    logs = podman("logs", name)
    podman("rm", name)
    said = logs.stdout + logs.stderr
    assert "Finished in state Completed" in said, said[-2000:]
    for secret in (knack.api_key, SOCRATA_PASSWORD, world.arcgis.password, "testing"):
        assert secret not in said, "a secret reached the container's log"

    # the hourly run: only what changed since
    edited = set(knack.edit_random("object_1", 5, seed=9))
    world.socrata.reset_log()
    world.arcgis.reset_log()
    run_id = start_run(env, DEPLOYMENT, config_param(world))
    assert wait_for(env, [run_id], worker) == {run_id: "COMPLETED"}
    assert sent_rows(world.socrata, world.resource_id) == len(edited)
    assert sent_features(world.arcgis, world.service_id) == len(edited)
    manifest = json.loads(world.s3.get_object(Bucket=BUCKET, Key="dev/demo/_state/object_1/manifest.json")
                          ["Body"].read())
    latest = manifest["generation"]
    assert {rid for rid, (_, _, gen) in manifest["records"].items() if gen == latest} == edited
    assert removed(run_id)  # auto_remove: the finished run leaves no container behind


def test_overlapping_runs_wait_their_turn_and_a_fresh_container_reuses_the_stored_metadata(
        deployed: Deployed, world: World, worker: Path) -> None:
    env, knack = deployed.env, world.knack
    knack.reset_counters()
    # the hourly run and the nightly full run at once: the newcomer waits for its turn, then runs
    ids = [start_run(env, DEPLOYMENT, config_param(world)), start_run(env, DEPLOYMENT, "full=true", config_param(world))]
    states = wait_for(env, ids, worker)
    assert sorted(states.values()) == ["COMPLETED", "COMPLETED"], states
    assert any("AwaitingConcurrencySlot" in state_names(env, i) for i in ids), [state_names(env, i) for i in ids]
    # every run is a new container with empty Prefect result storage: the metadata comes from the store
    assert knack.counters()["metadata"] == 0
    assert knack.counters()["requests"] >= 2
    assert stored_ids(world) == knack_ids(knack)


def test_a_container_killed_mid_run_then_the_next_run_converges(deployed: Deployed, world: World,
                                                                worker: Path) -> None:
    env, knack = deployed.env, world.knack
    edited = set(knack.edit_random("object_1", 20, seed=31))
    knack.set_latency(base_ms=2500)  # slow Knack: the run holds its lock long enough to be killed
    lock = "dev/demo/_state/object_1/lock-knack.json"
    # kept after it dies (auto_remove off): the worker reads its exit code and reports the run crashed
    run_id = start_run(env, DEPLOYMENT, "full=true", config_param(world), job_variables={"auto_remove": False})
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                world.s3.head_object(Bucket=BUCKET, Key=lock)
                break
            except world.s3.exceptions.ClientError:
                time.sleep(0.3)
        else:
            raise AssertionError(f"the run never took its lock: {state_names(env, run_id)}\n{worker.read_text()[-4000:]}")
        found = podman("ps", "--filter", f"label=io.prefect.flow-run-id={run_id}", "-q").stdout.split()
        assert len(found) == 1, found
        podman("kill", found[0])
    finally:
        knack.set_latency()
    assert wait_for(env, [run_id], worker) == {run_id: "CRASHED"}
    assert podman("wait", found[0]).stdout.strip() == "137"  # SIGKILL
    podman("rm", found[0])
    world.s3.head_object(Bucket=BUCKET, Key=lock)  # the killed run's lock is left behind

    # the next run waits out the dead lock's life, takes it over and converges
    run_id = start_run(env, DEPLOYMENT, "full=true", config_param(world))
    assert wait_for(env, [run_id], worker) == {run_id: "COMPLETED"}
    said = [entry["message"] for entry in api(env, "POST", "/logs/filter",
                                              {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})]
    assert any("took over the lock of run" in line for line in said), said[-20:]
    ids = knack_ids(knack)
    assert stored_ids(world) == ids
    assert sorted(r["id"] for r in world.socrata.rows(world.resource_id)) == ids
    by_id = {r["id"]: r for r in knack.records("object_1")}
    for rid in edited:
        body = json.loads(world.s3.get_object(Bucket=BUCKET, Key=f"dev/demo/object_1/{rid}.json")["Body"].read())
        assert by_id[rid].get("field_27") is not None, rid  # the edit's modified date, compared below
        assert body["id"] == rid and body.get("field_27") == by_id[rid].get("field_27"), rid


def test_two_apps_share_one_worker(deployed: Deployed, world: World, worker: Path) -> None:
    env = deployed.env
    edited = set(world.knack.edit_random("object_1", 3, seed=41))
    ids = [start_run(env, DEPLOYMENT, config_param(world)),
           start_run(env, "records-to-s3/records-to-s3", f"app={SECOND_APP}", "container=object_1", "env=dev",
                     config_param(world))]
    states = wait_for(env, ids, worker)
    assert list(states.values()) == ["COMPLETED", "COMPLETED"], states
    assert stored_ids(world) == knack_ids(world.knack)
    assert stored_ids(world, SECOND_APP) == knack_ids(world.parks)
    manifest = json.loads(world.s3.get_object(Bucket=BUCKET, Key="dev/demo/_state/object_1/manifest.json")
                          ["Body"].read())
    latest = manifest["generation"]
    assert {rid for rid, (_, _, gen) in manifest["records"].items() if gen == latest} == edited
    for run_id in ids:  # one worker took both apps' runs
        assert run_id in worker.read_text(), run_id
