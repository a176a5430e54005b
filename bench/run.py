"""Benchmark one container's sync end to end: ``python bench/run.py --records N [options]``.

Starts (each in its own process, on loopback) the Knack emulator, moto's S3 server with a counting
middleware, the Socrata and ArcGIS emulators; measures a reference boto3 uploader against the same
S3 endpoint; then runs ``sync`` of ``demo/object_1`` three times, each in a fresh process:

1. ``full``: first run (no cursor, cold metadata cache);
2. ``incremental``: after K edits and D deletes in Knack;
3. ``reconcile``: ``--full`` (sees the D deletes; sends the destinations only what they lack: with
   ``--phases full,reconcile`` the K edits and D deletes are made before it).

``unchanged`` (e.g. ``--phases full,unchanged --prefect-server``): the hourly run that finds nothing new,
as a deployment runs it: ``python flows/sync.py -a demo -c object_1 -e dev`` from the command line,
``--repeat`` times; per run its wall and CPU seconds (the process's user + system time), its Knack and
store requests, and what it sent (nothing).

Prints one JSON object (also written to ``--json``): per phase wall seconds, records/s, Knack
requests and pages/s (emulator counters), T*/T, S3 PUTs/GETs (server side), Socrata rows and ArcGIS
features sent (emulator logs), peak RSS of the sync process; plus the reference and the checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import metrics  # noqa: E402
from bench.services import (  # noqa: E402
    PY,
    ROOT,
    arcgis_counts,
    delete,
    get,
    post,
    socrata_counts,
    start,
    start_destinations,
    start_prefect_server,
)

APP, CONTAINER, VIEW, ENV, BUCKET, ROWS = "demo", "object_1", "view_1", "dev", "bench-store", 1000


PHASES = ("full", "incremental", "reconcile", "reconcile-unchanged", "reconcile-edited", "unchanged")
FULL = {"full", "reconcile", "reconcile-unchanged", "reconcile-edited"}  # run with --full (full is the first run)
EDITED = {"incremental", "reconcile-edited"}  # K edits and D deletes in Knack before the phase


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, required=True, help="signals in the generated Knack app")
    p.add_argument("--changed", type=int, default=10, help="records edited before the incremental run (K)")
    p.add_argument("--deleted", type=int, default=5, help="records deleted before the incremental run (D)")
    p.add_argument("--knack-latency-ms", type=float, default=0.0, help="base latency of a Knack page (L)")
    p.add_argument("--per-record-ms", type=float, default=0.0, help="extra Knack latency per record (R)")
    p.add_argument("--rate-limit", type=int, default=10, help="Knack requests per second (app limit)")
    p.add_argument("--rate-limit-batch", type=int, help="the app's rate_limit_batch (default: the config's)")
    p.add_argument("--store-workers", type=int, default=16, help="store_workers in the config")
    p.add_argument("--reference-workers", type=int, default=16, help="threads and connections of the reference")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the reference uploader (fetch-only questions, e.g. T*/T at large N)")
    p.add_argument("--store-only", action="store_true",
                   help="sync into the store only, publishing nowhere (fetch and store questions at large N)")
    p.add_argument("--no-table", action="store_true", help="leave the analytics table out (Socrata and ArcGIS only)")
    p.add_argument("--phases", default="full,incremental,reconcile",
                   help=f"comma-separated, in order, from {', '.join(PHASES)} (reconcile-unchanged: a full "
                   "refresh with no change since the run before; reconcile-edited: after K edits and D deletes)")
    p.add_argument("--prefect-server", action="store_true",
                   help="run a local Prefect API server (the global-concurrency rate limiter is used); with --paths, "
                   "the --reconcile-records runs use it too")
    p.add_argument("--paths", help="compare the Knack fetch on these paths side by side, e.g. "
                   "'ephemeral,prefect' (no Prefect API: a local limiter; a local Prefect server: the global "
                   "limit, as in production); store only, full fetch; replaces --phases")
    p.add_argument("--concurrent", type=int, default=0, choices=(0, 2),
                   help="with --paths: also two runs of one app started together (object_1 and view_1)")
    p.add_argument("--concurrent-records", type=int,
                   help="records in the app for the concurrent runs (default: half of --records)")
    p.add_argument("--reconcile-records", type=int, default=0,
                   help="with --paths: also a container of this many records published to both destinations: "
                   "full, reconcile after no change, reconcile after K edits and D deletes")
    p.add_argument("--repeat", type=int, default=3, help="runs of the unchanged phase (each timed on its own)")
    p.add_argument("--code", help="unchanged phase: run flows/sync.py of this checkout instead (a before/after "
                   "comparison; same venv)")
    p.add_argument("--no-bytecode", action="store_true",
                   help="unchanged phase: ignore the venv's compiled bytecode (as an install without it runs)")
    p.add_argument("--profile", metavar="DIR", help="py-spy the full phase (--gil) and the first unchanged run (--idle, per thread); "
                   "write collapsed stacks here")
    p.add_argument("--workdir", help="keep logs and state here (default: a temporary directory)")
    p.add_argument("--json", dest="json_out", help="also write the result here")
    return p.parse_args(argv)


def write_inputs(work: Path, args: argparse.Namespace, bucket: str = BUCKET,
                 name: str = "knack-services.yaml") -> tuple[Path, Any]:
    """The bench config (demo app, object_1 and view_1, S3 store) and the destination schemas."""
    from emulators.knack import generate_app
    from emulators.provision import agol_definition, socrata_schema
    from tasks.domain.config import load_config

    raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
    app = raw["apps"][APP]
    app["rate_limit_per_second"] = args.rate_limit
    if getattr(args, "rate_limit_batch", None):
        app["rate_limit_batch"] = args.rate_limit_batch
    app["containers"] = {key: app["containers"][key] for key in (CONTAINER, VIEW)}
    raw.update({"bucket": bucket, "store": "s3", "store_workers": args.store_workers, "apps": {APP: app},
                "tables": not getattr(args, "no_table", False)})
    config = work / name
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(config).container(APP, CONTAINER)
    metadata = generate_app(records=3, seed=1)["metadata"]  # identical for every N
    (work / "socrata.json").write_text(json.dumps(socrata_schema(metadata, cfg)))
    (work / "agol.json").write_text(json.dumps(agol_definition(metadata, cfg)))
    return config, cfg


def driver_argv(out: Path, config: Path, container: str, full: bool, store_only: bool) -> list[str]:
    return [PY, str(ROOT / "bench" / "driver.py"), "--out", str(out), "--config", str(config), "--app", APP,
            "--container", container, "--env", ENV] + (["--full"] if full else []) \
        + (["--store-only"] if store_only else [])


def _py_spy() -> str:
    """py-spy from the venv, else from the PATH."""
    local = Path(PY).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy") or "py-spy"


def run_phase(name: str, args: argparse.Namespace, work: Path, env: dict[str, str], config: Path,
              full: bool) -> dict[str, Any]:
    """One sync in a fresh process (py-spy wraps it for the profiled phase)."""
    out = work / f"{name}.driver.json"
    argv = driver_argv(out, config, CONTAINER, full, args.store_only)
    if args.profile and name == "full":
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        argv = [_py_spy(), "record", "--gil", "--rate", "200", "--format", "raw",
                "--output", str(Path(args.profile) / f"full-{args.records}.txt"), "--"] + argv
    started = time.monotonic()
    with (work / f"{name}.driver.log").open("w") as log:
        code = subprocess.run(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - started
    result = json.loads(out.read_text()) if out.exists() else {"error": f"driver exited {code}, no output"}
    result["process_wall_seconds"] = round(wall, 3)
    return result


def measure(name: str, args: argparse.Namespace, work: Path, env: dict[str, str], config: Path, urls: dict,
            full: bool, ca: str, resource_id: str, cache: str) -> dict[str, Any]:
    post(f"{urls['knack']}/_admin/counters/reset")
    post(f"{urls['s3']}/_bench/reset")
    post(f"{urls['socrata']}/_admin/reset-log")
    delete(f"{urls['arcgis']}/_admin/requests", verify=ca)
    driver = run_phase(name, args, work, env, config, full)
    if driver.get("error"):
        raise RuntimeError(f"phase {name} failed: {driver['error']} (see {work / (name + '.driver.log')})")
    times = get(f"{urls['knack']}/_admin/request-times")
    knack = metrics.knack_summary(get(f"{urls['knack']}/_admin/counters"), driver["fetch"], times["times"],
                                  rate=args.rate_limit, rows_per_page=ROWS, base_ms=args.knack_latency_ms,
                                  per_record_ms=args.per_record_ms, peak=times["peak_in_flight"])
    report = driver["report"]
    store = report["store"]
    s3 = metrics.s3_summary(get(f"{urls['s3']}/_bench/counts"))
    flow = driver["flow_wall_seconds"]
    return {
        "wall_seconds": round(flow, 3),
        "process_wall_seconds": driver["process_wall_seconds"],
        "prefect_startup_seconds": driver.get("prefect_startup_seconds"),
        "store_seconds": store["seconds"],
        "publish_seconds": {k: v.get("seconds") for k, v in report["published"].items()},
        "records_fetched": store["fetched"], "records_written": store["written"],
        "records_deleted": store["deleted"],
        "delete_lookups": store.get("lookups", 0),  # single-record requests confirming deletes with Knack
        "records_per_second": round(store["fetched"] / flow, 1) if flow else None,
        "store_records_per_second": round(store["fetched"] / store["seconds"], 1) if store["seconds"] else None,
        "metadata_cache": cache,
        "knack": knack,
        "ceiling": metrics.ceiling(args.rate_limit, ROWS, store["fetched"]),
        "s3": s3,
        "socrata": socrata_counts(urls["socrata"], resource_id) | {"report": report["published"].get("socrata")},
        "arcgis": arcgis_counts(urls["arcgis"], ca) | {"report": report["published"].get("agol")},
        "table": _table(report["published"].get("table"), s3),
        "peak_rss_mb": driver["maxrss_mb"],
        "sync_cpu_seconds": driver.get("cpu_seconds"),
        "sync_gc": driver.get("gc"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    phases = [p for p in args.phases.split(",") if p]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise SystemExit(f"unknown phase {', '.join(unknown)}: choose from {', '.join(PHASES)}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="knack-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "prefect", ignore_errors=True)  # a cold metadata cache for the first phase
    config, cfg = write_inputs(work, args)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_", "KNACK_"))}
    base_env.update({"PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                     "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS":  # longer on a loaded machine
                         os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"),
                     "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    result: dict[str, Any] = {"params": {k: v for k, v in vars(args).items() if k not in ("json_out", "workdir")}}
    if args.paths:
        from bench.paths import compare

        result["params"]["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        result |= compare(args, work, base_env)
        return _finish(result, args, work)
    with ExitStack() as stack:
        knack = start(stack, "knack", [PY, str(ROOT / "bench" / "knack_host.py"), "--records", str(args.records),
                                       "--rate-limit", str(args.rate_limit), "--latency-ms", str(args.knack_latency_ms),
                                       "--per-record-ms", str(args.per_record_ms)], work)
        s3 = start(stack, "s3", [PY, str(ROOT / "bench" / "s3_server.py")], work)
        dest, dest_env = start_destinations(stack, work, cfg.socrata_resource_id, cfg.service_id, cfg.layer_id)
        ca = dest["ca"]
        urls = {"knack": knack.ready["url"], "s3": s3.ready["url"], "socrata": dest["socrata"],
                "arcgis": dest["arcgis"]}
        env = base_env | dest_env | {
            "KNACK_APP_ID": knack.ready["app_id"], "KNACK_API_KEY": knack.ready["api_key"],
            "KNACK_API_URL": knack.ready["api_url"], "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": urls["s3"]}
        if args.prefect_server:
            env["PREFECT_API_URL"] = start_prefect_server(stack, work, env, free_port())
        result["params"]["limiter"] = "prefect" if args.prefect_server else "local"
        result["params"]["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}

        if args.no_reference:
            reference: dict[str, Any] = {}
            ids = ids_of(urls["knack"])
        else:
            reference = _reference(work, urls, args, "bench-ref")
            ids = reference.pop("ids")
        result["reference"] = reference
        import boto3

        boto3.client("s3", endpoint_url=urls["s3"], region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        result["phases"] = {}
        cache = "cold"
        for name in phases:
            if name in EDITED or (name == "reconcile" and "incremental" not in phases):
                edit(urls["knack"], args, ids)  # a reconcile alone after the full sync sees the edits itself
            if name == "unchanged":
                result["phases"][name] = unchanged(args, work, env, config, urls, ca, cfg.socrata_resource_id,
                                                   cfg.service_id)
                continue
            load = os.getloadavg()[0]
            result["phases"][name] = phase = measure(name, args, work, env, config, urls, name in FULL, ca,
                                                     cfg.socrata_resource_id, cache)
            phase["load_average_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]
            cache = "warm"
            phase["store_vs_reference"] = None
            if name == "full" and phase["s3"]["record_put_rate"] and reference:
                # the endpoint's pace drifts with machine load: measure the reference again right after
                again = _reference(work, urls, args, "bench-ref-after")
                again.pop("ids")
                reference["server_put_rate_after"] = again["server_put_rate"]
                mean = (reference["server_put_rate"] + again["server_put_rate"]) / 2
                phase["store_vs_reference"] = round(phase["s3"]["record_put_rate"] / mean, 3)
    result["knack_ceiling"] = metrics.ceiling(args.rate_limit, ROWS, args.records)
    result["checks"] = metrics.checks(result, args.changed, args.deleted)
    return _finish(result, args, work)


def sync_command(config: Path) -> list[str]:
    """The hourly run of one container, as a deployment's command line runs it."""
    return [PY, "flows/sync.py", "-a", APP, "-c", CONTAINER, "-e", ENV, "--config", str(config)]


def unchanged(args: argparse.Namespace, work: Path, env: dict[str, str], config: Path, urls: dict[str, str],
              ca: str, resource_id: str, service_id: str | None) -> dict[str, Any]:
    """``--repeat`` runs that find nothing new, each timed from the command line: wall seconds, CPU seconds
    of the process (user + system), Knack and store requests, rows and features sent."""
    runs = []
    root = Path(args.code).resolve() if args.code else ROOT
    if args.code:
        env = env | {"PYTHONPATH": str(root)}  # its own packages before the venv's editable install
    if args.no_bytecode:  # look for bytecode in an empty folder (and write none): every module compiled anew
        (work / "no-bytecode").mkdir(exist_ok=True)
        env = env | {"PYTHONPYCACHEPREFIX": str(work / "no-bytecode"), "PYTHONDONTWRITEBYTECODE": "1"}
    for i in range(args.repeat):
        post(f"{urls['knack']}/_admin/counters/reset")
        post(f"{urls['s3']}/_bench/reset")
        post(f"{urls['socrata']}/_admin/reset-log")
        delete(f"{urls['arcgis']}/_admin/requests", verify=ca)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        argv = sync_command(config)
        if args.profile and i == 0:  # waits included: where the wall time goes, not only the CPU
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            argv = [_py_spy(), "record", "--idle", "--threads", "--rate", "200", "--format", "raw", "--output",
                    str(Path(args.profile) / f"unchanged-{args.records}.txt"), "--"] + argv
        with (work / f"unchanged-{i}.log").open("w") as log:
            code = subprocess.run(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL).returncode
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if code:
            raise RuntimeError(f"phase unchanged failed (exit {code}; see {work / f'unchanged-{i}.log'})")
        s3 = get(f"{urls['s3']}/_bench/counts")
        runs.append({
            "wall_seconds": round(wall, 3),
            "cpu_seconds": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 3),
            "knack_requests": get(f"{urls['knack']}/_admin/counters").get("requests", 0),
            "store_requests": sum(s3["counts"].values()), "store_requests_by_kind": s3["counts"],
            "store_reads_by_key": {k.removeprefix("get "): n for k, n in s3["keys"].items() if k.startswith("get ")},
            "socrata_rows_sent": socrata_counts(urls["socrata"], resource_id)["rows_sent"],
            "arcgis_features_sent": arcgis_counts(urls["arcgis"], ca)["features_sent"],
            "load_average_1m": round(os.getloadavg()[0], 2),
        })
    walls = sorted(r["wall_seconds"] for r in runs)
    cpus = sorted(r["cpu_seconds"] for r in runs)
    return {"command": " ".join(["python"] + sync_command(config)[1:]), "code": str(root),
            "bytecode": not args.no_bytecode, "runs": runs,
            "wall_seconds": {"min": walls[0], "median": walls[len(walls) // 2], "max": walls[-1]},
            "cpu_seconds": {"min": cpus[0], "median": cpus[len(cpus) // 2], "max": cpus[-1]}}


def _finish(result: dict[str, Any], args: argparse.Namespace, work: Path) -> int:
    text = json.dumps(result, indent=1)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
    print(text)
    if "table" in result:
        print("\n".join(result["table"]), file=sys.stderr)
    print(f"work directory (logs, state): {work}", file=sys.stderr)
    return 0


def _table(published: dict[str, Any] | None, s3: dict[str, Any]) -> dict[str, Any] | None:
    """The analytics table step: its seconds and rows (the run's report), the bytes it sent to S3."""
    if published is None:
        return None
    return {"seconds": published.get("seconds"), "rows_merged": published.get("upserted"),
            "inserted": published.get("inserted"), "updated": published.get("updated"),
            "unchanged_rows_rewritten": published.get("copied"), "deleted": published.get("deleted"),
            "requests": s3["table_requests"], "bytes_written": s3["table_bytes_written"]}


def _reference(work: Path, urls: dict[str, str], args: argparse.Namespace, bucket: str) -> dict[str, Any]:
    """The plain uploader against the same endpoint, in its own bucket; plus the ids for the edits."""
    records_url = f"{urls['knack']}/_admin/objects/{CONTAINER}/records"
    post(f"{urls['s3']}/_bench/reset")
    out = work / "reference.json"
    subprocess.run([PY, str(ROOT / "bench" / "reference.py"), "--endpoint", urls["s3"], "--bucket", bucket,
                    "--records-url", records_url, "--workers", str(args.reference_workers), "--out", str(out)],
                   cwd=ROOT, check=True)
    result = json.loads(out.read_text())
    counts = get(f"{urls['s3']}/_bench/counts")
    puts, span = counts["counts"].get("put:other", 0), counts["span_seconds"].get("put:other", 0.0)
    result["server_put_rate"] = round(puts / span, 1) if span else None
    return result


def ids_of(knack_url: str) -> list[str]:
    """The container's record ids (the admin route sends whole records: keep only the ids)."""
    return [r["id"] for r in get(f"{knack_url}/_admin/objects/{CONTAINER}/records")["records"]]


def edit(knack_url: str, args: argparse.Namespace, ids: list[str]) -> None:
    """K random edits and D deletes (of records not edited), through the emulator's admin routes."""
    edited = set(post(f"{knack_url}/_admin/objects/{CONTAINER}/edit-random",
                      {"count": args.changed, "seed": 5})["ids"]) if args.changed else set()
    doomed = [rid for rid in ids[::max(1, len(ids) // max(args.deleted, 1))] if rid not in edited][:args.deleted]
    for rid in doomed:
        delete(f"{knack_url}/_admin/objects/{CONTAINER}/records/{rid}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
