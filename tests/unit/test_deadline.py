"""A publish's time limit: the time left, no retry after it, nothing changed outside it (requests cut to the
time left: tests/unit/test_wire.py)."""

from __future__ import annotations

import time

import pytest

from tasks.deadline import TimeLimitReached, current, time_left, time_limit
from tasks.retry import TransientReply, exponential_jitter, retrying

pytestmark = [pytest.mark.unit, pytest.mark.timing]


def test_outside_a_limit_there_is_no_time_left_to_count() -> None:
    assert time_left() is None and current() is None


def test_inside_a_limit_the_time_left_counts_down() -> None:
    with time_limit(2, "demo/object_1 → socrata") as deadline:
        assert current() is deadline and 1.5 < (time_left() or 0) <= 2
    assert time_left() is None


def test_past_the_limit_the_error_names_the_publish() -> None:
    with time_limit(0.01, "demo/object_1 → agol") as deadline:
        time.sleep(0.02)
        assert deadline.remaining() < 0
        with pytest.raises(TimeLimitReached, match=r"demo/object_1 → agol: stopped at its time limit of 0.01 s"):
            raise deadline.reached()


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
