"""The run summary as rows and markdown (pure; the artifact task only posts it)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def artifact_key(*parts: str) -> str:
    """Artifact keys allow lower-case letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def summary_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per step: the store, then each destination."""
    stored = report["store"]
    rows = [{
        "step": "knack → store", "mode": stored.get("mode"), "fetched": stored.get("fetched"),
        "changed": stored.get("written"), "unchanged": stored.get("unchanged"), "deleted": stored.get("deleted"),
        "knack requests": stored.get("knack_requests"), "quota left": stored.get("quota_remaining"),
        "seconds": stored.get("seconds"), "status": "ok",
    }]
    for name, result in report.get("published", {}).items():
        if "error" in result:
            rows.append({"step": f"store → {name}", "status": f"failed: {result['error']}"[:300]})
            continue
        rows.append({
            "step": f"store → {name}", "mode": result.get("mode"), "fetched": result.get("read"),
            "changed": result.get("upserted"), "deleted": result.get("deleted"),
            "seconds": result.get("seconds"), "status": "ok",
        })
    return rows


def summary_markdown(report: Mapping[str, Any]) -> str:
    """A short human summary of one container's run."""
    rows = summary_rows(report)
    columns = ["step", "mode", "fetched", "changed", "unchanged", "deleted", "knack requests", "quota left",
               "seconds", "status"]
    lines = [f"### {report['app']} / {report['container']} ({report['env']})", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"
