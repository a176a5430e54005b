"""The generated app: deterministic, and shaped exactly like the real records in the shared fixture."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from emulators.knack import generate_app
from emulators.knack.dates import raw_date, render_date
from emulators.knack.fields import RenderContext, render
from tests.fixtures import KNACKPY_TEST_APP

pytestmark = pytest.mark.unit

FIXTURE = KNACKPY_TEST_APP
CHICAGO = ZoneInfo("America/Chicago")
DATE_KEYS = ["date", "date_formatted", "hours", "minutes", "am_pm", "unix_timestamp", "iso_timestamp",
             "timestamp", "time"]


@pytest.fixture(scope="module")
def app() -> dict:
    return generate_app(records=300, seed=3)


def _fields(app: dict, obj: str) -> list[dict]:
    return next(o for o in app["metadata"]["application"]["objects"] if o["key"] == obj)["fields"]


def test_same_seed_same_records_and_metadata_independent_of_n_and_seed(app: dict) -> None:
    again = generate_app(records=300, seed=3)
    assert json.dumps(again, sort_keys=True) == json.dumps(app, sort_keys=True)
    other = generate_app(records=20, seed=99)
    assert other["metadata"] == app["metadata"]
    assert other["records"]["object_1"][0]["id"] != app["records"]["object_1"][0]["id"]
    assert len(other["records"]["object_1"]) == 20


def test_counts_and_metadata_basics(app: dict) -> None:
    meta = app["metadata"]["application"]
    assert meta["name"] == "Signal Operations"
    assert meta["settings"]["timezone"] == "Central Time (US & Canada)"
    assert meta["account"]["slug"] != meta["slug"]
    assert [len(app["records"][k]) for k in ("object_1", "object_2", "object_3")] == [300, 15, 30]
    names = [f["name"] for f in _fields(app, "object_1")]
    assert {"ID", "Date/Time - Start", "Modified Date", "Status", "STATUS"} <= set(names)
    types = {f["type"] for f in _fields(app, "object_1")}
    assert types >= {"auto_increment", "short_text", "paragraph_text", "rich_text", "number", "currency", "rating",
                     "equation", "concatenation", "boolean", "multiple_choice", "name", "email", "phone", "link",
                     "address", "connection", "date_time", "file", "image", "signature"}


def test_record_keys_follow_metadata_order_and_empties_have_no_raw(app: dict) -> None:
    order = [f["key"] for f in _fields(app, "object_1")]
    for record in app["records"]["object_1"]:
        keys = [k for k in record if k != "id" and not k.endswith("_raw")]
        assert list(record)[0] == "id" and keys == order
        for key in order:
            if record[key] == "" and key != "field_21" and key != "field_14":
                assert key + "_raw" not in record
        assert (record["field_21"] == "") == (record["field_21_raw"] == [])


def test_every_quirk_appears(app: dict) -> None:
    signals = app["records"]["object_1"]
    locations = [r.get("field_19_raw") for r in signals]
    assert any(loc is None for loc in locations)  # missing
    assert any(isinstance(loc, dict) and loc["latitude"] == "" for loc in locations)
    assert any(isinstance(loc, dict) and isinstance(loc["latitude"], float) for loc in locations)
    assert any(isinstance(loc, dict) and isinstance(loc["latitude"], str) and loc["latitude"] for loc in locations)
    assert any(r.get("field_14_raw") == [None] and r["field_14"] == "" for r in signals)
    assert any("to" in (r.get("field_23_raw") or {}) for r in signals)
    assert any(r.get("field_23_raw") and "to" not in r["field_23_raw"] for r in signals)
    assert any(isinstance(r.get("field_29_raw"), dict) for r in signals)
    assert any(isinstance(r.get("field_30_raw"), str) for r in signals)
    assert all(isinstance(r["field_11_raw"], bool) for r in signals)
    assert all(r["field_24_raw"]["time"] == 720 for r in signals if "field_24_raw" in r)
    assert all(r["field_25_raw"]["date"] == "01/01/2012" for r in signals if "field_25_raw" in r)


def test_ids_carry_true_utc_creation_and_dates_are_local_as_utc(app: dict) -> None:
    for record in app["records"]["object_1"][:50]:
        created_seconds = int(record["id"][:8], 16)
        local_wall = datetime.fromtimestamp(record["field_26_raw"]["unix_timestamp"] / 1000, UTC).replace(tzinfo=None)
        true_instant = local_wall.replace(tzinfo=CHICAGO)
        # the created field drops seconds; the id keeps them
        assert 0 <= created_seconds - true_instant.timestamp() < 60
        assert record["field_27_raw"]["unix_timestamp"] >= record["field_26_raw"]["unix_timestamp"]
        assert list(record["field_27_raw"]) == DATE_KEYS


def test_shapes_match_the_real_fixture() -> None:
    real = json.loads((FIXTURE / "records-object_3.json").read_text())["records"]
    meta = json.loads((FIXTURE / "metadata.json").read_text())["application"]
    fields = {f["key"]: f for o in meta["objects"] for f in o["fields"]}
    ctx = RenderContext(CHICAGO, meta["id"], lambda obj, rid: "Johnny C")
    checked = 0
    for record in real:
        for key in ("field_12", "field_13", "field_14", "field_15", "field_37"):  # dates of every format
            raw = record.get(key + "_raw")
            if not raw:
                continue
            start = datetime.fromtimestamp(raw["unix_timestamp"] / 1000, UTC).replace(tzinfo=None)
            end = None
            if "to" in raw:
                end = datetime.fromtimestamp(raw["to"]["unix_timestamp"] / 1000, UTC).replace(tzinfo=None)
            formatted, rendered = render_date(start, end, fields[key]["format"])
            assert (formatted, rendered) == (record[key], raw)
            checked += 1
        for key in ("field_19", "field_20", "field_21", "field_22", "field_24", "field_44", "field_127",
                    "field_30", "field_25", "field_29", "field_128"):
            if key + "_raw" not in record or record[key + "_raw"] == []:
                continue
            pair = render(fields[key], record[key + "_raw"], ctx)
            assert (pair.formatted, pair.raw) == (record[key], record[key + "_raw"]), key
            checked += 1
    assert checked > 100


@pytest.mark.parametrize(("wall", "hours", "am_pm", "time"), [
    (datetime(2024, 3, 10, 0, 0), "12", "AM", 720),
    (datetime(2024, 3, 10, 0, 45), "12", "AM", 765),
    (datetime(2024, 3, 10, 12, 5), "12", "PM", 725),
    (datetime(2024, 3, 10, 16, 14), "04", "PM", 974),
])
def test_twelve_hour_clock_quirk(wall: datetime, hours: str, am_pm: str, time: int) -> None:
    raw = raw_date(wall)
    assert (raw["hours"], raw["am_pm"], raw["time"]) == (hours, am_pm, time)
    assert raw["unix_timestamp"] == int(wall.replace(tzinfo=UTC).timestamp() * 1000)
    assert raw["iso_timestamp"] == wall.strftime("%Y-%m-%dT%H:%M:00.000Z")


def test_instants_convert_to_local_wall_time_across_dst() -> None:
    ctx = RenderContext(CHICAGO, "a" * 24, lambda obj, rid: None)
    field = {"key": "field_27", "type": "date_time", "format": {"time_format": "HH:MM am"}}
    before = datetime(2024, 3, 10, 7, 30, tzinfo=UTC)  # 01:30 CST
    after = before + timedelta(hours=1)  # 03:30 CDT: 02:xx never exists that day
    assert render(field, before, ctx).formatted == "03/10/2024 1:30am"
    assert render(field, after, ctx).formatted == "03/10/2024 3:30am"
