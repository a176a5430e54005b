"""Knack time rules: timezones, true instants across DST, the since-filter, cursor parsing, ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tasks.domain.errors import ConfigError, KnackError
from tasks.domain.knack import (
    KNACK_TIMEZONES,
    container_route,
    is_knack_id,
    knack_instant,
    parse_since,
    record_modified_at,
    resolve_timezone,
    since_filter,
)

pytestmark = pytest.mark.unit

CHICAGO = ZoneInfo("America/Chicago")


def ms(text: str) -> int:
    """The local-as-UTC unix_timestamp Knack stores for a wall time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("name", "iana"), [
    ("Central Time (US & Canada)", "America/Chicago"),
    ("central time (us & canada)", "America/Chicago"),
    ("(GMT-06:00) Central Time (US & Canada)", "America/Chicago"),
    ("Eastern Time (US & Canada)", "America/New_York"),
    ("Arizona", "America/Phoenix"),
    ("Brasilia", "America/Sao_Paulo"),  # knackpy's table says America/Sao_Paul
    ("Athens,Bucharest, Istanbul", "Europe/Athens"),  # knackpy's table says Europe/Istanbu
    ("Chennai, Kolkata, Mumbai,New Delhi", "Asia/Kolkata"),
    ("America/Denver", "America/Denver"),
    ("UTC", "UTC"),
])
def test_resolve_timezone(name: str, iana: str) -> None:
    assert resolve_timezone(name) == ZoneInfo(iana)


def test_every_mapped_zone_exists_and_knackpy_names_resolve() -> None:
    from knackpy.models import TIMEZONES

    for iana in KNACK_TIMEZONES.values():
        ZoneInfo(iana)
    for entry in TIMEZONES:
        resolve_timezone(entry["common_name"])


@pytest.mark.parametrize("name", ["Central Time", "Mars/Olympus_Mons", "", "America/Sao_Paul"])
def test_unknown_timezone_fails_naming_the_value(name: str) -> None:
    with pytest.raises(ConfigError, match=repr(name).replace("(", r"\(").replace(")", r"\)")):
        resolve_timezone(name)


@pytest.mark.parametrize(("wall", "expected"), [
    ("2023-07-14T15:05:00", "2023-07-14T20:05:00+00:00"),  # knack-api.md §8 worked example (CDT)
    ("2024-01-09T08:30:00", "2024-01-09T14:30:00+00:00"),  # winter (CST)
    ("2023-11-05T01:30:00", "2023-11-05T07:30:00+00:00"),  # fold: 01:30 twice; standard time (CST) wins
    ("2024-03-10T02:30:00", "2024-03-10T08:30:00+00:00"),  # gap: 02:30 never happens; CST offset
    ("2024-03-10T01:30:00", "2024-03-10T07:30:00+00:00"),  # just before the change
    ("2024-03-10T23:59:00", "2024-03-11T04:59:00+00:00"),  # a 23:59 local edit is the next UTC day
])
def test_knack_instant(wall: str, expected: str) -> None:
    assert knack_instant({"unix_timestamp": ms(wall)}, CHICAGO).isoformat() == expected


def test_knack_instant_matches_knackpy_on_dst_edges() -> None:
    import pytz
    from knackpy.utils import correct_knack_timestamp

    for wall in ("2023-11-05T01:30:00", "2024-03-10T02:30:00", "2024-06-01T12:00:00"):
        ours = knack_instant({"unix_timestamp": ms(wall)}, CHICAGO)
        theirs = correct_knack_timestamp(ms(wall), pytz.timezone("America/Chicago"))
        assert int(ours.timestamp() * 1000) == theirs


def test_record_modified_at() -> None:
    record = {"field_27": "03/10/2024 11:59pm", "field_27_raw": {"unix_timestamp": ms("2024-03-10T23:59:00")},
              "field_4": ""}
    assert record_modified_at(record, "field_27", CHICAGO) == datetime(2024, 3, 11, 4, 59, tzinfo=UTC)
    assert record_modified_at(record, "field_4", CHICAGO) is None
    assert record_modified_at({"field_27": ""}, "field_27", CHICAGO) is None
    with pytest.raises(ValueError, match="unix_timestamp"):
        knack_instant({"date": "03/10/2024"}, CHICAGO)


@pytest.mark.parametrize(("since", "day"), [
    (datetime(2024, 3, 2, 4, 30, tzinfo=UTC), "03/01/2024"),  # §4: 22:30 the evening before, locally
    (datetime(2024, 3, 11, 4, 59, tzinfo=UTC), "03/10/2024"),
    (datetime(2024, 3, 11, 5, 0, tzinfo=UTC), "03/11/2024"),
    (datetime(2024, 7, 1, 12, 0), "07/01/2024"),  # naive means UTC
])
def test_since_filter_uses_the_local_day(since: datetime, day: str) -> None:
    assert since_filter("field_27", since, CHICAGO) == {"match": "or", "rules": [
        {"field": "field_27", "operator": "is", "value": day},
        {"field": "field_27", "operator": "is after", "value": day}]}


NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)  # the wall clock the range check is given


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
    ("2024-03-01T08:30:00", datetime(2024, 3, 1, 8, 30, tzinfo=UTC)),
    ("2024-03-01T08:30:00Z", datetime(2024, 3, 1, 8, 30, tzinfo=UTC)),
    ("2024-03-01T08:30:00-06:00", datetime(2024, 3, 1, 14, 30, tzinfo=UTC)),
    ("2024-03-01 08:30:00.250+00:00", datetime(2024, 3, 1, 8, 30, 0, 250000, tzinfo=UTC)),
])
def test_parse_since(text: str, expected: datetime) -> None:
    parsed = parse_since(text, NOW)
    assert parsed == expected and parsed.tzinfo == UTC


@pytest.mark.parametrize("text", ["yesterday", "03/01/2024", "2024-13-01", ""])
def test_parse_since_rejects_non_iso(text: str) -> None:
    with pytest.raises(ConfigError, match="ISO-8601"):
        parse_since(text, NOW)


@pytest.mark.parametrize("value", ["1969-12-31T23:59:59Z", "0001-01-01T00:00:00-06:00", "9999-12-31",
                                   datetime(1900, 1, 1), NOW + timedelta(days=2)])
def test_parse_since_refuses_a_date_no_backfill_starts_from(value: str | datetime) -> None:
    with pytest.raises(ConfigError, match="outside the range a backfill can start from"):
        parse_since(value, NOW)


def test_parse_since_takes_the_edges_of_its_range() -> None:
    assert parse_since("1970-01-01", NOW) == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_since(NOW + timedelta(hours=23), NOW) == NOW + timedelta(hours=23)


@pytest.mark.parametrize(("value", "ok"), [
    ("5d7964422d7159001659b27a", True), ("5D7964422D7159001659B27A", False), ("5d7964422d7159001659b27", False),
    ("5d7964422d7159001659b27g", False), (None, False), (12345, False)])
def test_is_knack_id(value: object, ok: bool) -> None:
    assert is_knack_id(value) is ok


def test_container_route() -> None:
    assert container_route("object_1", None) == "/objects/object_1/records"
    assert container_route("view_7", "scene_3") == "/pages/scene_3/views/view_7/records"
    with pytest.raises(KnackError, match="view_7 needs its scene_id"):
        container_route("view_7", None)
    with pytest.raises(KnackError, match="not a Knack object or view"):
        container_route("table_1", None)
