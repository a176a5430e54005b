"""Knack filters through the emulator: every operator family, both filter forms, the date-day rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from emulators.knack import KnackEmulator

pytestmark = pytest.mark.integration

MARK = {"field": "field_2", "operator": "starts with", "value": "zz "}


@pytest.fixture
def seeded(knack_emulator: KnackEmulator) -> KnackEmulator:
    """Five marked signals with known values, plus two edited across the 2024-03-10 DST change."""
    emu = knack_emulator
    corridor = emu.records("object_2")[0]
    rows = [
        {"field_2": "ZZ alpha", "field_6": 2, "field_7": "1,250.50", "field_11": True, "field_12": "Active",
         "field_14": ["North", "East"], "field_16": "ana@example.org", "field_21": [corridor["id"]]},
        {"field_2": "ZZ beta", "field_6": 5, "field_11": False, "field_12": "Pending", "field_14": ["South"]},
        {"field_2": "ZZ gamma", "field_6": 8, "field_7": 99, "field_12": "Removed", "field_14": [None]},
        {"field_2": "ZZ delta", "field_6": 0, "field_4": "needs retiming"},
        {"field_2": "ZZ epsilon", "field_6": 3, "field_12": "Active", "field_4": "Retiming done"},
    ]
    emu.set_now(datetime(2024, 2, 1, 18, 0, tzinfo=UTC))
    for row in rows:
        emu.create_record("object_1", row)
    # DST starts 2024-03-10 02:00 in Chicago: 01:30 CST and 23:59 CDT the same local day
    emu.set_now(datetime(2024, 3, 10, 7, 30, tzinfo=UTC))
    emu.create_record("object_1", {"field_2": "ZZ early", "field_6": 1})
    emu.set_now(datetime(2024, 3, 11, 4, 59, tzinfo=UTC))
    emu.create_record("object_1", {"field_2": "ZZ late", "field_6": 1})
    return emu


def names(emu: KnackEmulator, *rules: dict[str, Any], match: str = "and", bare: bool = False) -> list[str]:
    """The marked records (name without "ZZ ") the filter returns; generated records are ignored."""
    filters: Any = list(rules) if bare else {"match": match, "rules": list(rules)}
    response = requests.get(f"{emu.api_url}/objects/object_1/records", timeout=10,
                            headers={"X-Knack-Application-Id": emu.app_id, "X-Knack-REST-API-KEY": emu.api_key},
                            params={"filters": json.dumps(filters), "rows_per_page": 1000})
    assert response.status_code == 200, response.text
    found = [r["field_2"][3:] for r in response.json()["records"] if r["field_2"].startswith("ZZ ")]
    return sorted(found)


def rule(field: str, operator: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    out = {"field": field, "operator": operator, **extra}
    if value is not None:
        out["value"] = value
    return out


def test_text_operators(seeded: KnackEmulator) -> None:
    assert names(seeded, rule("field_2", "is", "zz ALPHA")) == ["alpha"]
    assert names(seeded, MARK, rule("field_2", "is not", "ZZ alpha")) == sorted(
        ["beta", "gamma", "delta", "epsilon", "early", "late"])
    assert names(seeded, MARK, rule("field_4", "contains", "RETIMING")) == ["delta", "epsilon"]
    assert names(seeded, MARK, rule("field_4", "does not contain", "retiming")) == sorted(
        ["alpha", "beta", "gamma", "early", "late"])
    assert names(seeded, MARK, rule("field_2", "ends with", "ta")) == ["beta", "delta"]
    assert names(seeded, MARK, rule("field_16", "is", "ana@example.org")) == ["alpha"]


def test_number_operators(seeded: KnackEmulator) -> None:
    assert names(seeded, MARK, rule("field_6", "higher than", 4)) == ["beta", "gamma"]
    assert names(seeded, MARK, rule("field_6", "lower than", "2")) == ["delta", "early", "late"]
    assert names(seeded, MARK, rule("field_6", "is", 3)) == ["epsilon"]
    assert names(seeded, MARK, rule("field_7", "higher than", 1000)) == ["alpha"]  # currency raw is a string


def test_boolean_choice_connection_and_blank_operators(seeded: KnackEmulator) -> None:
    assert names(seeded, MARK, rule("field_11", "is", True)) == ["alpha"]
    assert "alpha" not in names(seeded, MARK, rule("field_11", "is not", "true"))
    assert names(seeded, MARK, rule("field_12", "is", "active")) == ["alpha", "epsilon"]
    assert names(seeded, MARK, rule("field_14", "contains", "east")) == ["alpha"]
    assert names(seeded, MARK, rule("field_14", "is any", ["South", "East"])) == ["alpha", "beta"]
    corridor = seeded.records("object_2")[0]
    assert names(seeded, MARK, rule("field_21", "is", corridor["id"])) == ["alpha"]
    assert names(seeded, MARK, rule("field_21", "contains", corridor["field_33"][:6])) == ["alpha"]
    assert names(seeded, MARK, rule("field_7", "is not blank")) == ["alpha", "gamma"]
    assert names(seeded, MARK, rule("field_14", "is blank")) == sorted(["gamma", "delta", "epsilon", "early", "late"])
    assert names(seeded, MARK, rule("field_21", "is blank")) == sorted(
        ["beta", "gamma", "delta", "epsilon", "early", "late"])


def test_match_or_and_bare_array_forms(seeded: KnackEmulator) -> None:
    either = names(seeded, rule("field_2", "is", "ZZ beta"), rule("field_2", "is", "ZZ gamma"), match="or")
    assert either == ["beta", "gamma"]
    assert names(seeded, rule("field_6", "higher than", 1), rule("field_6", "lower than", 5), bare=True) == \
        ["alpha", "epsilon"]


@pytest.mark.parametrize(("operator", "value", "expected"), [
    ("is", "03/10/2024", ["early", "late"]),
    ("is", "03/10/2024 11:00 pm", ["early", "late"]),  # the time part is ignored
    ("is", "03/11/2024", []),  # "late" is 03/11 in UTC but 03/10 on the app's clock
    ("is after", "03/09/2024", ["early", "late"]),
    ("is after", "03/10/2024", []),
    ("is before", "03/11/2024", ["alpha", "beta", "delta", "early", "epsilon", "gamma", "late"]),
    ("is before", "03/10/2024", ["alpha", "beta", "delta", "epsilon", "gamma"]),
    ("is not", "03/10/2024", ["alpha", "beta", "delta", "epsilon", "gamma"]),
])
def test_dates_compare_local_calendar_days_across_dst(seeded: KnackEmulator, operator: str, value: str,
                                                      expected: list[str]) -> None:
    assert names(seeded, MARK, rule("field_27", operator, value)) == expected


def test_on_or_after_needs_is_or_is_after(seeded: KnackEmulator) -> None:
    since = names(seeded, rule("field_27", "is", "03/10/2024"), rule("field_27", "is after", "03/10/2024"),
                  match="or")
    assert since == ["early", "late"]


def test_relative_date_operators_use_the_emulator_clock(seeded: KnackEmulator) -> None:
    seeded.set_now(datetime(2024, 3, 11, 5, 30, tzinfo=UTC))  # 00:30 CDT on 03/11 in Chicago
    assert names(seeded, MARK, rule("field_27", "is today")) == []
    seeded.set_now(datetime(2024, 3, 11, 4, 59, tzinfo=UTC))  # 23:59 on 03/10 in Chicago
    assert names(seeded, MARK, rule("field_27", "is today")) == ["early", "late"]
    assert names(seeded, MARK, rule("field_27", "is before today")) == ["alpha", "beta", "delta", "epsilon", "gamma"]
    assert names(seeded, MARK, rule("field_27", "is before current time")) == sorted(
        ["alpha", "beta", "delta", "epsilon", "gamma", "early"])
    assert names(seeded, MARK, rule("field_27", "is during the previous", range=7, type="days")) == []
    assert names(seeded, MARK, rule("field_27", "is during the previous", range=2, type="months")) == sorted(
        ["alpha", "beta", "delta", "epsilon", "gamma"])
    assert names(seeded, MARK, rule("field_27", "is during the current", type="month")) == ["early", "late"]
    assert names(seeded, MARK, rule("field_27", "is during the current", type="year")) == sorted(
        ["alpha", "beta", "delta", "epsilon", "gamma", "early", "late"])


@pytest.mark.parametrize("filters", [
    "{not json",
    json.dumps({"match": "xor", "rules": []}),
    json.dumps([{"field": "field_999", "operator": "is", "value": 1}]),
    json.dumps([{"field": "field_27", "operator": "is", "value": "sometime"}]),
    json.dumps([{"field": "field_19", "operator": "near", "value": "78701"}]),
])
def test_bad_filters_are_400(knack_emulator: KnackEmulator, filters: str) -> None:
    response = requests.get(f"{knack_emulator.api_url}/objects/object_1/records", timeout=10, params={
        "filters": filters}, headers={"X-Knack-Application-Id": knack_emulator.app_id,
                                      "X-Knack-REST-API-KEY": knack_emulator.api_key})
    assert response.status_code == 400 and response.json()["errors"][0]["message"]


def test_view_routes_filter_too(seeded: KnackEmulator) -> None:
    body = requests.get(f"{seeded.api_url}/pages/scene_1/views/view_1/records", timeout=10,
                        headers={"X-Knack-Application-Id": seeded.app_id},
                        params={"filters": json.dumps([rule("field_27", "is", "03/10/2024")])}).json()
    assert sorted(r["field_2"] for r in body["records"]) == ["ZZ early", "ZZ late"]
