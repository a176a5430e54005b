"""Start and stop the benchmark's servers, each in its own process, and talk to their admin routes.

Every server prints one JSON "ready" line on stdout; we wait for it, keep the process handle, and
terminate only the processes we started (by handle) when the run ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SOCRATA_USER, SOCRATA_PASSWORD = "bench-key", "bench-secret"
AGOL_USER, AGOL_PASSWORD = "bench", "bench-pw"


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    ready: dict[str, Any]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start(stack: ExitStack, name: str, argv: list[str], log_dir: Path, timeout: float = 600,
          env: dict[str, str] | None = None) -> Server:
    """Run ``argv`` and wait for its JSON ready line (stderr goes to ``<log_dir>/<name>.log``)."""
    log = (log_dir / f"{name}.log").open("w")
    stack.callback(log.close)
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
                               env=env or os.environ.copy())
    server = Server(name, process, {})
    stack.callback(server.stop)
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} exited before it was ready (see {log.name})")
        line = line.strip()
        if line.startswith("{"):
            server.ready = json.loads(line)
            return server
    raise RuntimeError(f"{name} was not ready after {timeout:.0f} s")


def get(url: str, timeout: float = 600, verify: str | bool = True) -> Any:
    response = requests.get(url, timeout=timeout, verify=verify)
    response.raise_for_status()
    return response.json()


def post(url: str, body: Any = None, timeout: float = 60) -> Any:
    response = requests.post(url, json=body, timeout=timeout)
    response.raise_for_status()
    return response.json()


def delete(url: str, timeout: float = 60, verify: str | bool = True) -> Any:
    response = requests.delete(url, timeout=timeout, verify=verify)
    response.raise_for_status()
    return response.json()


def start_prefect_server(stack: ExitStack, log_dir: Path, env: dict[str, str], port: int) -> str:
    """A local Prefect API server (for the global-concurrency rate limiter); returns its API URL."""
    log = (log_dir / "prefect-server.log").open("w")
    stack.callback(log.close)
    process = subprocess.Popen([str(Path(PY).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
                                "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server("prefect", process, {})
    stack.callback(server.stop)
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError("prefect server exited (see prefect-server.log)")
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("prefect server did not start")


def socrata_counts(url: str, resource_id: str) -> dict[str, int]:
    """Rows sent to the dataset (upserts) and ``:deleted`` rows, from the emulator's request log."""
    rows = deleted = requests_ = reads = 0
    for entry in get(f"{url}/_admin/requests"):
        if entry["method"] == "GET" and entry["path"] == f"/resource/{resource_id}.json":
            reads += 1  # row reads: the reconcile's id listing and drift audit, the delete checks
        if entry["method"] in ("POST", "PUT") and entry["path"] == f"/resource/{resource_id}.json":
            requests_ += 1
            body = entry.get("body")
            if isinstance(body, list):
                gone = sum(1 for row in body if isinstance(row, dict) and row.get(":deleted"))
                deleted += gone
                rows += len(body) - gone
    return {"rows_sent": rows, "deleted_rows_sent": deleted, "write_requests": requests_, "read_requests": reads}


def arcgis_counts(url: str, ca_bundle: str) -> dict[str, int]:
    """Features sent in edits (adds + updates), features deleted by id, and edit requests, from the
    emulator's request log (ids in a ``deletes``/``objectIds`` value the log cut short are not counted)."""
    features = edits = deleted = reads = 0
    for entry in get(f"{url}/_admin/requests", verify=ca_bundle)["requests"]:
        params = entry.get("params") or {}
        if entry["path"].endswith("/query"):
            reads += 1  # feature reads: the reconcile's id listing and drift audit, upsert look-ups
        for key in ("deletes", "objectIds"):
            value = str(params.get(key) or "").strip("[] ")
            if value and entry["path"].endswith(("/applyEdits", "/deleteFeatures")):
                deleted += len([v for v in value.split(",") if v.strip()])
        sizes = entry.get("sizes") or {}
        if sizes:
            edits += 1
            features += sum(max(v, 0) for k, v in sizes.items() if k in ("adds", "updates", "features"))
        elif entry["path"].endswith(("/applyEdits", "/deleteFeatures")):
            edits += 1
    return {"features_sent": features, "deleted_features": deleted, "edit_requests": edits, "read_requests": reads}


def start_destinations(stack: ExitStack, work: Path, resource_id: str, service_id: str,
                       layer_id: int) -> tuple[dict[str, str], dict[str, str]]:
    """The Socrata and ArcGIS emulators for one container (their schemas in ``work``): returns their URLs
    with the emulator's CA bundle under ``ca``, and the sync's environment for them."""
    socrata = start(stack, "socrata", [PY, "-m", "emulators", "socrata", "--username", SOCRATA_USER,
                                       "--password", SOCRATA_PASSWORD,
                                       "--dataset", f"{resource_id}={work / 'socrata.json'}"], work)
    arcgis = start(stack, "arcgis", [PY, "-m", "emulators", "arcgis", "--cert-dir", str(work / "certs"),
                                     "--username", AGOL_USER, "--password", AGOL_PASSWORD,
                                     "--layer", f"{service_id}/{layer_id}={work / 'agol.json'}"], work)
    urls = {"socrata": socrata.ready["url"], "arcgis": arcgis.ready["url"], "ca": arcgis.ready["ca_bundle"]}
    env = {"SOCRATA_DOMAIN": urls["socrata"], "SOCRATA_USERNAME": SOCRATA_USER, "SOCRATA_PASSWORD": SOCRATA_PASSWORD,
           "AGOL_URL": arcgis.ready["portal_url"], "AGOL_USERNAME": AGOL_USER, "AGOL_PASSWORD": AGOL_PASSWORD,
           "AGOL_CA_BUNDLE": urls["ca"]}
    return urls, env
