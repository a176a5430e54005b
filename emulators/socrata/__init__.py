"""A loopback Socrata (SODA 2) emulator that the unmodified sodapy client can publish to.

``SocrataEmulator`` is the Python API (see README.md beside this file); ``main`` is the CLI behind
``python -m emulators socrata``.
"""

from __future__ import annotations

from .cli import main
from .server import SocrataEmulator

__all__ = ["SocrataEmulator", "main"]
