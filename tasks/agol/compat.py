"""Every use of the ``arcgis`` package's private internals, in one place, checked before it is used.

The ``arcgis`` client has no public way to turn off its own retries or to reach the ``requests`` session
it sends through, so this module sets three private attributes. Private attributes can change in any
release without notice, and a setting that no longer lands does nothing silently: the worst case is
``applyEdits`` applied twice because the client's own retry layer is back. So:

- ``check_version`` refuses any ``arcgis`` but ``ARCGIS_VERSION``, the one this was written and tested for
  (``arcgis==2.4.4`` in pyproject.toml);
- each setting first checks that the attribute it sets exists with the expected type, and where it can,
  that the setting took effect; anything else raises ``ArcgisIncompatible`` naming the attribute.

Before bumping arcgis: read each hack below against the new release's ``arcgis/gis/_impl/_con/_connection.py``
(``Connection``) and ``arcgis/auth/api.py`` (``EsriSession``): does the attribute still exist, is it still
read where it was (a timeout still taken from ``_timeout``, the adapter still built from ``_retry``)? Then run
``tests/unit/test_agol_compat.py``, ``tests/emulators/test_arcgis_*.py`` and
``tests/integration/test_agol_publish.py`` against it, and only then change ``ARCGIS_VERSION`` with the pin.
"""

from __future__ import annotations

import functools
import inspect
from importlib import metadata
from typing import Any

import requests
from urllib3.util import Retry

from tasks.domain.errors import KnackServicesError

ARCGIS_VERSION = "2.4.4"  # the release these hacks were written for; the pin in pyproject.toml must match


class ArcgisIncompatible(KnackServicesError):
    """The installed ``arcgis`` is not the release ``tasks/agol/compat.py`` was written for, or one of
    its private attributes is missing or of another shape."""


def version_problem(found: str | None, expected: str = ARCGIS_VERSION) -> str | None:
    """Why ``found`` (the installed arcgis version, None when not installed) will not do, or None."""
    if found == expected:
        return None
    return (f"arcgis {found or '(not installed)'} is installed, but tasks/agol/compat.py was written for "
            f"arcgis {expected} (pinned in pyproject.toml): it sets private attributes of the client that "
            f"another release may have renamed or stopped reading. Before changing the pin, check each hack "
            f"in tasks/agol/compat.py against the new release and run tests/unit/test_agol_compat.py, "
            f"tests/emulators/test_arcgis_*.py and tests/integration/test_agol_publish.py")


@functools.cache
def installed_version() -> str | None:
    """The installed ``arcgis`` distribution's version, or None."""
    try:
        return metadata.version("arcgis")
    except metadata.PackageNotFoundError:
        return None


def check_version() -> None:
    """Raise ``ArcgisIncompatible`` unless the installed ``arcgis`` is ``ARCGIS_VERSION``."""
    problem = version_problem(installed_version())
    if problem:
        raise ArcgisIncompatible(problem)


def _attribute(owner: object, name: str, kinds: type | tuple[type, ...], where: str) -> Any:
    """``owner.name``, which must exist and be an instance of ``kinds``; else ``ArcgisIncompatible``."""
    if not hasattr(owner, name):
        raise ArcgisIncompatible(f"arcgis {installed_version()}: {where} ({type(owner).__name__}) has no "
                                 f"attribute {name}; tasks/agol/compat.py relies on it")
    value = getattr(owner, name)
    if not isinstance(value, kinds):
        expected = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise ArcgisIncompatible(f"arcgis {installed_version()}: {where}.{name} is a {type(value).__name__}, "
                                 f"not a {expected} as tasks/agol/compat.py expects")
    return value


def connection(gis: Any) -> Any:
    """``gis._con``: the ``Connection`` every request of a ``GIS`` goes through (there is no public accessor)."""
    return _attribute(gis, "_con", object, "GIS")


def esri_session(gis: Any) -> Any:
    """``gis._con._session``: the ``EsriSession`` that holds the retry policy and the ``requests`` session."""
    session = _attribute(connection(gis), "_session", object, "GIS._con")
    if session is None:
        raise ArcgisIncompatible(f"arcgis {installed_version()}: GIS._con._session is None; the GIS has no "
                                 f"session to configure")
    return session


def set_request_timeout(gis: Any, seconds: float) -> None:
    """Hack 1, ``gis._con._timeout``: seconds each request may wait for the server.

    Why: ``Connection`` passes ``_timeout`` as every request's ``timeout`` and defaults it to 600 s. A
    ``GIS`` made by ``ArcGISCredentials.get_gis(timeout=...)`` already has it; one made elsewhere does not.
    Without it: a stalled read waits ten minutes before this project's retries (or the request deadline
    of ``tasks/wire.py``) can act on it.
    """
    con = connection(gis)
    _attribute(con, "_timeout", (int, float), "GIS._con")
    con._timeout = seconds


def turn_off_session_retries(gis: Any) -> None:
    """Hack 2, ``gis._con._session._retry`` and ``_rebuild_adapter()``: no retries inside the client.

    Why: ``EsriSession`` mounts an adapter whose urllib3 ``Retry`` resends any request, POSTs included, on
    413/429/500/502/503/504 and on read errors. Without this, an ``applyEdits`` that the server applied but
    answered with a 5xx is applied again behind this project's back, and a timeout that should reach
    ``AgolTarget.call`` (whose retries look existing features up first, so a retry updates instead of
    adding) is retried blindly first. ``_rebuild_adapter`` builds a new adapter from ``_retry``; setting
    ``_retry`` alone changes nothing, so the adapters actually mounted are checked afterwards.
    """
    session = esri_session(gis)
    _attribute(session, "_retry", Retry, "GIS._con._session")
    rebuild = _attribute(session, "_rebuild_adapter", object, "GIS._con._session")
    try:
        inspect.signature(rebuild).bind()
    except (TypeError, ValueError):
        raise ArcgisIncompatible(f"arcgis {installed_version()}: GIS._con._session._rebuild_adapter is no "
                                 f"longer callable without arguments; tasks/agol/compat.py relies on it") from None
    session._retry = Retry(total=0, connect=0, read=0, status=0, other=0, redirect=False,
                           status_forcelist=(), raise_on_status=False)
    rebuild()
    inner = requests_session(gis)
    for prefix in ("https://", "http://"):
        retries = getattr(inner.get_adapter(prefix), "max_retries", None)
        if not isinstance(retries, Retry) or retries.total != 0:
            raise ArcgisIncompatible(f"arcgis {installed_version()}: after turning its retries off, the "
                                     f"session's {prefix} adapter still retries ({retries!r})")


def requests_session(gis: Any) -> requests.Session:
    """Hack 3, ``gis._con._session._session``: the ``requests.Session`` every request is sent through.

    Why: ``tasks/wire.py`` wraps its ``send`` to give each request a whole-request deadline and to stop
    writes once the run's lock is lost. ``EsriSession`` wraps a ``requests.Session`` but is not one.
    Without it: a reply trickling in byte by byte is never cut off, and a run that lost its lock could
    still edit the layer.
    """
    session: requests.Session = _attribute(esri_session(gis), "_session", requests.Session, "GIS._con._session")
    return session
