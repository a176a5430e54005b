"""moto's S3 server with a counting middleware: PUTs, GETs, lists and deletes seen by the endpoint.

``python bench/s3_server.py --port P`` serves moto's own WSGI app (what ``moto_server`` runs) on
loopback and counts every request on the server side, so the client under test needs no hooks and
no proxy sits in between. ``GET /_bench/counts`` returns the counters (with ``keys``: each state and
metadata object's requests, ``"get <key>"``), ``POST /_bench/reset`` zeroes them. Prints one JSON ready line, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def kind_of(method: str, path: str, query: str) -> tuple[str, str]:
    """(operation, key class) of one S3 request: operation put/get/head/delete/list/bucket;
    key class ``record`` (``<env>/<app>/<container>/<id>.json``), ``state``, ``metadata``, ``table``
    (``<env>/<app>/_tables/...``), ``other``."""
    bucket, _, key = path.lstrip("/").partition("/")
    if not key:
        if method == "GET" and bucket:
            return ("list" if "list-type" in query or "prefix" in query or not query else "bucket"), "-"
        return "bucket", "-"
    op = {"PUT": "put", "GET": "get", "HEAD": "head", "DELETE": "delete"}.get(method, method.lower())
    parts = key.split("/")
    if "_state" in parts:
        cls = "state"
    elif "_tables" in parts:
        cls = "table"
    elif parts[-1] == "metadata.json":
        cls = "metadata"
    elif len(parts) == 4 and parts[-1].endswith(".json"):
        cls = "record"
    else:
        cls = "other"
    return op, cls


class Counting:
    """WSGI middleware: counts (operation, key class) and the first/last instant of each."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.counts: Counter[str] = Counter()
            self.bytes: Counter[str] = Counter()  # request bodies received, per (operation, key class)
            self.keys: Counter[str] = Counter()  # "<operation> <key>" of state and metadata objects
            self.first: dict[str, float] = {}
            self.last: dict[str, float] = {}

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            spans = {k: round(self.last[k] - self.first[k], 4) for k in self.first}
            return {"counts": dict(self.counts), "span_seconds": spans, "bytes": dict(self.bytes),
                    "keys": dict(self.keys)}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_bench/"):
            if path == "/_bench/reset":
                self.reset()
            body = json.dumps(self.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        started = time.monotonic()
        result = self.app(environ, start_response)
        ended = time.monotonic()
        op, cls = kind_of(environ.get("REQUEST_METHOD", ""), path, environ.get("QUERY_STRING", ""))
        name = f"{op}:{cls}" if cls != "-" else op
        with self.lock:
            self.counts[name] += 1
            if cls in ("state", "metadata"):
                self.keys[f"{op} {path.lstrip('/').partition('/')[2]}"] += 1
            self.bytes[name] += int(environ.get("CONTENT_LENGTH") or 0)
            self.first.setdefault(name, started)
            self.last[name] = ended
        return result


def main(argv: list[str] | None = None) -> int:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from emulators.moto_server import trim_per_request_costs

    trim_per_request_costs()  # no access log line per request, moto's module list read once

    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--port", type=int, default=0)
    opts = args.parse_args(argv)
    app = Counting(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", opts.port, app, threaded=True, request_handler=MotoRequestHandler)
    os.environ.setdefault("MOTO_PORT", str(server.server_port))  # what moto_server sets for its own URLs
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_port}"}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
