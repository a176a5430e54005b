"""Per-app rate limit, daily quota, fault injection and request counters for the Knack emulator."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

UNLIMITED_PLAN = 99_999_999  # what an enterprise plan reported in real metadata (api_limit)


class Limits:
    """A sliding 1-second window of admitted requests plus a daily quota that resets at UTC midnight.

    Refused requests (429) consume neither the window nor the quota, so a client that waits for
    ``X-RateLimit-Reset`` always gets through.
    """

    def __init__(self, rate_limit_per_second: int | None = 10, daily_quota: int | None = None) -> None:
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self.rate_limit_per_second = rate_limit_per_second
        self.daily_quota = daily_quota
        self.used_today = 0
        self._day: Any = None

    def configure(self, rate_limit_per_second: int | None, daily_quota: int | None) -> None:
        """New limits; the day's usage starts again from zero."""
        with self._lock:
            self.rate_limit_per_second = rate_limit_per_second
            self.daily_quota = daily_quota
            self.used_today = 0
            self._window.clear()

    def quota_remaining(self) -> int | None:
        with self._lock:
            return None if self.daily_quota is None else max(self.daily_quota - self.used_today, 0)

    def admit(self, now_utc: datetime, consume: bool = True) -> tuple[str | None, dict[str, str]]:
        """(refusal reason or None, X-RateLimit-* and X-PlanLimit-* headers) for one API request.

        ``consume=False`` only reports the headers (used when a fault answers 429 anyway).
        """
        wall = time.time()
        with self._lock:
            if self._day != now_utc.date():
                self._day, self.used_today = now_utc.date(), 0
            while self._window and self._window[0] <= wall - 1.0:
                self._window.popleft()
            limit = self.rate_limit_per_second
            plan = self.daily_quota if self.daily_quota is not None else UNLIMITED_PLAN
            reason = None
            if not consume:
                pass
            elif self.daily_quota is not None and self.used_today >= self.daily_quota:
                reason = "quota"
            elif limit is not None and len(self._window) >= limit:
                reason = "rate"
            else:
                self._window.append(wall)
                self.used_today += 1
            remaining_rate = max((limit or UNLIMITED_PLAN) - len(self._window), 0)
            reset_at = self._window[0] + 1.0 if self._window else wall
            midnight = datetime.combine(now_utc.date() + timedelta(days=1), datetime.min.time(), now_utc.tzinfo)
            headers = {
                "X-PlanLimit-Limit": str(plan),
                "X-PlanLimit-Remaining": str(max(plan - self.used_today, 0)),
                "X-PlanLimit-Reset": str(int((midnight - now_utc).total_seconds() * 1000)),
                "X-RateLimit-Limit": str(limit if limit is not None else UNLIMITED_PLAN),
                "X-RateLimit-Remaining": str(remaining_rate),
                "X-RateLimit-Reset": str(math.ceil(reset_at)),
            }
            return reason, headers


@dataclass
class Faults:
    """The fault knobs of ``KnackEmulator.set_faults``; decisions use their own seeded RNG."""

    error_rate: float = 0.0
    error_status: int = 503
    hang_rate: float = 0.0
    hang_seconds: float = 5.0
    drop_rate: float = 0.0
    burst_429: int = 0
    inflate_total_records: int = 0
    short_page_every: int = 0
    seed: int | None = None
    trickle_ms: float = 0.0  # every API reply past the first ``trickle_after`` sends its body a byte at a time
    trickle_after: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def draw(self) -> tuple[bool, bool, bool, bool]:
        """(drop, hang, error, forced 429) for the next API request."""
        with self.lock:
            drop = self.drop_rate > 0 and self.rng.random() < self.drop_rate
            hang = self.hang_rate > 0 and self.rng.random() < self.hang_rate
            error = self.error_rate > 0 and self.rng.random() < self.error_rate
            burst = False
            if self.burst_429 > 0 and not (drop or error):
                self.burst_429 -= 1
                burst = True
            return drop, hang, error, burst

    def trickle(self) -> float:
        """Milliseconds between the body bytes of the next API reply (0: all at once)."""
        with self.lock:
            if self.trickle_ms <= 0:
                return 0.0
            if self.trickle_after > 0:
                self.trickle_after -= 1
                return 0.0
            return self.trickle_ms


class Counters:
    """What the emulator has served since the last reset (admin calls are not counted)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests = 0
            self.by_status: Counter[str] = Counter()
            self.pages = 0
            self.records_served = 0
            self.metadata = 0
            self.arrivals: list[float] = []
            self.in_flight = getattr(self, "in_flight", 0)
            self.peak_in_flight = self.in_flight

    def arrived(self) -> None:
        with self._lock:
            self.requests += 1
            self.arrivals.append(time.monotonic())
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def left(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def answered(self, status: int | str, *, page_rows: int | None = None, metadata: bool = False) -> None:
        with self._lock:
            self.by_status[str(status)] += 1
            if page_rows is not None:
                self.pages += 1
                self.records_served += page_rows
            if metadata:
                self.metadata += 1

    def snapshot(self, quota_remaining: int | None) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "by_status": dict(self.by_status), "pages": self.pages,
                    "records_served": self.records_served, "metadata": self.metadata,
                    "quota_remaining": quota_remaining}

    def arrival_times(self) -> list[float]:
        with self._lock:
            return list(self.arrivals)

    def peak(self) -> int:
        with self._lock:
            return self.peak_in_flight
