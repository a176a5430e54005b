"""``python -m emulators knack ...``: serve a generated or file-based app until interrupted."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from emulators.knack.app import KnackEmulator
from emulators.knack.generator import generate_app


def load_app_file(path: str | Path) -> dict[str, Any]:
    """Read ``{"metadata": {"application": ...}, "records": {"object_N": [...]}}`` from a JSON file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "application" not in (data.get("metadata") or {}):
        raise ValueError(f"{path}: expected {{\"metadata\": {{\"application\": ...}}, \"records\": {{...}}}}")
    records = data.get("records") or {}
    if not isinstance(records, dict):
        raise ValueError(f"{path}: \"records\" must map object keys to lists of records")
    return {"metadata": data["metadata"], "records": records}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulators knack",
                                     description="Serve a Knack app (generated or from a file) on loopback.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--records", type=int, help="generate the Signal Operations app with N signals")
    source.add_argument("--app", help="serve a JSON file {metadata: {application}, records: {object_N: [...]}}")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (with --records)")
    parser.add_argument("--rate-limit", type=int, default=10, help="requests per second (0: unlimited)")
    parser.add_argument("--daily-quota", type=int, default=None, help="API calls per day (default: unlimited)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="base latency of a record page")
    parser.add_argument("--per-record-ms", type=float, default=0.0, help="extra latency per record on a page")
    parser.add_argument("--app-id", default=None)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: list[str]) -> int:
    """Build the app, print one ready JSON line (url, app_id, api_key, api_url, ...), serve."""
    args = _parser().parse_args(argv)
    app = generate_app(records=args.records, seed=args.seed) if args.records is not None else load_app_file(args.app)
    emu = KnackEmulator(app, app_id=args.app_id, api_key=args.api_key,
                        rate_limit_per_second=args.rate_limit or None, daily_quota=args.daily_quota,
                        host=args.host, port=args.port, verbose=args.verbose)
    emu.set_latency(args.latency_ms, args.per_record_ms)
    emu.serve_until_signal()
    return 0
