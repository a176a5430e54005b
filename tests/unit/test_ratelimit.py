"""The batched Prefect rate limiter's pacing and accounting, on virtual time against a fake limit.

``FakeLimit`` behaves as Prefect's server does for a rate limit: a take of n slots succeeds when the
decayed count plus n fits the limit; decay is ``floor(decay × seconds since the last update)`` and a
refused take is an update too (it restarts the decay clock without applying it). ``VirtualTime`` runs
several limiters ("processes") in threads on one simulated clock, so waits cost no real time and the
order of events is exact.
"""

from __future__ import annotations

import heapq
import math
import random
import threading

import pytest

from tasks.knack.ratelimit import MISFIT, MISSING, REFUSED, TAKEN, PrefectRateLimiter

pytestmark = pytest.mark.unit


class VirtualTime:
    """A clock shared by ``parties`` threads: it moves on only when every live thread is asleep."""

    def __init__(self, parties: int) -> None:
        self.now = 0.0
        self._awake = parties
        self._wakes: list[tuple[float, int]] = []
        self._seq = 0
        self._cv = threading.Condition()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._cv:
            self._seq += 1
            wake = (self.now + max(seconds, 0.0), self._seq)
            heapq.heappush(self._wakes, wake)
            self._awake -= 1
            self._advance()
            while wake in self._wakes or self.now < wake[0]:
                self._cv.wait()

    def done(self) -> None:
        with self._cv:
            self._awake -= 1
            self._advance()

    def _advance(self) -> None:
        if self._awake == 0 and self._wakes:
            at, seq = heapq.heappop(self._wakes)
            self.now = max(self.now, at)
            self._awake += 1
            self._cv.notify_all()


class FakeLimit:
    """One global rate limit as Prefect's server keeps it (see the module docstring)."""

    def __init__(self, clock: object, *, exists: bool = True, limit: int = 10, decay: float = 10 / 1.04) -> None:
        self.clock = clock
        self.exists, self.limit, self.decay = exists, limit, decay
        self.active, self.updated = 0, 0.0
        self.calls: list[tuple[str, float]] = []

    def _decayed(self, now: float) -> int:
        return max(0, self.active - math.floor(self.decay * (now - self.updated)))

    def take(self, name: str, slots: int) -> tuple[str, int]:
        now = self.clock()  # type: ignore[operator]
        self.calls.append(("take", now))
        if not self.exists:
            return MISSING, 1
        if slots > self.limit:
            return MISFIT, 1
        level = self._decayed(now)
        if level + slots > self.limit:
            self.updated = now  # the refusal updates denied_slots; the decay clock restarts, undecayed
            return REFUSED, 1
        self.active, self.updated = level + slots, now
        return (TAKEN if self.limit == slots else MISFIT), 1

    def configure(self, name: str, limit: int, decay: float, exists: bool) -> int:
        self.calls.append(("configure", self.clock()))  # type: ignore[operator]
        assert exists == self.exists
        self.exists, self.limit, self.decay = True, limit, decay
        return 1


def run_processes(requests: list[int], *, per_second: float = 10, batch: int | None = None,
                  gaps: dict[int, tuple[int, float]] | None = None,
                  limit: FakeLimit | None = None, seed: int = 1) -> tuple[list[list[float]], list[PrefectRateLimiter], FakeLimit]:
    """Each process makes ``requests[i]`` requests as fast as its limiter allows (after ``gaps[i] =
    (after_n, seconds)`` it pauses, like a fetch waiting for page 1); returns each one's grant times."""
    vt = VirtualTime(len(requests))
    fake = limit or FakeLimit(vt.clock)
    fake.clock = vt.clock
    limiters = [PrefectRateLimiter("knack-app", per_second, batch=batch, api=fake, clock=vt.clock,
                                   sleep=vt.sleep, jitter=random.Random(seed + i).random)
                for i in range(len(requests))]
    grants: list[list[float]] = [[] for _ in requests]
    errors: list[BaseException] = []

    def process(i: int) -> None:
        try:
            for n in range(requests[i]):
                if gaps and i in gaps and n == gaps[i][0]:
                    vt.sleep(gaps[i][1])
                limiters[i].acquire()
                grants[i].append(vt.now)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            vt.done()

    threads = [threading.Thread(target=process, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return grants, limiters, fake


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)), default=0)


def test_one_process_takes_a_batch_per_ten_requests_and_paces_them() -> None:
    grants, (limiter,), fake = run_processes([30])
    times = grants[0]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1.02 / 10 - 1e-9  # never closer than 1/decay
    assert busiest_second(times) <= 10
    # three batches of ten, one call each: takes at 0, 1.05 and 2.10 (each waits out the previous
    # batch's window, 10 slots / (10/1.04) a second = 1.04 s, + 10 ms), grants 1.02/10 s apart
    assert limiter.stats.batches == 3 and limiter.stats.api_calls == 3 and limiter.stats.grants == 30
    assert limiter.stats.dropped == 0 and limiter.stats.refused == 0
    assert times[-1] == pytest.approx(2 * (1.04 + 0.01) + 9 * 0.102, abs=1e-6)


def test_slots_left_when_a_window_closes_are_dropped_not_used_late() -> None:
    # 2 requests, then a pause of 2 s (page 1's latency), then 3 more: the first batch's window has
    # closed, its 8 slots are dropped, and a second batch serves the rest
    grants, (limiter,), fake = run_processes([5], gaps={0: (2, 2.0)})
    assert limiter.stats.batches == 2 and limiter.stats.dropped == 8 and limiter.stats.api_calls == 2
    assert grants[0][2] == pytest.approx(2.102, abs=1e-6)  # the second take at the pause's end


def test_a_missing_limit_is_created_on_first_use() -> None:
    vt_fake = FakeLimit(lambda: 0.0, exists=False, limit=1, decay=9.0)
    grants, (limiter,), fake = run_processes([3], limit=vt_fake)
    assert (fake.limit, fake.decay) == (10, pytest.approx(10 / 1.04))
    assert [kind for kind, _ in fake.calls] == ["take", "configure", "take"]
    assert limiter.stats.api_calls == 1 + 1 + 1 and limiter.stats.grants == 3


def test_a_limit_of_another_size_is_corrected_before_slots_are_used() -> None:
    fake = FakeLimit(lambda: 0.0, limit=20, decay=10.0)  # e.g. left by another version
    grants, (limiter,), fake = run_processes([12], limit=fake)
    assert fake.limit == 10 and limiter.stats.batches == 2
    assert [kind for kind, _ in fake.calls][:3] == ["take", "configure", "take"]
    assert busiest_second(grants[0]) <= 10


@pytest.mark.parametrize("gap", [None, {0: (2, 2.0), 1: (2, 2.0)}])
def test_two_processes_never_exceed_the_limit_together(gap: dict | None) -> None:
    grants, limiters, fake = run_processes([40, 40], gaps=gap)
    every = grants[0] + grants[1]
    assert len(every) == 80
    assert busiest_second(every) <= 10
    ordered = sorted(every)
    assert min(b - a for a, b in zip(ordered, ordered[1:], strict=False)) >= 1.02 / 10 - 1e-9
    calls = sum(limiter.stats.api_calls for limiter in limiters)
    granted = sum(limiter.stats.batches for limiter in limiters)
    assert calls == granted + sum(limiter.stats.refused for limiter in limiters)
    # both ask all the time here, the worst case: refusals restart the server's decay clock, so
    # waiters back off at random and windows go unused; 80 grants need 8.16 s at full pace
    assert ordered[-1] < 3 * 80 * 0.102


def test_an_api_failure_falls_back_to_a_local_limit() -> None:
    class Broken(FakeLimit):
        def take(self, name: str, slots: int) -> tuple[str, int]:
            raise ConnectionError("refused")

    grants, (limiter,), fake = run_processes([3], limit=Broken(lambda: 0.0))
    assert limiter.stats.fallback and limiter.stats.grants == 3


def test_refused_takes_are_counted_as_calls() -> None:
    grants, limiters, fake = run_processes([10, 10])
    refused = sum(limiter.stats.refused for limiter in limiters)
    assert refused >= 1
    assert sum(limiter.stats.api_calls for limiter in limiters) == len(fake.calls) == 2 + refused
