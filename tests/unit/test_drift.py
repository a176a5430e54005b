"""The drift audit's digests: a payload and the row a destination gives back share one digest until
someone changes the row there; the run summary shows the audit per place."""

from __future__ import annotations

import pytest

from tasks.domain.drift import canonical, drifted, row_digest, rows_after
from tasks.domain.report import summary_markdown, summary_rows
from tasks.domain.results import OffloadResult, PublishResult, SyncReport

pytestmark = pytest.mark.unit

COLUMNS = ["id", "count", "done", "at", "name", "place"]


def test_a_socrata_row_read_back_has_the_digest_of_the_payload_sent() -> None:
    sent = {"id": "a1", "count": 12.5, "done": True, "at": "2024-03-01T10:15:00", "name": "Main & 5th",
            "place": {"type": "Point", "coordinates": [-97.7431, 30.2672]}, "notes": None,
            "published_at": "2024-03-02T00:00:00"}
    returned = {"id": "a1", "count": "12.50", "done": True, "at": "2024-03-01T10:15:00.000",
                "name": "Main & 5th", "place": {"type": "Point", "coordinates": [-97.7431000001, 30.2672]}}
    assert row_digest(sent, COLUMNS) == row_digest(returned, COLUMNS)


def test_an_arcgis_feature_read_back_has_the_digest_of_the_feature_sent() -> None:
    sent = {"attributes": {"ID": "a1", "WHEN": 1709288100000, "SCORE": 3}, "geometry": {"x": -97.74, "y": 30.26}}
    returned = {"attributes": {"ID": "a1", "WHEN": 1709288100000, "SCORE": 3.0, "OBJECTID": 7, "NOTE": None},
                "geometry": {"x": -97.74, "y": 30.26, "spatialReference": {"wkid": 4326}}}
    fields = ["ID", "WHEN", "SCORE", "NOTE"]
    assert row_digest(sent["attributes"], fields, sent["geometry"]) == \
        row_digest(returned["attributes"], fields, returned["geometry"])


@pytest.mark.parametrize("change", [{"name": "Edited"}, {"count": "13"}, {"done": False}, {"name": None},
                                    {"place": {"type": "Point", "coordinates": [-97.75, 30.2672]}}])
def test_a_value_changed_downstream_changes_the_digest(change: dict) -> None:
    row = {"id": "a1", "count": "12.5", "done": True, "name": "Main", "place": {"type": "Point",
                                                                                "coordinates": [-97.7431, 30.2672]}}
    assert row_digest({**row, **change}, COLUMNS) != row_digest(row, COLUMNS)


def test_canonical_forms() -> None:
    assert canonical("") is None and canonical([]) is None and canonical(None) is None
    assert canonical(1.50) == canonical("1.5") == "1.5" and canonical(-0.0) == "0"
    assert canonical("2024-03-01T10:15:00.000Z") == canonical("2024-03-01T10:15:00") == "2024-03-01T10:15:00"
    assert canonical("2024-03-01T10:15:00-06:00") == "2024-03-01T10:15:00-06:00"
    assert canonical("5e12345678") == "5e12345678" and canonical("1E+999999999") == "1E+999999999"  # codes
    assert canonical(1e300) == "1e+300" and canonical("2e3") == "2000"


def test_drifted_rows_and_the_digests_kept_after_a_run() -> None:
    recorded = {"a": "1", "b": "2", "c": "3", "gone": "9"}
    held = {"a": "1", "b": "X", "d": "4", "stray": "5"}  # b edited there; d never recorded; c missing there
    stored = {"a", "b", "c", "d"}
    assert drifted(recorded, held, stored) == ["b", "d"]
    assert rows_after(recorded, {"b": "2", "d": "4"}, stored) == {"a": "1", "b": "2", "c": "3", "d": "4"}


def test_the_summary_shows_the_audit_per_place() -> None:
    store = OffloadResult(container="object_1", mode="full", since=None, cursor=None, fetched=300, written=2,
                          unchanged=298, deleted=1, generation=3, unknown_fields=[], seconds=1.0, repaired=1)
    socrata = PublishResult(mode="full", read=2, upserted=2, deleted=0, generation=3, seconds=0.5,
                            counts={"held": 299, "differed": 1, "missing": 1, "strays": 0})
    report = SyncReport("demo", "object_1", "dev", store, {"socrata": socrata})
    rows = summary_rows(report)
    assert (rows[0]["held"], rows[0]["differed"], rows[0]["missing"], rows[0]["strays"]) == (300, 2, 1, 1)
    assert (rows[1]["held"], rows[1]["differed"], rows[1]["missing"]) == (299, 1, 1)
    text = summary_markdown(report)
    assert "| quota left | held | differed | missing | strays | seconds | status |" in text
    assert "| store → socrata | full | 2 | 2 |  | 0 |  |  | 299 | 1 | 1 | 0 |" in text
