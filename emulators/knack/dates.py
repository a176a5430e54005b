"""Knack date values: local wall time rendered as if it were UTC (knack-api.md §6 and §8).

Knack keeps the wall-clock reading in the app's timezone and labels it UTC, so everything here works
on *naive local* datetimes. Converting a true instant to local time is unambiguous (``to_local``);
the reverse direction (which needs a DST rule) belongs to the client, not to the emulator.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The display names the emulator needs to understand; anything else must be an IANA name.
_DISPLAY_NAMES = {
    "Central Time (US & Canada)": "America/Chicago",
    "Eastern Time (US & Canada)": "America/New_York",
    "Mountain Time (US & Canada)": "America/Denver",
    "Pacific Time (US & Canada)": "America/Los_Angeles",
    "Arizona": "America/Phoenix",
    "Alaska": "America/Anchorage",
    "Hawaii": "Pacific/Honolulu",
    "UTC": "UTC",
}

TIME_ONLY_DATE = date(2012, 1, 1)  # the placeholder date Knack stores for "Ignore Date" fields
_EPOCH = datetime(1970, 1, 1)


def app_zone(name: str) -> ZoneInfo:
    """The app's zone from ``settings.timezone`` (a Knack display name or an IANA name)."""
    try:
        return ZoneInfo(_DISPLAY_NAMES.get(name, name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown Knack timezone {name!r}") from exc


def to_local(instant: datetime, tz: ZoneInfo) -> datetime:
    """A true instant as the naive wall-clock time Knack would store for it."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(tz).replace(tzinfo=None, microsecond=0)


def local_from_ms(unix_ms: int | float) -> datetime:
    """The naive local wall time encoded by a Knack ``unix_timestamp``."""
    return _EPOCH + timedelta(milliseconds=unix_ms)


def _clock(local: datetime) -> tuple[str, str, str, int]:
    """12-hour ``hours``, ``minutes``, ``am_pm`` and Knack's ``time`` for a wall time.

    ``time`` adds 12 h for PM hours but never maps the 12 AM hour to 0, so 12:00 am gives 720
    (seen in real data); 12 PM is taken as 720 + minutes too (the PM shift is skipped for hour 12).
    """
    h24 = local.hour
    h12 = h24 % 12 or 12
    pm = h24 >= 12
    time_value = (h12 + (12 if pm and h12 != 12 else 0)) * 60 + local.minute
    return f"{h12:02d}", f"{local.minute:02d}", "PM" if pm else "AM", time_value


def _date_text(day: date, date_format: str) -> str:
    if date_format.lower().startswith("dd/mm"):
        return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"
    return _us(day)


def _time_text(local: datetime, time_format: str) -> str:
    if "military" in time_format.lower():
        return f"{local.hour:02d}:{local.minute:02d}"
    h12 = local.hour % 12 or 12
    return f"{h12}:{local.minute:02d}{'pm' if local.hour >= 12 else 'am'}"


def _us(day: date | datetime) -> str:
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def raw_date(local: datetime, date_format: str = "mm/dd/yyyy") -> dict[str, Any]:
    """The ``field_N_raw`` object for one wall time, keys in Knack's order (minute precision)."""
    if local.second or local.microsecond:
        local = local.replace(second=0, microsecond=0)
    hours, minutes, am_pm, time_value = _clock(local)
    us_date = _us(local)
    formatted_date = us_date if date_format in ("mm/dd/yyyy", "Ignore Date") else _date_text(local, date_format)
    return {
        "date": us_date,
        "date_formatted": formatted_date,
        "hours": hours,
        "minutes": minutes,
        "am_pm": am_pm,
        "unix_timestamp": int((local - _EPOCH).total_seconds()) * 1000,
        "iso_timestamp": f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:{minutes}:00.000Z",
        "timestamp": f"{us_date} {hours}:{minutes} {am_pm.lower()}",
        "time": time_value,
    }


def render_date(start: datetime, end: datetime | None, fmt: dict[str, Any] | None) -> tuple[str, dict]:
    """(formatted, raw) for a date_time field value following the field's ``format``."""
    fmt = fmt or {}
    date_format = str(fmt.get("date_format") or "mm/dd/yyyy")
    time_format = str(fmt.get("time_format") or "HH:MM am")
    if start.second or start.microsecond:
        start = start.replace(second=0, microsecond=0)
    if end is not None and (end.second or end.microsecond):
        end = end.replace(second=0, microsecond=0)
    if date_format == "Ignore Date":
        start = datetime.combine(TIME_ONLY_DATE, start.time())
        end = datetime.combine(TIME_ONLY_DATE, end.time()) if end else None
    if time_format == "Ignore Time":
        start = datetime.combine(start.date(), datetime.min.time())
        end = datetime.combine(end.date(), datetime.min.time()) if end else None
    raw = raw_date(start, date_format)
    formatted = _format_one(start, date_format, time_format)
    if end is not None:
        raw["to"] = raw_date(end, date_format)
        same_day = end.date() == start.date() and time_format != "Ignore Time"
        end_text = _time_text(end, time_format) if same_day else _format_one(end, date_format, time_format)
        formatted = f"{formatted} to {end_text}"
    return formatted, raw


def _format_one(local: datetime, date_format: str, time_format: str) -> str:
    if date_format == "Ignore Date":
        return _time_text(local, time_format)
    day = _date_text(local.date(), date_format)
    if time_format == "Ignore Time":
        return day
    return f"{day} {_time_text(local, time_format)}"


_DATE_RE = re.compile(
    r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::\d{2})?\s*([aApP][mM])?)?\s*$"
)
_ISO_RE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?)?\s*$")


def parse_local(text: str) -> datetime:
    """A wall time from ``MM/DD/YYYY[ h:mm[am|pm]]`` or ``YYYY-MM-DD[ HH:MM]``; ValueError otherwise."""
    match = _DATE_RE.match(text)
    if match:
        month, day, year, hour, minute, ampm = match.groups()
        h = int(hour or 0)
        if ampm:
            if not 1 <= h <= 12:
                raise ValueError(f"bad hour in date {text!r}")
            h = h % 12 + (12 if ampm.lower() == "pm" else 0)
        return datetime(int(year), int(month), int(day), h, int(minute or 0))
    match = _ISO_RE.match(text)
    if match:
        year, month, day, hour, minute = match.groups()
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
    raise ValueError(f"unparseable date {text!r} (use MM/DD/YYYY or MM/DD/YYYY h:mma)")


def local_from_parts(value: dict[str, Any]) -> datetime:
    """A wall time from a Knack-style date object (``date`` plus optional hours/minutes/am_pm)."""
    if "unix_timestamp" in value and "date" not in value:
        return local_from_ms(value["unix_timestamp"])
    base = parse_local(str(value["date"]))
    if "hours" not in value:
        return base
    hour = int(value["hours"])
    am_pm = str(value.get("am_pm") or "").upper()
    if am_pm in ("AM", "PM"):
        hour = hour % 12 + (12 if am_pm == "PM" else 0)
    return base.replace(hour=hour, minute=int(value.get("minutes") or 0))


def parse_date_input(value: Any, tz: ZoneInfo) -> tuple[datetime, datetime | None] | None:
    """(start, end) wall times from a write-side date value; None for blank. ValueError if bad."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, datetime):
        return (to_local(value, tz) if value.tzinfo else value.replace(microsecond=0)), None
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time()), None
    if isinstance(value, str):
        return parse_local(value), None
    if isinstance(value, dict):
        end = value.get("to")
        end_local = None
        if end:
            end_local = parse_local(end) if isinstance(end, str) else local_from_parts(end)
        return local_from_parts(value), end_local
    raise ValueError(f"unsupported date value {value!r}")


def filter_date(value: Any) -> date:
    """The calendar date of a filter operand; any time part is ignored (dates compare by day)."""
    if isinstance(value, dict):
        return local_from_parts(value).date()
    return parse_local(str(value)).date()


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the target month's length."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))
