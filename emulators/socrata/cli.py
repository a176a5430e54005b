"""``python -m emulators socrata``: serve the Socrata emulator in the foreground."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .server import SocrataEmulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulators socrata",
                                     description="Loopback SODA 2 server that sodapy can publish to.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--dataset", action="append", default=[], metavar="ID=SCHEMA.json",
                        help="create a dataset from a schema file; repeat for more")
    parser.add_argument("--username", default="key-id", help="API key id accepted for writes")
    parser.add_argument("--password", default="key-secret", help="API key secret accepted for writes")
    parser.add_argument("--app-token", default=None, help="the only app token accepted (default: any)")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    return parser


def main(argv: list[str]) -> int:
    """Parse arguments, create the datasets, print one ready line, serve until SIGINT/SIGTERM."""
    args = _parser().parse_args(argv)
    emulator = SocrataEmulator(args.username, args.password, args.app_token, port=args.port,
                               verbose=args.verbose)
    for spec in args.dataset:
        dataset_id, sep, path = spec.partition("=")
        if not sep:
            _parser().error(f"--dataset wants ID=SCHEMA.json, got {spec!r}")
        emulator.create_dataset(dataset_id, json.loads(Path(path).read_text(encoding="utf-8")))
    emulator.serve_until_signal({"datasets": [s.partition("=")[0] for s in args.dataset],
                                 "username": args.username})
    return 0
