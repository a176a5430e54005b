"""Rate limiters for Knack requests: one budget per app, shared by every request of every run.

Knack allows 10 requests per second per app. In a single process ``LocalRateLimiter`` keeps any
one-second window under the limit; with a Prefect API server, ``PrefectRateLimiter`` takes slots of a
Prefect global concurrency limit in batches, so runs on several workers share the same budget while
the limiter spends one Prefect API call per batch, not one per Knack request.

The decisions of a take, and why a batch keeps the app's limit across processes, are in
``tasks/domain/ratelimit.py``; this module does the I/O they ask for.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from tasks.domain.ratelimit import (
    Answer,
    Begin,
    Configure,
    Configured,
    GiveUp,
    LevelRead,
    LimitShape,
    Proceed,
    Read,
    Take,
    TakeAnswered,
    TakeOutcome,
    TakerState,
    Wait,
    Waited,
    decide,
    throttle_step,
)

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    """Blocks until one more request may be sent; spaces requests further apart when Knack says 429."""

    def acquire(self) -> None: ...

    def throttled(self) -> None:
        """Knack refused a request for rate although this limiter let it through: the requests arrived
        closer together than they left (network or CPU jitter), so leave more room from now on."""
        ...


def _log_throttle(name: str, extra: float) -> None:
    log.warning("Knack answered 429 (rate) to %s: spacing its requests %d%% further apart from now on",
                name, round(extra * 100))


class LocalRateLimiter:
    """Thread-safe sliding window: at most ``per_second`` grants in any ``window`` seconds.

    The window is a little longer than a second (``margin``) because the server counts arrivals,
    and two requests granted exactly one second apart can arrive a few milliseconds closer.
    Waiting threads sleep until the oldest grant leaves the window; nothing spins.
    """

    def __init__(self, per_second: float, *, margin: float = 0.05, name: str = "this process",
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.per_second, self.name = per_second, name
        self._margin, self._extra, self._throttled_at = margin, 0.0, -math.inf
        self._capacity, self._window = self._sized()
        self._grants: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def __repr__(self) -> str:
        return f"LocalRateLimiter(per_second={self.per_second})"

    @property
    def window(self) -> float:
        """Seconds in which at most ``per_second`` grants go (more than 1: the margin, and any 429s)."""
        return self._window

    def _sized(self) -> tuple[int, float]:
        stretch = 1.0 + self._margin + self._extra
        if self.per_second >= 1:
            return int(self.per_second), stretch
        return 1, stretch / self.per_second  # slower than one a second: one grant per 1/per_second seconds

    def throttled(self) -> None:
        with self._lock:
            now = self._clock()
            extra = throttle_step(self._extra, self._throttled_at, now, self._window)
            if extra is None:
                return
            self._extra, self._throttled_at = extra, now
            self._capacity, self._window = self._sized()
        _log_throttle(self.name, extra)

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


# --- the global limit, through the Prefect API -------------------------------------------------------

# the outcomes of a take, as the Prefect API answers it (``LimitApi.take``)
TAKEN, REFUSED, MISSING, MISFIT = TakeOutcome.TAKEN, TakeOutcome.REFUSED, TakeOutcome.MISSING, TakeOutcome.MISFIT


class LimitApi(Protocol):
    """The two Prefect API operations the batched limiter needs (a fake stands in for it in unit tests)."""

    def take(self, name: str, slots: int) -> tuple[str, int]:
        """Take ``slots`` of the rate limit ``name`` in one call: ``(TAKEN, calls)`` when granted,
        ``(REFUSED, calls)`` when the limit is full now, ``(MISSING, calls)`` when no such limit exists,
        ``(MISFIT, calls)`` when it exists with another size or without decay."""
        ...

    def configure(self, name: str, limit: int, decay: float, exists: bool) -> int:
        """Create the limit, or correct its size and decay (and make it active); returns the API calls made."""
        ...

    def level(self, name: str) -> tuple[int | None, int]:
        """The limit's slots in use now, after decay, read without taking any (a read leaves the decay
        clock alone); ``(None, calls)`` when there is no such limit."""
        ...


class PrefectLimitApi:
    """``LimitApi`` over the Prefect client: ``POST /v2/concurrency_limits/increment`` in ``rate_limit``
    mode, and creating or updating the limit. One client for the life of the process."""

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from prefect.client.orchestration import get_client

                self._client = get_client(sync_client=True)
                self._client.__enter__()
            return self._client

    def take(self, name: str, slots: int) -> tuple[str, int]:
        import httpx

        client = self._get_client()
        try:
            response = client.request("POST", "/v2/concurrency_limits/increment",
                                      json={"names": [name], "slots": slots, "mode": "rate_limit"})
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 423:
                return REFUSED, 1
            if exc.response.status_code == 422:  # more slots than the limit has, or a limit without decay
                return MISFIT, 1
            raise
        limits = response.json()
        if not limits:
            return MISSING, 1
        if any(int(limit.get("limit", slots)) != slots for limit in limits):
            return MISFIT, 1
        return TAKEN, 1

    def level(self, name: str) -> tuple[int | None, int]:
        """One call: ``GET /v2/concurrency_limits/{name}``, whose ``active_slots`` the server gives after decay."""
        from urllib.parse import quote

        import httpx

        client = self._get_client()
        try:
            response = client.request("GET", f"/v2/concurrency_limits/{quote(name, safe='')}")
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                return None, 1
            raise
        return int(response.json().get("active_slots") or 0), 1

    def configure(self, name: str, limit: int, decay: float, exists: bool) -> int:
        """One call: update the limit when it exists, else create it. When another process created it
        first, leave it: the next take says whether it fits."""
        import httpx
        from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
        from prefect.exceptions import ObjectAlreadyExists

        client = self._get_client()
        if exists:
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=limit, slot_decay_per_second=decay, active=True))
            return 1
        try:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=limit, slot_decay_per_second=decay))
        except (ObjectAlreadyExists, httpx.HTTPStatusError) as exc:
            if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code != 409:
                raise
        return 1


@dataclass
class LimiterStats:
    """What a batched limiter spent: Prefect API calls against the Knack requests it granted."""

    api_calls: int = 0   # every call to the Prefect API: takes (granted or refused), reads, configuring the limit
    batches: int = 0     # takes granted
    refused: int = 0     # takes refused because another process held the limit
    reads: int = 0       # reads of the limit's level: one to start a burst, more while another process holds it
    grants: int = 0      # Knack requests let through
    throttled: int = 0   # 429s for rate from Knack, each spacing the grants further apart
    dropped: int = 0     # slots of a batch that expired unused (harmless: they only held the limit)
    fallback: bool = False  # the Prefect API failed: this process limits itself only

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["api_calls_per_request"] = round(self.api_calls / self.grants, 3) if self.grants else None
        return out


class PrefectRateLimiter:
    """The app's rate shared by every process through a Prefect global concurrency limit, taken in batches.

    One API call takes ``batch`` slots (the whole limit); the grants are then handed out locally, paced
    ``1/pace`` apart, within the batch's window (the module docstring has the argument). The limit is
    created or corrected when the first take finds it missing or of another size. The first take of a
    burst, and every take while other processes are taking too, is preceded by a read of the limit's
    level, and a held limit is waited out rather than asked (``tasks/domain/ratelimit.py``). If the Prefect API fails,
    requests fall back to a local limiter rather than failing the run.
    """

    def __init__(self, name: str, per_second: float, *, batch: int | None = None, margin: float = 0.02,
                 api: LimitApi | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, jitter: Callable[[], float] = random.random) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.name, self.per_second, self.margin = name, per_second, margin
        self.batch = max(1, int(batch if batch is not None else max(10, math.ceil(per_second))))
        self.pace = per_second / (1.0 + margin)         # grants a second, at most, in this process (lower after 429s)
        self._extra, self._throttled_at = 0.0, -math.inf  # added to the pace's margin by 429s, and when
        self.decay = per_second / (1.0 + 2 * margin)    # slots a second the global limit frees
        self.window = self.batch / self.decay           # how long one take holds the limit
        self.stats = LimiterStats()
        self._api = api if api is not None else PrefectLimitApi()
        self._clock, self._sleep, self._jitter = clock, sleep, jitter
        self._lock = threading.Lock()       # the batch's state
        self._take_lock = threading.Lock()  # one take in flight per process
        self._left = 0                      # grants left in the current batch
        self._deadline = -math.inf          # no grant of the current batch after this
        self._next = -math.inf              # the earliest next grant (pacing)
        self._shape = LimitShape(self.batch, self.decay)
        self._taker = TakerState()          # what the takes so far learnt about the limit (decide's state)
        self._fallback: LocalRateLimiter | None = None

    def __repr__(self) -> str:
        return f"PrefectRateLimiter(name={self.name!r}, per_second={self.per_second}, batch={self.batch})"

    def acquire(self) -> None:
        while True:
            if self._fallback is not None:
                self._fallback.acquire()
                with self._lock:
                    self.stats.grants += 1
                return
            wait = self._grant()
            if wait is not None:
                if wait > 0:
                    self._sleep(wait)
                return
            with self._take_lock:
                if self._has_grant():  # another thread took a batch meanwhile
                    continue
                self._take()

    # --- internals -------------------------------------------------------------------------------

    def _grant(self) -> float | None:
        """A grant from the current batch: seconds to wait for its time, or None when there is none."""
        with self._lock:
            now = self._clock()
            at = max(now, self._next)
            if self._left > 0 and at <= self._deadline + 1e-9:
                self._left -= 1
                self._next = at + 1.0 / self.pace
                self.stats.grants += 1
                return at - now
            if self._left > 0:  # the window closed before these were used
                self.stats.dropped += self._left
                self._left = 0
            return None

    def throttled(self) -> None:
        """Grants go further apart (the global limit is unchanged: fewer grants fit a batch's window, and
        the rest are dropped, so the limit's guarantee only gains room)."""
        with self._lock:
            self.stats.throttled += 1
            now = self._clock()
            extra = throttle_step(self._extra, self._throttled_at, now, self.window)
            if extra is None:
                return
            self._extra, self._throttled_at = extra, now
            self.pace = self.per_second / (1.0 + self.margin + extra)
        _log_throttle(self.name, extra)

    def _has_grant(self) -> bool:
        with self._lock:
            return self._left > 0 and max(self._clock(), self._next) <= self._deadline + 1e-9

    def _take(self) -> None:
        """Take a batch: do what ``tasks.domain.ratelimit.decide`` says until it proceeds or gives up.

        Every Prefect API call is counted in ``stats``; an API failure falls back to a local limiter.
        """
        answer: Answer = Begin()
        while True:
            decision, self._taker = decide(self._taker, self._shape, self._clock(), answer)
            match decision:
                case Proceed(first_grant=first_grant, window_ends=window_ends):
                    with self._lock:
                        self.stats.batches += 1
                        self._left = self.batch
                        self._deadline = window_ends - 1.0 / self.pace
                        self._next = max(self._next, first_grant)
                    return
                case GiveUp(reason=reason):
                    self._fall_back(RuntimeError(reason))
                    return
                case Wait(seconds=seconds):
                    self._sleep(seconds)
                    answer = Waited()
                case Read() | Take() | Configure():
                    try:
                        answer = self._call(decision)
                    except Exception as exc:  # the API is down or broken: keep going, politely
                        self._fall_back(exc)
                        return

    def _call(self, decision: Read | Take | Configure) -> Answer:
        """One Prefect API call, as ``decision`` asks, counted in ``stats``; its answer for ``decide``."""
        match decision:
            case Read():
                level, calls = self._api.level(self.name)
                self._count(calls, reads=1)
                return LevelRead(level, self._jitter() if level else 0.0)
            case Take():
                said, calls = self._api.take(self.name, self.batch)
                outcome = TakeOutcome(said)
                refused = outcome is TakeOutcome.REFUSED
                self._count(calls, refused=int(refused))
                return TakeAnswered(outcome, self._jitter() if refused else 0.0)
            case Configure(exists=exists):
                self._count(self._api.configure(self.name, self.batch, self.decay, exists=exists))
                return Configured()

    def _count(self, calls: int, *, reads: int = 0, refused: int = 0) -> None:
        with self._lock:
            self.stats.api_calls += calls
            self.stats.reads += reads
            self.stats.refused += refused

    def _fall_back(self, exc: BaseException) -> None:
        log.warning("global rate limit %s unavailable (%s: %s); limiting this process only",
                    self.name, type(exc).__name__, str(exc)[:200])
        with self._lock:
            self.stats.fallback = True
            self._fallback = LocalRateLimiter(self.per_second)


def prefect_api_configured() -> bool:
    """True when runs report to a Prefect API server (so a global limit can be shared)."""
    try:
        from prefect.settings import get_current_settings

        return bool(get_current_settings().api.url)
    except Exception:  # no usable Prefect settings means no server
        return False


_LOCAL: dict[tuple[str, float], LocalRateLimiter] = {}
_GLOBAL: dict[tuple[str, float, int | None], PrefectRateLimiter] = {}
_LOCK = threading.Lock()


def make_rate_limiter(app_name: str, per_second: float = 10, batch: int | None = None) -> RateLimiter:
    """The limiter for an app, one per process (every client of the app in this process shares it): the
    Prefect limit ``knack-<app>`` taken in batches when a server is configured, else a local limiter.
    """
    key = (app_name, float(per_second))
    with _LOCK:
        if prefect_api_configured():
            if (app_name, float(per_second), batch) not in _GLOBAL:
                _GLOBAL[(app_name, float(per_second), batch)] = PrefectRateLimiter(f"knack-{app_name}", per_second,
                                                                                 batch=batch)
            return _GLOBAL[(app_name, float(per_second), batch)]
        if key not in _LOCAL:
            _LOCAL[key] = LocalRateLimiter(per_second, name=app_name)
        return _LOCAL[key]


def limiter_stats() -> dict[str, dict[str, Any]]:
    """What every Prefect limiter of this process spent so far, by limit name (for logs and the bench)."""
    with _LOCK:
        return {limiter.name: limiter.stats.as_dict() for limiter in _GLOBAL.values()}
