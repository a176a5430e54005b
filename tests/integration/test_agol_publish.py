"""Publishing to ArcGIS with the real ``arcgis`` package against the TLS emulator (tasks/agol.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from blocks.agol import ArcGISCredentials
from tasks.agol.client import delete_ids, list_ids, open_target, upsert_features
from tasks.domain.agol import to_agol_feature
from tasks.domain.errors import AgolEditFailed, AgolError, ConfigError
from tasks.domain.formatting import Address
from tests.fixtures.arcgis import AGOL_PASSWORD, AGOL_USERNAME, SIGNALS_LAYER

pytestmark = pytest.mark.integration

NAMES = {"field_1": "name", "field_2": "count", "field_3": "location"}


@pytest.fixture
def block_creds(arcgis_emulator) -> ArcGISCredentials:
    """The real credentials block: every ``get_gis()`` signs in again."""
    return ArcGISCredentials(url=arcgis_emulator.portal_url, username=AGOL_USERNAME, password=AGOL_PASSWORD,
                             ca_bundle=arcgis_emulator.ca_bundle)


class _SessionCreds:
    """Hands out the session's signed-in GIS: a sign-in costs ~0.5 s, and most tests need none of their own."""

    def __init__(self, gis: object) -> None:
        self.gis = gis

    def get_gis(self, timeout: float = 600) -> object:
        return self.gis


@pytest.fixture
def creds(arcgis_gis) -> _SessionCreds:
    return _SessionCreds(arcgis_gis)


def _features(target, n: int, *, start: int = 0, name: str = "signal") -> list[dict]:
    """Features built the way the publisher builds them: formatted values through to_agol_feature."""
    out = []
    for i in range(start, start + n):
        located = i % 10 != 0  # every tenth record has an address without coordinates
        formatted = {"field_1": f"<b>{name}</b> {i}", "field_2": i,
                     "field_3": Address(f"{i} Main St", 30.2 + i / 1e5 if located else None,
                                        -97.7 if located else None)}
        out.append(to_agol_feature(f"rec{i:05d}", formatted, NAMES, target.info.fields, location_fields=["field_3"],
                                   geometry_type=target.info.geometry_type, layer=target.name))
    return out


def _stored(item) -> dict[str, dict]:
    features = item.features()
    ids = [f["attributes"]["id"] for f in features]
    assert len(ids) == len(set(ids)), "duplicate record ids in the layer"
    return {f["attributes"]["id"]: f for f in features}


def test_full_publish_lands_every_feature(creds, make_agol_item):
    item = make_agol_item()
    target = open_target(creds, item.item_id, 0, "layer", backoff=0)
    counts = upsert_features(target, _features(target, 2500), chunk_size=1000)
    assert counts == {"features": 2500, "added": 2500, "updated": 0, "duplicates_deleted": 0, "chunks": 3}
    stored = _stored(item)
    assert len(stored) == 2500
    assert stored["rec00001"]["attributes"]["name"] == "signal 1"
    assert stored["rec00001"]["geometry"] == {"x": -97.7, "y": pytest.approx(30.20001)}
    assert stored["rec00010"]["geometry"] is None  # unlocated: no shape, not (0, 0)
    listed = list_ids(target)
    assert set(listed) == set(stored) and all(len(oids) == 1 for oids in listed.values())


def test_edits_and_deletes_land_exactly(creds, make_agol_item):
    item = make_agol_item()
    target = open_target(creds, item.item_id, 0, "layer", backoff=0)
    upsert_features(target, _features(target, 60))
    oids_before = {k: v["attributes"]["OBJECTID"] for k, v in _stored(item).items()}
    changed = _features(target, 5, start=10, name="renamed")
    counts = upsert_features(target, changed)
    assert (counts["added"], counts["updated"]) == (0, 5)
    assert delete_ids(target, ["rec00020", "rec00021", "rec00022", "missing-id"]) == 3
    stored = _stored(item)
    assert len(stored) == 57 and not {"rec00020", "rec00021", "rec00022"} & set(stored)
    renamed = {k for k, v in stored.items() if v["attributes"]["name"].startswith("renamed")}
    assert renamed == {f"rec{i:05d}" for i in range(10, 15)}
    assert all(stored[k]["attributes"]["OBJECTID"] == oids_before[k] for k in stored)  # updated in place
    assert delete_ids(target, ["rec00020"]) == 0  # a re-run of the same deletes is harmless


@pytest.mark.parametrize("mode", ["reject", "apply"])
def test_failure_midway_then_rerun_converges(creds, make_agol_item, arcgis_emulator, mode):
    item = make_agol_item()
    target = open_target(creds, item.item_id, 0, "layer", attempts=2, backoff=0)
    features = _features(target, 300)
    arcgis_emulator.set_faults(fail_edits_after=1, fail_edits_count=10, fail_edits_mode=mode)
    with pytest.raises(AgolError, match="timed out"):
        upsert_features(target, features, chunk_size=100)
    assert 100 <= len(_stored(item)) < 300
    arcgis_emulator.set_faults()
    counts = upsert_features(target, features, chunk_size=100)
    assert counts["added"] + counts["updated"] == 300
    assert sorted(_stored(item)) == sorted(f["attributes"]["id"] for f in features)


def test_a_timeout_applied_server_side_is_retried_as_updates(creds, make_agol_item, arcgis_emulator):
    item = make_agol_item()
    target = open_target(creds, item.item_id, 0, "layer", backoff=0)
    arcgis_emulator.set_faults(fail_edits_after=0, fail_edits_count=1, fail_edits_mode="apply")
    counts = upsert_features(target, _features(target, 40))
    assert (counts["added"], counts["updated"]) == (0, 40)  # the lost reply had added them all
    assert len(_stored(item)) == 40


def test_transient_faults_are_retried_and_http_errors_give_up(creds, make_agol_item, arcgis_emulator):
    item = make_agol_item()
    target = open_target(creds, item.item_id, 0, "layer", attempts=6, backoff=0)
    arcgis_emulator.set_faults(timeout_rate=0.3, seed=11)
    upsert_features(target, _features(target, 200), chunk_size=50)
    assert len(_stored(item)) == 200
    assert any(r["error_code"] == 504 for r in arcgis_emulator.requests)
    target.attempts = 2
    arcgis_emulator.set_faults(error_rate=1.0, error_status=503)
    with pytest.raises(AgolError, match="upserting"):
        upsert_features(target, _features(target, 1, start=500))


def test_per_feature_failures_name_the_ids_and_the_rest_lands(creds, make_agol_item):
    item = make_agol_item()
    target = open_target(creds, item.item_id, 0, "layer", backoff=0)
    good = _features(target, 5)
    bad = [{"attributes": {"id": "bad-field", "nosuch": 1}},
           {"attributes": {"id": "bad-geo"}, "geometry": {"x": -97.7, "y": 123.0}}]
    with pytest.raises(AgolEditFailed) as raised:
        upsert_features(target, [*good[:2], *bad, *good[2:]], chunk_size=3)
    assert raised.value.ids == ["bad-field", "bad-geo"]
    assert "does not exist" in str(raised.value) and "outside the range" in str(raised.value)
    assert sorted(_stored(item)) == sorted(f["attributes"]["id"] for f in good)


@pytest.mark.parametrize("envelope", [False, True])
def test_rollback_chunks_land_all_or_nothing_in_both_reply_shapes(creds, make_agol_item, arcgis_emulator,
                                                                  envelope):
    item = make_agol_item()
    target = open_target(creds, item.item_id, 0, "layer", backoff=0)
    arcgis_emulator.set_faults(rollback_envelope=envelope)
    good = _features(target, 4)
    bad = {"attributes": {"id": "bad", "count": "many"}}
    with pytest.raises(AgolEditFailed) as raised:
        upsert_features(target, [good[0], bad, good[1], good[2], good[3]], chunk_size=3, rollback=True)
    if envelope:  # the service names no rows: the whole chunk is reported
        assert raised.value.ids == ["rec00000", "bad", "rec00001"]
    else:
        assert raised.value.ids[0] == "bad" and sorted(raised.value.ids) == ["bad", "rec00000", "rec00001"]
    assert sorted(_stored(item)) == ["rec00002", "rec00003"]


def test_token_expiry_mid_run_signs_in_again(block_creds, make_agol_item, arcgis_emulator):
    item = make_agol_item()
    target = open_target(block_creds, item.item_id, 0, "layer", backoff=0)
    features = _features(target, 30)

    def expiring() -> Iterator[dict]:
        for i, feature in enumerate(features):
            if i == 10:  # after the first chunk has landed
                arcgis_emulator.expire_tokens()
            yield feature

    arcgis_emulator.reset_log()
    counts = upsert_features(target, expiring(), chunk_size=10)
    assert counts["added"] == 30 and len(_stored(item)) == 30
    assert any(r["error_code"] == 498 for r in arcgis_emulator.requests)
    paths = Counter(r["path"] for r in arcgis_emulator.requests)
    assert paths["/portal/sharing/oauth2/signin"] == 1


def test_duplicates_already_in_the_layer_are_collapsed(creds, make_agol_item):
    no_unique = {**SIGNALS_LAYER, "fields": [{**f, "unique": False} for f in SIGNALS_LAYER["fields"]]}
    item = make_agol_item(no_unique)
    target = open_target(creds, item.item_id, 0, "layer", backoff=0)
    target.layer.edit_features(adds=[{"attributes": {"id": "rec00001", "name": "old"}}] * 3)
    counts = upsert_features(target, _features(target, 2))
    assert (counts["added"], counts["updated"], counts["duplicates_deleted"]) == (1, 1, 2)
    stored = _stored(item)
    assert stored["rec00001"]["attributes"]["OBJECTID"] == 1 and stored["rec00001"]["attributes"]["name"] == "signal 1"


def test_tables_publish_without_geometry(creds, make_agol_item):
    item = make_agol_item({"name": "work_orders", "kind": "table", "fields": SIGNALS_LAYER["fields"]})
    target = open_target(creds, item.item_id, 0, "table", backoff=0)
    features = _features(target, 3)
    assert all("geometry" not in f for f in features)
    upsert_features(target, features)
    assert [f["geometry"] for f in item.features()] == [None, None, None]


def test_open_target_refuses_wrong_config(creds, block_creds, make_agol_item):
    item = make_agol_item()
    with pytest.raises(ConfigError, match="does not exist"):
        open_target(block_creds, "f" * 32, 0, "layer")
    with pytest.raises(ConfigError, match="agol_kind='table'"):
        open_target(creds, item.item_id, 0, "table")
    with pytest.raises(ConfigError, match="knack_id"):
        open_target(creds, item.item_id, 0, "layer", match_field="knack_id")
