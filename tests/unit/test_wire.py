"""Whole-request deadlines on a ``requests.Session``, against a loopback server that trickles its reply:
the request stops at its deadline (not at a read timeout a trickle never trips), the error names the
service, a publish's time left wins when shorter, and a connection back in its pool is never cut."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tasks.deadline import TimeLimitReached, time_limit
from tasks.domain.deadlines import RequestDeadlines
from tasks.retry import is_transient
from tasks.wire import RequestDeadlineExceeded, guard_session

pytestmark = [pytest.mark.unit, pytest.mark.timing]

MARGIN = 1.0  # seconds of scheduling noise allowed past a deadline on a busy machine


class TrickleServer:
    """Answers ``GET /fast`` at once and anything else one byte every 50 ms (HTTP/1.1, kept alive)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            try:
                while True:
                    head = reader.readline()
                    if not head:
                        return
                    length = 0
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    reader.read(length)
                    body = b'{"ok": true, "pad": "' + b"x" * 400 + b'"}'
                    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                        len(body), body)
                    if b" /fast" in head:
                        conn.sendall(reply)
                        continue
                    conn.sendall(reply[:60])  # the status line and part of the headers, then a trickle
                    for i in range(60, len(reply)):
                        time.sleep(0.05)
                        conn.sendall(reply[i:i + 1])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[TrickleServer]:
    srv = TrickleServer()
    yield srv
    srv.close()


def guarded(read: float = 1.0, write: float = 0.6) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return guard_session(session, RequestDeadlines(read=read, write=write), "Example service")


def test_a_trickled_reply_stops_at_its_deadline(server: TrickleServer) -> None:
    session = guarded()
    start = time.monotonic()
    with pytest.raises(RequestDeadlineExceeded) as caught:
        session.get(server.url + "/slow?token=s3cret", timeout=30)  # a read timeout a trickle never trips
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 1.0 + MARGIN, elapsed
    message = str(caught.value)
    assert message.startswith("Example service: GET 127.0.0.1:") and "/slow" in message
    assert "deadline of 1 s" in message and "s3cret" not in message
    assert is_transient(caught.value)  # the retry policy tries again


def test_a_write_gets_the_shorter_deadline(server: TrickleServer) -> None:
    session = guarded(read=5, write=0.6)
    start = time.monotonic()
    with pytest.raises(RequestDeadlineExceeded, match="POST .* deadline of 0.6 s"):
        session.post(server.url + "/edit", json={"a": 1}, timeout=30)
    assert time.monotonic() - start < 0.6 + MARGIN


def test_a_publish_s_time_left_wins_when_shorter(server: TrickleServer) -> None:
    session = guarded(read=20)
    start = time.monotonic()
    with time_limit(0.5, "demo/object_1 → Example"), pytest.raises(RequestDeadlineExceeded, match=r"of 0\.[45]\d* s \(publish_time_limit_seconds\)"):
        session.get(server.url + "/slow", timeout=30)
    assert time.monotonic() - start < 0.5 + MARGIN


def test_past_a_publish_s_time_limit_no_request_starts(server: TrickleServer) -> None:
    session = guarded()
    with time_limit(0.01, "demo/object_1 → Example"):
        time.sleep(0.02)
        with pytest.raises(TimeLimitReached, match="demo/object_1 → Example: stopped at its time limit"):
            session.get(server.url + "/fast")
    assert server.connections == 0


def test_fast_requests_pass_and_their_pooled_connection_outlives_their_deadline(server: TrickleServer) -> None:
    session = guarded(read=0.3)
    assert session.get(server.url + "/fast").json()["ok"] is True
    time.sleep(0.6)  # past the first request's deadline: its connection is back in the pool, untouched
    for _ in range(3):
        assert session.get(server.url + "/fast").json()["ok"] is True
    assert server.connections == 1  # one kept-alive connection served all four


def test_guarding_twice_wraps_once_and_takes_the_new_deadlines(server: TrickleServer) -> None:
    session = guarded(read=5)
    guard_session(session, RequestDeadlines(read=0.4, write=0.4), "Renamed service")
    start = time.monotonic()
    with pytest.raises(RequestDeadlineExceeded, match="^Renamed service: GET .* of 0.4 s"):
        session.get(server.url + "/slow", timeout=30)
    assert time.monotonic() - start < 0.4 + MARGIN
