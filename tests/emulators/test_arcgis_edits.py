"""Edits through the real ``arcgis`` client: per-row results, validation, rollback, truncate, append."""

from __future__ import annotations

import json

import pytest
import requests

pytestmark = pytest.mark.integration

POINT = {"x": -97.74, "y": 30.27, "spatialReference": {"wkid": 4326}}


def _feature(record_id: str, **attrs):
    return {"attributes": {"id": record_id, **attrs}, "geometry": POINT}


@pytest.fixture
def layer(arcgis_gis, make_agol_item):
    from arcgis.features import FeatureLayer

    item = make_agol_item()
    return FeatureLayer(item.url, arcgis_gis), item


def _ids(item, layer_id=0):
    return sorted(f["attributes"]["id"] for f in item.features(layer_id))


def test_adds_updates_deletes_in_one_call(layer):
    lyr, item = layer
    first = lyr.edit_features(adds=[_feature("a", count=1), _feature("b"), _feature("c")])
    assert [r["objectId"] for r in first["addResults"]] == [1, 2, 3]
    assert all(r["globalId"].startswith("{") and r["success"] for r in first["addResults"])
    result = lyr.edit_features(adds=[_feature("d")],
                               updates=[{"attributes": {"OBJECTID": 1, "count": 5}}],
                               deletes=[2])
    assert [r["success"] for k in ("addResults", "updateResults", "deleteResults") for r in result[k]] == [True] * 3
    stored = {f["attributes"]["id"]: f for f in item.features()}
    assert sorted(stored) == ["a", "c", "d"]
    assert stored["a"]["attributes"]["count"] == 5  # partial update kept the rest
    assert stored["a"]["geometry"] == {"x": -97.74, "y": 30.27}


@pytest.mark.parametrize(("feature", "message"), [
    ({"attributes": {"id": "x", "nosuch": 1}}, "does not exist"),
    ({"attributes": {"id": "x", "score": "1.5"}}, "score"),
    ({"attributes": {"id": "x", "modified_at": "2024-01-01"}}, "modified_at"),
    ({"attributes": {"id": "x", "count": 1.5}}, "count"),
    ({"attributes": {"id": "x", "name": "n" * 65}}, "would be truncated"),
    ({"attributes": {"id": "x"}, "geometry": {"x": -97.7}}, "needs 'x' and 'y'"),
    ({"attributes": {"id": "x"}, "geometry": {"x": -97.7, "y": 95.0}}, "outside the range"),
    ({"attributes": {"id": "x"}, "geometry": {"points": [[-97.7, 30.2]]}}, "multipoint was sent to a point"),
    ({"attributes": {"id": "x"}, "geometry": {"x": 1, "y": 2, "spatialReference": {"wkid": 3857}}}, "4326"),
    ({"attributes": {"id": "dup"}}, "duplicate key"),
])
def test_bad_rows_fail_alone_with_a_reason(layer, feature, message):
    lyr, item = layer
    lyr.edit_features(adds=[_feature("dup")])
    result = lyr.edit_features(adds=[_feature("good1"), feature, _feature("good2")], rollback_on_failure=False)
    flags = [r["success"] for r in result["addResults"]]
    assert flags == [True, False, True]
    error = result["addResults"][1]["error"]
    assert isinstance(error["code"], int) and message in error["description"]
    assert _ids(item) == ["dup", "good1", "good2"]


def test_missing_objects_on_update_and_delete(layer):
    lyr, _ = layer
    result = lyr.edit_features(updates=[{"attributes": {"OBJECTID": 99, "count": 1}}], deletes=[98],
                               rollback_on_failure=False)
    assert result["updateResults"][0]["success"] is False
    assert result["deleteResults"][0] == {"objectId": 98, "uniqueId": 98, "globalId": None, "success": False,
                                          "error": {"code": 1019, "description": "Object is missing."}}


def test_rollback_applies_nothing_and_reports_every_row(layer):
    lyr, item = layer
    result = lyr.edit_features(adds=[_feature("a"), {"attributes": {"id": "b", "score": "bad"}}],
                               rollback_on_failure=True)
    assert [r["success"] for r in result["addResults"]] == [False, False]
    assert result["addResults"][0]["error"]["description"] == "Operation rolled back."
    assert item.features() == []
    assert lyr.edit_features(adds=[_feature("c")])["addResults"][0]["objectId"] == 1  # ids not consumed


def test_rollback_envelope_switch_raises_in_the_client(layer, arcgis_emulator):
    lyr, item = layer
    arcgis_emulator.set_faults(rollback_envelope=True)
    with pytest.raises(Exception, match="Operation rolled back") as raised:
        lyr.edit_features(adds=[_feature("a"), {"attributes": {"id": "b", "score": "bad"}}])
    assert "(Error Code: 400)" in str(raised.value) and "score" in str(raised.value)
    assert item.features() == []


def test_object_ids_are_never_reused_until_truncate(layer):
    lyr, item = layer
    lyr.edit_features(adds=[_feature(f"r{i}") for i in range(3)])
    assert lyr.delete_features(deletes="3")["deleteResults"][0]["success"]
    assert lyr.edit_features(adds=[_feature("r9")])["addResults"][0]["objectId"] == 4
    assert lyr.manager.truncate() == {"success": True}
    assert item.features() == []
    assert lyr.edit_features(adds=[_feature("again")])["addResults"][0]["objectId"] == 1


def test_delete_features_by_where_and_object_ids(layer):
    lyr, item = layer
    lyr.edit_features(adds=[_feature(f"r{i}", count=i) for i in range(6)])
    by_where = lyr.delete_features(where="count >= 4")["deleteResults"]
    assert sorted(r["objectId"] for r in by_where) == [5, 6]
    assert [r["success"] for r in lyr.delete_features(deletes="1,2")["deleteResults"]] == [True, True]
    assert _ids(item) == ["r2", "r3"]


def test_append_upserts_on_the_unique_field(layer, arcgis_emulator):
    lyr, item = layer
    lyr.edit_features(adds=[_feature("a", count=1), _feature("b", count=1)])
    features = [_feature("b", count=2), _feature("c", count=2)]
    ok, status = lyr.append(upload_format="featureCollection", upsert=True, upsert_matching_field="id",
                            edits={"layers": [{"layerDefinition": {}, "featureSet": {"features": features}}]},
                            return_messages=True)
    assert ok is True and status["status"] == "Completed"
    assert {f["attributes"]["id"]: f["attributes"]["count"] for f in item.features()} == {"a": 1, "b": 2, "c": 2}
    assert any("/jobs/" in r["path"] for r in arcgis_emulator.requests)
    dup = [_feature("d"), _feature("d")]
    ok, status = lyr.append(upload_format="featureCollection", upsert=True, upsert_matching_field="id",
                            edits={"layers": [{"featureSet": {"features": dup}}]}, return_messages=True)
    assert ok is False and "Duplicate" in status["messages"][0]["description"]
    assert _ids(item) == ["a", "b", "c"]


def test_multipoint_layer_and_table(arcgis_gis, make_agol_item):
    from arcgis.features import FeatureLayer, Table

    item = make_agol_item({"name": "sites", "geometry_type": "multipoint",
                           "fields": [{"name": "id", "type": "esriFieldTypeString", "length": 24, "unique": True}]})
    item.add_layer({"name": "notes", "kind": "table",
                    "fields": [{"name": "id", "type": "esriFieldTypeString", "length": 24}]}, 1)
    sites = FeatureLayer(item.url, arcgis_gis)
    points = {"points": [[-97.7, 30.2], [-97.8, 30.3]], "spatialReference": {"wkid": 4326}}
    result = sites.edit_features(adds=[{"attributes": {"id": "m"}, "geometry": points},
                                       {"attributes": {"id": "p"}, "geometry": POINT}], rollback_on_failure=False)
    assert [r["success"] for r in result["addResults"]] == [True, False]
    [feature] = sites.query().features
    assert feature.geometry["points"] == [[-97.7, 30.2], [-97.8, 30.3]]
    notes = Table(item.layer_url(1), arcgis_gis)
    result = notes.edit_features(adds=[{"attributes": {"id": "n"}},
                                       {"attributes": {"id": "g"}, "geometry": POINT}], rollback_on_failure=False)
    assert [r["success"] for r in result["addResults"]] == [True, False]
    [note] = item.features(1)
    assert note["attributes"]["id"] == "n" and note["geometry"] is None


def test_add_update_delete_feature_endpoints(layer, arcgis_emulator):
    _, item = layer
    token = requests.post(f"{arcgis_emulator.portal_url}/sharing/rest/generateToken",
                          data={"username": "pipeline", "password": "pw", "f": "json"},
                          verify=arcgis_emulator.ca_bundle, timeout=10).json()["token"]

    def post(op, **data):
        return requests.post(f"{item.url}/{op}", data={"f": "json", "token": token, **data},
                             verify=arcgis_emulator.ca_bundle, timeout=10).json()

    added = post("addFeatures", features=json.dumps([_feature("a"), _feature("b")]))
    assert [r["objectId"] for r in added["addResults"]] == [1, 2]
    updated = post("updateFeatures", features=json.dumps([{"attributes": {"OBJECTID": 2, "note": "hi"}}]))
    assert updated == {"updateResults": [{"objectId": 2, "uniqueId": 2, "globalId": added["addResults"][1]
                                          ["globalId"], "success": True}]}
    deleted = post("deleteFeatures", objectIds="1")
    assert deleted["deleteResults"][0]["success"] is True
    assert post("deleteFeatures")["error"]["code"] == 400
    assert [f["attributes"]["note"] for f in item.features()] == ["hi"]


def test_deleted_features_are_recorded_unless_rolled_back(layer, arcgis_emulator):
    lyr, item = layer
    lyr.edit_features(adds=[_feature("a"), _feature("b"), _feature("c")])
    lyr.edit_features(deletes=[2])
    assert [f["id"] for f in arcgis_emulator.deleted_features(item.item_id)] == ["b"]
    rolled = lyr.edit_features(deletes=[1, 99], rollback_on_failure=True)  # 99 is missing: all rolled back
    assert not any(r["success"] for r in rolled["deleteResults"])
    assert [f["id"] for f in arcgis_emulator.deleted_features(item.item_id)] == ["b"]
    assert _ids(item) == ["a", "c"]
