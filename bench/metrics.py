"""Numbers for one benchmark phase, from the servers' counters and the sync process's own report.

Pure functions of what was measured, so the arithmetic (T*, ratios, checks) is in one readable place.
"""

from __future__ import annotations

import math
from typing import Any


def page_latency(base_ms: float, per_record_ms: float, rows: int) -> float:
    """Seconds the emulator sleeps before answering a page of ``rows`` records."""
    return (base_ms + per_record_ms * rows) / 1000.0


def best_fetch_seconds(pages: int, records: int, rows_per_page: int, rate: float, base_ms: float,
                       per_record_ms: float) -> float:
    """T* = L(page 1) + (P − 1)/r + L(last page): page 1 tells the page count, then the limit paces.

    L is the emulator's actual page latency (base + per record × rows on that page), so with
    L = 1000 ms and R = 1 ms a full page takes 2 s.
    """
    if pages <= 0:
        return 0.0
    first = page_latency(base_ms, per_record_ms, min(records, rows_per_page))
    if pages == 1:
        return first
    last_rows = records - rows_per_page * (pages - 1)
    last = page_latency(base_ms, per_record_ms, max(last_rows, 0) or rows_per_page)
    return first + (pages - 1) / rate + last


def server_fetch_seconds(arrivals: list[float], skip_first: int, base_ms: float, per_record_ms: float,
                         last_rows: int) -> float | None:
    """The fetch as the emulator saw it: first page arrival → last page arrival + that page's latency."""
    times = sorted(arrivals)[skip_first:]
    if not times:
        return None
    return times[-1] - times[0] + page_latency(base_ms, per_record_ms, last_rows)


def s3_summary(counts: dict[str, Any]) -> dict[str, Any]:
    """PUTs and GETs seen by the endpoint, split into record documents and everything else."""
    c = counts.get("counts", {})
    spans = counts.get("span_seconds", {})
    record_puts = c.get("put:record", 0)
    span = spans.get("put:record") or 0.0
    return {
        "puts": sum(v for k, v in c.items() if k.startswith("put:")),
        "record_puts": record_puts,
        "state_puts": c.get("put:state", 0) + c.get("put:metadata", 0),
        "gets": sum(v for k, v in c.items() if k.startswith("get:")),
        "record_gets": c.get("get:record", 0),
        "lists": c.get("list", 0),
        "table_requests": sum(v for k, v in c.items() if k.endswith(":table")),  # the analytics table's
        "table_bytes_written": sum(v for k, v in (counts.get("bytes") or {}).items()
                                   if k.endswith(":table") and not k.startswith(("get:", "head:"))),
        "deletes": sum(v for k, v in c.items() if k.startswith("delete:")),
        "record_put_rate": round(record_puts / span, 1) if record_puts > 1 and span > 0 else None,
        "raw": c,
    }


def knack_summary(counters: dict[str, Any], fetch: dict[str, Any], arrivals: list[float], *, rate: float,
                  rows_per_page: int, base_ms: float, per_record_ms: float, peak: int) -> dict[str, Any]:
    """Requests, pages, the client-side fetch time T, the best schedule T* and T*/T."""
    pages, records = counters.get("pages", 0), counters.get("records_served", 0)
    t_client = fetch.get("seconds") or 0.0
    t_star = best_fetch_seconds(pages, records, rows_per_page, rate, base_ms, per_record_ms)
    last_rows = min(records, rows_per_page)  # the emulator's times are arrivals: assume a full last page
    t_server = server_fetch_seconds(arrivals, counters.get("metadata", 0), base_ms, per_record_ms, last_rows)
    return {
        "requests": counters.get("requests", 0),
        "page_requests": pages,
        "pages_with_records": math.ceil(records / rows_per_page),
        "metadata_requests": counters.get("metadata", 0),
        "by_status": counters.get("by_status", {}),
        "records_served": records,
        "fetch_seconds": t_client,
        "fetch_seconds_server": round(t_server, 3) if t_server is not None else None,
        "pages_per_second": round(pages / t_client, 2) if t_client else None,
        "best_fetch_seconds": round(t_star, 3),
        "t_star_over_t": round(t_star / t_client, 3) if t_client and pages > 1 else None,
        "peak_in_flight": peak,
        "arrivals": [round(t - min(arrivals), 3) for t in sorted(arrivals)] if arrivals else [],
        "quota_remaining": counters.get("quota_remaining"),
    }


def ceiling(rate: float, rows_per_page: int, records: int) -> dict[str, Any]:
    """What the Knack limit allows at best, whatever the client does."""
    return {"requests_per_second": rate, "rows_per_page": rows_per_page,
            "records_per_second": rate * rows_per_page,
            "pages_for_all_records": math.ceil(records / rows_per_page)}


def best_concurrent_seconds(page_requests: int, runs: int, rate: float, first_latency: float,
                            last_latency: float) -> float:
    """T* for ``runs`` fetches of one app started together, ``page_requests`` pages in all: every run's
    page 1 goes at once (they tell the page counts), then the rest share the limit, then the last page.
    ``L + (P - k)/r + L``; one run is ``best_fetch_seconds``."""
    if page_requests <= runs:
        return first_latency
    return first_latency + (page_requests - runs) / rate + last_latency


def checks(result: dict[str, Any], changed: int, deleted: int = 0) -> dict[str, Any]:
    """The targets, each a yes/no with the number it was judged on."""
    phases = result["phases"]
    out: dict[str, Any] = {}
    full = phases.get("full")
    if full and result["params"].get("knack_latency_ms"):  # the target is set for L = 1000 ms
        ratio = full["knack"]["t_star_over_t"]
        out["fetch_t_star_over_t>=0.85"] = {"value": ratio, "ok": ratio is not None and ratio >= 0.85}
    if full:
        store = full["store_vs_reference"]
        if store is not None:
            out["store_writes>=0.9_reference"] = {"value": store, "ok": store >= 0.9}
    for name, phase in phases.items():
        if name == "unchanged":  # from the command line: its own checks below
            continue
        k = phase["knack"]
        lookups = phase.get("delete_lookups", 0)
        expected = k["pages_with_records"] + (1 if phase["metadata_cache"] == "cold" else 0) + lookups
        out[f"{name}:knack_requests==pages(+1 cold metadata, +lookups confirming deletes)"] = {
            "value": [k["requests"], expected], "ok": k["requests"] == expected}
    for name, target in (("reconcile-unchanged", 0), ("reconcile-edited", changed + deleted)):
        phase = phases.get(name)
        if phase and not result["params"].get("store_only"):
            rows = phase["socrata"]["rows_sent"] + phase["socrata"]["deleted_rows_sent"]
            features = phase["arcgis"]["features_sent"] + phase["arcgis"].get("deleted_features", 0)
            out[f"{name}:rows_and_features_sent=={target}"] = {"value": [rows, features], "expected": target,
                                                               "ok": rows == features == target}
    inc = phases.get("incremental")
    if inc and result["params"].get("store_only"):
        puts = inc["s3"]["record_puts"]
        out["incremental:K_puts"] = {"value": puts, "expected": changed, "ok": puts == changed}
    elif inc:
        got = [inc["s3"]["record_puts"], inc["socrata"]["rows_sent"], inc["arcgis"]["features_sent"]]
        out["incremental:K_puts_rows_features"] = {"value": got, "expected": changed,
                                                   "ok": got == [changed] * 3}
    quiet = phases.get("unchanged")
    if quiet:
        runs = quiet["runs"]
        out["unchanged:median_wall_seconds<=4"] = {"value": quiet["wall_seconds"]["median"],
                                                   "ok": quiet["wall_seconds"]["median"] <= 4}
        sent = [[r["knack_requests"], r["socrata_rows_sent"], r["arcgis_features_sent"]] for r in runs]
        out["unchanged:one_knack_request_nothing_sent"] = {"value": sent, "ok": all(v == [1, 0, 0] for v in sent)}
        twice = sorted({key for r in runs for key, n in r["store_reads_by_key"].items()
                        if n > 1 and not key.endswith(("/manifest.json", "/cursor-socrata.json",
                                                       "/cursor-agol.json", "/cursor-table.json"))})
        out["unchanged:each_state_object_read_once"] = {"value": twice, "ok": not twice}
    rec = phases.get("reconcile")
    if rec and not result["params"].get("store_only"):  # only what the destinations lack: edits not yet sent
        edits = 0 if inc else changed
        got = [rec["socrata"]["rows_sent"], rec["arcgis"]["features_sent"]]
        out["reconcile:rows_features==edits_not_yet_published"] = {"value": got, "expected": edits,
                                                                    "ok": got == [edits] * 2}
    return out
