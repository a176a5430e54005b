"""The wall clock is read in one place, tasks/clock.py; everything else asks it (or a monotonic clock)."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from tasks.clock import epoch_seconds, utc_now

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
WALL_READS = re.compile(r"\bdatetime\.(now|utcnow|today)\(|\bdate\.today\(|\btime\.(time|time_ns|localtime|gmtime)\b")


def wall_reads(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if WALL_READS.search(line)]


def test_the_pattern_finds_each_way_of_reading_the_wall_clock() -> None:
    found = wall_reads("a = datetime.now(UTC)\nb = time.time()\nclock=time.time,\nc = date.today()\n"
                       "d = time.monotonic()\ne = utc_now()\n")
    assert found == ["a = datetime.now(UTC)", "b = time.time()", "clock=time.time,", "c = date.today()"]


def test_only_tasks_clock_reads_the_wall_clock() -> None:
    sources = [p for folder in ("tasks", "flows", "blocks") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(sources) > 20
    readers = {str(p.relative_to(ROOT)): lines for p in sources if (lines := wall_reads(p.read_text()))}
    assert readers == {"tasks/clock.py": ["return time.time()"]}


def test_utc_now_is_aware_utc_and_agrees_with_epoch_seconds() -> None:
    before = epoch_seconds()
    now = utc_now()
    after = epoch_seconds()
    assert now.tzinfo == UTC
    assert before - 0.001 <= now.timestamp() <= after + 0.001
    assert now.utcoffset() == timedelta(0)
