"""A publish's time limit: requests cut to the time left, no retry after it, nothing changed outside it."""

from __future__ import annotations

import time

import pytest
import requests

from tasks.deadline import TimeLimitReached, bound_session, cap_timeout, time_left, time_limit
from tasks.retry import TransientReply, exponential_jitter, retrying

pytestmark = pytest.mark.unit


def test_outside_a_limit_nothing_changes() -> None:
    assert time_left() is None
    assert cap_timeout(60) == 60 and cap_timeout((5, 60)) == (5, 60) and cap_timeout(None) is None


def test_inside_a_limit_timeouts_are_cut_to_the_time_left() -> None:
    with time_limit(2, "demo/object_1 → socrata"):
        assert 1.5 < cap_timeout(60) <= 2
        connect, read = cap_timeout((0.5, 60))
        assert connect == 0.5 and 1.5 < read <= 2
        assert 1.5 < cap_timeout(None) <= 2
        assert cap_timeout(0.25) == 0.25
    assert time_left() is None


def test_past_the_limit_no_request_starts() -> None:
    with time_limit(0.01, "demo/object_1 → agol") as deadline:
        time.sleep(0.02)
        with pytest.raises(TimeLimitReached, match=r"demo/object_1 → agol: stopped at its time limit of 0.01 s"):
            cap_timeout(60)
        assert deadline.remaining() < 0


def test_a_bound_session_sends_with_the_cut_timeout() -> None:
    seen: list[object] = []
    session = requests.Session()
    session.send = lambda request, **kwargs: seen.append(kwargs.get("timeout"))  # type: ignore[method-assign]
    bound_session(bound_session(session))  # binding twice wraps once
    session.send(object(), timeout=60)
    with time_limit(3, "x"):
        session.send(object(), timeout=60)
    assert seen[0] == 60 and 2.5 < seen[1] <= 3  # type: ignore[operator]


def test_no_retry_starts_or_waits_past_the_limit() -> None:
    calls: list[float] = []
    slept: list[float] = []

    def flaky() -> None:
        calls.append(time.monotonic())
        raise TransientReply(503, "busy")

    loop = retrying(attempts=10, wait=exponential_jitter(30), sleep=slept.append)
    with time_limit(0.2, "x"), pytest.raises(TransientReply):
        loop(flaky)
    assert all(s <= 0.2 for s in slept), slept  # each wait cut to the time left

    def later() -> None:
        calls.append(time.monotonic())
        if len(calls) == 3:  # the clock runs out during the third try
            time.sleep(0.25)
        raise TransientReply(503, "busy")

    calls.clear()
    with time_limit(0.2, "x"), pytest.raises(TransientReply):
        retrying(attempts=10, wait=lambda state: 0.0)(later)
    assert len(calls) == 3  # no fourth try after the limit
