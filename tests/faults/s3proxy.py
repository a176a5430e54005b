"""A fault-injecting HTTP proxy in front of moto_server, so boto3 meets real S3 failures.

boto3 talks to the proxy as if it were the S3 endpoint; the proxy forwards each request to moto
unchanged, unless a knob says otherwise:

- ``fail_put_rate``: that share of object PUTs is answered ``503 SlowDown`` (or ``fail_status``) with
  S3's XML error body, without reaching moto;
- ``down``: every request is answered by closing the connection (the endpoint is unreachable);
  ``down_after_puts=N`` takes it down once N PUTs have passed;
- ``trickle_ms``: replies to ``trickle_method`` requests (any when None) are sent whole, status line and
  headers included, one byte every ``trickle_ms`` ms, for the next ``trickle_count`` of them (None: all);
  a PUT's reply has no body, so only this makes its reply slow;
- ``hold(pattern)``: the first request whose ``METHOD key`` contains ``pattern`` is held, not
  forwarded, until ``release()``; ``held`` is set when it arrives. A test kills the process that
  sent it meanwhile, which lands the kill exactly before that write.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

_ERRORS = {503: ("SlowDown", "Please reduce your request rate."),
           500: ("InternalError", "We encountered an internal error. Please try again.")}


class S3FaultProxy:
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``) with the knobs above; ``start()`` / ``stop()``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.keys: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self.set_faults()
        self._hold_pattern: str | None = None
        self.held = threading.Event()
        self._release = threading.Event()
        self._forward_held = False

    # --- knobs -------------------------------------------------------------------------------------
    def set_faults(self, fail_put_rate: float = 0.0, fail_status: int = 503, down: bool = False,
                   down_after_puts: int | None = None, seed: int | None = None, trickle_ms: float = 0.0,
                   trickle_method: str | None = None, trickle_count: int | None = None) -> None:
        """Replace every fault knob (omitted ones mean "no fault")."""
        with self.lock:
            self.fail_put_rate, self.fail_status = fail_put_rate, fail_status
            self.down, self.down_after_puts = down, down_after_puts
            self.trickle_ms, self.trickle_method, self.trickle_count = trickle_ms, trickle_method, trickle_count
            self._rng = random.Random(seed)
            self._puts_passed = 0

    def hold(self, pattern: str) -> None:
        """Hold the next request whose ``"METHOD key"`` contains ``pattern``."""
        self._release.clear()
        self.held.clear()
        self._forward_held = False
        self._hold_pattern = pattern

    def release(self, forward: bool = False) -> None:
        """Let the held request go: forwarded, or (default) dropped without an answer."""
        self._forward_held = forward
        self._hold_pattern = None
        self._release.set()

    def puts_to(self, fragment: str) -> int:
        """How many PUTs reached moto for keys containing ``fragment``."""
        with self.lock:
            return sum(1 for key in self.keys if fragment in key)

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> S3FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="s3-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- decisions ---------------------------------------------------------------------------------
    def decide(self, method: str, key: str) -> str:
        """"drop", "fail", "hold" or "forward" for one request."""
        with self.lock:
            if self.down:
                self.counts["dropped"] += 1
                return "drop"
            pattern = self._hold_pattern
            if pattern is not None and pattern in f"{method} {key}":
                self._hold_pattern = None
                return "hold"
            if method == "PUT":
                if self.down_after_puts is not None and self._puts_passed >= self.down_after_puts:
                    self.down = True
                    self.counts["dropped"] += 1
                    return "drop"
                if self.fail_put_rate and self._rng.random() < self.fail_put_rate:
                    self.counts["failed"] += 1
                    return "fail"
                self._puts_passed += 1
                self.keys.append(key)
            self.counts[method] += 1
            return "forward"

    def trickle_for(self, method: str) -> float:
        """Seconds between the bytes of this reply (0: sent at once)."""
        with self.lock:
            if self.trickle_ms <= 0 or self.trickle_method not in (None, method) or self.trickle_count == 0:
                return 0.0
            if self.trickle_count is not None:
                self.trickle_count -= 1
            self.counts["trickled"] += 1
            return self.trickle_ms / 1000

    def wait_held(self) -> bool:
        """Block the holding thread until ``release()``; True when the request is to be forwarded."""
        self.held.set()
        self._release.wait()
        return self._forward_held


class _Handler(BaseHTTPRequestHandler):
    owner: S3FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.close()

    def _handle(self) -> None:
        key = unquote(urlsplit(self.path).path)
        action = self.owner.decide(self.command, key)
        if action == "drop":
            return self._drop()
        body = self._body()
        if action == "hold" and not self.owner.wait_held():
            return self._drop()
        if action == "fail":
            status = self.owner.fail_status
            code, message = _ERRORS.get(status, ("InternalError", "injected"))
            payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                       f"<Message>{message}</Message><Resource>{key}</Resource></Error>").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return None
        self._forward(body)
        return None

    def _forward(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "expect")}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            conn.request(self.command, self.path, body=body or None, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
        finally:
            conn.close()
        pause = self.owner.trickle_for(self.command)
        lines = [f"HTTP/1.1 {reply.status} {reply.reason}"]
        lines += [f"{name}: {value}" for name, value in reply.getheaders()
                  if name.lower() not in ("transfer-encoding", "connection", "content-length")]
        length = reply.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        lines.append(f"Content-Length: {length or '0'}")
        whole = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if self.command == "HEAD" else data)
        if not pause:
            self.wfile.write(whole)
            return
        try:
            for i in range(len(whole)):
                time.sleep(pause)
                self.wfile.write(whole[i:i + 1])
        except OSError:
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle
