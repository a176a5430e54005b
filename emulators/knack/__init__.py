"""A loopback Knack v1 REST API emulator and a deterministic generator of realistic Knack apps.

``generate_app`` builds the "Signal Operations" app, ``load_app_file`` reads an app from JSON,
``KnackEmulator`` serves either one; ``main`` is the CLI behind ``python -m emulators knack``.
See README.md beside this file for the generated schema, the routes and the admin controls.
"""

from __future__ import annotations

from emulators.knack.app import KnackEmulator
from emulators.knack.cli import load_app_file, main
from emulators.knack.generator import generate_app

__all__ = ["KnackEmulator", "generate_app", "load_app_file", "main"]
