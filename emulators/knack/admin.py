"""``/_admin/`` routes: drive a running emulator from another process (no auth, never counted)."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from emulators._http import Request, Response, json_response
from emulators.knack.generator import sample_values
from emulators.knack.state import NotFound

if TYPE_CHECKING:
    from emulators.knack.app import KnackEmulator

_RECORDS = re.compile(r"^/_admin/objects/(object_\d+)/records/?([0-9a-f]*)/?$")
_EDIT_RANDOM = re.compile(r"^/_admin/objects/(object_\d+)/edit-random/?$")


def generated_values(emu: KnackEmulator, object_key: str) -> dict[str, Any]:
    """Fresh realistic values for a new record of ``object_key``."""
    table = emu.state.table(object_key)
    rng = random.Random()
    return sample_values(object_key, table.fields, rng, table.next_auto, emu.now(), emu.state.tz,
                         lambda key: list(emu.state.table(key).order) if key in emu.state.tables else [])


def _body(request: Request) -> dict[str, Any]:
    value = request.json() if request.body else {}
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


def handle(emu: KnackEmulator, request: Request) -> Response:
    """Answer one admin request; errors come back as ``{"error": message}``."""
    try:
        return _dispatch(emu, request)
    except NotFound as exc:
        return json_response({"error": str(exc)}, 404)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        return json_response({"error": str(exc)}, 400)


def _dispatch(emu: KnackEmulator, request: Request) -> Response:
    path, method = request.path.rstrip("/"), request.method
    simple_get = {"/_admin/info": emu.info, "/_admin/counters": emu.counters}
    if method == "GET" and path in simple_get:
        return json_response(simple_get[path]())
    if method == "POST":
        if path == "/_admin/counters/reset":
            emu.reset_counters()
            return json_response({"ok": True})
        if path == "/_admin/faults":
            emu.set_faults(**_body(request))
            return json_response({"ok": True})
        if path == "/_admin/latency":
            emu.set_latency(**_body(request))
            return json_response({"ok": True})
        if path == "/_admin/limits":
            emu.set_limits(**_body(request))
            return json_response({"ok": True})
        if path == "/_admin/clock":
            body = _body(request)
            if "offset_seconds" in body:
                emu.set_clock_offset(float(body["offset_seconds"]))
            if "now" in body or "offset_seconds" not in body:
                value = body.get("now")
                emu.set_now(None if value is None else datetime.fromisoformat(str(value).replace("Z", "+00:00")))
            return json_response({"now": emu.now().isoformat()})
    match = _EDIT_RANDOM.match(request.path)
    if match and method == "POST":
        body = _body(request)
        ids = emu.edit_random(match.group(1), int(body.get("count", 1)), body.get("seed"))
        return json_response({"ids": ids})
    match = _RECORDS.match(request.path)
    if match:
        obj, rid = match.groups()
        if not rid and method == "GET":
            return json_response({"records": emu.records(obj)})
        if not rid and method == "POST":
            body = _body(request)
            return json_response(emu.create_record(obj, body or None))
        if rid and method == "PUT":
            return json_response(emu.update_record(obj, rid, _body(request)))
        if rid and method == "DELETE":
            emu.delete_record(obj, rid)
            return json_response({"delete": True})
    return json_response({"error": f"no admin route for {method} {request.path}"}, 404)
