"""What a run will do, decided before it starts (tasks/domain/plan.py): the config checked against the
app, the Knack fetch window, the generation and deletes of a full fetch, and each destination's plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tasks.domain.config import ContainerConfig, parse_config
from tasks.domain.errors import ConfigError
from tasks.domain.layout import Manifest, ManifestEntry
from tasks.domain.plan import (
    PublishPlan,
    check_container,
    ids_to_delete,
    new_generation,
    plan_publish,
    plan_since,
    received_after,
    with_missing,
)
from tests.fixtures import KNACKPY_TEST_APP

pytestmark = pytest.mark.unit

METADATA = json.loads((KNACKPY_TEST_APP / "metadata.json").read_text())
DATES = "field_12, field_13, field_14, field_15, field_37"
ADDRESSES = "field_21, field_44, field_126, field_127"


def container(key: str = "object_3", **body: Any) -> ContainerConfig:
    body = {"modified_date_field_id": "field_37", **body}
    return parse_config({"apps": {"demo": {"containers": {key: body}}}}, "test.yaml").container("demo", key)


# --- check_container ----------------------------------------------------------------------------------

def test_a_container_that_matches_the_app_passes() -> None:
    cfg = container(location_fields=["field_21", "field_44"], socrata_resource_id="abcd-1234",
                    socrata_field_map={"field_7": "label"})
    assert check_container(METADATA, "demo", cfg) is None


@pytest.mark.parametrize(("body", "message"), [
    ({"modified_date_field_id": "field_99"},
     f"demo/object_3: modified_date_field_id field_99 is not a field of it; its date fields: {DATES}"),
    ({"modified_date_field_id": "field_10"},
     f"demo/object_3: modified_date_field_id field_10 is a number field; its date fields: {DATES}"),
    ({"location_fields": ["field_21", "field_7"]},
     f"demo/object_3: location_fields entry field_7 is not an address field of it; its address fields: {ADDRESSES}"),
    ({"socrata_field_map": {"field_98": "a", "field_7": "b", "field_99": "c"}},
     "demo/object_3: socrata_field_map names field_98, field_99, not fields of it"),
])
def test_a_config_key_the_app_contradicts_is_named(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_container(METADATA, "demo", container(**body))
    assert str(raised.value) == message


def test_an_unknown_container_names_the_fix() -> None:
    with pytest.raises(ConfigError) as raised:
        check_container(METADATA, "demo", container("object_99"))
    assert str(raised.value).startswith("demo/object_99: container 'object_99' is not an object or view of app ")
    assert str(raised.value).endswith("; fix the container key (or scene_id) in the config")


def test_two_fields_on_one_column_fail_only_when_the_container_publishes() -> None:
    collide = {"socrata_field_map": {"field_6": "short_text"}}  # field_7 "Short Text" derives the same name
    assert check_container(METADATA, "demo", container(**collide)) is None  # the store only: no columns
    with pytest.raises(ConfigError) as raised:
        check_container(METADATA, "demo", container(**collide, service_id="0f3c"))
    assert str(raised.value) == ("demo/object_3: fields field_6 and field_7 ('Short Text') both become column "
                                 "'short_text'; add a socrata_field_map entry for one of them, e.g. field_7: "
                                 "short_text_2")


# --- plan_since -----------------------------------------------------------------------------------------

CURSOR = {"instant": "2024-03-01T12:00:00+00:00"}
AT_CURSOR = datetime(2024, 3, 1, 12, tzinfo=UTC)
EARLIER = datetime(2024, 2, 1, tzinfo=UTC)
LATER = datetime(2024, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize(("cursor", "override", "full", "expected"), [
    (None, None, False, (None, True)),            # first run: everything, then the cursor is set
    (CURSOR, None, True, (None, True)),           # full refresh: everything
    (CURSOR, EARLIER, True, (None, True)),        # full wins over an explicit date
    (CURSOR, None, False, (AT_CURSOR, True)),     # incremental from the cursor
    (CURSOR, EARLIER, False, (EARLIER, True)),    # re-reading more than needed may move the cursor
    (CURSOR, AT_CURSOR, False, (AT_CURSOR, True)),
    (CURSOR, LATER, False, (LATER, False)),       # later than the cursor would leave a gap: cursor stays
    (None, EARLIER, False, (EARLIER, False)),     # no cursor: a partial read never sets one
])
def test_plan_since(cursor: dict[str, str] | None, override: datetime | None, full: bool,
                    expected: tuple[datetime | None, bool]) -> None:
    assert plan_since(cursor, override, full) == expected


# --- generations and deletes ------------------------------------------------------------------------------

def test_a_run_that_changes_the_store_writes_the_next_generation() -> None:
    assert new_generation(Manifest()) == 1
    assert new_generation(Manifest(generation=7)) == 8


def test_a_full_fetch_deletes_what_the_store_holds_and_knack_lost() -> None:
    assert ids_to_delete(["c", "a", "b", "d"], {"b", "d", "e"}) == ["a", "c"]
    assert ids_to_delete([], {"a"}) == []


# --- plan_publish -----------------------------------------------------------------------------------------

def manifest() -> Manifest:
    """Generation 3: a and b written in 1, c in 2, d in 3 (no modified date); x deleted in 2, y in 3."""
    e = ManifestEntry
    return Manifest(generation=3, records={
        "a": e("h1", "2024-03-01T10:00:00+00:00", 1), "b": e("h2", "2024-03-02T10:00:00+00:00", 1),
        "c": e("h3", "2024-03-03T10:00:00+00:00", 2), "d": e("h4", None, 3),
    }, deleted={"x": 2, "y": 3})


def test_a_manifest_reads_back_its_entries_by_name() -> None:
    again = Manifest.from_json(manifest().to_json())
    assert again == manifest() and again.records["d"] == ManifestEntry("h4", None, 3)
    assert again.records["c"].digest == "h3" and again.records["c"].generation == 2
    assert again.records["a"].modified == "2024-03-01T10:00:00+00:00"
    assert again.changed_since(2) == ["d"]


def test_a_first_publish_is_a_full_one() -> None:
    plan = plan_publish(manifest(), None, "socrata", full=False)
    assert plan == PublishPlan("socrata", True, 0, 3, ["a", "b", "c", "d"], [], advance=True, republish=True)
    assert plan.summary() == "socrata: full refresh from generation 0 to 3: 4 to upsert, 0 to delete"


def test_an_incremental_publish_takes_what_changed_and_went_since_its_cursor() -> None:
    plan = plan_publish(manifest(), {"generation": 2}, "agol", full=False)
    assert (plan.full, plan.cursor, plan.target, plan.changed, plan.deleted, plan.advance) == \
        (False, 2, 3, ["d"], ["y"], True)
    assert plan.summary() == "agol: incremental from generation 2 to 3: 1 to upsert, 1 to delete"
    assert plan_publish(manifest(), {"generation": 1}, "agol", full=False).deleted == ["x", "y"]


def test_a_republish_upserts_everything_and_leaves_the_deletes_to_the_publisher() -> None:
    plan = plan_publish(manifest(), {"generation": 2}, "socrata", full=False, republish=True,
                        received={"a": "h1", "b": "h2", "c": "h3", "d": "h4"})
    assert (plan.full, plan.cursor, plan.changed, plan.deleted, plan.advance) == \
        (True, 2, ["a", "b", "c", "d"], [], True)
    assert plan.summary() == "socrata: full refresh from generation 2 to 3: 4 to upsert, 0 to delete"


def test_a_reconcile_upserts_only_what_the_destination_did_not_receive() -> None:
    received = {"a": "h1", "b": "old", "d": "h4", "x": "h9"}  # b received with other bytes, c never
    plan = plan_publish(manifest(), {"generation": 3}, "agol", full=True, received=received)
    assert (plan.full, plan.republish, plan.changed, plan.deleted) == (True, False, ["b", "c"], [])
    assert plan.summary() == "agol: reconcile from generation 3 to 3: 2 to upsert, 0 to delete"
    everything = {"a": "h1", "b": "h2", "c": "h3", "d": "h4"}
    assert plan_publish(manifest(), {"generation": 3}, "agol", full=True, received=everything).changed == []
    assert plan_publish(manifest(), {"generation": 3}, "agol", full=True).changed == ["a", "b", "c", "d"]


def test_a_reconcile_with_columns_renamed_still_sends_every_row() -> None:
    everything = {"a": "h1", "b": "h2", "c": "h3", "d": "h4"}
    cursor = {"generation": 3, "columns": {"field_4": "notes"}}
    plan = plan_publish(manifest(), cursor, "agol", full=True, received=everything, columns={"field_4": "remarks"})
    assert plan.changed == ["a", "b", "c", "d"] and plan.remapped == ["field_4: notes → remarks"]


def test_a_reconcile_restores_rows_lost_downstream() -> None:
    everything = {"a": "h1", "b": "h2", "c": "h3", "d": "h4"}
    plan = plan_publish(manifest(), {"generation": 3}, "socrata", full=True, received={**everything, "c": "old"})
    held = {"a", "c", "zz"}  # b and d were deleted there by hand; zz is a stray (the publisher deletes it)
    repaired = with_missing(plan, manifest(), held)
    assert (repaired.changed, repaired.missing) == (["b", "c", "d"], ["b", "d"])
    assert repaired.summary() == ("socrata: reconcile from generation 3 to 3: 3 to upsert (2 of them missing "
                                  "there), 0 to delete")
    assert with_missing(plan, manifest(), {"a", "b", "c", "d"}) is plan


def test_what_a_destination_holds_after_a_run() -> None:
    received = {"a": "h1", "b": "old", "x": "h9"}  # x was deleted from the store
    assert received_after(received, manifest(), ["b", "c"]) == {"a": "h1", "b": "h2", "c": "h3"}
    assert received_after({}, manifest(), []) == {}


def test_since_narrows_the_upserts_and_keeps_the_cursor() -> None:
    since = datetime(2024, 3, 2, 10, tzinfo=UTC)
    plan = plan_publish(manifest(), {"generation": 0}, "socrata", full=False, since=since)
    assert plan.changed == ["b", "c", "d"]  # d has no modified date: published rather than skipped
    assert plan.deleted == ["x", "y"] and plan.advance is False


def test_columns_renamed_since_the_cursor_publish_every_row_again() -> None:
    cursor = {"generation": 3, "columns": {"field_4": "notes", "field_5": "status"}}
    columns = {"field_4": "remarks", "field_5": "status", "field_6": "kind"}
    since = datetime(2030, 1, 1, tzinfo=UTC)  # ignored once every row must go again
    plan = plan_publish(manifest(), cursor, "agol", full=False, since=since, columns=columns)
    assert plan.remapped == ["field_4: notes → remarks", "field_6: - → kind"]
    assert plan.changed == ["a", "b", "c", "d"] and plan.deleted == [] and plan.columns == columns
    assert plan.summary().endswith("4 to upsert, 0 to delete (every row again: columns changed: "
                                   "field_4: notes → remarks, field_6: - → kind)")


def test_the_same_columns_or_none_recorded_change_nothing() -> None:
    columns = {"field_4": "notes"}
    same = plan_publish(manifest(), {"generation": 3, "columns": columns}, "agol", full=False, columns=columns)
    unrecorded = plan_publish(manifest(), {"generation": 3}, "agol", full=False, columns=columns)
    assert same.remapped == unrecorded.remapped == [] and same.changed == unrecorded.changed == []
