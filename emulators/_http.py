"""The small threaded HTTP(S) server every emulator runs on.

An emulator is a function ``app(request) -> Response``. This module owns the sockets: parsing the
request (query string, JSON, url-encoded and multipart forms), writing the reply with a
Content-Length so connections are kept alive, dropping a connection on purpose or trickling a
reply's body one byte at a time (fault knobs), TLS for the ArcGIS emulator, running in a background thread for tests, and in the foreground
for ``python -m emulators ...``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    _form: dict[str, str] | None = field(default=None, repr=False)

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header value, case-insensitively."""
        value = self.headers.get(name)
        return default if value is None else value

    def json(self) -> Any:
        """The body parsed as JSON, whatever the Content-Type says (sodapy sends none)."""
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def form(self) -> dict[str, str]:
        """Url-encoded or multipart form fields of the body (first value of each)."""
        if self._form is None:
            ctype = self.header("Content-Type", "") or ""
            if ctype.startswith("multipart/form-data"):
                self._form = _parse_multipart(ctype, self.body)
            elif self.body and "json" not in ctype:
                parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
                self._form = {k: v[0] for k, v in parsed.items()}
            else:
                self._form = {}
        return self._form

    def arg(self, name: str, default: str | None = None) -> str | None:
        """A parameter from the query string or, failing that, the form body."""
        if name in self.query:
            return self.query[name][0]
        return self.form().get(name, default)

    def params(self) -> dict[str, str]:
        """Query-string and form parameters merged (form wins), first value of each."""
        merged = {k: v[0] for k, v in self.query.items()}
        merged.update(self.form())
        return merged


def _parse_multipart(content_type: str, body: bytes) -> dict[str, str]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True) or b""
            fields[str(name)] = payload.decode("utf-8")
    return fields


@dataclass
class Response:
    """What an emulator answers. ``drop=True`` closes the connection without a reply; ``trickle_ms > 0``
    sends the headers at once and the body one byte every ``trickle_ms`` milliseconds (a server that
    never stalls long enough for a read timeout, yet takes forever)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    trickle_ms: float = 0.0


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None,
                  content_type: str = "application/json; charset=utf-8") -> Response:
    """A compact JSON reply."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(status, body, {"Content-Type": content_type, **(headers or {})})


def text_response(text: str, status: int = 200, content_type: str = "text/html; charset=utf-8",
                  headers: dict[str, str] | None = None) -> Response:
    """A plain text or HTML reply."""
    return Response(status, text.encode("utf-8"), {"Content-Type": content_type, **(headers or {})})


App = Callable[[Request], Response]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart
    server: _Server

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        try:
            response = self.server.app(request)
        except Exception as exc:  # an emulator bug must be visible, not a hung client
            response = json_response({"error": f"emulator error: {type(exc).__name__}: {exc}"}, 500)
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if "Date" in response.headers:  # the app's own clock (an emulated server's skew), not this host's
            self.log_request(response.status)
            self.send_response_only(response.status)
            self.send_header("Server", self.version_string())
        else:
            self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.trickle_ms > 0:
            self._trickle(response.body, response.trickle_ms / 1000)
        else:
            self.wfile.write(response.body)

    def _trickle(self, body: bytes, pause: float) -> None:
        """The body one byte at a time; a client that gave up ends it."""
        try:
            for i in range(len(body)):
                time.sleep(pause)
                self.wfile.write(body[i:i + 1])
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            sys.stderr.write(f"[{self.server.name}] {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: App, name: str, verbose: bool,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.app = app
        self.name = name
        self.verbose = verbose
        self.ssl_context = ssl_context
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # handshake in the handler thread, so a slow client never blocks accept()
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


class EmulatorServer:
    """Serve an emulator app on loopback, in a thread (tests) or the foreground (CLI)."""

    def __init__(self, app: App, *, host: str = "127.0.0.1", port: int = 0, name: str = "emulator",
                 ssl_context: ssl.SSLContext | None = None, verbose: bool = False) -> None:
        self._server = _Server((host, port), app, name, verbose, ssl_context)
        self._thread: threading.Thread | None = None
        self.scheme = "https" if ssl_context is not None else "http"

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:54321``."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name=self._server.name,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_signal(self, ready: dict[str, Any]) -> None:
        """Print one JSON line describing the server (``ready``), then serve until SIGINT/SIGTERM."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        print(json.dumps({"url": self.url, "port": self.port, **ready}), flush=True)
        stop.wait()
        self.stop()
