"""The image and an hourly run in a container: what the image adds to its base, and what a run that finds
nothing new costs from container start to exit.

    python bench/container.py [--records 300] [--runs 3] [--image knack-services:bench] [--out FILE]

Brings up the container engine (``scripts/engine.sh up``; root, Debian), builds the Dockerfile with
``podman build`` (the base image is the engine's TEST STAND-IN, Debian's Python: its own size is not the
official image's, so only what the image adds is reported), starts moto (``bench/s3_server.py``), a Knack
app (``bench/knack_host.py``), the Socrata and ArcGIS emulators and a Prefect API server on loopback, then
runs ``python flows/sync.py -a demo -c object_1 -e dev`` in a container of the image (host networking,
credentials from the environment): one full run, then ``--runs`` runs with nothing new. Each container's
start-to-exit time is read from ``podman inspect`` (State.StartedAt/FinishedAt); its CPU seconds from the
sync process's own rusage (user + system), printed by a two-line wrapper in the container.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import APP, CONTAINER, write_inputs  # noqa: E402
from bench.services import start, start_destinations, start_prefect_server  # noqa: E402
from tests.fixtures.s3 import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# runs the sync as a child and prints its CPU seconds (user + system) as the last line
WRAPPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
           "u = resource.getrusage(resource.RUSAGE_CHILDREN); print('cpu_seconds', u.ru_utime + u.ru_stime); "
           "sys.exit(code)")


def sh(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def stamp(value: str) -> datetime:
    """A podman time stamp (nanoseconds, ``Z`` or an offset, ``T`` or a space) as a datetime."""
    m = re.match(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?", value)
    if not m:
        raise ValueError(f"not a time stamp: {value!r}")
    date, clock, frac, zone = m.groups()
    zone = "+00:00" if zone in (None, "Z") else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
    return datetime.fromisoformat(f"{date}T{clock}.{((frac or '') + '000000')[:6]}{zone}")


def image_sizes(image: str) -> dict[str, Any]:
    """The image's size, its base's (the first FROM) and each layer the Dockerfile added."""
    base = next(line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
                if line.upper().startswith("FROM "))
    size = json.loads(sh("podman", "image", "inspect", image))[0]["Size"]
    base_size = json.loads(sh("podman", "image", "inspect", f"docker.io/library/{base}"))[0]["Size"]
    layers = json.loads(sh("podman", "history", "--format", "json", image))
    added = [{"size_mb": round(layer["size"] / 1e6, 1), "step": layer.get("CreatedBy", layer.get("createdBy", ""))[-90:]}
             for layer in layers if layer.get("size", 0) > 1_000_000]
    return {"image": image, "base": base, "image_mb": round(size / 1e6, 1), "base_mb": round(base_size / 1e6, 1),
            "added_mb": round((size - base_size) / 1e6, 1), "layers_over_1mb": added}


def run_in_container(image: str, env: dict[str, str], mounts: list[str], argv: list[str]) -> dict[str, Any]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    args = ["podman", "run", "--name", name, "--network", "host"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    for mount in mounts:
        args += ["--volume", mount]
    proc = subprocess.run([*args, image, "python", "-c", WRAPPER, *argv], capture_output=True, text=True)
    try:
        state = json.loads(sh("podman", "inspect", name))[0]["State"]
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the run in {image} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    cpu = float(next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("cpu_seconds")).split()[1])
    seconds = (stamp(state["FinishedAt"]) - stamp(state["StartedAt"])).total_seconds()
    return {"start_to_exit_s": round(seconds, 2), "cpu_s": round(cpu, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=300)
    p.add_argument("--runs", type=int, default=3, help="runs with nothing new (the median is reported)")
    p.add_argument("--image", default="knack-services:bench")
    p.add_argument("--no-build", action="store_true", help="use --image as it is")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    args.rate_limit, args.store_workers, args.no_table = 10, 16, True

    sh("bash", "scripts/engine.sh", "up")
    engine = dict(line.removeprefix("export ").split("=", 1) for line in
                  sh("bash", "scripts/engine.sh", "env").splitlines())
    if not args.no_build:
        sh("podman", "build", "--network", "host", "-t", args.image, ".")
    out: dict[str, Any] = {"sizes": image_sizes(args.image), "records": args.records}

    work = Path(tempfile.mkdtemp(prefix="knack-bench-", dir="/tmp"))
    work.chmod(0o755)
    try:
        with ExitStack() as stack:
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_", "KNACK_"))}
            base_env.update(engine)
            base_env.update({"PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
            api = start_prefect_server(stack, work, base_env, free_port())
            s3 = start(stack, "s3", [PY, str(ROOT / "bench" / "s3_server.py")], work)
            s3_url = s3.ready["url"]
            bucket = "bench-container"
            boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="testing",
                         aws_secret_access_key="testing").create_bucket(Bucket=bucket)
            config, cfg = write_inputs(work, args, bucket)
            _, dest_env = start_destinations(stack, work, cfg.socrata_resource_id, cfg.service_id, cfg.layer_id)
            knack = start(stack, "knack", [PY, str(ROOT / "bench" / "knack_host.py"), "--records",
                                           str(args.records), "--rate-limit", "10"], work)
            ca = work / "arcgis-ca.pem"
            shutil.copy(dest_env["AGOL_CA_BUNDLE"], ca)
            ca.chmod(0o644)
            config.chmod(0o644)
            env = {"PREFECT_API_URL": api, "KNACK_SERVICES_CONFIG": str(config),
                   "KNACK_APP_ID": knack.ready["app_id"], "KNACK_API_KEY": knack.ready["api_key"],
                   "KNACK_API_URL": knack.ready["api_url"], "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_ENDPOINT_URL": s3_url, **dest_env, "AGOL_CA_BUNDLE": str(ca)}
            argv = ["python", "flows/sync.py", "-a", APP, "-c", CONTAINER, "-e", "dev"]
            mounts = [f"{work}:{work}:ro"]
            out["first_run"] = run_in_container(args.image, env, mounts, argv)
            out["unchanged_runs"] = [run_in_container(args.image, env, mounts, argv) for _ in range(args.runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    runs = sorted(out["unchanged_runs"], key=lambda r: r["start_to_exit_s"])
    out["unchanged_median"] = runs[len(runs) // 2]
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
