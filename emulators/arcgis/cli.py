"""Command line for the ArcGIS emulator: ``python -m emulators arcgis --port P --cert-dir DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .emulator import ArcGISEmulator


def _layer_arg(text: str) -> tuple[str, int | None, Path]:
    """``ITEM_ID=FILE`` or ``ITEM_ID/LAYER_ID=FILE``."""
    target, sep, path = text.partition("=")
    if not sep or not target or not path:
        raise argparse.ArgumentTypeError("expected ITEM_ID=DEFINITION.json or ITEM_ID/LAYER_ID=DEFINITION.json")
    item_id, _, layer = target.partition("/")
    return item_id, int(layer) if layer else None, Path(path)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators arcgis",
                                     description="Loopback ArcGIS Online portal + hosted feature services (TLS).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--cert-dir", required=True, help="where the test CA bundle (ca.pem) is written")
    parser.add_argument("--layer", action="append", type=_layer_arg, default=[], metavar="ITEM_ID=DEFINITION.json",
                        help="create a layer/table from a JSON definition; layer id from ITEM_ID/N, "
                             "else the file's 'layer_id', else 0 (repeatable)")
    parser.add_argument("--username", default="pipeline")
    parser.add_argument("--password", default="pw")
    parser.add_argument("--token-lifetime", type=float, default=7200, help="seconds")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    emu = ArcGISEmulator(args.cert_dir, username=args.username, password=args.password,
                         token_lifetime_s=args.token_lifetime, host=args.host, port=args.port,
                         verbose=args.verbose)
    layers = []
    for item_id, layer_id, path in args.layer:
        definition = json.loads(path.read_text(encoding="utf-8"))
        chosen = layer_id if layer_id is not None else int(definition.get("layer_id", 0))
        layers.append(emu.create_layer(item_id, definition, chosen))
    print(f"arcgis emulator: CA bundle {emu.ca_bundle} (pass it as GIS(..., ca_bundles=...))", file=sys.stderr)
    emu.server.serve_until_signal({"portal_url": emu.portal_url, "ca_bundle": emu.ca_bundle,
                                   "username": emu.username, "layers": layers})
    return 0
