"""Whole-request deadlines on the wire: connect, send and the full reply, however slowly a server trickles.

A socket timeout bounds each read, not the request: a server sending one byte a second never trips
it. Here every request of a guarded ``requests.Session`` (Knack, sodapy, arcgis) or guarded boto3 S3
client gets a deadline (``tasks/domain/deadlines.py``: ``request_deadline_seconds``, writes capped
below half a lock's life; a destination's request never past its publish's time left,
``tasks/deadline.py``). One shared watchdog thread holds the deadlines; when one passes while its
request still holds a connection, it shuts that connection's socket down, so the blocked send or
receive fails at once. A requests
call then raises ``RequestDeadlineExceeded`` (a ``requests.Timeout``: transient for the retry
policy, ``tasks/retry.py``); boto3 sees a dropped connection and retries it under its own policy.

How a request's connections are known: urllib3's connection pool (which requests and botocore both
use) is hooked once, process-wide, so a connection taken for a request made inside a guarded call
is tied to that call's deadline, and untied when it goes back to the pool. Outside a guarded call
the hook does nothing. A fast request costs a few microseconds more (docs/guide.md, "Request deadlines").
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from tasks import fence
from tasks.deadline import current as current_limit
from tasks.domain.deadlines import RequestDeadlines

RECHECK_SECONDS = 0.05  # a connection still connecting at its deadline is looked at again this often


class RequestDeadlineExceeded(requests.exceptions.Timeout):
    """A request got no whole reply within its deadline; the message names the service and the path."""


class _Watch:
    """One request's deadline and the connections it holds (its ``owner`` thread registers them)."""

    __slots__ = ("at", "seconds", "what", "armed", "fired", "cut", "done", "conns", "lock")

    def __init__(self, seconds: float, what: str) -> None:
        self.at = time.monotonic() + seconds
        self.seconds, self.what = seconds, what
        self.armed = True    # the request is still being made: connections it takes are its own
        self.fired = False   # its deadline passed while it held a connection or was being made
        self.cut = False     # a connection of it was shut down (or refused): its reply, if any, is not whole
        self.done = False    # nothing left to watch
        self.conns: set[Any] = set()
        self.lock = threading.Lock()

    def register(self, conn: Any, pool: Any, url: str) -> None:
        from urllib3.exceptions import ReadTimeoutError

        with self.lock:
            if self.fired or time.monotonic() >= self.at:
                self.fired = self.cut = True
                raise ReadTimeoutError(pool, url, f"the request deadline of {self.seconds:g} s has passed")
            self.conns.add(conn)
            conn._wire_watch = self

    def release(self, conn: Any) -> None:
        with self.lock:
            self.conns.discard(conn)
            self.done = self.done or (not self.armed and not self.conns)

    def disarm(self) -> None:
        """The call is over; connections still held (a body still being read) stay watched."""
        with self.lock:
            self.armed = False
            self.done = not self.conns

    def fire(self) -> bool:
        """Shut down every held connection's socket; True when one is still connecting (look again)."""
        with self.lock:
            if self.done:
                return False
            self.fired = True
            connecting = False
            for conn in self.conns:
                sock = getattr(conn, "sock", None)
                if sock is None:
                    connecting = connecting or self.armed
                    continue
                self.cut = True
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return connecting


class _Watchdog:
    """The one thread that keeps every deadline of the process (a heap, earliest first)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._pid: int | None = None
        self._wake_at = math.inf  # when the thread means to wake next: only an earlier deadline wakes it sooner

    def watch(self, watch: _Watch, at: float | None = None) -> None:
        with self._cond:
            if self._pid != os.getpid():  # first use, or a forked child: the parent's thread is not here
                self._pid, self._heap, self._wake_at = os.getpid(), [], math.inf
                threading.Thread(target=self._run, name="request-deadlines", daemon=True).start()
            when = watch.at if at is None else at
            heapq.heappush(self._heap, (when, next(self._order), watch))
            if when < self._wake_at:  # rare: deadlines mostly come later than the ones already kept
                self._wake_at = when
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].done:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._wake_at = math.inf
                        self._cond.wait()
                        continue
                    at, _, watch = self._heap[0]
                    wait = at - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        break
                    self._wake_at = at
                    self._cond.wait(wait)
            if watch.fire():
                self.watch(watch, time.monotonic() + RECHECK_SECONDS)


_WATCHDOG = _Watchdog()
_LOCAL = threading.local()  # .watch: the guarded call this thread is making; .last: its latest one


def _arm(seconds: float, what: str) -> tuple[_Watch, _Watch | None]:
    watch = _Watch(seconds, what)
    outer = getattr(_LOCAL, "watch", None)
    _LOCAL.watch = _LOCAL.last = watch
    _WATCHDOG.watch(watch)
    return watch, outer


def last_deadline_passed() -> float | None:
    """The deadline (seconds) of this thread's latest guarded request when it passed; None otherwise."""
    last = getattr(_LOCAL, "last", None)
    return last.seconds if last is not None and last.fired else None


# --- the urllib3 hook ----------------------------------------------------------------------------------

_HOOK_LOCK = threading.Lock()


def _install_pool_hook() -> None:
    """Tie each connection a guarded call takes to its deadline, and untie it when it returns to its pool."""
    from urllib3.connectionpool import HTTPConnectionPool

    with _HOOK_LOCK:
        if getattr(HTTPConnectionPool, "_wire_hooked", False):
            return
        make_request, put_conn = HTTPConnectionPool._make_request, HTTPConnectionPool._put_conn

        def _make_request(self: Any, conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            watch = getattr(_LOCAL, "watch", None)
            if watch is not None:
                watch.register(conn, self, url)
            return make_request(self, conn, method, url, *args, **kwargs)

        def _put_conn(self: Any, conn: Any) -> None:
            watch = conn.__dict__.pop("_wire_watch", None) if conn is not None else None
            if watch is not None:
                watch.release(conn)
            put_conn(self, conn)

        HTTPConnectionPool._make_request = _make_request  # type: ignore[method-assign]
        HTTPConnectionPool._put_conn = _put_conn  # type: ignore[method-assign]
        HTTPConnectionPool._wire_hooked = True  # type: ignore[attr-defined]


# --- requests ------------------------------------------------------------------------------------------

def _deadline_for(seconds: float) -> tuple[float, str]:
    """(``seconds``, or the publish's time left when shorter; the setting that set it). Past the time
    limit no request starts."""
    limit = current_limit()
    if limit is None:
        return seconds, "request_deadline_seconds"
    left = limit.remaining()
    if left <= 0:
        raise limit.reached()
    return (seconds, "request_deadline_seconds") if seconds <= left else (left, "publish_time_limit_seconds")


def _cap(timeout: float | tuple[float | None, float | None] | None,
         seconds: float) -> float | tuple[float, ...]:
    if isinstance(timeout, tuple):
        return tuple(seconds if t is None else min(float(t), seconds) for t in timeout)
    return seconds if timeout is None else min(float(timeout), seconds)


def _path(url: str | None) -> str:
    """The URL's host and path: never its query (an ArcGIS token may ride there)."""
    parts = urlsplit(url or "")
    return f"{parts.netloc}{parts.path}"


def guard_session(session: requests.Session, deadlines: RequestDeadlines, what: str) -> requests.Session:
    """Give every request of ``session`` a whole-request deadline (``deadlines.read`` or ``.write`` by its
    method), cut to a publish's time left, behind the run's write fence (``tasks/fence.py``). ``what`` names the service in errors ("Knack app signals",
    "Socrata abcd-1234"); guarding again only updates both."""
    _install_pool_hook()
    session._wire_deadlines, session._wire_what = deadlines, what  # type: ignore[attr-defined]
    if getattr(session, "_wire_guarded", False):
        return session
    send = session.send

    def send_fenced(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """No request starts once the run's lock is lost; a write that ends after the lease is counted."""
        if (request.method or "GET").upper() in ("GET", "HEAD"):
            fence.check()
            return send_in_time(request, **kwargs)
        with fence.write():
            return send_in_time(request, **kwargs)

    def send_in_time(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        method = (request.method or "GET").upper()
        seconds, why = _deadline_for(session._wire_deadlines.of(method))  # type: ignore[attr-defined]
        kwargs["timeout"] = _cap(kwargs.get("timeout"), seconds)
        watch, outer = _arm(seconds, session._wire_what)  # type: ignore[attr-defined]

        def late() -> RequestDeadlineExceeded:
            return RequestDeadlineExceeded(f"{watch.what}: {method} {_path(request.url)} got no whole reply within "
                                           f"its deadline of {seconds:.3g} s ({why})")
        try:
            response = send(request, **kwargs)
        except (requests.RequestException, OSError) as exc:
            if watch.fired and not isinstance(exc, RequestDeadlineExceeded):
                raise late() from None
            raise
        finally:
            _LOCAL.watch = outer
            watch.disarm()
        if watch.cut and not kwargs.get("stream"):  # headers cut short can parse as a whole reply
            response.close()
            raise late()
        return response

    session.send = send_fenced  # type: ignore[method-assign]
    session._wire_guarded = True  # type: ignore[attr-defined]
    return session


# --- boto3 ---------------------------------------------------------------------------------------------

def guard_s3_client(client: Any, deadlines: RequestDeadlines, what: str = "S3") -> Any:
    """Give every attempt of every call of a boto3 client a whole-request deadline, through its events:
    armed before each attempt is sent, let go when botocore decides whether to retry it (a streamed
    body still being read stays watched until it is read). A publish's time limit does not apply: a
    publish stopped by it still releases its lock and keeps its cursor through this client. Guarding
    again only updates the deadlines."""
    _install_pool_hook()
    client._wire_deadlines = deadlines
    if getattr(client, "_wire_guarded", False):
        return client

    def before_send(request: Any, **_: Any) -> None:
        end_attempt()
        _LOCAL.s3_outer = _arm(client._wire_deadlines.of(request.method or "GET"), what)[1]
        return None  # send it (a returned response would stand in for the reply)

    def end_attempt(attempts: int | None = None, caught_exception: Exception | None = None,
                    request_dict: dict[str, Any] | None = None, **_: Any) -> float | None:
        watch = getattr(_LOCAL, "watch", None)
        if watch is None or not hasattr(_LOCAL, "s3_outer"):
            return None
        _LOCAL.watch = _LOCAL.__dict__.pop("s3_outer")
        watch.disarm()
        if watch.cut and caught_exception is None and attempts is not None:
            # the reply was cut in its headers, which can parse as a whole (empty) reply: not a success
            if attempts < int(client.meta.config.retries.get("total_max_attempts") or 5):
                return 0.0  # botocore tries again now
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url=_path((request_dict or {}).get("url")))
        return None

    events = client.meta.events
    events.register("before-send", before_send, unique_id="knack-services-deadline-arm")
    events.register("needs-retry", end_attempt, unique_id="knack-services-deadline-disarm")
    events.register("after-call-error", end_attempt, unique_id="knack-services-deadline-error")
    client._wire_guarded = True
    return client
