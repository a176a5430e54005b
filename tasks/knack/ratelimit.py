"""Rate limiters for Knack requests: one budget per app, shared by every request of every run.

Knack allows 10 requests per second per app. In a single process ``LocalRateLimiter`` keeps any
one-second window under the limit; with a Prefect API server, ``PrefectRateLimiter`` spends a
global concurrency limit with slot decay, so runs on several workers share the same budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    """Blocks until one more request may be sent."""

    def acquire(self) -> None: ...


class LocalRateLimiter:
    """Thread-safe sliding window: at most ``per_second`` grants in any ``window`` seconds.

    The window is a little longer than a second (``margin``) because the server counts arrivals,
    and two requests granted exactly one second apart can arrive a few milliseconds closer.
    Waiting threads sleep until the oldest grant leaves the window; nothing spins.
    """

    def __init__(self, per_second: float, *, margin: float = 0.05,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.per_second = per_second
        if per_second >= 1:
            self._capacity, self._window = int(per_second), 1.0 + margin
        else:  # slower than one a second: one grant per 1/per_second seconds
            self._capacity, self._window = 1, (1.0 + margin) / per_second
        self._grants: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def __repr__(self) -> str:
        return f"LocalRateLimiter(per_second={self.per_second})"

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._grants and self._grants[0] <= now - self._window:
                    self._grants.popleft()
                if len(self._grants) < self._capacity:
                    self._grants.append(now)
                    return
                wait = self._grants[0] + self._window - now
            self._sleep(max(wait, 0.001))


class PrefectRateLimiter:
    """A Prefect global concurrency limit used as a rate limit (``rate_limit(name)``).

    Slots decay continuously, so a limit of ``burst`` slots refilling at ``per_second - burst`` per
    second never admits more than ``per_second`` requests in one second. The limit is created (or
    corrected) on first use. If the Prefect API cannot be reached, requests fall back to a local
    limiter rather than failing the run.
    """

    def __init__(self, name: str, per_second: float, *, burst: int = 1) -> None:
        self.name, self.per_second = name, per_second
        self.burst = max(1, min(burst, int(per_second) - 1)) if per_second > 1 else 1
        self._decay = max(per_second - self.burst, 0.1)
        self._ready = False
        self._fallback: LocalRateLimiter | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PrefectRateLimiter(name={self.name!r}, per_second={self.per_second})"

    def _ensure_limit(self) -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(self.name, limit=self.burst,
                                                           slot_decay_per_second=self._decay)

    def acquire(self) -> None:
        from prefect.concurrency.sync import rate_limit

        with self._lock:
            if not self._ready and self._fallback is None:
                try:
                    self._ensure_limit()
                    self._ready = True
                except Exception as exc:  # any API trouble: keep going, politely
                    log.warning("global rate limit %s unavailable (%s); limiting this process only",
                                self.name, type(exc).__name__)
                    self._fallback = LocalRateLimiter(self.per_second)
        if self._fallback is not None:
            self._fallback.acquire()
            return
        rate_limit(self.name, occupy=1, strict=True)


def prefect_api_configured() -> bool:
    """True when runs report to a Prefect API server (so a global limit can be shared)."""
    try:
        from prefect.settings import get_current_settings

        return bool(get_current_settings().api.url)
    except Exception:  # no usable Prefect settings means no server
        return False


_LOCAL: dict[tuple[str, float], LocalRateLimiter] = {}
_LOCAL_LOCK = threading.Lock()


def make_rate_limiter(app_name: str, per_second: float = 10) -> RateLimiter:
    """The limiter for an app: the shared Prefect limit ``knack-<app>`` when a server is configured,
    else one process-wide local limiter per app (every client of the app in this process shares it).
    """
    if prefect_api_configured():
        return PrefectRateLimiter(f"knack-{app_name}", per_second)
    with _LOCAL_LOCK:
        key = (app_name, float(per_second))
        if key not in _LOCAL:
            _LOCAL[key] = LocalRateLimiter(per_second)
        return _LOCAL[key]
