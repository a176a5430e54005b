"""The run summary as rows and markdown (pure; the artifact task only posts it)."""

from __future__ import annotations

import re
from typing import Any

from tasks.domain.results import PublishFailure, SyncReport

# A reconcile's audit, per place: records held there (Knack: its whole listing), rows that differed from
# the store (sent again), stored records missing there (restored), and rows the store lacks (deleted)
AUDIT_COLUMNS = ("held", "differed", "missing", "strays")


def artifact_key(*parts: str) -> str:
    """Artifact keys allow lower-case letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def summary_rows(report: SyncReport) -> list[dict[str, Any]]:
    """One row per step: the store, then each destination."""
    stored = report.store
    rows = [{
        "step": "knack → store", "mode": stored.mode, "fetched": stored.fetched,
        "changed": stored.written, "unchanged": stored.unchanged, "deleted": stored.deleted,
        "knack requests": stored.knack_requests, "quota left": stored.quota_remaining,
        "seconds": stored.seconds, "status": "ok",
    }]
    if stored.mode == "full":  # the audit of the store against Knack's whole listing
        rows[0].update({"held": stored.fetched, "differed": stored.written, "missing": stored.repaired,
                        "strays": stored.deleted})
    for name, result in report.published.items():
        if isinstance(result, PublishFailure):
            rows.append({"step": f"store → {name}", "status": f"failed: {result.error}"[:300]})
            continue
        rows.append({
            "step": f"store → {name}", "mode": result.mode, "fetched": result.read,
            "changed": result.upserted, "deleted": result.deleted,
            "seconds": result.seconds, "status": "ok",
            **{k: result.counts[k] for k in AUDIT_COLUMNS if k in result.counts},
        })
    return rows


def summary_markdown(report: SyncReport) -> str:
    """A short human summary of one container's run."""
    rows = summary_rows(report)
    columns = ["step", "mode", "fetched", "changed", "unchanged", "deleted", "knack requests", "quota left",
               "seconds", "status"]
    if any(c in row for row in rows for c in AUDIT_COLUMNS):  # a reconcile: what each place held and lacked
        columns[-2:-2] = list(AUDIT_COLUMNS)
    lines = [f"### {report.app} / {report.container} ({report.env})", "", f"store: {report.store.store}", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"
