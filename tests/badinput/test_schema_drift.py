"""Knack's schema changing under us: a field added (records carry a key the metadata lacks) and fields
renamed (same keys, new labels, so new column names).

Promise: a warning names the change, the metadata is fetched again and stored, and no destination
column ever holds one field in some rows and another field in others: when the field → column
mapping changes, every row is published again under the new mapping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from flows.metadata_to_s3 import metadata_to_s3
from tasks.domain.agol import strip_html
from tests.faults.harness import Rig

pytestmark = pytest.mark.integration


def object_fields(rig: Rig) -> list[dict[str, Any]]:
    return next(o for o in rig.knack.state.meta["objects"] if o["key"] == "object_1")["fields"]


@pytest.fixture
def drifting(make_rig) -> Iterator[Rig]:
    """A rig whose Knack schema the test may change; the session's metadata cache is restored after."""
    rig: Rig = make_rig(records=30)
    fields = object_fields(rig)
    saved = [dict(f) for f in fields]
    yield rig
    fields[:] = saved  # the hour-long metadata cache is shared by the session: put the real one back
    metadata_to_s3(app=rig.app, env=rig.env, refresh=True, config_path=str(rig.config_path))


def stored_metadata(rig: Rig) -> dict[str, Any]:
    return json.loads(rig.s3.get_object(Bucket=rig.bucket, Key="dev/demo/metadata.json")["Body"].read())


def test_a_field_added_in_knack_is_warned_about_and_the_metadata_refetched(drifting: Rig) -> None:
    rig = drifting
    rig.ok()
    object_fields(rig).append({"key": "field_50", "name": "Inspector Remarks", "type": "short_text",
                               "required": False, "unique": False})
    table = rig.knack.state.tables["object_1"]
    for rid in rig.knack.edit_random("object_1", 3, seed=1):
        table.put({**table.rows[rid], "field_50": "needs paint", "field_50_raw": "needs paint"})
    report = rig.ok()
    assert report["store"]["unknown_fields"] == ["field_50"]
    assert "records carry fields the stored metadata does not know (field_50)" in rig.log.text
    labels = {f["key"] for o in stored_metadata(rig)["application"]["objects"] for f in o["fields"]}
    assert "field_50" in labels  # refetched and stored before anything was published with it
    assert "has no column for inspector_remarks: not published" in rig.log.text  # never a misaligned column
    assert all("inspector_remarks" not in row for row in rig.socrata_rows())
    rig.assert_converged()


def test_fields_renamed_in_knack_republish_every_row_under_the_new_names(drifting: Rig) -> None:
    rig = drifting
    rig.ok()
    fields = {f["key"]: f for f in object_fields(rig)}
    fields["field_4"]["name"] = "Field Notes"  # was "Notes"
    fields["field_5"]["name"] = "Notes"        # was "Description": now it owns the "notes" column
    rig.knack.edit_random("object_1", 3, seed=2)
    rig.ok()  # the cached metadata still has the old names: the edits go out under the old mapping
    metadata_to_s3(app=rig.app, env=rig.env, refresh=True, config_path=str(rig.config_path))
    assert "object_1.field_4 'Notes' → 'Field Notes'; object_1.field_5 'Description' → 'Notes'" in rig.log.text

    report = rig.ok()
    assert report["published"]["socrata"]["upserted"] == 30  # every row again, not only the edited ones
    assert report["published"]["agol"]["upserted"] == 30
    assert "the columns changed since the last publish (field_4: notes → field_notes; field_5: description → " \
           "notes)" in rig.log.text
    knack = {r["id"]: r for r in rig.knack.records("object_1")}
    for row in rig.socrata_rows():  # the notes column holds field_5 in every row, field_4 in none
        assert row.get("notes") == (knack[row["id"]]["field_5"] or None), row["id"]
    for feature in rig.agol_features():
        record = knack[feature["attributes"]["id"]]
        assert feature["attributes"].get("notes") == (strip_html(record["field_5"]) if record["field_5"] else None)
