"""``bench/run.py --paths ephemeral,prefect``: the Knack fetch on each path, side by side, in one run.

- ``ephemeral``: no Prefect API configured (Prefect starts a temporary one per process); each process
  limits itself with a local limiter.
- ``prefect``: a local ``prefect server`` as every deployment has (Prefect Cloud in production); the
  app's requests share the global limit ``knack-<app>``, taken in batches.

For each path: one full fetch of ``--records`` (store only), and with ``--concurrent 2`` two runs of
the app started together in two processes (``object_1`` and ``view_1`` of an app of
``--concurrent-records``), as two workers would. Judged by the Knack emulator's own counters (requests,
429s), the client's fetch spans (T) against the best schedule (T*), and the Prefect API calls the rate
limit made (the limiter's own count, read from each run's process). With ``--reconcile-records`` also a
container published to both destinations: a full sync, a reconcile with no change since, and a
reconcile after K edits and D deletes (rows and features sent, from the emulators' logs); with
``--prefect-server`` these three runs use the local Prefect server (by default each starts a temporary one).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3

from bench import metrics
from bench.run import (
    APP,
    CONTAINER,
    ENV,
    ROWS,
    VIEW,
    driver_argv,
    edit,
    free_port,
    ids_of,
    measure,
    write_inputs,
)
from bench.services import (
    PY,
    ROOT,
    get,
    post,
    start,
    start_destinations,
    start_prefect_server,
)

PATHS = ("ephemeral", "prefect")


def compare(args: argparse.Namespace, work: Path, base_env: dict[str, str]) -> dict[str, Any]:
    paths = [p for p in args.paths.split(",") if p]
    if not paths or any(p not in PATHS for p in paths):
        raise SystemExit(f"--paths takes {', '.join(PATHS)} (comma-separated), not {args.paths!r}")
    out: dict[str, Any] = {"paths": {}}
    with ExitStack() as stack:
        s3 = start(stack, "s3", [PY, str(ROOT / "bench" / "s3_server.py")], work)
        knack = _knack(stack, work, "knack", args.records, args)
        pair = _knack(stack, work, "knack-concurrent", args.concurrent_records or args.records // 2, args) \
            if args.concurrent else None
        aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3.ready["url"]}
        api = start_prefect_server(stack, work, base_env, free_port()) \
            if "prefect" in paths or args.prefect_server else None
        for path in paths:
            env = base_env | aws | ({"PREFECT_API_URL": api} if path == "prefect" and api else {})
            result = out["paths"][path] = {}
            result["one"] = _fetch(args, work, env, knack, s3.ready["url"], f"{path}-one", [CONTAINER])
            if pair is not None:
                result["two"] = _fetch(args, work, env, pair, s3.ready["url"], f"{path}-two", [CONTAINER, VIEW])
        if args.reconcile_records:  # with --prefect-server on that server, as a deployment's runs are
            server = {"PREFECT_API_URL": api} if args.prefect_server else {}
            out["reconcile"] = _reconcile(args, work, base_env | aws | server, stack, s3.ready["url"])
    out["checks"] = checks(out)
    out["table"] = table(out, args)
    return out


def checks(out: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each a yes/no with the number it was judged on."""
    result: dict[str, Any] = {}
    for path, runs in out["paths"].items():
        for key, r in runs.items():
            ratio, per_run = r["t_star_over_t"], len(r["containers"])
            result[f"{path}:{key}:t_star_over_t>=0.9"] = {"value": ratio, "ok": bool(ratio and ratio >= 0.9)}
            result[f"{path}:{key}:429s<=1_per_run"] = {"value": r["http_429"], "ok": r["http_429"] <= per_run}
            if path == "prefect":
                calls = r["api_calls_per_knack_request"]
                result[f"{path}:{key}:api_calls_per_knack_request<=0.1"] = {"value": calls,
                                                                            "ok": calls is not None and calls <= 0.1}
    for name, phase in (out.get("reconcile") or {}).get("phases", {}).items():
        if "target" in phase:
            result[f"reconcile:{name}:rows_and_features=={phase['target']}"] = {
                "value": [phase["socrata_rows_sent"] + phase["socrata_deleted_rows_sent"],
                          phase["arcgis_features_sent"] + phase["arcgis_features_deleted"]], "ok": phase["ok"]}
    return result


def _knack(stack: ExitStack, work: Path, name: str, records: int, args: argparse.Namespace) -> Any:
    return start(stack, name, [PY, str(ROOT / "bench" / "knack_host.py"), "--records", str(records),
                               "--rate-limit", str(args.rate_limit), "--latency-ms", str(args.knack_latency_ms),
                               "--per-record-ms", str(args.per_record_ms)], work)


def _knack_env(knack: Any) -> dict[str, str]:
    return {"KNACK_APP_ID": knack.ready["app_id"], "KNACK_API_KEY": knack.ready["api_key"],
            "KNACK_API_URL": knack.ready["api_url"]}


def _fetch(args: argparse.Namespace, work: Path, env: dict[str, str], knack: Any, s3_url: str, name: str,
           containers: list[str]) -> dict[str, Any]:
    """Full fetches of ``containers`` into a fresh bucket, each in its own process, started together."""
    bucket = f"bench-{name}"
    boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    config, _ = write_inputs(work, args, bucket, f"{name}.yaml")
    url = knack.ready["url"]
    post(f"{url}/_admin/counters/reset")
    env = env | _knack_env(knack)
    barrier = work / f"{name}.barrier"
    barrier.mkdir(exist_ok=True)
    runs = []
    for container in containers:
        driver_out = work / f"{name}-{container}.driver.json"
        log = (work / f"{name}-{container}.driver.log").open("w")
        argv = driver_argv(driver_out, config, container, True, True) + ["--barrier", str(barrier)]
        if len(containers) > 1:
            argv.append("--page-barrier")
        runs.append((driver_out, log, subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                                       stderr=subprocess.STDOUT)))
    # every run waits, Prefect started, until all are ready: then they start together
    while len(list(barrier.glob("*.ready"))) < len(runs) and all(p.poll() is None for _, _, p in runs):
        time.sleep(0.05)
    (barrier / "go").write_text("")
    if len(runs) > 1:  # then their page 1s go together, whatever each flow's start-up took
        while len(list(barrier.glob("*.page"))) < len(runs) and all(p.poll() is None for _, _, p in runs):
            time.sleep(0.01)
        (barrier / "page-go").write_text("")
    drivers = []
    for driver_out, log, process in runs:
        process.wait()
        log.close()
        driver = json.loads(driver_out.read_text()) if driver_out.exists() else {}
        if "error" in driver or not driver:
            raise RuntimeError(f"{name}: a fetch failed: {driver.get('error', 'no output')} (see {log.name})")
        drivers.append(driver)
    counters = get(f"{url}/_admin/counters")
    spans = [d["fetch"] for d in drivers]
    t = max(s["last_end"] for s in spans) - min(s["first_start"] for s in spans)
    pages = counters.get("pages", 0)
    records = counters.get("records_served", 0)
    full_page = metrics.page_latency(args.knack_latency_ms, args.per_record_ms, min(ROWS, records))
    if len(drivers) == 1:
        t_star = metrics.best_fetch_seconds(pages, records, ROWS, args.rate_limit, args.knack_latency_ms,
                                            args.per_record_ms)
    else:
        t_star = metrics.best_concurrent_seconds(pages, len(drivers), args.rate_limit, full_page, full_page)
    calls = sum(spent["api_calls"] for d in drivers for spent in d.get("limiter", {}).values())
    stats = [spent for d in drivers for spent in d.get("limiter", {}).values()]
    return {
        "containers": containers, "records_per_run": [d["report"]["store"]["fetched"] for d in drivers],
        "knack_requests": counters.get("requests", 0), "page_requests": pages,
        "by_status": counters.get("by_status", {}), "http_429": counters.get("by_status", {}).get("429", 0),
        "fetch_seconds": round(t, 3), "best_fetch_seconds": round(t_star, 3),
        # how far apart the runs' flows reached page 1 (start-up, metadata, lock); their page 1s then went together
        "page_one_stagger_seconds": round(max(ready) - min(ready), 3) if len(ready := [
            s["page_one_ready_at"] for s in spans if s.get("page_one_ready_at") is not None]) > 1 else None,
        "t_star_over_t": round(t_star / t, 3) if t else None,
        "prefect_api_calls_for_rate_limit": calls,
        "api_calls_per_knack_request": round(calls / counters["requests"], 3) if counters.get("requests") else None,
        "limiter": stats, "flow_wall_seconds": [d["flow_wall_seconds"] for d in drivers],
        "peak_rss_mb": [d["maxrss_mb"] for d in drivers],
    }


def _reconcile(args: argparse.Namespace, work: Path, env: dict[str, str], stack: ExitStack,
               s3_url: str) -> dict[str, Any]:
    """A container published to both destinations: full, reconcile unchanged, reconcile after edits."""
    quick = argparse.Namespace(**{**vars(args), "store_only": False, "profile": None,
                                  "knack_latency_ms": 0.0, "per_record_ms": 0.0,
                                  "records": args.reconcile_records})
    knack = _knack(stack, work, "knack-reconcile", args.reconcile_records, quick)
    bucket = "bench-reconcile"
    boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    config, cfg = write_inputs(work, quick, bucket, "reconcile.yaml")
    dest, dest_env = start_destinations(stack, work, cfg.socrata_resource_id, cfg.service_id, cfg.layer_id)
    ca = dest["ca"]
    urls = {"knack": knack.ready["url"], "s3": s3_url, "socrata": dest["socrata"], "arcgis": dest["arcgis"]}
    env = env | _knack_env(knack) | dest_env
    ids = ids_of(urls["knack"])
    phases: dict[str, Any] = {}
    cache = "cold"
    for name in ("full", "reconcile-unchanged", "reconcile-edited"):
        if name == "reconcile-edited":
            edit(urls["knack"], quick, ids)
        phase = measure(f"reconcile-{name}" if name == "full" else name, quick, work, env, config, urls,
                        True, ca, cfg.socrata_resource_id, cache)
        cache = "warm"
        phases[name] = {
            "wall_seconds": phase["wall_seconds"], "knack_requests": phase["knack"]["requests"],
            "records_written": phase["records_written"], "records_deleted": phase["records_deleted"],
            "socrata_rows_sent": phase["socrata"]["rows_sent"],
            "socrata_deleted_rows_sent": phase["socrata"]["deleted_rows_sent"],
            "arcgis_features_sent": phase["arcgis"]["features_sent"],
            "arcgis_features_deleted": phase["arcgis"]["deleted_features"],
            "socrata_read_requests": phase["socrata"]["read_requests"],
            "arcgis_read_requests": phase["arcgis"]["read_requests"],
            "publish_seconds": phase["publish_seconds"],
        }
    k, d = args.changed, args.deleted
    for name, target in (("reconcile-unchanged", 0), ("reconcile-edited", k + d)):
        p = phases[name]
        rows = p["socrata_rows_sent"] + p["socrata_deleted_rows_sent"]
        features = p["arcgis_features_sent"] + p["arcgis_features_deleted"]
        p["target"] = target
        p["ok"] = rows == features == target
    return {"records": args.reconcile_records, "changed": k, "deleted": d, "app": APP, "container": CONTAINER,
            "env": ENV, "phases": phases}


def table(out: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The side-by-side table the README shows."""
    lines = [f"Knack fetch, L = {args.knack_latency_ms:.0f} ms + {args.per_record_ms:g} ms/record, "
             f"{args.rate_limit} req/s",
             "| path | runs | records | T s | T* s | T*/T | Knack requests | 429s | limiter API calls "
             "| calls per Knack request |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for path, runs in out["paths"].items():
        for key, label in (("one", "one"), ("two", "two together")):
            r = runs.get(key)
            if r:
                lines.append(f"| {path} | {label} | {' + '.join(f'{n:,}' for n in r['records_per_run'])} "
                             f"| {r['fetch_seconds']:.2f} | {r['best_fetch_seconds']:.2f} | {r['t_star_over_t']} "
                             f"| {r['knack_requests']} | {r['http_429']} | {r['prefect_api_calls_for_rate_limit']} "
                             f"| {r['api_calls_per_knack_request']} |")
    rec = out.get("reconcile")
    if rec:
        lines += ["", f"Reconcile of {rec['records']:,} records (K = {rec['changed']} edits, D = {rec['deleted']} "
                  "deletes)", "| phase | Socrata rows (+ deleted) | ArcGIS features (+ deleted) | target "
                  "| Socrata reads | ArcGIS reads | wall s | publish s (socrata, agol) |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, p in rec["phases"].items():
            seconds = p.get("publish_seconds") or {}
            lines.append(f"| {name} | {p['socrata_rows_sent']} (+ {p['socrata_deleted_rows_sent']}) "
                         f"| {p['arcgis_features_sent']} (+ {p['arcgis_features_deleted']}) "
                         f"| {p.get('target', '-')} | {p.get('socrata_read_requests', '-')} "
                         f"| {p.get('arcgis_read_requests', '-')} | {p['wall_seconds']} "
                         f"| {seconds.get('socrata', '-')}, {seconds.get('agol', '-')} |")
    return lines
