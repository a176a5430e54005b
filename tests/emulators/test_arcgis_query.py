"""Queries through the real ``arcgis`` client: paging past maxRecordCount, the where subset, outFields."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.arcgis import SIGNALS_LAYER

pytestmark = pytest.mark.integration

ROWS = 4500  # more than two pages of maxRecordCount (2000)


@pytest.fixture(scope="module")
def populated(arcgis_emulator):
    """One layer with ROWS features, shared by the read-only tests of this module."""
    from arcgis.features import FeatureLayer
    from arcgis.gis import GIS

    item_id = "9" * 32
    url = arcgis_emulator.create_layer(item_id, SIGNALS_LAYER)
    gis = GIS(arcgis_emulator.portal_url, username="pipeline", password="pw",
              ca_bundles=arcgis_emulator.ca_bundle)
    layer = FeatureLayer(url, gis)
    adds = [{"attributes": {"id": f"r{i}", "name": ("even" if i % 2 == 0 else "odd") + f"-{i}", "count": i,
                            "score": i / 4, "modified_at": 1704067200000 + i * 1000,
                            "note": None if i % 3 else "third"},
             "geometry": {"x": -97.7 + i / 1e5, "y": 30.2, "spatialReference": {"wkid": 4326}}}
            for i in range(ROWS)]
    adds.append({"attributes": {"id": "quote", "name": "O'Brien", "count": -1}})
    result = layer.edit_features(adds=adds, rollback_on_failure=True)
    assert all(r["success"] for r in result["addResults"])
    return layer, url


def test_count_and_ids_are_not_capped(populated):
    layer, _ = populated
    assert layer.query(return_count_only=True) == ROWS + 1
    ids = layer.query(return_ids_only=True)
    assert ids["objectIdFieldName"] == "OBJECTID"
    assert ids["objectIds"] == list(range(1, ROWS + 2))


def test_plain_query_pages_past_max_record_count(populated):
    layer, _ = populated
    features = layer.query(where="1=1").features
    ids = [f.attributes["id"] for f in features]
    assert len(ids) == ROWS + 1 and len(set(ids)) == ROWS + 1


def test_ordered_query_pages_by_offset(populated, arcgis_emulator):
    layer, _ = populated
    arcgis_emulator.reset_log()
    counts = [f.attributes["count"] for f in layer.query(where="count >= 0", order_by_fields="count DESC").features]
    assert counts == list(range(ROWS - 1, -1, -1))
    offsets = [r["params"].get("resultOffset") for r in arcgis_emulator.requests if r["path"].endswith("/query")]
    assert {"2000", "4000"} <= set(offsets)


def test_offset_and_record_count(populated):
    layer, _ = populated
    page = layer.query(where="count >= 0 AND count < 100", order_by_fields="count ASC", result_offset=10, result_record_count=5)
    assert [f.attributes["count"] for f in page.features] == [10, 11, 12, 13, 14]


def test_page_is_capped_and_flags_the_transfer_limit(populated, arcgis_emulator):
    _, url = populated
    token = requests.post(f"{arcgis_emulator.portal_url}/sharing/rest/generateToken",
                          data={"username": "pipeline", "password": "pw", "f": "json"},
                          verify=arcgis_emulator.ca_bundle, timeout=10).json()["token"]

    def query(**params):
        return requests.get(f"{url}/query", params={"where": "1=1", "f": "json", **params},
                            headers={"X-Esri-Authorization": f"Bearer {token}"},
                            verify=arcgis_emulator.ca_bundle, timeout=30).json()

    first = query(outFields="id", resultRecordCount=5000)
    assert len(first["features"]) == 2000 and first["exceededTransferLimit"] is True
    last = query(resultOffset=4000)
    assert len(last["features"]) == ROWS + 1 - 4000 and "exceededTransferLimit" not in last


@pytest.mark.parametrize(("where", "expected"), [
    ("id = 'r5'", {"r5"}),
    ("ID = 'r5'", {"r5"}),
    ("id IN ('r1', 'r2', 'nope')", {"r1", "r2"}),
    ("count >= 4497", {"r4497", "r4498", "r4499"}),
    ("count < 2 OR count > 4498", {"quote", "r0", "r1", "r4499"}),
    ("(count <= 6 AND name LIKE 'even%') AND count <> 0", {"r2", "r4", "r6"}),
    ("count < 7 AND note IS NOT NULL", {"r0", "r3", "r6"}),
    ("count < 3 AND note IS NULL", {"quote", "r1", "r2"}),
    ("name = 'O''Brien'", {"quote"}),
    ("score = 1.25", {"r5"}),
    ("modified_at < TIMESTAMP '2024-01-01 00:00:02'", {"r0", "r1"}),  # NULL never compares
    ("OBJECTID IN (1, 2)", {"r0", "r1"}),
])
def test_where_subset(populated, where, expected):
    layer, _ = populated
    assert {f.attributes["id"] for f in layer.query(where=where, out_fields="id").features} == expected


@pytest.mark.parametrize("where", ["nosuch = 1", "1=1; DROP TABLE features", "id = 'x' UNION SELECT 1",
                                  "count >>> 3"])
def test_bad_where_is_an_error_envelope(populated, where):
    layer, _ = populated
    with pytest.raises(Exception, match="400") as raised:
        layer.query(where=where)
    assert "Error performing query operation" not in str(raised.value)
    assert layer.query(return_count_only=True) == ROWS + 1  # nothing was dropped


def test_out_fields_return_every_requested_key_with_nulls(populated):
    layer, _ = populated
    [feature] = layer.query(where="id = 'r1'", out_fields="id,note", return_geometry=False).features
    assert feature.attributes == {"OBJECTID": 2, "id": "r1", "note": None}
    assert feature.geometry is None or feature.geometry == {}


def test_object_ids_combine_with_where_and_long_lists_are_posted(populated, arcgis_emulator):
    layer, _ = populated
    picked = layer.query(object_ids="1,2,3,4", where="count > 1").features
    assert sorted(f.attributes["count"] for f in picked) == [2, 3]
    arcgis_emulator.reset_log()
    wanted = [f"r{i}" for i in range(0, 1000, 3)]
    clause = "id IN (" + ",".join(f"'{w}'" for w in wanted) + ")"
    assert {f.attributes["id"] for f in layer.query(where=clause, out_fields="id").features} == set(wanted)
    assert any(r["method"] == "POST" and r["path"].endswith("/query") for r in arcgis_emulator.requests)


def test_as_dataframe_and_geometry_round_trip(populated):
    layer, _ = populated
    frame = layer.query(where="count BETWEEN 0 AND 2", as_df=True)
    assert sorted(frame["id"]) == ["r0", "r1", "r2"]
    [feature] = layer.query(where="id = 'r2'").features
    assert feature.geometry["x"] == pytest.approx(-97.69998) and feature.geometry["y"] == 30.2
