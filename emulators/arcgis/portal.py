"""The portal half of the emulator: sign-in (OAuth implicit grant, generateToken), tokens, items.

Routes live under both ``/portal/sharing/`` and ``/sharing/``. The sign-in dance follows what the
``arcgis`` package does for a named user: two ``oauth2/authorize`` pages (the second carries an
``oauth_state`` JSON object on one line), a form POST to ``oauth2/signin`` and a 302 whose fragment
holds the token, the echoed ``state`` and ``expires_in``.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from emulators._http import Request, Response, json_response, text_response

if TYPE_CHECKING:
    from .emulator import ArcGISEmulator

PORTAL_VERSION = "2025.1"


def error_envelope(code: int, message: str, details: list[str] | None = None, **extra: Any) -> Response:
    """The service's error reply: always HTTP 200, the real status inside the body."""
    return json_response({"error": {"code": code, "message": message, "details": details or [], **extra}})


class TokenBook:
    """Issued tokens and their expiry; ``expire_all`` invalidates every one at once."""

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._tokens: dict[str, tuple[str, float]] = {}
        self._issued: list[str] = []  # every token ever issued, expired ones too (for the secret sweeps)
        self._lock = threading.Lock()
        self.generation = 0  # bumped by expire_all, so a test fixture knows its cached login is gone

    def issue(self, username: str, lifetime_s: float | None = None) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires = time.time() + (self.lifetime_s if lifetime_s is None else lifetime_s)
        with self._lock:
            self._tokens[token] = (username, expires)
            self._issued.append(token)
        return token, expires

    def issued(self) -> list[str]:
        """Every token issued so far, live or not."""
        with self._lock:
            return list(self._issued)

    def user_of(self, token: str) -> str | None:
        """The user a live token belongs to, or None when unknown or expired."""
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()
            self.generation += 1


def request_token(request: Request) -> tuple[str | None, str | None]:
    """(token, how it came): the Bearer header the client uses, or a ``token`` parameter."""
    for header in ("X-Esri-Authorization", "Authorization"):
        value = request.header(header) or ""
        if value.lower().startswith("bearer "):
            return value[7:].strip(), "bearer"
    token = request.params().get("token")
    return (token, "token-param") if token else (None, None)


def check_auth(emu: ArcGISEmulator, request: Request) -> Response | None:
    """None when the request carries a live token; else the 499 (missing) or 498 (invalid) envelope."""
    token, _ = request_token(request)
    if not token:
        return error_envelope(499, "Token Required")
    if emu.tokens.user_of(token) is None:
        return error_envelope(498, "Invalid token.")
    return None


def _authorize_page(emu: ArcGISEmulator, request: Request) -> Response:
    params = request.params()
    state = params.get("state", "")
    redirect_uri = params.get("redirect_uri", "")
    oauth_state = "os-" + secrets.token_hex(8)
    if len(emu.oauth_states) > 1000:  # the client's first authorize call is never followed by a sign-in
        emu.oauth_states.clear()
    emu.oauth_states[oauth_state] = {"state": state, "redirect_uri": redirect_uri,
                                     "response_type": params.get("response_type", "token")}
    info = json.dumps({"oauth_state": oauth_state, "client_id": params.get("client_id", "")})
    page = ("<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>\n"
            f"<script>\nvar oAuthInfo = {info};\n</script>\n"
            "<form method=\"post\" action=\"../../oauth2/signin\"></form>\n</body></html>\n")
    return text_response(page)


def _signin(emu: ArcGISEmulator, request: Request) -> Response:
    form = request.params()
    pending = emu.oauth_states.pop(form.get("oauth_state", ""), None)
    if pending is None or not emu.credentials_ok(form.get("username"), form.get("password")):
        # the sign-in page again, with the message in its oAuthInfo object and no redirect
        info = json.dumps({"oauth_state": form.get("oauth_state", ""),
                           "messages": ["Invalid username or password."]})
        return text_response(f"<html><head><title>Sign in</title></head><body>\n<script>\nvar oAuthInfo = {info};"
                             "\n</script>\n</body></html>\n")
    token, _ = emu.tokens.issue(emu.username)
    fragment = (f"access_token={quote(token)}&expires_in={int(emu.tokens.lifetime_s)}"
                f"&username={quote(emu.username)}&ssl=true&state={quote(pending['state'])}")
    location = f"{pending['redirect_uri'] or emu.base_url}#{fragment}"
    return Response(302, b"", {"Location": location, "Content-Type": "text/html; charset=utf-8"})


def _generate_token(emu: ArcGISEmulator, request: Request) -> Response:
    form = request.params()
    if not emu.credentials_ok(form.get("username"), form.get("password")):
        return error_envelope(400, "Unable to generate token.", ["Invalid username or password."])
    lifetime = emu.tokens.lifetime_s
    minutes = form.get("expiration", "")
    if minutes.isdigit() and int(minutes) > 0:
        lifetime = min(lifetime, int(minutes) * 60)
    token, expires = emu.tokens.issue(emu.username, lifetime)
    return json_response({"token": token, "expires": int(expires * 1000), "ssl": True})


def _user_json(emu: ArcGISEmulator) -> dict[str, Any]:
    return {"username": emu.username, "fullName": "Pipeline Service Account", "firstName": "Pipeline",
            "lastName": "Service", "orgId": emu.ORG, "role": "org_publisher", "privileges": [],
            "userType": "creatorUT", "access": "org", "email": f"{emu.username}@example.invalid"}


def _portal_self(emu: ArcGISEmulator, request: Request) -> dict[str, Any]:
    body: dict[str, Any] = {"portalName": "ArcGIS Online", "portalMode": "multitenant", "allSSL": True,
                            "isPortal": False, "id": emu.ORG, "name": "Emulated organization",
                            "urlKey": "emulated", "currentVersion": PORTAL_VERSION, "helperServices": {}}
    token, _ = request_token(request)
    if token and emu.tokens.user_of(token):
        body["user"] = _user_json(emu)
    return body


def _item_json(emu: ArcGISEmulator, item_id: str) -> dict[str, Any] | None:
    item = emu.items.get(item_id)
    if item is None:
        return None
    return {"id": item_id, "owner": emu.username, "title": item.service_name, "name": item.service_name,
            "type": "Feature Service", "typeKeywords": ["ArcGIS Server", "Data", "Feature Access",
                                                         "Feature Service", "Hosted Service", "Service"],
            "url": emu.service_url(item_id), "access": "private", "created": item.created_ms,
            "modified": item.created_ms, "orgId": emu.ORG, "snippet": "", "description": "", "tags": []}


def handle(emu: ArcGISEmulator, request: Request, sub: str) -> Response:
    """Answer one portal request; ``sub`` is the path after ``sharing/``."""
    sub = sub.rstrip("/")
    if sub == "oauth2/signin":
        return _signin(emu, request)
    if sub in ("rest", ""):
        return json_response({"currentVersion": PORTAL_VERSION})
    if sub == "rest/info":
        rest = f"{emu.portal_url}/sharing/rest"
        return json_response({"owningSystemUrl": emu.portal_url, "fullVersion": PORTAL_VERSION,
                              "authInfo": {"isTokenBasedSecurity": True,
                                           "tokenServicesUrl": f"{rest}/generateToken"}})
    if sub == "rest/oauth2/authorize":
        return _authorize_page(emu, request)
    if sub == "rest/generateToken":
        return _generate_token(emu, request)
    if sub == "rest/portals/self":
        return json_response(_portal_self(emu, request))
    denied = check_auth(emu, request)
    if denied is not None:
        return denied
    parts = sub.split("/")
    if sub == "rest/community/self" or (parts[:3] == ["rest", "community", "users"] and len(parts) == 4):
        if len(parts) == 4 and parts[3] != emu.username:
            return error_envelope(400, f"User '{html.escape(parts[3])}' does not exist or is inaccessible.")
        return json_response(_user_json(emu))
    if parts[:3] == ["rest", "content", "items"] and (len(parts) == 4 or parts[4:] == ["data"]):
        item = _item_json(emu, parts[3])
        if item is None:
            return error_envelope(400, "Item does not exist or is inaccessible.", messageCode="CONT_0001")
        return json_response({} if len(parts) == 5 and parts[4] == "data" else item)
    return error_envelope(400, "Invalid URL", [f"'{sub}' is not a portal resource the emulator serves."])
