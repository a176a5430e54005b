"""The seed's command-line flags, shared by every flow script (``python flows/<name>.py -a -c -e ...``)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any, cast

from tasks.domain.config import ENVS

if TYPE_CHECKING:  # the scripts refuse config mistakes before Prefect is imported (flows/_refuse.py)
    from prefect import Flow
    from prefect.states import State

# PREFECT_LOGGING_EXTRA_LOGGERS=tasks (pyproject.toml, the image, the work pool) sends the project's own
# lines to each run's log; they log at Prefect's level (PREFECT_LOGGING_LEVEL), not the root's WARNING.
logging.getLogger("tasks").setLevel(logging.getLogger("prefect.extra").getEffectiveLevel())



class _NoTracebackForOurErrors(logging.Filter):
    """Prefect logs a failed run's exception with its traceback. For the errors this project raises on
    purpose (each names what to fix: a refused key, a missing app, a config mistake) the traceback is
    noise in the console and the UI: keep the message, drop the stack. Anything else keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tasks.domain.errors import KnackServicesError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, KnackServicesError):
            record.exc_info, record.exc_text = None, None
        return True


for _name in ("prefect.flow_runs", "prefect.task_runs"):
    if not any(isinstance(f, _NoTracebackForOurErrors) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(_NoTracebackForOurErrors())

# Each flow's time limit: a hung destination fails its run (its lock released, its cursor left) instead
# of holding its heartbeated lock for hours.
LIMITS = {"metadata-to-s3": 600, "records-to-s3": 3 * 3600, "records-to-socrata": 2 * 3600,
          "records-to-agol": 2 * 3600, "records-to-table": 2 * 3600, "sync": 4 * 3600, "sync-app": 12 * 3600}


def parser(description: str, *, container: bool = True, date: bool = True) -> argparse.ArgumentParser:
    """An argument parser with the seed's flags (-a/--app-name, -c/--container, -e/--env, -d/--date, --full)
    and ours (--republish, --allow-mass-delete, --config)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-a", "--app-name", required=True, help="app name as configured (e.g. data-tracker)")
    if container:
        p.add_argument("-c", "--container", required=True, help="object or view key (e.g. object_11, view_197)")
    p.add_argument("-e", "--env", required=True, choices=ENVS, help="environment: prod or dev")
    if date:
        p.add_argument("-d", "--date", default=None,
                       help="ISO-8601 date or instant; only records modified at or after it (no offset = UTC)")
        p.add_argument("--full", action="store_true",
                       help="full refresh: every record from Knack; destinations reconciled (what differs from what "
                            "they received or went missing there, and deletes of what Knack confirms gone)")
        p.add_argument("--republish", action="store_true",
                       help="send every stored record to the destinations again (repairs rows edited there by hand)")
        p.add_argument("--allow-mass-delete", action="store_true",
                       help="let this run delete more than the mass-delete guard allows (a real purge in Knack)")
    p.add_argument("--config", default=None, help="config file (default: $KNACK_SERVICES_CONFIG or "
                                                  "config/knack-services.yaml)")
    return p


def run(flow_fn: Flow[..., Any], kwargs: dict[str, Any]) -> int:
    """Run a flow from the command line; exit code 0 when it completed, 1 when it failed.

    How much the run logs is Prefect's own setting, PREFECT_LOGGING_LEVEL (INFO by default)."""
    # for a flow of unknown parameters Prefect's overloads take return_state for one of them: a State it is
    state = cast("State[Any]", flow_fn(**kwargs, return_state=True))
    if state.is_completed():
        return 0
    try:
        state.result()
    except Exception as exc:  # the run already logged it; say what failed in one line
        print(f"{flow_fn.name} failed: {exc}", file=sys.stderr)
    return 1
