"""The one retry policy: what counts as transient, how long to wait, and the loop every client runs.

Knack, Socrata and ArcGIS requests retry only transient faults: timeouts, dropped connections, 408,
429 and 5xx (and a reply a client marks as ``TransientReply``). Anything else, a 400 or a 401 above
all, fails at once. Waits grow exponentially with jitter, and a server's own "come back in" (429
reset, ``Retry-After``) wins when it gives one. Each client picks its attempts and backoff; the rules
are here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from tasks.deadline import time_left

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_WAIT_SECONDS = 60.0

Wait = Callable[[RetryCallState], float]


class TransientReply(Exception):
    """A reply worth another try (429, 5xx, a body cut short); ``wait_hint`` is the server's own "come back in"."""

    transient = True

    def __init__(self, status: int, message: str, wait_hint: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message, self.wait_hint = status, message, wait_hint


def status_of(exc: BaseException) -> int | None:
    """The HTTP status carried by an exception, if any."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if status is not None else None


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUS or status >= 500


def is_transient(exc: BaseException) -> bool:
    """Timeouts, dropped connections, 429 and 5xx: worth another try. A 4xx mistake never is, nor a
    run's own time limit running out (Prefect's ``FlowRunTimeoutError`` is a ``TimeoutError``)."""
    if any(cls.__name__ == "FlowRunTimeoutError" for cls in type(exc).__mro__):
        return False
    if isinstance(exc, requests.Timeout | requests.ConnectionError | TimeoutError | ConnectionError):
        return True
    status = status_of(exc)
    if status is not None:
        return is_transient_status(status)
    return bool(getattr(exc, "transient", False))


def failure_of(state: RetryCallState) -> BaseException | None:
    """The exception the last attempt raised (None if it returned)."""
    return state.outcome.exception() if state.outcome else None


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds from the reply's ``Retry-After`` header (whole seconds only), capped; None without one."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    if value is not None and value.strip().isdigit():
        return min(float(value), MAX_WAIT_SECONDS)
    return None


def exponential_jitter(backoff: float, max_wait: float = MAX_WAIT_SECONDS) -> Wait:
    """``backoff`` × 2^(attempt−1), plus up to ``backoff`` of jitter, at most ``max_wait`` (Socrata, ArcGIS)."""
    def wait(state: RetryCallState) -> float:
        delay = backoff * 2 ** (state.attempt_number - 1)
        return min(delay + random.uniform(0, backoff), max_wait)
    return wait


def full_jitter(initial: float, max_wait: float) -> Wait:
    """Anywhere between 0 and ``initial`` × 2^attempt, at most ``max_wait`` (Knack: many pages retry at once,
    and spreading them out keeps them under the rate limit)."""
    return wait_random_exponential(multiplier=initial, max=max_wait)


def hinted(hint: Callable[[BaseException | None], float | None], otherwise: Wait) -> Wait:
    """The server's own wait when ``hint`` finds one in the failure, else ``otherwise``."""
    def wait(state: RetryCallState) -> float:
        seconds = hint(failure_of(state))
        return seconds if seconds is not None else otherwise(state)
    return wait


def retrying(*, attempts: int | Callable[[RetryCallState], bool], wait: Wait,
             retry_on: Callable[[BaseException], bool] = is_transient,
             before_sleep: Callable[[RetryCallState], None] | None = None,
             sleep: Callable[[float], object] = time.sleep) -> Retrying:
    """A tenacity loop: retries ``retry_on`` failures only, at most ``attempts`` tries (or a stop rule),
    waiting ``wait``; the last failure is raised as itself."""
    stop = stop_after_attempt(attempts) if isinstance(attempts, int) else attempts

    def out_of_time(state: RetryCallState) -> bool:  # inside a publish's time limit (tasks/deadline.py)
        left = time_left()
        return left is not None and left <= 0

    def wait_in_time(state: RetryCallState) -> float:
        left = time_left()
        return wait(state) if left is None else max(0.0, min(wait(state), left))

    def should_stop(state: RetryCallState) -> bool:
        return stop(state) or out_of_time(state)

    def pause(seconds: float) -> None:  # an Event's wait returns a flag that the loop has no use for
        sleep(seconds)

    return Retrying(retry=retry_if_exception(retry_on), stop=should_stop, wait=wait_in_time,
                    before_sleep=before_sleep, sleep=pause, reraise=True)
