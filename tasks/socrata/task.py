"""Prefect task: publish a container's changes from the store to its Socrata dataset."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.credentials import socrata_credentials
from tasks.domain.config import ContainerConfig, Settings
from tasks.domain.errors import ConfigError, UnpublishableRecords
from tasks.domain.socrata import dropped_columns, to_socrata_row
from tasks.publishing import advance_cursor, formatted_batches, publishing
from tasks.socrata.client import delete_rows, fetch_schema, list_row_ids, upsert_rows
from tasks.store.records import utc_now


@task(name="publish-to-socrata", cache_policy=NO_CACHE)
def publish_socrata(app: str, cfg: ContainerConfig, env: str, settings: Settings, full: bool = False,
                    since: datetime | None = None) -> dict[str, Any]:
    """Upsert changed rows and delete deleted ones; on a full refresh, upsert all then delete strays.

    Never a replace: the dataset is never empty or partial while this runs. The Socrata cursor moves
    only when every chunk succeeded.
    """
    log = get_run_logger()
    clock = time.monotonic()
    resource_id = cfg.socrata_resource_id
    if resource_id is None:
        raise ConfigError(f"{app}/{cfg.key} has no socrata_resource_id")
    if full and cfg.no_replace_socrata:
        raise ConfigError(f"{app}/{cfg.key}: no_replace_socrata forbids a full refresh of dataset "
                          f"{resource_id}; run without --full")
    with publishing(app, cfg, env, settings, "socrata", full=full, since=since) as ctx:
        plan = ctx.plan
        log.info("%s/%s → Socrata %s: %s", app, cfg.key, resource_id, plan.summary())
        client = socrata_credentials(env).get_client()
        schema = fetch_schema(client, resource_id)
        schema.check_publishable()
        dropped = dropped_columns(ctx.names, schema, cfg.append_timestamp_column)
        if dropped:
            log.info("Socrata %s has no column for %s: not published", resource_id, ", ".join(dropped))
        published_at = utc_now()
        unfit: list[tuple[str, str]] = []  # records whose stored values cannot be read: left out, then named

        def rows() -> Iterator[dict[str, Any]]:
            for batch in formatted_batches(ctx.store, cfg.key, plan.changed, ctx.schema, settings.socrata_chunk_size,
                                           unfit):
                for record_id, values in batch:
                    yield to_socrata_row(record_id, values, ctx.names, schema, location_fields=cfg.location_fields,
                                         app_tz=ctx.schema.timezone, published_at=published_at,
                                         append_timestamp_column=cfg.append_timestamp_column)

        upserted = upsert_rows(client, resource_id, rows(), chunk_size=settings.socrata_chunk_size)
        doomed = plan.deleted
        if plan.full:
            doomed = sorted(list_row_ids(client, resource_id) - set(ctx.manifest.records))
        if doomed:
            delete_rows(client, resource_id, doomed, settings.socrata_chunk_size)
        if unfit:
            raise UnpublishableRecords(f"Socrata dataset {resource_id}", unfit)
        result = {"mode": "full" if plan.full else "incremental", "read": len(plan.changed),
                  "upserted": upserted.get("rows", 0), "created": upserted.get("created", 0),
                  "updated": upserted.get("updated", 0), "deleted": len(doomed),
                  "generation": plan.target, "seconds": round(time.monotonic() - clock, 3)}
        advance_cursor(ctx.store, cfg.key, plan, {"upserted": result["upserted"], "deleted": len(doomed)})
    log.info("%s/%s → Socrata %s: %d rows upserted, %d deleted; cursor at generation %d", app, cfg.key,
             resource_id, result["upserted"], result["deleted"], plan.target if plan.advance else plan.cursor)
    return result
