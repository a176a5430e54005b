"""Loopback ArcGIS Online emulator: a portal plus hosted feature services, over TLS.

Serves the unmodified ``arcgis`` package (``GIS(portal_url, username=..., password=...,
ca_bundles=emu.ca_bundle)``). See ``emulators/arcgis/README.md`` for routes, knobs and limits.
"""

from __future__ import annotations

from .emulator import ArcGISEmulator


def main(argv: list[str]) -> int:
    """``python -m emulators arcgis ...``: serve in the foreground until SIGINT/SIGTERM."""
    from .cli import run

    return run(argv)


__all__ = ["ArcGISEmulator", "main"]
