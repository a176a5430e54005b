"""Publish a container from the store to ArcGIS Online: ``python flows/records_to_agol.py -a -c -e [-d] [--full]``."""

from __future__ import annotations

import sys

from prefect import flow
from prefect.logging import get_run_logger

from flows._cli import LIMITS, parser, run
from tasks.agol.task import publish_agol
from tasks.domain.config import load_container
from tasks.domain.knack import parse_since
from tasks.domain.results import PublishResult
from tasks.store.open import log_store_choice


@flow(name="records-to-agol", timeout_seconds=LIMITS["records-to-agol"],
      flow_run_name="records-to-agol-{app}-{container}-{env}")
def records_to_agol(app: str, container: str, env: str = "dev", date: str | None = None, full: bool = False,
                       config_path: str | None = None, allow_mass_delete: bool = False) -> PublishResult:
    """Records changed in the store since the ArcGIS cursor (all with ``full``) → the layer or table."""
    config, _, cfg = load_container(app, container, env, config_path)
    log_store_choice(env, config.settings, get_run_logger())  # the run's first line: which store, why
    return publish_agol(app, cfg, env, config.settings, full, parse_since(date) if date else None,
                        allow_mass_delete)


def main(argv: list[str] | None = None) -> int:
    args = parser("Publish a container's records from the store to its ArcGIS layer or table.").parse_args(argv)
    return run(records_to_agol, {"app": args.app_name, "container": args.container, "env": args.env,
                                    "date": args.date, "full": args.full, "config_path": args.config,
                                    "allow_mass_delete": args.allow_mass_delete})


if __name__ == "__main__":
    sys.exit(main())
