"""``tasks/agol/compat.py``: the installed arcgis is the release its hacks were written for, each private
attribute it sets exists in that release with the expected shape, and a missing or reshaped one fails
loudly. The hacks run here on the real ``EsriSession`` (it opens no connection when made);
``tests/emulators/test_arcgis_compat.py`` shows what they change on a signed-in ``GIS``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from urllib3.util import Retry

from tasks.agol import compat
from tasks.agol.compat import ARCGIS_VERSION, ArcgisIncompatible

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_arcgis_is_the_release_the_hacks_were_written_for() -> None:
    # fails when arcgis is upgraded: read tasks/agol/compat.py's docstring before changing ARCGIS_VERSION
    assert compat.installed_version() == ARCGIS_VERSION
    compat.check_version()
    import arcgis

    assert arcgis.__version__ == ARCGIS_VERSION


def test_the_pin_in_pyproject_is_the_release_the_hacks_were_written_for() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in dependencies if re.match(r"arcgis\b", d)]
    assert pins == [f"arcgis=={ARCGIS_VERSION}"]


@pytest.mark.parametrize("found", ["2.4.5", "3.0.0", None])
def test_another_release_is_refused_naming_both_and_what_to_check(found: str | None) -> None:
    problem = compat.version_problem(found)
    assert problem is not None
    assert f"arcgis {found or '(not installed)'} is installed" in problem
    assert f"written for arcgis {ARCGIS_VERSION}" in problem
    assert "tasks/agol/compat.py" in problem and "tests/integration/test_agol_publish.py" in problem
    assert compat.version_problem(ARCGIS_VERSION) is None


def test_each_internal_exists_in_the_installed_release() -> None:
    from arcgis.auth.api import EsriSession
    from arcgis.gis import GIS
    from arcgis.gis._impl._con import Connection

    assert hasattr(GIS, "__init__") and "_con" in GIS.__init__.__code__.co_names  # GIS keeps its Connection
    assert hasattr(Connection, "_timeout") and hasattr(Connection, "_session")
    session = EsriSession()
    assert isinstance(session._retry, Retry) and isinstance(session._session, requests.Session)
    assert callable(session._rebuild_adapter)
    # the client's own retry layer, which hack 2 turns off: 5 retries on 5xx, POSTs included
    retries = getattr(session._session.get_adapter("https://"), "max_retries", None)
    assert isinstance(retries, Retry)
    assert retries.total == 5 and 502 in retries.status_forcelist and "POST" in (retries.allowed_methods or ())


def a_gis(**con: Any) -> Any:
    """A ``GIS`` as far as the hacks reach into one: ``_con`` holding a timeout and a real ``EsriSession``."""
    from arcgis.auth.api import EsriSession

    fields = {"_timeout": 600, "_session": EsriSession()} | con
    return SimpleNamespace(_con=SimpleNamespace(**fields))


def test_the_hacks_land_on_the_real_session() -> None:
    gis = a_gis()
    compat.set_request_timeout(gis, 60)
    compat.turn_off_session_retries(gis)
    inner = compat.requests_session(gis)
    assert gis._con._timeout == 60
    assert inner is gis._con._session._session
    for prefix in ("https://", "http://"):
        assert inner.get_adapter(prefix).max_retries.total == 0


class Inert:
    """An ``EsriSession`` whose ``_rebuild_adapter`` no longer reads ``_retry``: the retries stay."""

    def __init__(self) -> None:
        from arcgis.auth.api import EsriSession

        real = EsriSession()
        self._retry, self._session = real._retry, real._session

    def _rebuild_adapter(self) -> None:
        pass


class NeedsArguments(Inert):
    def _rebuild_adapter(self, verify: bool) -> None:  # type: ignore[override]
        pass


@pytest.mark.parametrize(("gis", "apply", "message"), [
    (SimpleNamespace(), compat.set_request_timeout, r"GIS \(SimpleNamespace\) has no attribute _con"),
    (SimpleNamespace(_con=SimpleNamespace()), compat.set_request_timeout, r"GIS._con .* has no attribute _timeout"),
    (a_gis(_timeout="600"), compat.set_request_timeout, r"GIS._con._timeout is a str, not a int or float"),
    (a_gis(_session=None), compat.turn_off_session_retries, r"GIS._con._session is None"),
    (a_gis(_session=SimpleNamespace(_retry=5)), compat.turn_off_session_retries,
     r"GIS._con._session._retry is a int, not a Retry"),
    (a_gis(_session=NeedsArguments()), compat.turn_off_session_retries,
     r"_rebuild_adapter is no longer callable without arguments"),
    (a_gis(_session=Inert()), compat.turn_off_session_retries, r"https:// adapter still retries"),
    (a_gis(_session=SimpleNamespace(_session=object())), compat.requests_session,
     r"GIS._con._session._session is a object, not a Session"),
], ids=["no-connection", "no-timeout", "timeout-reshaped", "no-session", "retry-reshaped",
        "rebuild-needs-arguments", "rebuild-ignores-retry", "no-requests-session"])
def test_a_missing_or_reshaped_internal_fails_loudly(gis: Any, apply: Any, message: str) -> None:
    args = (gis, 60) if apply is compat.set_request_timeout else (gis,)
    with pytest.raises(ArcgisIncompatible, match=message) as raised:
        apply(*args)
    assert f"arcgis {ARCGIS_VERSION}" in str(raised.value)
