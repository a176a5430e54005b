"""``ArcGISEmulator``: state, routing, fault knobs, the request log and the admin routes.

One emulator is one ArcGIS Online organization on ``https://127.0.0.1:PORT``: a portal at
``/portal`` (and ``/``), and hosted feature services at ``/emuOrg/arcgis/rest/services/<name>/
FeatureServer`` (public) and ``.../rest/admin/services/...`` (admin). Each item holds one service
with any number of layers and tables. Test-only routes live under ``/_admin/`` and need no token.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators._http import EmulatorServer, Request, Response, json_response, text_response

from . import portal, service
from .layer import LayerStore
from .portal import TokenBook, error_envelope, request_token
from .schema import parse_definition
from .tls import make_server_context

_SECRET_PARAMS = {"password", "token", "access_token"}
_LOG_LIMIT = 20_000        # entries kept; a long CLI session must not grow without bound
_LOG_VALUE_CHARS = 2_000   # longer parameter values (big ``adds`` arrays) are cut in the log


def _cut(value: str) -> str:
    return value if len(value) <= _LOG_VALUE_CHARS else f"{value[:_LOG_VALUE_CHARS]}…({len(value)} chars)"


@dataclass
class Item:
    """A portal item of type Feature Service and its layers/tables by id."""

    item_id: str
    service_name: str
    layers: dict[int, LayerStore] = field(default_factory=dict)
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass
class Faults:
    """Fault knobs; rates apply to feature-service requests only, so sign-in stays deterministic."""

    timeout_rate: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: int = 0
    fail_edits_after: int | None = None
    fail_edits_count: int = 0
    fail_edits_mode: str = "reject"  # "reject": nothing applied; "apply": applied, reply lost;
    # "apply-5xx": applied, then answered with a real HTTP ``error_status`` (a gateway failing after the work)
    rollback_envelope: bool = False
    seed: int | None = None
    trickle_ms: float = 0.0  # feature-service replies send their body one byte every trickle_ms ms


class ArcGISEmulator:
    """A loopback ArcGIS Online portal plus hosted feature services, over TLS."""

    ORG = "emuOrg"

    def __init__(self, cert_dir: str | Path, *, username: str = "pipeline", password: str = "pw",
                 token_lifetime_s: float = 7200, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False) -> None:
        self.username = username
        self._password = password
        self.tokens = TokenBook(token_lifetime_s)
        self.items: dict[str, Item] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.oauth_states: dict[str, dict[str, str]] = {}
        self.faults = Faults()
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_LIMIT)
        self._edit_requests = 0
        self._edits_failed = 0
        context, self._ca_path = make_server_context(cert_dir)
        self.server = EmulatorServer(self.app, host=host, port=port, name="arcgis", ssl_context=context,
                                     verbose=verbose)

    def __repr__(self) -> str:
        return f"ArcGISEmulator(url={self.base_url!r}, username={self.username!r}, items={len(self.items)})"

    # ----- public API ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.server.url

    @property
    def portal_url(self) -> str:
        return f"{self.base_url}/portal"

    @property
    def ca_bundle(self) -> str:
        return str(self._ca_path)

    @property
    def password(self) -> str:
        """The one user's password (test credentials; never logged)."""
        return self._password

    @property
    def token_lifetime_s(self) -> float:
        """Lifetime of tokens issued from now on (seconds); lower it to test expiry mid-run."""
        return self.tokens.lifetime_s

    @token_lifetime_s.setter
    def token_lifetime_s(self, seconds: float) -> None:
        self.tokens.lifetime_s = seconds

    def credentials_ok(self, username: str | None, password: str | None) -> bool:
        return username == self.username and password == self._password

    def service_url(self, item_id: str, admin: bool = False) -> str:
        rest = "rest/admin/services" if admin else "rest/services"
        return f"{self.base_url}/{self.ORG}/arcgis/{rest}/{self.items[item_id].service_name}/FeatureServer"

    def create_layer(self, item_id: str, definition: dict[str, Any], layer_id: int = 0) -> str:
        """Add a layer or table to an item (created on first use); returns the layer URL."""
        defn = parse_definition(definition)
        with self._lock:
            item = self.items.get(item_id)
            if item is None:
                name = definition.get("service_name") or item_id
                if any(i.service_name == name for i in self.items.values()):
                    raise ValueError(f"service name {name!r} is already used by another item")
                item = self.items[item_id] = Item(item_id, name)
            if layer_id in item.layers:
                raise ValueError(f"item {item_id} already has layer {layer_id}")
            item.layers[layer_id] = LayerStore(defn, layer_id)
        return f"{self.service_url(item_id)}/{layer_id}"

    def features(self, item_id: str, layer_id: int = 0) -> list[dict[str, Any]]:
        """Every stored feature of a layer, by OBJECTID: ``{"attributes": ..., "geometry": ...}``."""
        return self.items[item_id].layers[layer_id].features()

    def edit_feature(self, item_id: str, layer_id: int, field_name: str, value: Any,
                     attributes: dict[str, Any]) -> None:
        """Change the feature whose ``field_name`` is ``value``, as a hand edit in the portal would (unlogged)."""
        layer = self.items[item_id].layers[layer_id]
        oid = layer.oids_by_value(field_name, [value])[value]
        results, _ = layer.apply_edits([], [{"attributes": {"OBJECTID": oid, **attributes}}], [], rollback=True)
        if not results["updateResults"][0]["success"]:
            raise ValueError(f"edit refused: {results['updateResults'][0]}")

    def remove_feature(self, item_id: str, layer_id: int, field_name: str, value: Any) -> None:
        """Delete the feature whose ``field_name`` is ``value`` by hand (not counted in ``deleted_features``)."""
        layer = self.items[item_id].layers[layer_id]
        oid = layer.oids_by_value(field_name, [value])[value]
        with layer.lock:
            layer._db.execute('DELETE FROM features WHERE "OBJECTID" = ?', (oid,))

    def deleted_features(self, item_id: str, layer_id: int = 0) -> list[dict[str, Any]]:
        """The attributes of every feature deleted from a layer (committed edits only), in order."""
        layer = self.items[item_id].layers[layer_id]
        with layer.lock:
            return list(layer.deleted)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The request log (method, path, params with secrets masked, auth kind, reply status/code)."""
        with self._lock:
            return list(self._log)

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def set_faults(self, timeout_rate: float = 0.0, error_rate: float = 0.0, error_status: int = 503,
                   latency_ms: int = 0, fail_edits_after: int | None = None, fail_edits_count: int = 0,
                   rollback_envelope: bool = False, seed: int | None = None,
                   fail_edits_mode: str = "reject", trickle_ms: float = 0.0) -> None:
        """Replace every fault knob (omitted ones go back to their defaults) and restart the edit count."""
        if fail_edits_mode not in ("reject", "apply", "apply-5xx"):
            raise ValueError("fail_edits_mode must be 'reject', 'apply' or 'apply-5xx'")
        with self._lock:
            self.faults = Faults(timeout_rate, error_rate, error_status, latency_ms, fail_edits_after,
                                 fail_edits_count, fail_edits_mode, rollback_envelope, seed, float(trickle_ms))
            self._rng = random.Random(seed)
            self._edit_requests = 0
            self._edits_failed = 0

    def issued_tokens(self) -> list[str]:
        """Every token this portal has issued (a test checks none of them leaked into a log or error)."""
        return self.tokens.issued()

    def expire_tokens(self) -> None:
        """Invalidate every issued token: the next use answers 498."""
        self.tokens.expire_all()

    def start(self) -> ArcGISEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> ArcGISEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- HTTP ----------------------------------------------------------------------------------
    def app(self, request: Request) -> Response:
        """Route one request and log it."""
        response = self._route(request)
        self._record(request, response)
        return response

    def _record(self, request: Request, response: Response) -> None:
        if request.path.startswith("/_admin/"):
            return
        try:
            raw = request.params()
            params = {k: ("***" if k in _SECRET_PARAMS else _cut(v)) for k, v in raw.items()}
        except (ValueError, UnicodeDecodeError):
            raw, params = {}, {}
        sizes = {}
        for key in ("adds", "updates", "features"):  # how many features an edit carried (values are cut)
            if raw.get(key):
                try:
                    sizes[key] = len(json.loads(raw[key]))
                except ValueError:
                    sizes[key] = -1
        code = None
        if response.body.startswith(b'{"error"'):
            code = json.loads(response.body).get("error", {}).get("code")
        entry = {"time": time.time(), "method": request.method, "path": request.path, "params": params,
                 "auth": request_token(request)[1], "status": response.status, "error_code": code,
                 "sizes": sizes}
        with self._lock:
            self._log.append(entry)

    def _route(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_admin/"):
            return self._admin(request, path[len("/_admin/"):])
        for prefix in ("/portal/sharing/", "/sharing/"):
            if path.startswith(prefix) or path + "/" == prefix:
                return portal.handle(self, request, path[len(prefix):])
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[:3] == [self.ORG, "arcgis", "rest"]:
            admin = parts[3] == "admin"
            rest = parts[4:] if admin else parts[3:]
            if len(rest) >= 3 and rest[0] == "services" and rest[2] == "FeatureServer":
                item = next((i for i in self.items.values() if i.service_name == rest[1]), None)
                if item is not None:
                    return self._service(request, item, rest[3:], admin)
        # the login probes (/portal/info, /portal/rest/info, ...) land here: a plain 404 is what they expect
        return text_response("Not Found", status=404, content_type="text/plain")

    def _service(self, request: Request, item: Item, rest: list[str], admin: bool) -> Response:
        response = self._serve(request, item, rest, admin)
        response.trickle_ms = self.faults.trickle_ms
        return response

    def _serve(self, request: Request, item: Item, rest: list[str], admin: bool) -> Response:
        faults = self.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        with self._lock:
            roll_error, roll_timeout = self._rng.random(), self._rng.random()
        if roll_error < faults.error_rate:
            return text_response(f"<html><body>{faults.error_status} Service Unavailable</body></html>",
                                 status=faults.error_status)
        if roll_timeout < faults.timeout_rate:
            return error_envelope(504, "Your request has timed out.")
        denied = portal.check_auth(self, request)
        if denied is not None:
            return denied
        operation = rest[-1] if rest else ""
        if operation in service.EDIT_OPERATIONS and self._scripted_edit_failure():
            if faults.fail_edits_mode in ("apply", "apply-5xx"):
                service.handle(self, item, rest, request, admin)
            if faults.fail_edits_mode == "apply-5xx":
                return text_response(f"<html><body>{faults.error_status} Bad Gateway</body></html>",
                                     status=faults.error_status)
            return error_envelope(504, "Your request has timed out.")
        return service.handle(self, item, rest, request, admin)

    def _scripted_edit_failure(self) -> bool:
        with self._lock:
            faults = self.faults
            count = self._edit_requests
            self._edit_requests += 1
            if faults.fail_edits_after is None or count < faults.fail_edits_after:
                return False
            if self._edits_failed >= faults.fail_edits_count:
                return False
            self._edits_failed += 1
            return True

    def _admin(self, request: Request, sub: str) -> Response:
        parts = sub.strip("/").split("/")
        try:
            if parts == ["layers"] and request.method == "POST":
                body = request.json() or {}
                url = self.create_layer(str(body["item_id"]), body["definition"], int(body.get("layer_id", 0)))
                return json_response({"url": url}, status=201)
            if len(parts) == 4 and parts[0] == "layers" and parts[3] == "features":
                return json_response({"features": self.features(parts[1], int(parts[2]))})
            if parts == ["requests"]:
                if request.method == "DELETE":
                    self.reset_log()
                    return json_response({"ok": True})
                return json_response({"requests": self.requests})
            if parts == ["faults"] and request.method == "POST":
                self.set_faults(**(request.json() or {}))
                return json_response({"faults": vars(self.faults)})
            if parts == ["expire-tokens"] and request.method == "POST":
                self.expire_tokens()
                return json_response({"ok": True})
        except (KeyError, ValueError, TypeError) as exc:
            return json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return json_response({"error": f"no admin route {request.method} /_admin/{sub}"}, status=404)
