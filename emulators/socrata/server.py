"""``SocrataEmulator``: routes, Basic auth, fault knobs, the request log and the admin API.

The SODA side follows socrata-api.md §10; the admin routes under ``/_admin`` need no auth and are
not logged, so tests and the demo can seed datasets, read rows and set faults over HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import threading
import time
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from .._http import EmulatorServer, Request, Response, json_response
from .dataset import Dataset
from .errors import SodaError

_RESOURCE = re.compile(r"^/resource/([^/]+?)\.json$")
_ROW = re.compile(r"^/resource/([^/]+)/([^/]+)\.json$")
_VIEW = re.compile(r"^/api/views/([^/]+?)\.json$")
_ADMIN_ROWS = re.compile(r"^/_admin/datasets/([^/]+)/rows$")
_WRITES = ("POST", "PUT", "DELETE")
_NO_FAULTS: dict[str, Any] = {"error_rate": 0.0, "error_status": 503, "rate_429": 0.0, "latency_ms": 0,
                              "fail_writes_after": None, "fail_writes_count": 0, "fail_status": 500,
                              "max_body_bytes": None, "seed": None, "retry_after": 1, "trickle_ms": 0.0}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_body(body: bytes, exact: bool) -> Any:
    """Strict JSON (``NaN`` refused); ``exact`` keeps decimals as ``Decimal`` for storage."""
    return json.loads(body.decode("utf-8"), parse_constant=_reject_constant,
                      parse_float=Decimal if exact else float)


def _basic_user(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    return user, password


class SocrataEmulator:
    """A stateful loopback SODA 2 server that unmodified sodapy can publish to."""

    def __init__(self, username: str = "key-id", password: str = "key-secret", app_token: str | None = None,
                 *, port: int = 0, host: str = "127.0.0.1", verbose: bool = False) -> None:
        self.username = username
        self._password = password
        self.app_token = app_token
        self._lock = threading.RLock()
        self._datasets: dict[str, Dataset] = {}
        self._log: list[dict[str, Any]] = []
        self._next_column_id = 100001
        self._faults: dict[str, Any] = dict(_NO_FAULTS)
        self._random = random.Random()
        self._writes_passed = 0
        self._writes_failed = 0
        self._server = EmulatorServer(self.handle, host=host, port=port, name="socrata", verbose=verbose)

    def __repr__(self) -> str:
        return f"SocrataEmulator(url={self.url!r}, datasets={sorted(self._datasets)})"

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def domain(self) -> str:
        """What sodapy takes as its domain: ``127.0.0.1:PORT``."""
        return f"{self._server.host}:{self._server.port}"

    def start(self) -> SocrataEmulator:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SocrataEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_signal(self, ready: dict[str, Any]) -> None:
        """Serve in the foreground for the CLI."""
        self._server.serve_until_signal({"domain": self.domain, **ready})

    # --- Python API -----------------------------------------------------------------------------

    def create_dataset(self, dataset_id: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Create (or recreate, empty) a dataset from a schema; returns its view object."""
        with self._lock:
            dataset = Dataset(dataset_id, schema, self._next_column_id)
            self._next_column_id += len(dataset.columns) + 1
            self._datasets[dataset_id] = dataset
            return dataset.view()

    def view(self, dataset_id: str) -> dict[str, Any]:
        with self._lock:
            return self._dataset(dataset_id).view()

    def rows(self, dataset_id: str) -> list[dict[str, Any]]:
        """Stored rows as a plain GET returns them (nulls left out, numbers as strings), insertion order."""
        with self._lock:
            return self._dataset(dataset_id).public_rows()

    def edit_row(self, dataset_id: str, values: dict[str, Any]) -> None:
        """Change one row in place, as a hand edit on the portal would (unlogged): ``values`` holds its id."""
        with self._lock:
            self._dataset(dataset_id).write([values])

    def remove_row(self, dataset_id: str, row_id: str) -> None:
        """Delete one row by its row identifier, as a hand edit on the portal would (unlogged)."""
        with self._lock:
            self._dataset(dataset_id).delete_row(row_id)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The request log: method, path, query, auth_user, app_token, body (parsed), status."""
        with self._lock:
            return list(self._log)

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def set_faults(self, error_rate: float = 0.0, error_status: int = 503, rate_429: float = 0.0,
                   latency_ms: int = 0, fail_writes_after: int | None = None, fail_writes_count: int = 0,
                   fail_status: int = 500, max_body_bytes: int | None = None, seed: int | None = None,
                   retry_after: int = 1, trickle_ms: float = 0.0) -> None:
        """Replace every fault knob at once (the defaults mean no faults) and restart the write script.

        ``trickle_ms``: every SODA reply sends its body one byte every ``trickle_ms`` ms.

        ``fail_writes_after=M, fail_writes_count=N, fail_status=S``: after M writes pass, the next N
        fail with S (before touching any row), so a test can fail chunk 3 of 5 exactly.
        """
        with self._lock:
            self._faults = {"error_rate": error_rate, "error_status": error_status, "rate_429": rate_429,
                            "latency_ms": latency_ms, "fail_writes_after": fail_writes_after,
                            "fail_writes_count": fail_writes_count, "fail_status": fail_status,
                            "max_body_bytes": max_body_bytes, "seed": seed, "retry_after": retry_after,
                            "trickle_ms": float(trickle_ms)}
            self._random = random.Random(seed)
            self._writes_passed = 0
            self._writes_failed = 0

    # --- HTTP -----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """The server's app: admin routes, else a logged SODA request."""
        if request.path.startswith("/_admin/"):
            try:
                return self._admin(request)
            except (SodaError, ValueError, TypeError) as exc:
                status = exc.status if isinstance(exc, SodaError) else 400
                return json_response({"error": True, "message": str(exc)}, status)
        entry = self._log_entry(request)
        try:
            response = self._soda(request)
        except SodaError as exc:
            headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, _Throttled) else None
            response = json_response(exc.body(), exc.status, headers)
        entry["status"] = response.status
        with self._lock:
            self._log.append(entry)
            response.trickle_ms = self._faults["trickle_ms"]
        return response

    def _log_entry(self, request: Request) -> dict[str, Any]:
        credentials = _basic_user(request.header("Authorization"))
        try:
            body = _parse_body(request.body, exact=False) if request.body else None
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        query = {k: v[0] for k, v in request.query.items()}
        return {"method": request.method, "path": request.path, "query": query,
                "auth_user": credentials[0] if credentials else None,
                "app_token": request.header("X-App-Token") or query.get("$$app_token"),
                "body": body, "status": None, "time": time.time()}

    def _soda(self, request: Request) -> Response:
        with self._lock:
            faults = dict(self._faults)
        if faults["latency_ms"]:
            time.sleep(faults["latency_ms"] / 1000)
        if faults["max_body_bytes"] is not None and len(request.body) > faults["max_body_bytes"]:
            raise SodaError(413, "Request entity too large", "request_too_large")
        self._injected_fault(request, faults)
        self._check_auth(request)
        return self._route(request)

    def _injected_fault(self, request: Request, faults: dict[str, Any]) -> None:
        with self._lock:
            if request.method in _WRITES and faults["fail_writes_after"] is not None:
                if self._writes_passed >= faults["fail_writes_after"] and \
                        self._writes_failed < faults["fail_writes_count"]:
                    self._writes_failed += 1
                    raise SodaError(faults["fail_status"], "Injected write failure", "internal_error")
                self._writes_passed += 1
            roll_429 = self._random.random() < faults["rate_429"] if faults["rate_429"] else False
            roll_error = self._random.random() < faults["error_rate"] if faults["error_rate"] else False
        if roll_429:
            raise _Throttled(faults["retry_after"])
        if roll_error:
            raise SodaError(faults["error_status"], "Injected server error", "internal_error")

    def _check_auth(self, request: Request) -> None:
        header = request.header("Authorization")
        credentials = _basic_user(header)
        if header is not None and credentials != (self.username, self._password):
            raise SodaError(401, "Invalid username or password", "authentication_required")
        if header is None and request.method in _WRITES:
            raise SodaError(403, "You must be logged in to access this resource", code=None)
        token = request.header("X-App-Token") or request.query.get("$$app_token", [None])[0]
        if self.app_token is not None and token is not None and token != self.app_token:
            raise SodaError(403, "Invalid app_token specified", "permission_denied")

    def _route(self, request: Request) -> Response:
        method, path = request.method, request.path
        if match := _VIEW.match(path):
            dataset_id = unquote(match.group(1))
            if method == "DELETE":
                raise SodaError(403, f"Deleting dataset {dataset_id} is refused by the Socrata emulator "
                                     "(sodapy's delete() without row_id deletes the whole dataset)",
                                "permission_denied")
            if method == "GET":
                return json_response(self.view(dataset_id))
        elif match := _RESOURCE.match(path):
            return self._resource(request, unquote(match.group(1)))
        elif match := _ROW.match(path):
            dataset_id, row_id = unquote(match.group(1)), unquote(match.group(2))
            with self._lock:
                dataset = self._dataset(dataset_id)
                if method == "DELETE":
                    return json_response(dataset.delete_row(row_id))
                if method == "GET":
                    sid = dataset.find(row_id)
                    if sid is None:
                        raise SodaError(404, f"Row {row_id} not found in {dataset_id}", "not_found")
                    return json_response(dataset.render(dataset.rows[sid], list(dataset.types)))
        else:
            raise SodaError(404, f"No route for {path}", "not_found")
        raise SodaError(405, f"{method} is not allowed on {path}", "method_not_allowed")

    def _resource(self, request: Request, dataset_id: str) -> Response:
        if request.method == "GET":
            params = {k: v[0] for k, v in request.query.items()}
            with self._lock:
                return json_response(self._dataset(dataset_id).query(params))
        if request.method not in ("POST", "PUT"):
            raise SodaError(405, f"{request.method} is not allowed on {request.path}", "method_not_allowed")
        try:
            payload = _parse_body(request.body, exact=True)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SodaError(400, f"Could not parse the request body as JSON: {exc}") from exc
        with self._lock:
            return json_response(self._dataset(dataset_id).write(payload, replace=request.method == "PUT"))

    def _dataset(self, dataset_id: str) -> Dataset:
        dataset = self._datasets.get(dataset_id)
        if dataset is None:
            raise SodaError(404, f"Cannot find view with id {dataset_id}", "not_found")
        return dataset

    # --- admin ----------------------------------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/_admin/datasets" and method == "POST":
            schema = request.json() or {}
            return json_response(self.create_dataset(str(schema.get("id")), schema), 201)
        if path == "/_admin/datasets" and method == "GET":
            with self._lock:
                return json_response([d.view() for d in self._datasets.values()])
        if (match := _ADMIN_ROWS.match(path)) and method == "GET":
            return json_response(self.rows(match.group(1)))
        if path == "/_admin/requests" and method == "GET":
            return json_response(self.requests)
        if path == "/_admin/reset-log" and method == "POST":
            self.reset_log()
            return json_response({"ok": True})
        if path == "/_admin/faults" and method == "POST":
            self.set_faults(**(request.json() or {}))
            return json_response({"ok": True})
        raise SodaError(404, f"No admin route {method} {path}", "not_found")


class _Throttled(SodaError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "Too many requests", "too_many_requests")
        self.retry_after = retry_after
