"""Publish a container from the store to ArcGIS Online: ``python flows/records_to_agol.py -a -c -e [-d] [--full] [--republish]``."""

from __future__ import annotations

import sys
from datetime import datetime

if __name__ == "__main__":  # config mistakes are refused before Prefect is imported
    from flows._refuse import refuse_early

    refuse_early("records-to-agol")

from prefect import flow

from flows._cli import LIMITS
from flows._container import container_main, publish_from_store
from flows._params import Env
from tasks.agol.task import publish_agol
from tasks.domain.results import PublishResult


@flow(name="records-to-agol", timeout_seconds=LIMITS["records-to-agol"],
      flow_run_name="records-to-agol-{app}-{container}-{env}")
def records_to_agol(app: str, container: str, env: Env, since: datetime | None = None, full: bool = False,
                    config_path: str | None = None, allow_mass_delete: bool = False,
                    republish: bool = False) -> PublishResult:
    """Records changed in the store since the ArcGIS cursor (all with ``full``) → the layer or table.

    Args:
        app: The app's name in the container config (e.g. data-tracker).
        container: The Knack object or view to sync (object_N or view_N), as configured.
        env: The environment: the store's prefix and the suffix of every credential block.
        since: Publish records stored at or after this instant instead of from the ArcGIS cursor (a
            backfill); empty means from the cursor. No offset means UTC.
        full: Reconcile: send what differs from what the destination received or went missing there, and
            delete what Knack no longer has.
        config_path: Another container config file; empty means $KNACK_SERVICES_CONFIG or the image's own.
        allow_mass_delete: Let this run delete more than the mass-delete guard allows (a real purge in Knack).
        republish: Send every stored record again, whatever the destination received (repairs rows edited
            there by hand); with a reconcile's deletes and repairs.
    """
    return publish_from_store(publish_agol, app, container, env, since, full, config_path, allow_mass_delete,
                              republish)


def main(argv: list[str] | None = None) -> int:
    return container_main(records_to_agol,
                          "Publish a container's records from the store to its ArcGIS layer or table.", argv)


if __name__ == "__main__":
    sys.exit(main())
