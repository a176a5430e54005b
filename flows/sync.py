"""The main job: one container from Knack to the store, then to each destination it publishes to.

``python flows/sync.py -a <app> -c <container> -e <env> [-d DATE] [--full] [--republish] [--only socrata|agol|table]``
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

if __name__ == "__main__":  # config mistakes are refused before Prefect is imported
    from flows._refuse import refuse_early

    refuse_early("sync")

from prefect import Task, flow
from prefect.logging import get_run_logger

from flows._cli import LIMITS, parser, run
from flows._events import alerting_held_back, emit_held_back, sync_run_name
from flows._isolation import refuse_other_env
from flows._params import Destination, Env
from flows._refuse import check_args, refused
from tasks.agol.task import AgolLayer, publish_agol
from tasks.clock import utc_now
from tasks.credentials import remembering_s3_block
from tasks.domain.config import ContainerConfig, Settings, load_container
from tasks.domain.destinations import Capabilities
from tasks.domain.errors import ConfigError, DeletesHeldBack, KnackServicesError
from tasks.domain.knack import parse_since
from tasks.domain.results import PublishFailure, PublishResult, SyncReport
from tasks.knack.tasks import offload
from tasks.report import publish_report
from tasks.socrata.task import SocrataDataset, publish_socrata
from tasks.store.metadata_reads import remembering_metadata
from tasks.store.open import log_store_choice
from tasks.store.shared_reads import sharing_reads
from tasks.table.task import AnalyticsTable, publish_table

# each destination's step; a stalled request ends at its deadline (tasks/wire.py), the run at its time limit
PUBLISHERS: dict[str, Task[..., PublishResult]] = {
    "socrata": publish_socrata, "agol": publish_agol, "table": publish_table}
# what a run may do to each destination, from the container config (a no_replace_socrata dataset: no full refresh)
CAPABILITIES: dict[str, Callable[[ContainerConfig], Capabilities]] = {
    "socrata": SocrataDataset.capabilities_of, "agol": AgolLayer.capabilities_of,
    "table": AnalyticsTable.capabilities_of}


def _publish(name: str, app: str, cfg: ContainerConfig, env: str, settings: Settings, full: bool,
             allow_mass_delete: bool, republish: bool) -> PublishResult | PublishFailure:
    """One destination's step, in its own thread; its failure is returned, not raised."""
    try:
        with alerting_held_back(app, cfg.key, env, name):
            return PUBLISHERS[name](app, cfg, env, settings, full, None, allow_mass_delete, republish)
    except Exception as exc:  # the run says which destination failed, after the others finished
        return PublishFailure(str(exc))


class PublishFailed(KnackServicesError):
    """The store is up to date, but one or more destinations failed (their cursors did not move)."""


def pick_destinations(cfg: ContainerConfig, wanted: list[Destination] | list[str] | None) -> list[str]:
    """The container's destinations, narrowed to ``wanted`` (each of which must be configured)."""
    configured = cfg.destinations()
    if wanted is None:
        return configured
    unknown = [d for d in wanted if d not in configured]
    if unknown:
        raise ConfigError(f"{cfg.app}/{cfg.key} does not publish to {', '.join(unknown)} "
                          f"(configured: {', '.join(configured) or 'none'})")
    return [d for d in configured if d in wanted]


@flow(name="sync", timeout_seconds=LIMITS["sync"],
      flow_run_name=sync_run_name)
def sync(app: str, container: str, env: Env, since: datetime | None = None, full: bool = False,
         destinations: list[Destination] | None = None, config_path: str | None = None,
         allow_mass_delete: bool = False, republish: bool = False) -> dict[str, Any]:
    """Knack → store → Socrata, ArcGIS and the analytics table, each destination on its own cursor.

    Args:
        app: The app's name in the container config (e.g. data-tracker).
        container: The Knack object or view to sync (object_N or view_N), as configured.
        env: The environment: the store's prefix and the suffix of every credential block.
        since: Fetch and publish records modified at or after this instant instead of each cursor
            (a backfill); empty means from the cursors. No offset means UTC.
        full: Full refresh of the store (every record, deletes of what Knack no longer has); each destination
            is reconciled: sent what differs from what it received or went missing there, and the deletes.
        destinations: Publish to these destinations only; empty means every configured one.
        config_path: Another container config file; empty means $KNACK_SERVICES_CONFIG or the image's own.
        allow_mass_delete: Let this run delete more than the mass-delete guard allows (a real purge in Knack).
        republish: Send every stored record to each destination again, whatever it received (repairs rows
            edited there by hand).
    """
    refuse_other_env(env)  # before anything is read
    log = get_run_logger()
    config, app_cfg, cfg = load_container(app, container, env, config_path)
    # the block s3-<env> and the app's metadata are read once by the run's steps (and its subflows)
    with remembering_s3_block(env), remembering_metadata(env, app):
        log_store_choice(env, config.settings, get_run_logger())  # the run's first line: which store, why
        targets = pick_destinations(cfg, destinations)

        # Knack → store: records modified since the Knack cursor; unchanged ones are not rewritten
        stored = offload(app_cfg, cfg, env, config.settings, parse_since(since, utc_now()) if since else None, full,
                         allow_mass_delete)

        # store → destinations: side by side, so one destination's outage never holds back another; each is a
        # task of this run (a subflow would cost the Prefect API seven writes per destination)
        runs: dict[str, Future[PublishResult | PublishFailure]] = {}  # each stored record read once between them
        with sharing_reads(env, app, container, targets), \
                ThreadPoolExecutor(max_workers=max(1, len(targets)), thread_name_prefix="publish") as pool:
            for name in targets:
                capabilities = CAPABILITIES[name](cfg)
                if note := capabilities.incremental_note(full):
                    log.info("%s/%s: %s", app, container, note)
                # each thread runs in a copy of this context, so the step knows its flow run
                runs[name] = pool.submit(contextvars.copy_context().run, _publish, name, app, cfg, env,
                                         config.settings, capabilities.publishes_full(full), allow_mass_delete,
                                         republish)
        published = {name: run.result() for name, run in runs.items()}

    report = SyncReport(app, container, env, stored, published)
    publish_report(report)
    if failed := report.failed():
        raise PublishFailed(f"{app}/{container}: the store is up to date, but publishing to "
                            f"{', '.join(failed)} failed: " + "; ".join(failed.values()))
    if stored.held_back:  # everything else is done; the run fails so that someone looks
        emit_held_back(app, container, env, stored.held_back)
        raise DeletesHeldBack(stored.held_back)
    return report.as_dict()


def main(argv: list[str] | None = None) -> int:
    p = parser("Sync one Knack container to the store and its destinations.")
    p.add_argument("--only", action="append", choices=sorted(PUBLISHERS), dest="destinations",
                   help="publish to this destination only (repeatable); default: every configured one")
    args = p.parse_args(argv)
    try:
        since = check_args(args.app_name, args.container, args.config, args.date, args.destinations)
    except ConfigError as exc:
        return refused("sync", exc)
    return run(sync, {"app": args.app_name, "container": args.container, "env": args.env, "since": since,
                      "full": args.full, "destinations": args.destinations, "config_path": args.config,
                      "allow_mass_delete": args.allow_mass_delete, "republish": args.republish})


if __name__ == "__main__":
    sys.exit(main())
