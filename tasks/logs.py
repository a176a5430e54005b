"""Send this project's module loggers (``tasks.*``) to the Prefect run log, not only to the console.

Prefect forwards to its API only the loggers it was configured with; copying its API handler onto
ours makes chunk-level lines (Socrata chunks, ArcGIS edits, retries) visible in the run's page.
"""

from __future__ import annotations

import logging


def send_to_prefect(name: str = "tasks") -> None:
    """Attach Prefect's API log handler to logger ``name`` (idempotent)."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import APILogHandler

    ensure_logging_setup()
    ours = logging.getLogger(name)
    ours.setLevel(logging.getLogger("prefect.extra").level or logging.INFO)  # PREFECT_LOGGING_LEVEL
    for handler in logging.getLogger("prefect.extra").handlers:
        if isinstance(handler, APILogHandler) and handler not in ours.handlers:
            ours.addHandler(handler)
