"""Knack time and id rules, pure: timezones, true instants, the since-filter, cursor parsing.

Knack stores the app-local wall time and labels it UTC (knack-api.md §8), and its date filters
compare whole local days (§4). Everything that converts between those and true instants is here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tasks.domain.errors import ConfigError, KnackError

_EPOCH = datetime(1970, 1, 1)
_KNACK_ID = re.compile(r"[0-9a-f]{24}")
_OFFSET_PREFIX = re.compile(r"^\((?:GMT|UTC)\s*[+-]?\d{0,2}:?\d{0,2}\)\s*", re.IGNORECASE)

# Knack stores a display name, not an IANA id. Two naming styles are in use: single-place names
# (as in Rails' time zone list, e.g. "Central Time (US & Canada)", "London") and comma-joined
# groups (as in knackpy's table, e.g. "Bogota, Lima, Quito"). Both map here to canonical IANA ids.
# "Samoa" is Pacific/Apia (UTC+13 since 2011); the UTC-11 zone is "American Samoa".
_GROUPS: dict[str, str] = {
    "Baja California": "America/Tijuana",
    "Chihuahua, Mazatlan": "America/Chihuahua",
    "Guadalajara, Mexico City, Monterrey": "America/Mexico_City",
    "Bogota, Lima, Quito": "America/Bogota",
    "Georgetown, La Paz, Manaus, San Juan": "America/La_Paz",
    "Cayenne, Fortaleza": "America/Cayenne",
    "Asuncion": "America/Asuncion",
    "Cuiaba": "America/Cuiaba",
    "Marquesas Islands": "Pacific/Marquesas",
    "Monrovia, Reykjavik": "Atlantic/Reykjavik",
    "Greenwich Mean Time : Dublin, Edinburgh, Lisbon, London": "Europe/London",
    "Dublin, Edinburgh, Lisbon, London": "Europe/London",
    "Sarajevo, Skopje, Warsaw, Zagreb": "Europe/Warsaw",
    "Belgrade, Bratislava, Budapest, Ljubljana, Prague": "Europe/Budapest",
    "Brussels, Copenhagen, Madrid, Paris": "Europe/Paris",
    "Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna": "Europe/Berlin",
    "Harare, Pretoria": "Africa/Johannesburg",
    "Damascus": "Asia/Damascus",
    "Helsinki, Kyiv, Riga, Sofia, Tallinn, Vilnius": "Europe/Helsinki",
    "Windhoek": "Africa/Windhoek",
    "Athens, Bucharest, Istanbul": "Europe/Athens",
    "Amman": "Asia/Amman",
    "Beirut": "Asia/Beirut",
    "Kuwait, Riyadh": "Asia/Riyadh",
    "Moscow, St. Petersburg, Volgograd": "Europe/Moscow",
    "Port Louis": "Indian/Mauritius",
    "Abu Dhabi, Muscat": "Asia/Dubai",
    "Yekaterinburg": "Asia/Yekaterinburg",
    "Islamabad, Karachi": "Asia/Karachi",
    "Chennai, Kolkata, Mumbai, New Delhi": "Asia/Kolkata",
    "Yangon (Rangoon)": "Asia/Yangon",
    "Bangkok, Hanoi, Jakarta": "Asia/Bangkok",
    "Kuala Lumpur, Singapore": "Asia/Singapore",
    "Beijing, Chongqing, Hong Kong, Urumqi": "Asia/Shanghai",
    "Pyongyang": "Asia/Pyongyang",
    "Eucla": "Australia/Eucla",
    "Osaka, Sapporo, Tokyo": "Asia/Tokyo",
    "Guam, Port Moresby": "Pacific/Port_Moresby",
    "Canberra, Melbourne, Sydney": "Australia/Sydney",
    "Lord Howe Island": "Australia/Lord_Howe",
    "Magadan, Solomon Is., New Caledonia": "Asia/Magadan",
    "Petropavlovsk-Kamchatsky": "Asia/Kamchatka",
    "Auckland, Wellington": "Pacific/Auckland",
    "Chatham Islands": "Pacific/Chatham",
    "Phoenix Islands, Tokelau, Tonga": "Pacific/Kanton",
    "Line Islands": "Pacific/Kiritimati",
}

_PLACES: dict[str, str] = {
    "International Date Line West": "Etc/GMT+12", "Midway Island": "Pacific/Midway",
    "American Samoa": "Pacific/Pago_Pago", "Hawaii": "Pacific/Honolulu", "Alaska": "America/Anchorage",
    "Pacific Time (US & Canada)": "America/Los_Angeles", "Tijuana": "America/Tijuana",
    "Mountain Time (US & Canada)": "America/Denver", "Arizona": "America/Phoenix",
    "Chihuahua": "America/Chihuahua", "Mazatlan": "America/Mazatlan",
    "Central Time (US & Canada)": "America/Chicago", "Saskatchewan": "America/Regina",
    "Guadalajara": "America/Mexico_City", "Mexico City": "America/Mexico_City", "Monterrey": "America/Monterrey",
    "Central America": "America/Guatemala", "Eastern Time (US & Canada)": "America/New_York",
    "Indiana (East)": "America/Indiana/Indianapolis", "Bogota": "America/Bogota", "Lima": "America/Lima",
    "Quito": "America/Lima", "Atlantic Time (Canada)": "America/Halifax", "Caracas": "America/Caracas",
    "La Paz": "America/La_Paz", "Santiago": "America/Santiago", "Newfoundland": "America/St_Johns",
    "Brasilia": "America/Sao_Paulo", "Buenos Aires": "America/Argentina/Buenos_Aires",
    "Montevideo": "America/Montevideo", "Georgetown": "America/Guyana", "Puerto Rico": "America/Puerto_Rico",
    "Greenland": "America/Nuuk", "Mid-Atlantic": "Atlantic/South_Georgia", "Azores": "Atlantic/Azores",
    "Cape Verde Is.": "Atlantic/Cape_Verde", "Dublin": "Europe/Dublin", "Edinburgh": "Europe/London",
    "Lisbon": "Europe/Lisbon", "London": "Europe/London", "Casablanca": "Africa/Casablanca",
    "Monrovia": "Africa/Monrovia", "UTC": "UTC", "Belgrade": "Europe/Belgrade", "Bratislava": "Europe/Bratislava",
    "Budapest": "Europe/Budapest", "Ljubljana": "Europe/Ljubljana", "Prague": "Europe/Prague",
    "Sarajevo": "Europe/Sarajevo", "Skopje": "Europe/Skopje", "Warsaw": "Europe/Warsaw", "Zagreb": "Europe/Zagreb",
    "Brussels": "Europe/Brussels", "Copenhagen": "Europe/Copenhagen", "Madrid": "Europe/Madrid",
    "Paris": "Europe/Paris", "Amsterdam": "Europe/Amsterdam", "Berlin": "Europe/Berlin", "Bern": "Europe/Zurich",
    "Zurich": "Europe/Zurich", "Rome": "Europe/Rome", "Stockholm": "Europe/Stockholm", "Vienna": "Europe/Vienna",
    "West Central Africa": "Africa/Lagos", "Bucharest": "Europe/Bucharest", "Cairo": "Africa/Cairo",
    "Helsinki": "Europe/Helsinki", "Kyiv": "Europe/Kiev", "Riga": "Europe/Riga", "Sofia": "Europe/Sofia",
    "Tallinn": "Europe/Tallinn", "Vilnius": "Europe/Vilnius", "Athens": "Europe/Athens",
    "Istanbul": "Europe/Istanbul", "Minsk": "Europe/Minsk", "Jerusalem": "Asia/Jerusalem",
    "Harare": "Africa/Harare", "Pretoria": "Africa/Johannesburg", "Kaliningrad": "Europe/Kaliningrad",
    "Moscow": "Europe/Moscow", "St. Petersburg": "Europe/Moscow", "Volgograd": "Europe/Volgograd",
    "Samara": "Europe/Samara", "Kuwait": "Asia/Kuwait", "Riyadh": "Asia/Riyadh", "Nairobi": "Africa/Nairobi",
    "Baghdad": "Asia/Baghdad", "Tehran": "Asia/Tehran", "Abu Dhabi": "Asia/Dubai", "Muscat": "Asia/Muscat",
    "Baku": "Asia/Baku", "Tbilisi": "Asia/Tbilisi", "Yerevan": "Asia/Yerevan", "Kabul": "Asia/Kabul",
    "Ekaterinburg": "Asia/Yekaterinburg", "Islamabad": "Asia/Karachi", "Karachi": "Asia/Karachi",
    "Tashkent": "Asia/Tashkent", "Chennai": "Asia/Kolkata", "Kolkata": "Asia/Kolkata", "Mumbai": "Asia/Kolkata",
    "New Delhi": "Asia/Kolkata", "Kathmandu": "Asia/Kathmandu", "Astana": "Asia/Almaty", "Dhaka": "Asia/Dhaka",
    "Sri Jayawardenepura": "Asia/Colombo", "Almaty": "Asia/Almaty", "Novosibirsk": "Asia/Novosibirsk",
    "Rangoon": "Asia/Yangon", "Bangkok": "Asia/Bangkok", "Hanoi": "Asia/Bangkok", "Jakarta": "Asia/Jakarta",
    "Krasnoyarsk": "Asia/Krasnoyarsk", "Beijing": "Asia/Shanghai", "Chongqing": "Asia/Shanghai",
    "Hong Kong": "Asia/Hong_Kong", "Urumqi": "Asia/Urumqi", "Kuala Lumpur": "Asia/Kuala_Lumpur",
    "Singapore": "Asia/Singapore", "Taipei": "Asia/Taipei", "Perth": "Australia/Perth", "Irkutsk": "Asia/Irkutsk",
    "Ulaanbaatar": "Asia/Ulaanbaatar", "Ulaan Bataar": "Asia/Ulaanbaatar", "Seoul": "Asia/Seoul",
    "Osaka": "Asia/Tokyo", "Sapporo": "Asia/Tokyo", "Tokyo": "Asia/Tokyo", "Yakutsk": "Asia/Yakutsk",
    "Darwin": "Australia/Darwin", "Adelaide": "Australia/Adelaide", "Canberra": "Australia/Sydney",
    "Melbourne": "Australia/Melbourne", "Sydney": "Australia/Sydney", "Brisbane": "Australia/Brisbane",
    "Hobart": "Australia/Hobart", "Vladivostok": "Asia/Vladivostok", "Guam": "Pacific/Guam",
    "Port Moresby": "Pacific/Port_Moresby", "Magadan": "Asia/Magadan", "Srednekolymsk": "Asia/Srednekolymsk",
    "Solomon Is.": "Pacific/Guadalcanal", "New Caledonia": "Pacific/Noumea", "Fiji": "Pacific/Fiji",
    "Kamchatka": "Asia/Kamchatka", "Marshall Is.": "Pacific/Majuro", "Auckland": "Pacific/Auckland",
    "Wellington": "Pacific/Auckland", "Nuku'alofa": "Pacific/Tongatapu", "Tokelau Is.": "Pacific/Fakaofo",
    "Chatham Is.": "Pacific/Chatham", "Samoa": "Pacific/Apia",
}


def _normal(name: str) -> str:
    """Case, spacing and comma spacing do not matter: "Chihuahua,Mazatlan" == "chihuahua, mazatlan"."""
    name = _OFFSET_PREFIX.sub("", name.strip())
    return re.sub(r"\s*,\s*", ",", re.sub(r"\s+", " ", name)).casefold()


KNACK_TIMEZONES: dict[str, str] = {**_PLACES, **_GROUPS}
_LOOKUP = {_normal(k): v for k, v in KNACK_TIMEZONES.items()}


def resolve_timezone(name: str) -> ZoneInfo:
    """The zone of ``settings.timezone``: an IANA name, else a known Knack display name.

    A leading "(GMT-06:00) " style offset is ignored. Unknown names fail loudly, naming the value.
    """
    text = str(name or "").strip()
    if text and "(" not in text and " " not in text:
        try:
            return ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    iana = _LOOKUP.get(_normal(text))
    if iana is None:
        raise ConfigError(f"unknown Knack timezone {name!r}: not an IANA name and not a known Knack display "
                          f"name (e.g. 'Central Time (US & Canada)' or 'America/Chicago')")
    return ZoneInfo(iana)


def local_wall_time(unix_ms: int | float | str) -> datetime:
    """The naive app-local wall time a Knack ``unix_timestamp`` (local labelled as UTC) stands for."""
    return _EPOCH + timedelta(milliseconds=float(unix_ms))


def localize(wall: datetime, tz: tzinfo) -> datetime:
    """Attach ``tz`` to a naive wall time, resolving DST gaps and folds with the standard-time offset.

    At a fall-back fold (01:30 happens twice) and a spring-forward gap (02:30 never happens) the two
    candidate offsets differ; we take the one whose ``dst()`` is zero, as knackpy does with pytz's
    ``is_dst=False``: 2023-11-05 01:30 Chicago → 07:30Z, 2024-03-10 02:30 Chicago → 08:30Z.
    """
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    return second if second.dst() == timedelta(0) and first.dst() != timedelta(0) else first


def knack_instant(raw_date: Mapping[str, Any], tz: tzinfo) -> datetime:
    """The true aware-UTC instant of a Knack date value (``field_N_raw``, or its ``to`` part).

    ValueError, quoting the value (cut short), when it is not one: no or a non-numeric
    ``unix_timestamp``, or one out of any calendar's range.
    """
    try:
        unix_ms = raw_date["unix_timestamp"]
    except (KeyError, TypeError):
        raise ValueError(f"not a Knack date value (no unix_timestamp): {str(raw_date)[:80]}") from None
    try:
        return localize(local_wall_time(unix_ms), tz).astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"not a Knack date value (unix_timestamp {str(unix_ms)[:40]!r})") from None


def record_modified_at(record: dict[str, Any], field_key: str, tz: tzinfo) -> datetime | None:
    """When ``record`` was last modified according to ``field_key``; None if the field is empty or its
    value unreadable (the record is still stored as Knack sent it; ``unreadable_modified`` says which)."""
    raw = record.get(f"{field_key}_raw")
    if not isinstance(raw, dict) or raw.get("unix_timestamp") in (None, ""):
        return None
    try:
        return knack_instant(raw, tz)
    except ValueError:
        return None


def unreadable_modified(record: dict[str, Any], field_key: str) -> str | None:
    """Why ``record``'s modified date cannot be read ("empty", or the bad value), None when it can."""
    raw = record.get(f"{field_key}_raw")
    if not isinstance(raw, dict) or raw.get("unix_timestamp") in (None, ""):
        return "empty"
    try:
        knack_instant(raw, UTC)
    except ValueError as exc:
        return str(exc)
    return None


def knack_date(day: date) -> str:
    """A calendar date as Knack filters want it: MM/DD/YYYY."""
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def since_filter(field_key: str, since: datetime, tz: tzinfo) -> dict[str, Any]:
    """Records modified on or after ``since``'s local day (Knack filters ignore the time of day).

    The caller keeps only records whose precise instant is >= ``since``: the day filter over-fetches
    by at most one day, and never misses an edit.
    """
    instant = since if since.tzinfo else since.replace(tzinfo=UTC)
    day = knack_date(instant.astimezone(tz).date())
    return {"match": "or", "rules": [{"field": field_key, "operator": "is", "value": day},
                                     {"field": field_key, "operator": "is after", "value": day}]}


def parse_since(text: str | datetime, now: datetime) -> datetime:
    """An aware UTC datetime from any ISO-8601 date or date-time (or a datetime); no offset means UTC.

    A date before 1970 or after the day after ``now`` (the wall clock, ``tasks.clock.utc_now``) is
    refused: it is a typo, not a backfill.
    """
    if isinstance(text, datetime):
        parsed, given = text, text.isoformat()
    else:
        given = str(text).strip()
        try:
            parsed = datetime.fromisoformat(given.replace("z", "Z"))
        except ValueError:
            raise ConfigError(f"cannot read {text!r} as a date: use ISO-8601, e.g. 2024-03-01 or "
                              f"2024-03-01T08:30:00-06:00 (no offset means UTC)") from None
    try:
        since = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00-06:00 has no UTC instant
        since = EARLIEST_SINCE - timedelta(days=1)
    check_since_range(since, given, now)
    return since


EARLIEST_SINCE = datetime(1970, 1, 1, tzinfo=UTC)


def check_since_range(since: datetime, given: str, now: datetime) -> None:
    """A backfill date is between 1970 and the day after ``now``: an older one is a typo, a later one
    would fetch nothing."""
    latest = now + timedelta(days=1)
    if not EARLIEST_SINCE <= since <= latest:
        raise ConfigError(f"the date {given!r} is outside the range a backfill can start from "
                          f"({EARLIEST_SINCE:%Y-%m-%d} to {latest:%Y-%m-%d}); use --full to read every record")


def is_knack_id(value: object) -> bool:
    """True for a Knack record id: 24 lowercase hex characters."""
    return isinstance(value, str) and _KNACK_ID.fullmatch(value) is not None


def container_route(container_key: str, scene_id: str | None) -> str:
    """The records route of an object or a view; a view without its scene is a config mistake."""
    if re.fullmatch(r"object_\d+", container_key):
        return f"/objects/{container_key}/records"
    if re.fullmatch(r"view_\d+", container_key):
        if not scene_id or not re.fullmatch(r"scene_\d+", scene_id):
            raise KnackError(f"view {container_key} needs its scene_id (e.g. scene_12) to be fetched",
                             container=container_key)
        return f"/pages/{scene_id}/views/{container_key}/records"
    raise KnackError(f"not a Knack object or view key: {container_key!r}", container=container_key)
