"""The ArcGIS emulator against the real ``arcgis`` package: TLS, sign-in flows, portal and items."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from emulators.arcgis import ArcGISEmulator
from tests.fixtures.arcgis import AGOL_PASSWORD, AGOL_USERNAME, SIGNALS_LAYER

pytestmark = pytest.mark.integration


def _paths(emu: ArcGISEmulator) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in emu.requests]


def test_oauth_login_runs_the_implicit_grant_and_never_logs_the_password(arcgis_emulator):
    from arcgis.gis import GIS

    arcgis_emulator.reset_log()
    gis = GIS(arcgis_emulator.portal_url, username=AGOL_USERNAME, password=AGOL_PASSWORD,
              ca_bundles=arcgis_emulator.ca_bundle)
    assert gis.users.me.username == AGOL_USERNAME
    paths = _paths(arcgis_emulator)
    assert paths.count(("GET", "/portal/sharing/rest/oauth2/authorize")) == 2
    assert ("POST", "/portal/sharing/oauth2/signin") in paths
    assert ("GET", "/portal/sharing/rest/portals/self") in paths
    signin = next(r for r in arcgis_emulator.requests if r["path"].endswith("/oauth2/signin"))
    assert signin["status"] == 302
    assert signin["params"]["password"] == "***"
    assert all(v != AGOL_PASSWORD for r in arcgis_emulator.requests for v in r["params"].values())
    later = [r for r in arcgis_emulator.requests if r["path"].endswith("/portals/self")]
    assert later and all(r["auth"] == "bearer" for r in later)


def test_generate_token_login(arcgis_emulator, make_agol_item):
    from arcgis.gis import GIS

    item = make_agol_item()
    arcgis_emulator.reset_log()
    gis = GIS(arcgis_emulator.portal_url, username=AGOL_USERNAME, password=AGOL_PASSWORD,
              ca_bundles=arcgis_emulator.ca_bundle, use_gen_token=True)
    assert ("POST", "/portal/sharing/rest/generateToken") in _paths(arcgis_emulator)
    assert gis.content.get(item.item_id).layers[0].query(return_count_only=True) == 0


def test_token_login_skips_the_sign_in(arcgis_emulator, make_agol_item):
    from arcgis.gis import GIS

    item = make_agol_item()
    reply = requests.post(f"{arcgis_emulator.portal_url}/sharing/rest/generateToken",
                          data={"username": AGOL_USERNAME, "password": AGOL_PASSWORD, "f": "json"},
                          verify=arcgis_emulator.ca_bundle, timeout=10).json()
    arcgis_emulator.reset_log()
    gis = GIS(arcgis_emulator.portal_url, token=reply["token"], ca_bundles=arcgis_emulator.ca_bundle)
    assert gis.content.get(item.item_id) is not None
    paths = _paths(arcgis_emulator)
    assert not any(p.endswith(("/oauth2/signin", "/generateToken")) for _, p in paths)


def test_wrong_password_fails_with_the_service_message(arcgis_emulator):
    from arcgis.gis import GIS

    with pytest.raises(Exception, match="Invalid username or password"):
        GIS(arcgis_emulator.portal_url, username=AGOL_USERNAME, password="not-it",
            ca_bundles=arcgis_emulator.ca_bundle)
    reply = requests.post(f"{arcgis_emulator.base_url}/sharing/rest/generateToken",
                          data={"username": AGOL_USERNAME, "password": "not-it", "f": "json"},
                          verify=arcgis_emulator.ca_bundle, timeout=10)
    assert reply.status_code == 200 and reply.json()["error"]["code"] == 400


def test_certificate_is_really_checked(arcgis_emulator):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{arcgis_emulator.portal_url}/sharing/rest?f=json", timeout=10)
    ok = requests.get(f"{arcgis_emulator.portal_url}/sharing/rest?f=json", verify=arcgis_emulator.ca_bundle,
                      timeout=10)
    assert ok.json()["currentVersion"] == "2025.1"


@pytest.mark.parametrize("root", ["/portal/sharing/rest", "/sharing/rest"])
def test_portal_info_under_both_roots_and_probes_are_plain_404s(arcgis_emulator, root):
    get = lambda path: requests.get(arcgis_emulator.base_url + path, params={"f": "json"},  # noqa: E731
                                    verify=arcgis_emulator.ca_bundle, timeout=10)
    info = get(f"{root}/info").json()
    assert info["authInfo"]["isTokenBasedSecurity"] is True
    assert info["authInfo"]["tokenServicesUrl"].endswith("/sharing/rest/generateToken")
    anonymous = get(f"{root}/portals/self").json()
    assert anonymous["portalMode"] == "multitenant" and "user" not in anonymous
    for probe in ("/portal/info", "/portal/rest/info", "/portal/rest/services"):
        reply = get(probe)
        assert reply.status_code == 404
        assert "WWW-Authenticate" not in reply.headers and "Set-Cookie" not in reply.headers


def test_item_exposes_layers_and_tables_with_their_schema(arcgis_gis, make_agol_item):
    item = make_agol_item()
    item.add_layer({"name": "work_orders", "kind": "table",
                    "fields": [{"name": "id", "type": "esriFieldTypeString", "length": 24, "unique": True}]}, 1)
    portal_item = arcgis_gis.content.get(item.item_id)
    assert portal_item.url == item.url.rsplit("/", 1)[0]
    [layer] = portal_item.layers
    [table] = portal_item.tables
    assert type(layer).__name__ == "FeatureLayer" and type(table).__name__ == "Table"
    props = layer.properties
    types = {f["name"]: f["type"] for f in props.fields}
    assert types["OBJECTID"] == "esriFieldTypeOID" and types["GlobalID"] == "esriFieldTypeGlobalID"
    assert types["id"] == "esriFieldTypeString" and types["modified_at"] == "esriFieldTypeDate"
    assert props.geometryType == "esriGeometryPoint" and props.maxRecordCount == 2000
    assert any(ix["fields"] == "id" and ix["isUnique"] for ix in props.indexes)
    assert "geometryType" not in table.properties
    assert dict(layer.manager.properties)["fields"] == [dict(f) for f in props.fields]  # admin URL


def test_unknown_item_is_none_and_private_routes_need_a_token(arcgis_gis, arcgis_emulator, make_agol_item):
    assert arcgis_gis.content.get("ffffffffffffffffffffffffffffffff") is None
    item = make_agol_item()
    missing = requests.get(f"{item.url}/query", params={"where": "1=1", "f": "json"},
                           verify=arcgis_emulator.ca_bundle, timeout=10)
    assert missing.status_code == 200 and missing.json()["error"]["code"] == 499
    bad = requests.get(f"{item.url}/query", params={"where": "1=1", "f": "json"},
                       headers={"X-Esri-Authorization": "Bearer nope"}, verify=arcgis_emulator.ca_bundle,
                       timeout=10)
    assert bad.json()["error"]["code"] == 498
    by_param = requests.get(f"{arcgis_emulator.portal_url}/sharing/rest/content/items/{item.item_id}",
                            params={"f": "json", "token": "nope"}, verify=arcgis_emulator.ca_bundle, timeout=10)
    assert by_param.json()["error"]["code"] == 498


def test_cli_serves_layers_from_definition_files(tmp_path: Path):
    definition = tmp_path / "signals.json"
    definition.write_text(json.dumps(SIGNALS_LAYER), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", "arcgis", "--port", "0", "--cert-dir", str(tmp_path / "certs"),
         "--layer", f"{'c' * 32}={definition}", "--username", "u1", "--password", "p1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["ca_bundle"] == str(tmp_path / "certs" / "ca.pem")
        assert ready["portal_url"].endswith("/portal")
        token = requests.post(f"{ready['portal_url']}/sharing/rest/generateToken",
                              data={"username": "u1", "password": "p1", "f": "json"},
                              verify=ready["ca_bundle"], timeout=10).json()["token"]
        layer = requests.get(ready["layers"][0], params={"f": "json", "token": token}, verify=ready["ca_bundle"],
                             timeout=10).json()
        assert layer["name"] == "signals" and layer["type"] == "Feature Layer"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "CA bundle" in proc.stderr.read()
