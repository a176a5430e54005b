"""The stored document's bytes: compact UTF-8 JSON that reads back as exactly what Knack sent."""

from __future__ import annotations

import json

import pytest

from tasks.domain.layout import content_hash, serialize_record
from tests.fixtures import KNACKPY_TEST_APP

pytestmark = pytest.mark.unit


def test_fixture_records_round_trip_compact_and_utf8() -> None:
    records = json.loads((KNACKPY_TEST_APP / "records-object_3.json").read_text())["records"]
    assert records
    for record in records:
        body = serialize_record(record)
        assert json.loads(body) == record
        assert body == json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_non_ascii_is_kept_as_utf8() -> None:
    assert serialize_record({"field_1": "Señal ñ – 東"}) == '{"field_1":"Señal ñ – 東"}'.encode()


@pytest.mark.parametrize("record", [
    {"field_1": 123456789012345678901234567890},  # beyond 64 bits: not rounded to a float
    {"field_1": "lone \ud800 surrogate"},  # not encodable as UTF-8: escaped, not refused
    {"field_1": "é", 7: "a non-string key"},
])
def test_what_the_fast_path_refuses_still_serializes_exactly(record: dict) -> None:
    body = serialize_record(record)
    assert json.loads(body) == {str(k): v for k, v in record.items()}
    assert body.isascii()


def test_hash_follows_bytes() -> None:
    a, b = serialize_record({"x": 1.5}), serialize_record({"x": 1.25})
    assert content_hash(a) == content_hash(serialize_record({"x": 1.5})) != content_hash(b)
