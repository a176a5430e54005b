"""Publish a container from the store to Socrata: ``python flows/records_to_socrata.py -a -c -e [-d] [--full]``."""

from __future__ import annotations

import sys

from prefect import flow
from prefect.logging import get_run_logger

from flows._cli import LIMITS, parser, run
from tasks.domain.config import load_container
from tasks.domain.knack import parse_since
from tasks.domain.results import PublishResult
from tasks.socrata.task import publish_socrata
from tasks.store.open import log_store_choice


@flow(name="records-to-socrata", timeout_seconds=LIMITS["records-to-socrata"],
      flow_run_name="records-to-socrata-{app}-{container}-{env}")
def records_to_socrata(app: str, container: str, env: str = "dev", date: str | None = None, full: bool = False,
                       config_path: str | None = None, allow_mass_delete: bool = False) -> PublishResult:
    """Records changed in the store since the Socrata cursor (all with ``full``) → the dataset."""
    config, _, cfg = load_container(app, container, env, config_path)
    log_store_choice(env, config.settings, get_run_logger())  # the run's first line: which store, why
    return publish_socrata(app, cfg, env, config.settings, full, parse_since(date) if date else None,
                           allow_mass_delete)


def main(argv: list[str] | None = None) -> int:
    args = parser("Publish a container's records from the store to its Socrata dataset.").parse_args(argv)
    return run(records_to_socrata, {"app": args.app_name, "container": args.container, "env": args.env,
                                    "date": args.date, "full": args.full, "config_path": args.config,
                                    "allow_mass_delete": args.allow_mass_delete})


if __name__ == "__main__":
    sys.exit(main())
