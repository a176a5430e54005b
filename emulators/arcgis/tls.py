"""TLS for the ArcGIS emulator: a throwaway test CA and a loopback server certificate.

The ``arcgis`` package forces https for every portal and service call, so the emulator must speak
TLS. Clients trust the emulator through ``GIS(..., ca_bundles=<cert_dir>/ca.pem)``; nothing in this
project turns certificate checking off.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


def make_server_context(cert_dir: str | Path) -> tuple[ssl.SSLContext, Path]:
    """Create a CA, write its bundle to ``<cert_dir>/ca.pem`` and return a server context for 127.0.0.1."""
    directory = Path(cert_dir)
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="knack-services test CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1", common_name="127.0.0.1")
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    # the server chain and key too, so a CLI user can inspect what the emulator presents
    leaf.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context, ca_path
