"""A run costs what it does: ``python flows/sync.py`` of one container against a Prefect API server, the
S3 store (moto behind the benchmark's counting middleware), Knack, Socrata and ArcGIS emulators.

- a run that finds nothing new imports none of the publishing libraries (arcgis, pandas, arro3,
  deltalake), read from ``python -X importtime``'s own list of what the process imported;
- it reads each state object at most once (counted by the S3 endpoint, per key), and makes a bounded
  number of store requests in all;
- a run with changes still imports them and publishes to every destination.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import yaml

from bench.services import start_prefect_server
from emulators.knack import KnackEmulator, generate_app
from emulators.provision import agol_definition, socrata_schema
from tasks.domain.config import load_config
from tests.fixtures.socrata import SOCRATA_APP_TOKEN, SOCRATA_PASSWORD, SOCRATA_USERNAME

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"arcgis", "pandas", "arro3", "deltalake"}
DESTINATIONS = ("socrata", "agol", "table")
# The GETs of a run that finds nothing new (one container, three destinations): the metadata and its fetch
# stamp once; the Knack cursor once; the manifest and each destination's cursor by the offload (without
# that destination's lock) and again by the destination under its lock; what each destination received.
STATE = "dev/demo/_state/object_1"
READS = {"dev/demo/metadata.json": 1, "dev/demo/_state/metadata-fetched.json": 1, f"{STATE}/cursor-knack.json": 1,
         f"{STATE}/manifest.json": 1 + len(DESTINATIONS)} \
    | {f"{STATE}/cursor-{d}.json": 2 for d in DESTINATIONS} | {f"{STATE}/sent-{d}.json": 1 for d in DESTINATIONS}


@pytest.fixture
def prefect_api(tmp_path: Path) -> Iterator[str]:
    """A Prefect API server of this test's own (no block saved by another test stands in for the
    environment's credentials), as every deployment has one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(tmp_path / "prefect-server"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    with ExitStack() as stack:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield start_prefect_server(stack, tmp_path, env, port)


@pytest.fixture
def counting_s3() -> Iterator[str]:
    """moto's S3 app behind the benchmark's counting middleware (``bench/s3_server.py``)."""
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "s3_server.py")], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    url = json.loads(process.stdout.readline())["url"]
    yield url
    process.terminate()
    process.wait(timeout=15)


def imported(stderr: str) -> set[str]:
    """Top-level packages a process imported, from the lines ``-X importtime`` writes to stderr."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".", 1)[0])
    return names


def test_a_run_with_nothing_new_imports_and_reads_only_what_it_uses(
        tmp_path: Path, counting_s3: str, socrata_emulator: Any, arcgis_emulator: Any, prefect_api: str) -> None:
    bucket = f"cheap-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=counting_s3, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
    app_cfg = raw["apps"]["demo"]
    app_cfg["containers"] = {"object_1": app_cfg["containers"]["object_1"]}
    raw.update({"store": "s3", "bucket": bucket, "tables": True, "apps": {"demo": app_cfg}})
    config_path = tmp_path / "knack-services.yaml"
    app_cfg["containers"]["object_1"]["service_id"] = uuid.uuid4().hex  # an item of this test's own
    config_path.write_text(yaml.safe_dump(raw))
    cfg = load_config(config_path).container("demo", "object_1")
    service_id = cfg.service_id
    app = generate_app(records=60, seed=27)
    socrata_emulator.create_dataset(cfg.socrata_resource_id, socrata_schema(app["metadata"], cfg))
    arcgis_emulator.create_layer(service_id, agol_definition(app["metadata"], cfg), layer_id=0)

    with KnackEmulator(app) as knack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_", "KNACK_"))}
        env.update({"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": prefect_api,
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "KNACK_SERVICES_CONFIG": str(config_path),
                    "KNACK_APP_ID": knack.app_id, "KNACK_API_KEY": knack.api_key, "KNACK_API_URL": knack.api_url,
                    "SOCRATA_DOMAIN": socrata_emulator.url, "SOCRATA_USERNAME": SOCRATA_USERNAME,
                    "SOCRATA_PASSWORD": SOCRATA_PASSWORD, "SOCRATA_APP_TOKEN": SOCRATA_APP_TOKEN,
                    "AGOL_URL": arcgis_emulator.portal_url, "AGOL_USERNAME": arcgis_emulator.username,
                    "AGOL_PASSWORD": arcgis_emulator.password, "AGOL_CA_BUNDLE": str(arcgis_emulator.ca_bundle),
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": counting_s3})

        def sync() -> tuple[set[str], dict[str, Any]]:
            requests.post(f"{counting_s3}/_bench/reset", timeout=10)
            socrata_emulator.reset_log()
            arcgis_emulator.reset_log()
            done = subprocess.run([sys.executable, "-X", "importtime", "flows/sync.py", "-a", "demo", "-c",
                                   "object_1", "-e", "dev"], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300, stdin=subprocess.DEVNULL)
            said = "\n".join(line for line in (done.stdout + done.stderr).splitlines()
                             if not line.startswith("import time:"))
            assert done.returncode == 0, said[-3000:]
            return imported(done.stderr), requests.get(f"{counting_s3}/_bench/counts", timeout=10).json()

        sync()  # the first run: everything to every destination
        ids = sorted(r["id"] for r in knack.records("object_1"))
        assert sorted(r["id"] for r in socrata_emulator.rows(cfg.socrata_resource_id)) == ids

        modules, counts = sync()  # nothing new in Knack
        assert "prefect" in modules and "boto3" in modules  # the list is real: what the run needs is in it
        assert not HEAVY & modules, sorted(HEAVY & modules)
        gets = {key.removeprefix("get "): n for key, n in counts["keys"].items() if key.startswith("get ")}
        assert gets == READS, {k: (n, READS.get(k)) for k, n in gets.items() if n != READS.get(k)}
        assert counts["counts"].get("bucket", 0) <= 1  # the bucket checked once, not once per step
        reads = counts["counts"].get("get:state", 0) + counts["counts"].get("get:metadata", 0)
        assert reads <= sum(READS.values()) == 16, counts["counts"]  # no other object read
        assert not any(op.startswith("put:record") or op.startswith(("put:table", "get:table"))
                       for op in counts["counts"]), counts["counts"]

        edited = knack.edit_random("object_1", 3, seed=27)
        modules, counts = sync()  # three records changed: every destination gets them
        assert {"arcgis", "arro3", "deltalake"} <= modules
        assert counts["counts"].get("put:record") == 3
        assert counts["counts"].get("put:table", 0) > 0  # the table's merge commit
        sent = [row["id"] for entry in socrata_emulator.requests if entry["method"] in ("POST", "PUT")
                and isinstance(entry.get("body"), list) for row in entry["body"]]
        assert sorted(sent) == sorted(edited)
        edits = [e for e in arcgis_emulator.requests if e["path"].endswith("/applyEdits")]
        assert edits, [e["path"] for e in arcgis_emulator.requests]
        features = {f["attributes"]["id"] for f in arcgis_emulator.features(service_id, 0)}
        assert features == {r["id"] for r in knack.records("object_1")}
