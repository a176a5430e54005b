"""Incrementally load a container's records into the store: ``python flows/records_to_s3.py -a -c -e [-d] [--full]``."""

from __future__ import annotations

import sys

from prefect import flow
from prefect.logging import get_run_logger

from flows._cli import LIMITS, parser, run
from tasks.domain.config import load_container
from tasks.domain.errors import DeletesHeldBack
from tasks.domain.knack import parse_since
from tasks.domain.results import OffloadResult
from tasks.knack.tasks import offload
from tasks.store.open import log_store_choice


@flow(name="records-to-s3", timeout_seconds=LIMITS["records-to-s3"],
      flow_run_name="records-to-s3-{app}-{container}-{env}")
def records_to_s3(app: str, container: str, env: str = "dev", date: str | None = None, full: bool = False,
                  config_path: str | None = None, allow_mass_delete: bool = False) -> OffloadResult:
    """Knack records modified since the Knack cursor (or ``date``; everything with ``full``) → store."""
    config, app_cfg, cfg = load_container(app, container, env, config_path)
    log_store_choice(env, config.settings, get_run_logger())  # the run's first line: which store, why
    since = parse_since(date) if date else None
    stored = offload(app_cfg, cfg, env, config.settings, since, full, allow_mass_delete)
    if stored.held_back:
        raise DeletesHeldBack(stored.held_back)
    return stored


def main(argv: list[str] | None = None) -> int:
    args = parser("Load a Knack container's records into the store.").parse_args(argv)
    return run(records_to_s3, {"app": args.app_name, "container": args.container, "env": args.env,
                               "date": args.date, "full": args.full, "config_path": args.config,
                               "allow_mass_delete": args.allow_mass_delete})


if __name__ == "__main__":
    sys.exit(main())
