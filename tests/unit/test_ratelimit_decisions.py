"""The decisions of a take of the shared Knack rate limit (``tasks/domain/ratelimit.py``): one step at a
time from a table, then whole takes driven on a simulated clock against ``FakeLimit`` (Prefect's server
as ``tests/unit/test_ratelimit.py`` models it), with no threads and no limiter object."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

import pytest

from tasks.domain.ratelimit import (
    CONTENTION_MEMORY,
    Answer,
    Begin,
    Configure,
    Configured,
    Decision,
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
from tests.unit.test_ratelimit import FakeLimit

pytestmark = pytest.mark.unit

SHAPE = LimitShape(batch=10, decay=10 / 1.04)
W = SHAPE.window  # 1.04 s
HELD = CONTENTION_MEMORY * W  # how long a held read or a refusal keeps a process reading first
TAKEN, REFUSED, MISSING, MISFIT = TakeOutcome.TAKEN, TakeOutcome.REFUSED, TakeOutcome.MISSING, TakeOutcome.MISFIT


def same(actual: object, expected: object) -> bool:
    """Equal dataclasses, their float fields compared to a relative 1e-9."""
    if type(actual) is not type(expected):
        return False
    for field in fields(actual):  # type: ignore[arg-type]
        a, e = getattr(actual, field.name), getattr(expected, field.name)
        if isinstance(e, float) and math.isfinite(e):
            if a != pytest.approx(e, rel=1e-9):
                return False
        elif a != e:
            return False
    return True


# (case, state before, now, answer, decision, the state's fields that change)
STEPS: list[tuple[str, TakerState, float, Answer, Decision, dict[str, Any]]] = [
    ("a process's first take reads the limit first",
     TakerState(), 0.0, Begin(), Read(), {}),
    ("a take while our own last batch holds the limit waits it out",
     TakerState(free_at=2.0), 1.5, Begin(), Wait(0.5), {}),
    ("after that wait the take continues the streak: no read",
     TakerState(free_at=2.0), 2.0, Waited(), Take(), {"sent": 2.0}),
    ("a take within STREAK of our own window closing continues the streak",
     TakerState(free_at=2.0), 2.04, Begin(), Take(), {"sent": 2.04}),
    ("a take later than that starts a new burst: read first",
     TakerState(free_at=2.0), 2.06, Begin(), Read(), {}),
    ("while another process was seen taking, even the streak reads first",
     TakerState(free_at=2.0, contended_until=5.0), 2.0, Waited(), Read(), {}),
    ("a read that finds the limit free takes it",
     TakerState(), 0.1, LevelRead(0), Take(), {"sent": 0.1}),
    ("a read that finds it held waits until the held slots (and a random part of one) have decayed",
     TakerState(), 1.0, LevelRead(5, jitter=0.5), Wait(5.5 / SHAPE.decay),
     {"free_at": 1.0 + 5.5 / SHAPE.decay, "contended_until": 1.0 + HELD}),
    ("a read that finds no limit creates it, then takes unread",
     TakerState(), 0.2, LevelRead(None), Configure(exists=False),
     {"configured": 1, "read_first": False, "sent": 0.2}),
    ("a granted take proceeds: grants from the answer on, none past a window from when it was sent",
     TakerState(sent=1.0), 1.02, TakeAnswered(TAKEN), Proceed(first_grant=1.02, window_ends=1.0 + W),
     {"free_at": 1.02 + W + 0.01}),
    ("a refused take waits a window and a random tenth of one more, and reads first from then on",
     TakerState(sent=1.0), 1.02, TakeAnswered(REFUSED, jitter=0.5), Wait(W * 1.05),
     {"free_at": 1.02 + W * 1.05, "contended_until": 1.02 + HELD}),
    ("a take that finds no limit creates it",
     TakerState(sent=1.0), 1.02, TakeAnswered(MISSING), Configure(exists=False),
     {"configured": 1, "read_first": False}),
    ("a take through a limit of another size corrects it and trusts nothing for a window",
     TakerState(sent=1.0), 1.02, TakeAnswered(MISFIT), Configure(exists=True),
     {"configured": 1, "read_first": False, "free_at": 1.02 + W}),
    ("once configured, the take goes straight away, unread even while contended",
     TakerState(configured=1, read_first=False, contended_until=9.0), 1.0, Configured(), Take(),
     {"read_first": True, "sent": 1.0}),
    ("once a misfit is corrected, its untrusted window is waited out first",
     TakerState(configured=1, read_first=False, free_at=2.0), 1.0, Configured(), Wait(1.0), {}),
    ("still missing after configuring twice: give up on the shared limit",
     TakerState(configured=2, read_first=False), 1.0, TakeAnswered(MISSING),
     GiveUp("the limit stays missing after it was configured"), {}),
    ("still of another size after configuring twice: give up on the shared limit",
     TakerState(configured=2, read_first=False), 1.0, TakeAnswered(MISFIT),
     GiveUp("the limit stays misfit after it was configured"), {}),
    ("a new take forgets the last one's configures",
     TakerState(configured=2, read_first=False), 0.0, Begin(), Read(), {"configured": 0, "read_first": True}),
]


@pytest.mark.parametrize(("state", "now", "answer", "decision", "changes"),
                         [case[1:] for case in STEPS], ids=[case[0] for case in STEPS])
def test_one_step(state: TakerState, now: float, answer: Answer, decision: Decision,
                  changes: dict[str, Any]) -> None:
    got, after = decide(state, SHAPE, now, answer)
    assert same(got, decision), got
    assert same(after, replace(state, **changes)), after


def test_deciding_changes_nothing_it_is_given() -> None:
    state = TakerState(free_at=2.0, contended_until=3.0)
    with pytest.raises(AttributeError):
        state.free_at = 5.0  # type: ignore[misc]
    decide(state, SHAPE, 2.5, LevelRead(4, jitter=0.3))
    assert state == TakerState(free_at=2.0, contended_until=3.0)


@pytest.mark.parametrize(("extra", "last", "now", "expected"), [
    (0.0, -math.inf, 5.0, 0.05),   # the first 429 spaces the requests 5% further apart
    (0.05, 5.0, 5.5, None),        # within a window of the last step: the same episode
    (0.05, 5.0, 6.1, 0.10),        # a window later: a new episode, a new step
    (0.28, 0.0, 9.0, 0.3),         # capped at 30%
    (0.3, 0.0, 9.0, None),         # at the cap: no further
], ids=["first", "same-episode", "next-episode", "capped", "at-cap"])
def test_throttle_steps(extra: float, last: float, now: float, expected: float | None) -> None:
    got = throttle_step(extra, last, now, window=1.0)
    assert got == (None if expected is None else pytest.approx(expected))


def take(fake: FakeLimit, state: TakerState, clock: list[float]) -> tuple[list[Decision], TakerState]:
    """One whole take against ``fake``, on the simulated clock ``clock[0]`` (a wait moves it on; calls
    take no time): every decision made, and the state after the last."""
    decisions: list[Decision] = []
    answer: Answer = Begin()
    while True:
        decision, state = decide(state, SHAPE, clock[0], answer)
        decisions.append(decision)
        match decision:
            case Proceed() | GiveUp():
                return decisions, state
            case Wait(seconds=seconds):
                clock[0] += seconds
                answer = Waited()
            case Read():
                level, _ = fake.level("knack-app")
                answer = LevelRead(level, 0.5 if level else 0.0)
            case Take():
                outcome, _ = fake.take("knack-app", SHAPE.batch)
                answer = TakeAnswered(TakeOutcome(outcome), 0.5 if outcome == REFUSED else 0.0)
            case Configure(exists=exists):
                fake.configure("knack-app", SHAPE.batch, SHAPE.decay, exists=exists)
                answer = Configured()
    raise AssertionError("unreachable")  # pragma: no cover


def kinds(decisions: list[Decision]) -> list[str]:
    return [type(decision).__name__ for decision in decisions]


def test_a_missing_limit_is_created_then_taken_unread() -> None:
    clock = [0.0]
    fake = FakeLimit(lambda: clock[0], exists=False, limit=1, decay=9.0)
    decisions, state = take(fake, TakerState(), clock)
    assert kinds(decisions) == ["Read", "Configure", "Take", "Proceed"]
    assert [kind for kind, _ in fake.calls] == ["read", "configure", "take"]
    assert (fake.limit, fake.decay) == (10, pytest.approx(10 / 1.04))
    assert same(decisions[-1], Proceed(first_grant=0.0, window_ends=W)) and state.free_at == pytest.approx(W + 0.01)


def test_a_limit_of_another_size_is_corrected_and_its_window_waited_out() -> None:
    clock = [0.0]
    fake = FakeLimit(lambda: clock[0], limit=20, decay=10.0)  # e.g. left by another version
    decisions, state = take(fake, TakerState(), clock)
    # the take through the wrong limit holds 10 of its slots: the corrected limit frees them in a window
    assert kinds(decisions) == ["Read", "Take", "Configure", "Wait", "Take", "Proceed"]
    assert [kind for kind, _ in fake.calls] == ["read", "take", "configure", "take"]
    assert fake.limit == 10 and fake.calls[-1][1] == pytest.approx(W)


def test_consecutive_takes_of_one_process_read_once_then_continue_the_streak() -> None:
    clock = [0.0]
    fake = FakeLimit(lambda: clock[0])
    state = TakerState()
    every: list[str] = []
    for _ in range(3):
        decisions, state = take(fake, state, clock)
        every += kinds(decisions)
        assert isinstance(decisions[-1], Proceed)
        clock[0] = decisions[-1].window_ends - 0.102  # its last grant: the next take comes right after
    assert every == ["Read", "Take", "Proceed", "Wait", "Take", "Proceed", "Wait", "Take", "Proceed"]
    assert [at for kind, at in fake.calls if kind == "take"] == pytest.approx([0.0, W + 0.01, 2 * (W + 0.01)])


def test_a_limit_another_process_holds_is_waited_out_not_asked() -> None:
    clock = [0.0]
    fake = FakeLimit(lambda: clock[0])
    fake.take("knack-app", 10)  # another process took the limit at 0
    clock[0] = 0.3
    decisions, state = take(fake, TakerState(), clock)
    # at 0.3, 2 slots have decayed: wait for the other 8 (and half a slot), read again, then take
    assert kinds(decisions) == ["Read", "Wait", "Read", "Take", "Proceed"]
    assert same(decisions[1], Wait(8.5 / SHAPE.decay))
    assert [kind for kind, _ in fake.calls] == ["take", "read", "read", "take"]
    assert state.contended_until == pytest.approx(0.3 + HELD)  # and it reads first for ten windows


def test_a_refusal_waits_a_window_then_reads_before_asking_again() -> None:
    clock = [0.0]

    class Raced(FakeLimit):
        """Reads the limit free, then another process takes it before our take lands."""

        def level(self, name: str) -> tuple[int | None, int]:
            answer = super().level(name)
            if len(self.calls) == 1:
                super().take(name, 10)
            return answer

    fake = Raced(lambda: clock[0])
    decisions, state = take(fake, TakerState(), clock)
    assert kinds(decisions) == ["Read", "Take", "Wait", "Read", "Take", "Proceed"]
    assert same(decisions[2], Wait(W * 1.05))
    assert not any(kind == "take" and 0 < at < W for kind, at in fake.calls)
