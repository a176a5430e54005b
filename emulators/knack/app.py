"""``KnackEmulator``: the Knack v1 REST API on loopback, plus its Python and ``/_admin/`` controls.

Routes follow knack-api.md §2–§5. Choices where the real service is undocumented are listed in
``emulators/knack/README.md`` (401 body, 429 body, headers on every response, ...).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from emulators._http import EmulatorServer, Request, Response, json_response, text_response
from emulators.knack import admin
from emulators.knack.filters import FilterError
from emulators.knack.limits import Counters, Faults, Limits
from emulators.knack.state import AppState, NotFound, Table

_OBJECT_ROUTE = re.compile(r"^/v1/objects/(object_\d+)/records/?([0-9a-f]*)/?$")
_VIEW_ROUTE = re.compile(r"^/v1/pages/(scene_\d+)/views/(view_\d+)/records/?([0-9a-f]*)/?$")
_APP_ROUTE = re.compile(r"^/v1/applications/([^/]+)/?$")
UNAUTHORIZED = "Unauthorized Object Access"


def _errors(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return json_response({"errors": [{"message": message}]}, status, headers)


class KnackEmulator:
    """A stateful Knack app served over HTTP on 127.0.0.1 (see README.md beside this file)."""

    def __init__(self, app: dict[str, Any], app_id: str | None = None, api_key: str | None = None,
                 rate_limit_per_second: int | None = 10, daily_quota: int | None = None,
                 now: Callable[[], datetime] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False) -> None:
        given_id = str(app["metadata"]["application"].get("id") or "")
        self.app_id = app_id or (given_id if re.fullmatch(r"[0-9a-f]{24}", given_id) else secrets.token_hex(12))
        self.api_key = api_key or str(uuid.uuid4())
        self._base_clock = now
        self._fixed_now: datetime | None = None
        self._offset = timedelta(0)  # Knack's clock against the real one (a skewed server)
        self._page_hooks: list[Callable[[str, int], None]] = []
        self.state = AppState(app, self.app_id, self.now)
        self.limits = Limits(rate_limit_per_second, daily_quota)
        self.faults = Faults()
        self._counters = Counters()
        self._latency = (0.0, 0.0)
        self._bind = (host, port, verbose)
        self._server: EmulatorServer | None = None

    def __repr__(self) -> str:
        return f"KnackEmulator(app_id={self.app_id!r}, url={self.url if self._server else None!r})"

    # --- lifecycle ---------------------------------------------------------------------------------

    def _ensure_server(self) -> EmulatorServer:
        if self._server is None:
            host, port, verbose = self._bind
            self._server = EmulatorServer(self.handle, host=host, port=port, name="knack", verbose=verbose)
        return self._server

    def start(self) -> KnackEmulator:
        """Serve in a background thread; returns self."""
        self._ensure_server().start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> KnackEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_signal(self) -> None:
        """Foreground serving for the CLI: print the ready line, serve until SIGINT/SIGTERM."""
        server = self._ensure_server()
        server.serve_until_signal(self.info())

    @property
    def url(self) -> str:
        return self._ensure_server().url

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"

    def info(self) -> dict[str, Any]:
        """What a client needs to connect, and what the app holds."""
        return {"app_id": self.app_id, "api_key": self.api_key, "api_url": self.api_url,
                "objects": sorted(self.state.tables), "timezone": str(self.state.tz),
                "views": [{"scene": s, "view": v, "object": info.obj} for (s, v), info in self.state.views.items()]}

    # --- clock, knobs, counters --------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's current instant (aware UTC): pinned, injected, or the real clock."""
        if self._fixed_now is not None:
            return self._fixed_now
        value = self._base_clock() if self._base_clock else datetime.now(UTC)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)) + self._offset

    def after_page(self, hook: Callable[[str, int], None] | None) -> None:
        """Call ``hook(container, page)`` once a listing page is read, before it is sent (None clears):
        a test's way to change records *during* a fetch (offsets shift under the pages still to come)."""
        self._page_hooks = [] if hook is None else [*self._page_hooks, hook]

    def set_sort(self, object_key: str, field_key: str | None, order: str = "asc") -> None:
        """The object's default listing order (the Builder's sort setting); None: insertion order."""
        table = self.state.table(object_key)
        with self.state.lock:
            table.sort = [(field_key, order)] if field_key else []

    def set_view_filter(self, scene: str, view: str, rules: list[dict[str, Any]], match: str = "and") -> None:
        """Filter a view's records (Knack filter rules, e.g. ``{"field": "field_13", "operator": "is not",
        "value": "Removed"}``): its listings leave the others out."""
        self.state.set_view_filter(scene, view, rules, match)

    def set_view_record_route(self, honours_filter: bool) -> None:
        """How a view's single-record route answers for a record its filter leaves out: 200 with the record
        (False, the default) or 404 (True)."""
        self.state.view_route_filters = honours_filter

    def set_clock_offset(self, seconds: float) -> None:
        """Run the clock ``seconds`` ahead of (negative: behind) the real one: stamps and ``Date`` follow."""
        self._offset = timedelta(seconds=seconds)

    def set_now(self, value: datetime | None) -> None:
        """Pin the clock to an instant (naive = UTC); None goes back to the constructor's clock."""
        self._fixed_now = None if value is None else (value if value.tzinfo else value.replace(tzinfo=UTC))

    def set_faults(self, error_rate: float = 0.0, error_status: int = 503, hang_rate: float = 0.0,
                   hang_seconds: float = 5.0, drop_rate: float = 0.0, burst_429: int = 0,
                   inflate_total_records: int = 0, short_page_every: int = 0, seed: int | None = None,
                   trickle_ms: float = 0.0, trickle_after: int = 0) -> None:
        """Replace every fault knob at once (unnamed knobs go back to "no fault").

        ``trickle_ms``: API replies send their headers at once and their body one byte every
        ``trickle_ms`` ms, after the first ``trickle_after`` replies.
        """
        self.faults = Faults(float(error_rate), int(error_status), float(hang_rate), float(hang_seconds),
                             float(drop_rate), int(burst_429), int(inflate_total_records), int(short_page_every),
                             seed, float(trickle_ms), int(trickle_after))

    def set_latency(self, base_ms: float = 0, per_record_ms: float = 0.0) -> None:
        self._latency = (float(base_ms), float(per_record_ms))

    def set_limits(self, rate_limit_per_second: int | None = 10, daily_quota: int | None = None) -> None:
        """New per-second limit and daily quota; the day's usage restarts at zero."""
        self.limits.configure(rate_limit_per_second, daily_quota)

    def counters(self) -> dict[str, Any]:
        """Requests, statuses, pages and records served since the last reset, and quota left."""
        return self._counters.snapshot(self.limits.quota_remaining())

    def reset_counters(self) -> None:
        self._counters.reset()

    def request_times(self) -> list[float]:
        """``time.monotonic()`` arrival time of every API request since the last counter reset."""
        return self._counters.arrival_times()

    def peak_in_flight(self) -> int:
        """Most API requests being handled at once since the last counter reset."""
        return self._counters.peak()

    # --- records (Python side) ---------------------------------------------------------------------

    def records(self, object_key: str) -> list[dict[str, Any]]:
        return self.state.records(object_key)

    def create_record(self, object_key: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create a record (generated values when ``values`` is None); returns it, Knack-shaped."""
        if values is None:
            values = admin.generated_values(self, object_key)
        return self.state.create(object_key, values)

    def update_record(self, object_key: str, record_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Merge ``values`` (write-side formats) and stamp the modified date field with ``now``."""
        return self.state.update(object_key, record_id, values)

    def delete_record(self, object_key: str, record_id: str) -> None:
        self.state.delete(object_key, record_id)

    def edit_random(self, object_key: str, count: int, seed: int | None = None) -> list[str]:
        return self.state.edit_random(object_key, count, seed)

    # --- HTTP ----------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Dispatch one request: admin controls, or the counted, limited, fault-injected API."""
        if request.path.startswith("/_admin/"):
            return admin.handle(self, request)
        self._counters.arrived()
        try:
            return self._api(request)
        finally:
            self._counters.left()

    def _api(self, request: Request) -> Response:
        drop, hang, error, burst = self.faults.draw()
        if drop:
            self._counters.answered("dropped")
            return Response(drop=True)
        if hang:
            time.sleep(self.faults.hang_seconds)
        if error:
            status = self.faults.error_status
            self._counters.answered(status)
            return text_response("<html><body><h1>Service Unavailable</h1></body></html>", status)
        reason, headers = self.limits.admit(self.now(), consume=not burst)
        if burst or reason:
            if burst:
                headers["X-RateLimit-Remaining"] = "0"
                headers["X-RateLimit-Reset"] = str(math.ceil(time.time()))  # the next whole second
            self._counters.answered(429)
            return text_response("Rate limit exceeded", 429, "text/plain; charset=utf-8", headers)
        headers["Date"] = format_datetime(self.now(), usegmt=True)  # the server's clock, as any HTTP server
        tally: dict[str, Any] = {}
        try:
            response = self._route(request, headers, tally)
        except NotFound as exc:
            response = _errors(str(exc), 404, headers)
        except (FilterError, ValueError) as exc:
            response = _errors(str(exc), 400, headers)
        ok = response.status == 200
        self._counters.answered(response.status, page_rows=tally.get("rows") if ok else None,
                                metadata=ok and bool(tally.get("metadata")))
        response.trickle_ms = self.faults.trickle()
        return response

    def _route(self, request: Request, headers: dict[str, str], tally: dict[str, Any]) -> Response:
        path = request.path
        match = _APP_ROUTE.match(path)
        if match and request.method == "GET":
            if match.group(1) != self.app_id:
                return _errors("Application not found", 404, headers)
            tally["metadata"] = True
            return _json_bytes(self.state.metadata_bytes(), headers)
        match = _OBJECT_ROUTE.match(path)
        if match:
            denied = self._check_object_auth(request, headers)
            if denied:
                return denied
            table = self.state.table(match.group(1))
            return self._records_route(request, headers, tally, table, None, match.group(2))
        match = _VIEW_ROUTE.match(path)
        if match:
            view = self.state.view(match.group(1), match.group(2))
            denied = self._check_view_auth(request, headers, view.authenticated)
            if denied:
                return denied
            if request.method != "GET":
                return _errors("This emulator serves view records read-only", 405, headers)
            return self._records_route(request, headers, tally, self.state.table(view.obj), view, match.group(3))
        return _errors(f"No route for {request.method} {path}", 404, headers)

    def _check_object_auth(self, request: Request, headers: dict[str, str]) -> Response | None:
        app_id = request.header("X-Knack-Application-Id")
        key = request.header("X-Knack-REST-API-Key")
        if app_id != self.app_id or key is None or not secrets.compare_digest(key, self.api_key):
            return _errors(UNAUTHORIZED, 401, headers)
        return None

    def _check_view_auth(self, request: Request, headers: dict[str, str], authenticated: bool) -> Response | None:
        if request.header("X-Knack-Application-Id") != self.app_id:
            return _errors(UNAUTHORIZED, 401, headers)
        key = request.header("X-Knack-REST-API-Key")
        is_api_key = key is not None and secrets.compare_digest(key, self.api_key)
        if key not in (None, "", "knack") and not is_api_key:
            return _errors(UNAUTHORIZED, 401, headers)
        if authenticated and not is_api_key:
            return _errors("This page requires a logged-in user", 403, headers)
        return None

    def _records_route(self, request: Request, headers: dict[str, str], tally: dict[str, Any], table: Table,
                       view: Any, record_id: str) -> Response:
        method = request.method
        if record_id:
            if method == "GET":
                return _json_bytes(self.state.one(table, record_id, view), headers)
            if method == "PUT":
                return json_response(self.state.update(table.key, record_id, _body(request)), 200, headers)
            if method == "DELETE":
                self.state.delete(table.key, record_id)
                return json_response({"delete": True}, 200, headers)
        elif method == "GET":
            return self._page(request, headers, tally, table, view)
        elif method == "POST":
            return json_response(self.state.create(table.key, _body(request)), 200, headers)
        return _errors(f"Method {method} not allowed here", 405, headers)

    def _page(self, request: Request, headers: dict[str, str], tally: dict[str, Any], table: Table,
              view: Any) -> Response:
        rows = min(max(_int_param(request, "rows_per_page", 25), 1), 1000)
        page = _int_param(request, "page", 1)
        total, blobs = self.state.page(table, view, request.arg("filters"), request.arg("sort_field"),
                                       request.arg("sort_order"), page, rows)
        faults = self.faults
        if faults.short_page_every > 0 and page % faults.short_page_every == 0 and len(blobs) > 1:
            blobs = blobs[: len(blobs) - max(1, len(blobs) // 20)]
        total += faults.inflate_total_records
        for hook in list(self._page_hooks):
            hook(view.key if view is not None else table.key, page)
        base_ms, per_record_ms = self._latency
        delay = (base_ms + per_record_ms * len(blobs)) / 1000.0
        if delay > 0:
            time.sleep(delay)  # no lock is held here, so concurrent pages overlap
        body = b'{"total_pages":%d,"current_page":%d,"total_records":%d,"records":[%s]}' % (
            math.ceil(total / rows), page, total, b",".join(blobs))
        tally["rows"] = len(blobs)
        return _json_bytes(body, headers)


def _json_bytes(body: bytes, headers: dict[str, str]) -> Response:
    return Response(200, body, {"Content-Type": "application/json; charset=utf-8", **headers})


def _body(request: Request) -> dict[str, Any]:
    try:
        value = request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("request body is not valid JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("request body must be a JSON object")
    return value


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.arg(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
