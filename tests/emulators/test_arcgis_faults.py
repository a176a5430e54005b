"""Fault knobs and token expiry, seen through the real ``arcgis`` client; the admin HTTP routes."""

from __future__ import annotations

import time

import pytest
import requests

pytestmark = pytest.mark.integration

POINT = {"x": -97.74, "y": 30.27}


def _add(record_id: str):
    return {"attributes": {"id": record_id}, "geometry": POINT}


@pytest.fixture
def layer(arcgis_gis, make_agol_item):
    from arcgis.features import FeatureLayer

    item = make_agol_item()
    return FeatureLayer(item.url, arcgis_gis), item


def test_expired_tokens_fail_until_a_new_login(arcgis_emulator, layer):
    from arcgis.features import FeatureLayer
    from arcgis.gis import GIS

    lyr, item = layer
    lyr.edit_features(adds=[_add("a")])
    arcgis_emulator.expire_tokens()
    arcgis_emulator.reset_log()
    with pytest.raises(Exception, match="499"):
        lyr.edit_features(adds=[_add("b")])
    codes = [r["error_code"] for r in arcgis_emulator.requests if r["path"].endswith("/applyEdits")]
    assert codes == [498, 499]  # the client quietly retries without the token, once
    fresh = GIS(arcgis_emulator.portal_url, username="pipeline", password="pw",
                ca_bundles=arcgis_emulator.ca_bundle)
    assert FeatureLayer(item.url, fresh).edit_features(adds=[_add("b")])["addResults"][0]["success"]
    assert [f["attributes"]["id"] for f in item.features()] == ["a", "b"]


def test_token_lifetime_is_honoured(arcgis_emulator, make_agol_item):
    from arcgis.features import FeatureLayer
    from arcgis.gis import GIS

    item = make_agol_item()
    arcgis_emulator.token_lifetime_s = 0.3
    gis = GIS(arcgis_emulator.portal_url, username="pipeline", password="pw",
              ca_bundles=arcgis_emulator.ca_bundle, use_gen_token=True)
    lyr = FeatureLayer(item.url, gis)
    assert lyr.query(return_count_only=True) == 0
    time.sleep(0.4)
    with pytest.raises(Exception, match="498"):
        lyr.query(return_count_only=True)


def test_timeout_envelope(arcgis_emulator, layer):
    lyr, item = layer
    arcgis_emulator.set_faults(timeout_rate=1.0)
    with pytest.raises(Exception, match=r"Your request has timed out(.|\n)*504"):
        lyr.edit_features(adds=[_add("a")])
    arcgis_emulator.set_faults()
    assert item.features() == []


def test_http_errors_are_retried_by_the_client_then_surface(arcgis_emulator, layer):
    lyr, _ = layer
    arcgis_emulator.set_faults(error_rate=1.0, error_status=502)
    arcgis_emulator.reset_log()
    with pytest.raises(requests.exceptions.RequestException):
        lyr.query(return_count_only=True)
    statuses = [r["status"] for r in arcgis_emulator.requests]
    assert statuses == [502] * 6  # the session's own Retry(total=5) on 5xx


def test_a_share_of_http_errors_is_absorbed_by_client_retries(arcgis_emulator, layer):
    lyr, item = layer
    arcgis_emulator.set_faults(error_rate=0.4, seed=7, latency_ms=1)
    for i in range(5):
        assert lyr.edit_features(adds=[_add(f"r{i}")])["addResults"][0]["success"]
    assert len(item.features()) == 5
    assert any(r["status"] == 503 for r in arcgis_emulator.requests)


@pytest.mark.parametrize(("mode", "stored"), [("reject", ["a", "d"]), ("apply", ["a", "b", "c", "d"])])
def test_scripted_edit_failures(arcgis_emulator, layer, mode, stored):
    lyr, item = layer
    arcgis_emulator.set_faults(fail_edits_after=1, fail_edits_count=2, fail_edits_mode=mode)
    assert lyr.edit_features(adds=[_add("a")])["addResults"][0]["success"]
    for record_id in ("b", "c"):
        with pytest.raises(Exception, match="timed out"):
            lyr.edit_features(adds=[_add(record_id)])
    assert lyr.query(return_count_only=True) == len(stored) - 1  # queries are not edits
    assert lyr.edit_features(adds=[_add("d")])["addResults"][0]["success"]
    assert sorted(f["attributes"]["id"] for f in item.features()) == stored


def test_admin_routes(arcgis_emulator):
    base = f"{arcgis_emulator.base_url}/_admin"
    verify = arcgis_emulator.ca_bundle
    definition = {"name": "lights", "kind": "table",
                  "fields": [{"name": "id", "type": "esriFieldTypeString", "length": 24, "unique": True}]}
    created = requests.post(f"{base}/layers", json={"item_id": "b" * 32, "layer_id": 3, "definition": definition},
                            verify=verify, timeout=10)
    assert created.status_code == 201 and created.json()["url"].endswith("/FeatureServer/3")
    assert requests.get(f"{base}/layers/{'b' * 32}/3/features", verify=verify, timeout=10).json() == {
        "features": []}
    bad = requests.post(f"{base}/layers", json={"item_id": "c" * 32, "definition": {
        "name": "x", "fields": [{"name": "a", "type": "esriFieldTypeBlob"}]}},
                        verify=verify, timeout=10)
    assert bad.status_code == 400
    faults = requests.post(f"{base}/faults", json={"timeout_rate": 0.5, "seed": 1}, verify=verify, timeout=10)
    assert faults.json()["faults"]["timeout_rate"] == 0.5 and arcgis_emulator.faults.timeout_rate == 0.5
    requests.post(f"{base}/faults", json={}, verify=verify, timeout=10)
    generation = arcgis_emulator.tokens.generation
    assert requests.post(f"{base}/expire-tokens", verify=verify, timeout=10).json() == {"ok": True}
    assert arcgis_emulator.tokens.generation == generation + 1
    logged = requests.get(f"{base}/requests", verify=verify, timeout=10).json()["requests"]
    assert not any(r["path"].startswith("/_admin/") for r in logged)
