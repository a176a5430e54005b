"""Incrementally load a container's records into the store: ``python flows/records_to_s3.py -a -c -e [-d] [--full]``."""

from __future__ import annotations

import sys
from datetime import datetime

if __name__ == "__main__":  # config mistakes are refused before Prefect is imported
    from flows._refuse import refuse_early

    refuse_early("records-to-s3")

from prefect import flow
from prefect.logging import get_run_logger

from flows._cli import LIMITS
from flows._container import container_main
from flows._events import emit_held_back
from flows._isolation import refuse_other_env
from flows._params import Env
from tasks.clock import utc_now
from tasks.credentials import remembering_s3_block
from tasks.domain.config import load_container
from tasks.domain.errors import DeletesHeldBack
from tasks.domain.knack import parse_since
from tasks.domain.results import OffloadResult
from tasks.knack.tasks import offload
from tasks.store.open import log_store_choice


@flow(name="records-to-s3", timeout_seconds=LIMITS["records-to-s3"],
      flow_run_name="records-to-s3-{app}-{container}-{env}")
def records_to_s3(app: str, container: str, env: Env, since: datetime | None = None, full: bool = False,
                  config_path: str | None = None, allow_mass_delete: bool = False) -> OffloadResult:
    """Knack records modified since the Knack cursor (or ``since``; everything with ``full``) → store.

    Args:
        app: The app's name in the container config (e.g. data-tracker).
        container: The Knack object or view to sync (object_N or view_N), as configured.
        env: The environment: the store's prefix and the suffix of every credential block.
        since: Fetch records modified at or after this instant instead of from the Knack cursor (a
            backfill); empty means from the cursor. No offset means UTC.
        full: Full refresh: every record (and deletes of what Knack no longer has).
        config_path: Another container config file; empty means $KNACK_SERVICES_CONFIG or the image's own.
        allow_mass_delete: Let this run delete more than the mass-delete guard allows (a real purge in Knack).
    """
    refuse_other_env(env)  # before anything is read
    config, app_cfg, cfg = load_container(app, container, env, config_path)
    with remembering_s3_block(env):  # the block s3-<env> loaded once by the run's steps
        log_store_choice(env, config.settings, get_run_logger())  # the run's first line: which store, why
        since = parse_since(since, utc_now()) if since else None
        stored = offload(app_cfg, cfg, env, config.settings, since, full, allow_mass_delete)
    if stored.held_back:
        emit_held_back(app, container, env, stored.held_back)
        raise DeletesHeldBack(stored.held_back)
    return stored


def main(argv: list[str] | None = None) -> int:
    return container_main(records_to_s3, "Load a Knack container's records into the store.", argv,
                          republish=False)


if __name__ == "__main__":
    sys.exit(main())
