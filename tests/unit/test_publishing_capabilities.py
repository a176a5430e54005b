"""What a run may do to each destination (capabilities) and what it counts (typed counts), without I/O."""

from __future__ import annotations

import pytest

from tasks.agol.task import AgolLayer
from tasks.domain.config import ContainerConfig, Settings
from tasks.domain.destinations import AgolCounts, AuditCounts, Capabilities, SocrataCounts, TableCounts
from tasks.domain.errors import ConfigError
from tasks.domain.results import PublishResult
from tasks.socrata.task import SocrataDataset
from tasks.table.task import AnalyticsTable

pytestmark = pytest.mark.unit


def _cfg(**kw: object) -> ContainerConfig:
    return ContainerConfig.model_validate({"app": "signals", "key": "object_1", "modified_date_field_id": "field_9",
                                           "socrata_resource_id": "abcd-1234", "service_id": "svc",
                                           "table": True, **kw})


@pytest.mark.parametrize(("no_replace", "full", "publishes_full"),
                         [(False, False, False), (False, True, True), (True, False, False), (True, True, False)])
def test_a_no_replace_dataset_takes_no_full_refresh(no_replace: bool, full: bool, publishes_full: bool) -> None:
    caps = SocrataDataset.capabilities_of(_cfg(no_replace_socrata=no_replace))
    assert caps.publishes_full(full) is publishes_full
    assert caps.full_refresh is caps.removes_strays is (not no_replace)


def test_a_full_sync_notes_the_setting_that_keeps_socrata_incremental() -> None:
    kept = SocrataDataset.capabilities_of(_cfg(no_replace_socrata=True))
    assert kept.incremental_note(True) == "no_replace_socrata is set: Socrata gets an incremental publish"
    assert kept.incremental_note(False) is None  # nothing was asked that it refuses
    assert SocrataDataset.capabilities_of(_cfg()).incremental_note(True) is None


def test_a_no_replace_dataset_keeps_the_rows_the_store_lacks() -> None:
    assert SocrataDataset.capabilities_of(_cfg(no_replace_socrata=True)).strays_note() == (
        "no_replace_socrata: rows the store lacks are left in place")
    assert SocrataDataset.capabilities_of(_cfg()).strays_note() is None


@pytest.mark.parametrize("capabilities_of", [AgolLayer.capabilities_of, AnalyticsTable.capabilities_of])
def test_no_replace_socrata_takes_nothing_from_the_other_destinations(capabilities_of: object) -> None:
    caps = capabilities_of(_cfg(no_replace_socrata=True))  # type: ignore[operator]
    assert isinstance(caps, Capabilities)
    assert caps.publishes_full(True) and caps.strays_note() is None and caps.incremental_note(True) is None


def test_a_full_publish_of_a_no_replace_dataset_is_refused_before_anything_opens() -> None:
    cfg = _cfg(no_replace_socrata=True)
    with pytest.raises(ConfigError, match=r"^signals/object_1: no_replace_socrata forbids a full refresh of "
                                          r"dataset abcd-1234; run without --full$"):
        SocrataDataset("signals", cfg, "dev", Settings(), full=True)
    assert SocrataDataset("signals", cfg, "dev", Settings(), full=False).capabilities.removes_strays is False


def test_the_sync_flow_knows_the_capabilities_of_every_destination_it_publishes_to() -> None:
    from flows.sync import CAPABILITIES, PUBLISHERS

    assert set(CAPABILITIES) == set(PUBLISHERS)
    assert [CAPABILITIES[name](_cfg()).kind for name in ("socrata", "agol", "table")] == ["Socrata", "ArcGIS", "table"]


def test_each_destination_reports_its_own_counts_under_their_old_names_in_their_old_order() -> None:
    assert list(SocrataCounts(upserted=5, created=2, updated=3).with_removed(None).as_dict().items()) == [
        ("created", 2), ("updated", 3)]  # Socrata does not count what it deleted
    assert list(AgolCounts(upserted=5, added=1, updated=4).with_removed(2).as_dict().items()) == [
        ("added", 1), ("updated", 4), ("features_deleted", 2)]
    assert list(TableCounts(upserted=7, inserted=3, updated=4, copied=9).with_removed(0).as_dict().items()) == [
        ("inserted", 3), ("updated", 4), ("copied", 9), ("rows_deleted", 0)]
    assert TableCounts().as_dict() == {"inserted": 0, "updated": 0, "copied": 0}  # nothing merged, nothing deleted


def test_a_reconciles_audit_counts_follow_the_destinations_own() -> None:
    by_ids = AuditCounts(held=10, missing=2).with_strays(1)
    by_rows = AuditCounts(held=10, missing=2, differed=3).with_strays(0)
    assert list(by_ids.as_dict()) == ["held", "missing", "strays"] and by_ids.as_dict()["strays"] == 1
    assert by_rows.as_dict() == {"held": 10, "missing": 2, "differed": 3, "strays": 0}
    counts = AgolCounts(upserted=5, added=1, updated=4).with_removed(1)
    result = PublishResult(mode="full", read=5, upserted=counts.upserted, deleted=1, generation=4, seconds=0.5,
                           counts=counts.as_dict() | by_ids.as_dict())
    assert list(result.as_dict().items()) == [
        ("mode", "full"), ("read", 5), ("upserted", 5), ("added", 1), ("updated", 4), ("features_deleted", 1),
        ("held", 10), ("missing", 2), ("strays", 1), ("deleted", 1), ("generation", 4), ("seconds", 0.5)]
