"""The one retry policy (tasks/retry.py): what is retried, and how long each wait is."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import requests
from tenacity import RetryCallState

from tasks.domain.errors import KnackError
from tasks.retry import (
    TransientReply,
    exponential_jitter,
    hinted,
    is_transient,
    retry_after,
    retrying,
)

pytestmark = pytest.mark.unit


def http_error(status: int, headers: dict[str, str] | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    return requests.HTTPError(f"HTTP {status}", response=response)


def state(attempt: int, exc: BaseException | None = None) -> Any:
    outcome = SimpleNamespace(exception=lambda: exc)
    return SimpleNamespace(attempt_number=attempt, outcome=outcome)


@pytest.mark.parametrize(("exc", "transient"), [
    (requests.Timeout(), True),
    (requests.ConnectionError(), True),
    (TimeoutError(), True),
    (http_error(408), True),
    (http_error(429), True),
    (http_error(500), True),
    (http_error(507), True),
    (http_error(400), False),
    (http_error(401), False),
    (http_error(404), False),
    (TransientReply(200, "response was not complete JSON"), True),
    (KnackError("refused", status=401), False),
    (ValueError("no"), False),
])
def test_only_transient_faults_are_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_retry_after_whole_seconds_capped_at_a_minute() -> None:
    assert retry_after(http_error(429, {"Retry-After": "7"})) == 7.0
    assert retry_after(http_error(429, {"Retry-After": "900"})) == 60.0
    assert retry_after(http_error(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) is None
    assert retry_after(http_error(503)) is None
    assert retry_after(None) is None


def test_exponential_jitter_doubles_and_stays_under_the_cap() -> None:
    wait = exponential_jitter(2.0, max_wait=60.0)
    for attempt, low in ((1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)):
        assert all(low <= wait(state(attempt)) <= low + 2.0 for _ in range(50))
    assert wait(state(10)) == 60.0


def test_a_server_hint_wins_over_the_backoff() -> None:
    wait = hinted(retry_after, lambda _: 1.5)
    assert wait(state(1, http_error(429, {"Retry-After": "4"}))) == 4.0
    assert wait(state(1, http_error(503))) == 1.5


def test_the_loop_retries_transient_faults_then_raises_the_last_one_as_itself() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise http_error(503)
        return "ok"

    assert retrying(attempts=3, wait=lambda _: 0.0)(flaky) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(requests.HTTPError):
        retrying(attempts=2, wait=lambda _: 0.0)(flaky)
    assert len(calls) == 2


def test_the_loop_never_retries_a_refusal() -> None:
    calls: list[RetryCallState] = []

    def refused() -> None:
        raise http_error(400)

    with pytest.raises(requests.HTTPError):
        retrying(attempts=5, wait=lambda _: 0.0, before_sleep=calls.append)(refused)
    assert calls == []
