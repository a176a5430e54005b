"""The wall clock, read in one place: the Knack cursor's start instant, Socrata's and the table's publish
timestamps, lock bodies, the backfill date's range check, the rate-limit reset (epoch seconds).

Durations and deadlines use ``time.monotonic()`` where they are measured, never this clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def epoch_seconds() -> float:
    """The wall clock, seconds since the Unix epoch."""
    return time.time()


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.fromtimestamp(epoch_seconds(), UTC)
