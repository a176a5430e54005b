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

    def level(self, name: str) -> tuple[int | None, int]:
        now = self.clock()  # type: ignore[operator]
        self.calls.append(("read", now))
        return (self._decayed(now) if self.exists else None), 1  # a read leaves the decay clock alone

    def configure(self, name: str, limit: int, decay: float, exists: bool) -> int:
        self.calls.append(("configure", self.clock()))  # type: ignore[operator]
        if not exists and self.exists:  # a create that lost the race to another process: 409, nothing changes
            self.conflicts = getattr(self, "conflicts", 0) + 1
            return 1
        assert exists == self.exists
        self.exists, self.limit, self.decay = True, limit, decay
        return 1


def in_threads(process: object, count: int) -> None:
    """Run ``process(i)`` for i < count, each in its own thread (a "process" on the virtual clock)."""
    threads = [threading.Thread(target=process, args=(i,)) for i in range(count)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


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

    in_threads(process, len(requests))
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
    # a read to start the burst, then three batches of ten, one call each: takes at 0, 1.05 and 2.10 (each
    # waits out the previous batch's window, 10 slots / (10/1.04) a second = 1.04 s, + 10 ms), grants
    # 1.02/10 s apart; the second and third continue the streak, unread
    assert limiter.stats.batches == 3 and limiter.stats.reads == 1 and limiter.stats.api_calls == 4
    assert limiter.stats.grants == 30 and [kind for kind, _ in fake.calls] == ["read", "take", "take", "take"]
    assert limiter.stats.dropped == 0 and limiter.stats.refused == 0
    assert times[-1] == pytest.approx(2 * (1.04 + 0.01) + 9 * 0.102, abs=1e-6)


def test_a_429_spaces_the_grants_further_apart_within_the_same_windows() -> None:
    vt = VirtualTime(1)
    fake = FakeLimit(vt.clock)
    limiter = PrefectRateLimiter("knack-app", 10, api=fake, clock=vt.clock, sleep=vt.sleep)
    times: list[float] = []
    for n in range(40):
        if n == 5:  # Knack answered 429 to the fifth request, and to the sixth sent with it: one episode
            limiter.throttled()
            limiter.throttled()
        limiter.acquire()
        times.append(vt.now)
    vt.done()
    after = [b - a for a, b in zip(times[5:], times[6:], strict=False)]
    assert min(after) >= 1.07 / 10 - 1e-9  # 1.02/10 before, 5% more after the 429
    assert busiest_second(times) <= 10
    # a take holds the limit as long as before (the global limit is unchanged), and 9 grants fit that
    # window now, not 10: the first window still gave 10 (its sixth was spaced before the 429), then
    # 9, 9, 9 with one slot dropped each, and the fifth batch served the last 3
    per_window = [sum(1 for t in times if start - 1e-6 <= t < start + 1.0) for start in (0.0, 1.05, 2.10, 3.15)]
    assert per_window == [10, 9, 9, 9] and limiter.stats.dropped == 3 and limiter.stats.batches == 5
    assert (fake.limit, fake.decay) == (10, pytest.approx(10 / 1.04))
    assert limiter.pace == pytest.approx(10 / 1.07) and limiter.stats.throttled == 2  # one step for the episode
    for _ in range(20):  # one episode a window: at most 30% further apart
        vt.now += 1.1
        limiter.throttled()
    assert limiter.pace == pytest.approx(10 / (1.02 + 0.3)) and limiter.stats.throttled == 22


def test_slots_left_when_a_window_closes_are_dropped_not_used_late() -> None:
    # 2 requests, then a pause of 2 s (page 1's latency), then 3 more: the first batch's window has
    # closed, its 8 slots are dropped, and a second batch serves the rest
    grants, (limiter,), fake = run_processes([5], gaps={0: (2, 2.0)})
    # each burst starts with a read: 2 reads and 2 takes
    assert limiter.stats.batches == 2 and limiter.stats.dropped == 8 and limiter.stats.api_calls == 2 + 2
    assert grants[0][2] == pytest.approx(2.102, abs=1e-6)  # the second take at the pause's end


def test_a_missing_limit_is_created_on_first_use() -> None:
    vt_fake = FakeLimit(lambda: 0.0, exists=False, limit=1, decay=9.0)
    grants, (limiter,), fake = run_processes([3], limit=vt_fake)
    assert (fake.limit, fake.decay) == (10, pytest.approx(10 / 1.04))
    # the read finds no limit: create it, then take it straight away
    assert [kind for kind, _ in fake.calls] == ["read", "configure", "take"]
    assert limiter.stats.api_calls == 1 + 1 + 1 and limiter.stats.grants == 3


def test_two_processes_that_both_find_the_limit_missing_spend_two_calls_each_on_it() -> None:
    # both take at once and find nothing; one creates it, the other's create conflicts and is left alone
    class Racing(FakeLimit):
        """Each process's first read is answered before either create lands."""

        first_reads: set[int] = set()

        def level(self, name: str) -> tuple[int | None, int]:
            if threading.get_ident() not in self.first_reads:
                self.first_reads.add(threading.get_ident())
                self.calls.append(("read", self.clock()))  # type: ignore[operator]
                return None, 1
            return super().level(name)

    grants, limiters, fake = run_processes([3, 3], limit=Racing(lambda: 0.0, exists=False))
    assert getattr(fake, "conflicts", 0) == 1 and fake.limit == 10
    for limiter in limiters:
        assert limiter.stats.grants == 3 and not limiter.stats.fallback
        # a create beside the batches, the refused takes and the reads (the first found no limit)
        assert limiter.stats.api_calls == 1 + limiter.stats.batches + limiter.stats.refused + limiter.stats.reads
    assert busiest_second(grants[0] + grants[1]) <= 10


def test_a_limit_of_another_size_is_corrected_before_slots_are_used() -> None:
    fake = FakeLimit(lambda: 0.0, limit=20, decay=10.0)  # e.g. left by another version
    grants, (limiter,), fake = run_processes([12], limit=fake)
    assert fake.limit == 10 and limiter.stats.batches == 2
    assert [kind for kind, _ in fake.calls][:4] == ["read", "take", "configure", "take"]
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
    assert calls == granted + sum(limiter.stats.refused + limiter.stats.reads for limiter in limiters)
    # both ask all the time here, the worst case: refusals restart the server's decay clock, so
    # waiters back off at random and windows go unused; 80 grants need 8.16 s at full pace
    assert ordered[-1] < 3 * 80 * 0.102


def test_an_api_failure_falls_back_to_a_local_limit() -> None:
    class Broken(FakeLimit):
        def take(self, name: str, slots: int) -> tuple[str, int]:
            raise ConnectionError("refused")

    grants, (limiter,), fake = run_processes([3], limit=Broken(lambda: 0.0))
    assert limiter.stats.fallback and limiter.stats.grants == 3


def test_every_call_is_counted_reads_and_refused_takes_included() -> None:
    grants, limiters, fake = run_processes([10, 10])
    refused = sum(limiter.stats.refused for limiter in limiters)
    reads = sum(limiter.stats.reads for limiter in limiters)
    assert reads >= 2  # each process starts its burst with one; the one that finds the limit held waits
    assert sum(limiter.stats.api_calls for limiter in limiters) == len(fake.calls) == 2 + refused + reads


class Latency(FakeLimit):
    """The fake limit behind a round trip of ``rtt`` seconds (half each way), on virtual time."""

    rtt = 0.02

    def __init__(self, vt: VirtualTime) -> None:
        super().__init__(vt.clock)
        self.vt = vt

    def take(self, name: str, slots: int) -> tuple[str, int]:
        self.vt.sleep(self.rtt / 2)
        answer = super().take(name, slots)
        self.vt.sleep(self.rtt / 2)
        return answer

    def level(self, name: str) -> tuple[int | None, int]:
        self.vt.sleep(self.rtt / 2)
        answer = super().level(name)
        self.vt.sleep(self.rtt / 2)
        return answer


def fetch_together(pages: list[int], seed: int, metadata: bool = True
                   ) -> tuple[float, list[PrefectRateLimiter], list[float]]:
    """Fetches of one app started together: the metadata request and 1.3 s of other work (or, without
    ``metadata``, straight to page 1, as the bench aligns them), page 1 (2 s to answer), then the other
    pages as fast as the limit allows. Returns T (page 1 asked to the last page answered), the limiters
    and every grant time."""
    vt = VirtualTime(len(pages))
    fake = Latency(vt)
    limiters = [PrefectRateLimiter("knack-app", 10, api=fake, clock=vt.clock, sleep=vt.sleep,
                                   jitter=random.Random(seed * 10 + i).random) for i in range(len(pages))]
    first: list[float] = []
    last: list[float] = []
    grants: list[float] = []

    def fetch(i: int) -> None:
        try:
            if metadata:
                limiters[i].acquire()
                grants.append(vt.now)
                vt.sleep(1.3)
            first.append(vt.now)
            limiters[i].acquire()
            grants.append(vt.now)
            vt.sleep(2.0)
            for _ in range(pages[i] - 1):
                limiters[i].acquire()
                grants.append(vt.now)
            last.append(vt.now + 2.0)
        finally:
            vt.done()

    in_threads(fetch, len(pages))
    assert len(last) == len(pages)
    return max(last) - min(first), limiters, grants


@pytest.mark.parametrize(("metadata", "floor"), [(False, 0.88), (True, 0.75)],
                         ids=["page-1-together", "with-metadata"])
@pytest.mark.parametrize("seed", range(8))
def test_two_fetches_together_keep_the_limit_busy_and_rarely_refuse_each_other(
        seed: int, metadata: bool, floor: float) -> None:
    # T* = 2 s (page 1) + 18 pages / 10 a second + 2 s (the last page) = 5.8 s, T from the first page 1
    # asked. Asking blindly, each refusal put the holder's slots back and the runs shut each other out:
    # T*/T was 0.66 to 0.82 with the page 1s asked together, 0.46 to 0.71 with the metadata first. With
    # the metadata first, its one-grant window puts the other run's page 1 about a second behind.
    t, limiters, grants = fetch_together([10, 10], seed, metadata)
    assert busiest_second(grants) <= 10
    assert 5.8 / t >= floor, t
    assert sum(limiter.stats.refused for limiter in limiters) <= 3
    assert all(not limiter.stats.fallback and limiter.stats.grants == 10 + metadata for limiter in limiters)


def test_a_fetch_alone_reads_once_a_burst_then_takes_a_call_a_batch() -> None:
    t, (limiter,), grants = fetch_together([20], seed=1)
    # bursts: the metadata, page 1, pages 2-20 (pages 12-20 continue the streak of 2-11, unread)
    assert limiter.stats.reads == 3 and limiter.stats.refused == 0 and limiter.stats.batches == 4
    assert limiter.stats.api_calls == 3 + 4
    assert 5.9 / t >= 0.95, t
