"""The seed's command-line flags, shared by every flow script (``python flows/<name>.py -a -c -e ...``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from tasks.domain.config import ENVS
from tasks.logs import send_to_prefect

send_to_prefect()

# Each flow's time limit: a hung destination fails its run (its lock released, its cursor left) instead
# of holding its heartbeated lock for hours.
LIMITS = {"metadata-to-s3": 600, "records-to-s3": 3 * 3600, "records-to-socrata": 2 * 3600,
          "records-to-agol": 2 * 3600, "records-to-table": 2 * 3600, "sync": 4 * 3600, "sync-app": 12 * 3600}


def parser(description: str, *, container: bool = True, date: bool = True) -> argparse.ArgumentParser:
    """An argument parser with the seed's flags: -a/--app-name, -c/--container, -e/--env, -d/--date, --full."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-a", "--app-name", required=True, help="app name as configured (e.g. data-tracker)")
    if container:
        p.add_argument("-c", "--container", required=True, help="object or view key (e.g. object_11, view_197)")
    p.add_argument("-e", "--env", required=True, choices=ENVS, help="environment: prod or dev")
    if date:
        p.add_argument("-d", "--date", default=None,
                       help="ISO-8601 date or instant; only records modified at or after it (no offset = UTC)")
        p.add_argument("--full", action="store_true",
                       help="full refresh: every record, and deletes of what Knack confirms gone")
        p.add_argument("--allow-mass-delete", action="store_true",
                       help="let this run delete more than the mass-delete guard allows (a real purge in Knack)")
    p.add_argument("--config", default=None, help="config file (default: $KNACK_SERVICES_CONFIG or "
                                                  "config/knack-services.yaml)")
    return p


def run(flow_fn: Callable[..., Any], kwargs: dict[str, Any]) -> int:
    """Run a flow from the command line; exit code 0 when it completed, 1 when it failed."""
    logging.getLogger("prefect").setLevel(logging.INFO)
    state = flow_fn(**kwargs, return_state=True)
    if state.is_completed():
        return 0
    try:
        state.result()
    except Exception as exc:  # the run already logged the traceback; say what failed in one line
        print(f"{flow_fn.name} failed: {exc}", file=sys.stderr)
    return 1
