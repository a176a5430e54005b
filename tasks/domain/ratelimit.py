"""When to take a batch of the app's shared Knack rate limit: the decisions, without any I/O.

Knack allows ``r`` requests a second per app. Runs on several workers share that budget through a
Prefect global concurrency limit ``knack-<app>`` of ``B`` slots that decays at ``d = r / (1 + 2 margin)``
slots a second. A process takes all ``B`` slots in one call (a *batch*) and hands them out itself as
grants ``1/p`` apart (``p = r / (1 + margin)``), from the moment the take is answered until at most
``t + B/d - 1/p`` (``t``: when the take was sent); a grant not handed out by then is dropped.

Why that keeps the limit across processes: taking ``B`` succeeds only when the decayed count is 0, so
after a take sent at ``t`` nobody (the taker included) takes again before ``t + B/d``. Every grant of
every process is therefore at least ``1/p`` after the one before it, and any one-second window holds at
most ``r`` of them. ``margin`` keeps that true when arrivals jitter by a few milliseconds; the window is
longer than ``B`` grants need by about ``B × margin / r``, room for the take's round trip. The server
can only make the next take later than ``t + B/d`` (it rounds decay down, and a refused take restarts
the decay clock), never earlier.

Why a take usually reads the limit first: Prefect's server restarts a rate limit's decay clock on every
refused take without applying the decay so far, so each refusal holds the limit a whole window longer
for everyone, and two processes asking in turn keep it shut between them. A read changes nothing, so a
take reads the level first and asks only once the read finds the limit free. It skips the read when
it continues this process's own streak: it comes within ``STREAK`` of its own last window closing, and
no other process was seen taking in the last ``CONTENTION_MEMORY`` windows. A burst then costs one
read, then one call a batch, and refusals become rare races at the moment the limit frees.

``decide`` is the whole take as a state machine: the caller (``tasks/knack/ratelimit.py``) feeds it
the clock and what the Prefect API answered, and does what it says (sleep, read, take, configure)
until it says ``Proceed`` or ``GiveUp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

THROTTLE_STEP = 0.05  # how much further apart requests go after each 429 for rate (a fraction of 1/r)
THROTTLE_MAX = 0.3    # at most this much further apart, however many 429s
CONTENTION_MEMORY = 10  # windows: how long a refusal, or a read finding the limit held, keeps this process reading first
STREAK = 0.05  # seconds: a take this soon after this process's own last window closed continues its streak
FREE_AFTER_TAKE = 0.01  # seconds past a granted batch's window before this process takes again
REFUSAL_SPREAD = 0.1  # after a refusal, wait a window plus up to this share of one more (at random)
CONFIGURE_LIMIT = 2  # configure calls in one take before giving up on the shared limit


def throttle_step(extra: float, last: float, now: float, window: float) -> float | None:
    """The spacing's new extra margin after Knack answered 429 at ``now``, or None when it stays: at the
    cap already, or within one ``window`` of the last step (the same episode: requests already sent)."""
    if extra >= THROTTLE_MAX - 1e-9 or now < last + window:
        return None
    return min(extra + THROTTLE_STEP, THROTTLE_MAX)


class TakeOutcome(StrEnum):
    """What the Prefect API said to a take of the whole limit."""

    TAKEN = "taken"      # granted: the batch is ours
    REFUSED = "refused"  # the limit is full now (another process holds it)
    MISSING = "missing"  # no such limit
    MISFIT = "misfit"    # the limit exists with another size or without decay


@dataclass(frozen=True)
class LimitShape:
    """The shared limit as this process configures it: ``batch`` slots freed at ``decay`` a second."""

    batch: int
    decay: float

    @property
    def window(self) -> float:
        """Seconds one take holds the limit: ``batch / decay``."""
        return self.batch / self.decay


@dataclass(frozen=True)
class TakerState:
    """What one process knows about the shared limit between decisions.

    ``free_at`` and ``contended_until`` carry over from one take to the next; the rest belong to the
    take in progress and ``Begin`` resets them.
    """

    free_at: float = -math.inf          # the limit is surely free by then: our last take, or a holder we read
    contended_until: float = -math.inf  # read before taking until then (another process is taking)
    read_first: bool = True             # may read before the next take (not right after configuring)
    configured: int = 0                 # configure calls made in this take
    sent: float = -math.inf             # when the take in progress was sent


# --- what the caller tells ``decide`` (the answer to the last decision) ------------------------------

@dataclass(frozen=True)
class Begin:
    """A take starts (the process has no grant left)."""


@dataclass(frozen=True)
class Waited:
    """The process slept as told."""


@dataclass(frozen=True)
class LevelRead:
    """The limit's slots in use (None: no such limit). ``jitter`` is a uniform draw in [0, 1) that
    spreads the wait when the limit is held (the caller draws it only then; 0 otherwise)."""

    level: int | None
    jitter: float = 0.0


@dataclass(frozen=True)
class TakeAnswered:
    """The take's outcome, ``now`` being when the answer came. ``jitter`` as for ``LevelRead``, drawn
    only for a refusal."""

    outcome: TakeOutcome
    jitter: float = 0.0


@dataclass(frozen=True)
class Configured:
    """The limit was created or corrected."""


Answer = Begin | Waited | LevelRead | TakeAnswered | Configured


# --- what ``decide`` tells the caller to do ---------------------------------------------------------

@dataclass(frozen=True)
class Wait:
    """Sleep this long, then answer ``Waited``."""

    seconds: float


@dataclass(frozen=True)
class Read:
    """Read the limit's level (changes nothing on the server), then answer ``LevelRead``."""


@dataclass(frozen=True)
class Take:
    """Take the whole limit in one call, then answer ``TakeAnswered``."""


@dataclass(frozen=True)
class Configure:
    """Create the limit (``exists`` False) or correct its size and decay, then answer ``Configured``."""

    exists: bool


@dataclass(frozen=True)
class Proceed:
    """The batch is ours: hand its grants out from ``first_grant`` on, none later than
    ``window_ends - 1/pace``."""

    first_grant: float
    window_ends: float


@dataclass(frozen=True)
class GiveUp:
    """The shared limit cannot be used: limit this process alone."""

    reason: str


Decision = Wait | Read | Take | Configure | Proceed | GiveUp


def decide(state: TakerState, shape: LimitShape, now: float, answer: Answer) -> tuple[Decision, TakerState]:
    """The next step of a take at ``now``, given the answer to the previous one, and the state after it.

    A take goes: wait out our own last window or a holder we read; read the level unless this
    continues our own streak; take when it reads free; on a refusal wait a window (and a little more,
    at random) and read again; when the limit is missing or of another size, configure it and take
    straight away, giving up after ``CONFIGURE_LIMIT`` configures.
    """
    match answer:
        case Begin():
            return _before_asking(replace(state, read_first=True, configured=0), shape, now)
        case Waited():
            return _ask(state, now)
        case LevelRead(level=None):
            return _misconfigured(replace(state, sent=now), TakeOutcome.MISSING, shape, now)
        case LevelRead(level=0):
            return Take(), replace(state, sent=now)
        case LevelRead(level=int(level), jitter=jitter):  # held: it frees about when its slots have decayed
            held = replace(state, contended_until=now + CONTENTION_MEMORY * shape.window,
                           free_at=now + (level + jitter) / shape.decay)
            return _before_asking(held, shape, now)
        case TakeAnswered(outcome=TakeOutcome.TAKEN):
            return (Proceed(first_grant=now, window_ends=state.sent + shape.window),
                    replace(state, free_at=now + shape.window + FREE_AFTER_TAKE))
        case TakeAnswered(outcome=TakeOutcome.REFUSED, jitter=jitter):
            # the refusal put the holder's slots back: nobody takes before a window from now
            refused = replace(state, contended_until=now + CONTENTION_MEMORY * shape.window,
                              free_at=now + shape.window * (1.0 + REFUSAL_SPREAD * jitter))
            return _before_asking(refused, shape, now)
        case TakeAnswered(outcome=outcome):
            return _misconfigured(state, outcome, shape, now)
        case Configured():
            return _before_asking(state, shape, now)
    raise TypeError(f"not an answer to a rate limit decision: {answer!r}")  # pragma: no cover


def _before_asking(state: TakerState, shape: LimitShape, now: float) -> tuple[Decision, TakerState]:
    """Wait while our own last batch, or a holder we read, still holds the limit; else ask."""
    if state.free_at - now > 0:
        return Wait(state.free_at - now), state
    return _ask(state, now)


def _ask(state: TakerState, now: float) -> tuple[Decision, TakerState]:
    """Read first unless this take continues our own uncontended streak (or follows a configure)."""
    if state.read_first and (now < state.contended_until or now > state.free_at + STREAK):
        return Read(), state
    return Take(), replace(state, read_first=True, sent=now)


def _misconfigured(state: TakerState, outcome: TakeOutcome, shape: LimitShape,
                   now: float) -> tuple[Decision, TakerState]:
    """The limit is missing or of another size: configure it, then take without reading."""
    if state.configured >= CONFIGURE_LIMIT:  # still wrong after configuring: something else changes it
        return GiveUp(f"the limit stays {outcome} after it was configured"), state
    configured = replace(state, configured=state.configured + 1, read_first=False)
    if outcome is TakeOutcome.MISFIT:  # a take that went through a limit of another size holds nothing we trust
        configured = replace(configured, free_at=now + shape.window)
    return Configure(exists=outcome is TakeOutcome.MISFIT), configured
