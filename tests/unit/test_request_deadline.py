"""The whole-request deadline rule: every request gets ``request_deadline_seconds``, a write never more
than 0.4 of a lock's life (so it is over before half the lock's life, when its holder stops writing)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tasks.domain.config import Settings
from tasks.domain.deadlines import (
    WRITE_SHARE_OF_LOCK,
    RequestDeadlines,
    default_deadlines,
    is_write,
    request_deadline,
    request_deadlines,
)

pytestmark = pytest.mark.unit


def test_defaults_give_every_request_twenty_seconds() -> None:
    settings = Settings()
    assert settings.request_deadline_seconds == 20 and settings.lock_ttl_seconds == 60
    assert request_deadline(settings, write=False) == 20
    assert request_deadline(settings, write=True) == 20  # 0.4 × 60 = 24 is not the shorter
    assert default_deadlines() == RequestDeadlines(read=20, write=20)


@pytest.mark.parametrize(("ttl", "deadline", "read", "write"), [
    (10, 20, 20, 4.0),    # a short lock cuts writes, never reads
    (2, 20, 20, 0.8),
    (60, 5, 5, 5),        # a short deadline wins over the lock's share
    (600, 45, 45, 45),
])
def test_writes_are_capped_at_a_share_of_the_lock(ttl: int, deadline: float, read: float, write: float) -> None:
    settings = Settings(lock_ttl_seconds=ttl, request_deadline_seconds=deadline)
    assert request_deadline(settings, write=False) == read
    assert request_deadline(settings, write=True) == pytest.approx(write)
    both = request_deadlines(settings)
    assert (both.read, both.write) == (read, pytest.approx(write))


@pytest.mark.parametrize("ttl", [1, 2, 3, 7, 30, 60, 61, 600, 86400])
def test_a_write_is_always_over_before_half_a_lock_s_life(ttl: int) -> None:
    for deadline in (0.5, 1, 20, 600):
        write = request_deadline(Settings(lock_ttl_seconds=ttl, request_deadline_seconds=deadline), write=True)
        assert write < ttl / 2 and write <= deadline
    assert WRITE_SHARE_OF_LOCK < 0.5


def test_which_requests_are_writes() -> None:
    assert [is_write(m) for m in ("GET", "head", "OPTIONS")] == [False, False, False]
    assert [is_write(m) for m in ("PUT", "post", "DELETE", "PATCH")] == [True, True, True, True]
    deadlines = RequestDeadlines(read=9, write=3)
    assert (deadlines.of("GET"), deadlines.of("POST"), deadlines.of("delete")) == (9, 3, 3)


@pytest.mark.parametrize("value", [0, -1, 601])
def test_a_deadline_out_of_range_is_refused_by_name(value: float) -> None:
    with pytest.raises(ValidationError, match="request_deadline_seconds"):
        Settings(request_deadline_seconds=value)
    if value <= 0:
        with pytest.raises(ValueError, match="positive"):
            RequestDeadlines(read=1, write=value)
