"""What ``tasks/agol/compat.py``'s hacks change on a ``GIS`` signed in to the emulator with the real client
(``test_arcgis_faults.py`` shows the client's own behaviour without them)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tasks.agol.client import REQUEST_TIMEOUT, configure_session
from tests.fixtures.arcgis import AGOL_PASSWORD, AGOL_USERNAME

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_gis(arcgis_emulator: Any) -> Any:
    """A GIS of its own: the shared one keeps the client's own retries for the other emulator tests."""
    from arcgis.gis import GIS

    return GIS(arcgis_emulator.portal_url, username=AGOL_USERNAME, password=AGOL_PASSWORD,
               ca_bundles=arcgis_emulator.ca_bundle, timeout=600)


def test_a_configured_session_sends_a_failing_request_once(arcgis_emulator: Any, make_agol_item: Any,
                                                            fresh_gis: Any) -> None:
    from arcgis.features import FeatureLayer

    item = make_agol_item()
    gis = configure_session(fresh_gis)
    assert gis._con._timeout == REQUEST_TIMEOUT  # was 600
    arcgis_emulator.set_faults(error_rate=1.0, error_status=502)
    arcgis_emulator.reset_log()
    with pytest.raises(Exception, match="502"):
        FeatureLayer(item.url, gis).edit_features(adds=[{"attributes": {"id": "a"}, "geometry": {"x": 0, "y": 0}}])
    # one POST: the client's own Retry(total=5) would have sent it six times (test_arcgis_faults.py)
    assert [r["status"] for r in arcgis_emulator.requests if r["path"].endswith("/applyEdits")] == [502]
    arcgis_emulator.set_faults()
    assert item.features() == []


def test_a_configured_session_is_guarded(fresh_gis: Any) -> None:
    gis = configure_session(fresh_gis, what="ArcGIS item x")
    inner = gis._con._session._session
    assert isinstance(inner, requests.Session) and getattr(inner, "_wire_guarded", False)
    assert getattr(inner, "_wire_what", None) == "ArcGIS item x"
