"""The wall clock, read in one place (the Knack cursor's start instant, Socrata's publish timestamp)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.fromtimestamp(time.time(), UTC)
