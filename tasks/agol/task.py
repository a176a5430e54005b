"""Prefect task: publish a container's changes from the store to its ArcGIS Online layer or table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.agol.client import delete_ids, list_ids, open_target, upsert_features
from tasks.credentials import agol_credentials
from tasks.domain.agol import dropped_fields, to_agol_feature
from tasks.domain.config import ContainerConfig, Settings
from tasks.domain.errors import AgolEditFailed, ConfigError, UnpublishableRecords
from tasks.publishing import advance_cursor, formatted_batches, publishing


@task(name="publish-to-agol", cache_policy=NO_CACHE)
def publish_agol(app: str, cfg: ContainerConfig, env: str, settings: Settings, full: bool = False,
                 since: datetime | None = None) -> dict[str, Any]:
    """Upsert changed features by record id and delete deleted ones; a full refresh upserts everything,
    then deletes what the store no longer has (never truncate: the map is never empty)."""
    log = get_run_logger()
    clock = time.monotonic()
    if cfg.service_id is None:
        raise ConfigError(f"{app}/{cfg.key} has no service_id")
    match = cfg.upsert_matching_field
    with publishing(app, cfg, env, settings, "agol", full=full, since=since) as ctx:
        plan = ctx.plan
        target = open_target(agol_credentials(env), cfg.service_id, cfg.layer_id, cfg.agol_kind, match_field=match)
        log.info("%s/%s → ArcGIS %s: %s", app, cfg.key, target.name, plan.summary())
        attributes = {k: v for k, v in ctx.names.items() if k not in cfg.location_fields}  # those are geometry
        dropped = dropped_fields(attributes, target.info.fields, match)
        if dropped:
            log.info("ArcGIS %s has no editable field for %s: not published", target.name, ", ".join(dropped))
        unfit: list[AgolEditFailed] = []
        unreadable: list[tuple[str, str]] = []  # records whose stored values cannot be read: left out, then named

        def features() -> Iterator[dict[str, Any]]:
            for batch in formatted_batches(ctx.store, cfg.key, plan.changed, ctx.schema, settings.agol_chunk_size,
                                           unreadable):
                for record_id, values in batch:
                    try:
                        yield to_agol_feature(record_id, values, ctx.names, target.info.fields,
                                              location_fields=cfg.location_fields,
                                              geometry_type=target.info.geometry_type, match_field=match,
                                              layer=target.name)
                    except AgolEditFailed as exc:  # publish the rest, then fail naming every such record
                        unfit.append(exc)

        counts = upsert_features(target, features(), match_field=match, chunk_size=settings.agol_chunk_size)
        doomed = plan.deleted
        if plan.full:
            doomed = sorted(set(list_ids(target, match)) - set(ctx.manifest.records))
        deleted = delete_ids(target, doomed, match, settings.agol_chunk_size) if doomed else 0
        if unreadable:  # the rest is published and deleted; the cursor stays until these are fixed
            raise UnpublishableRecords(f"ArcGIS layer {target.name}", unreadable +
                                       [(i, str(exc)) for exc in unfit for i in exc.ids])
        if unfit:
            raise AgolEditFailed(target.name, [i for exc in unfit for i in exc.ids],
                                 "; ".join(str(exc) for exc in unfit[:5]))
        result = {"mode": "full" if plan.full else "incremental", "read": len(plan.changed),
                  "upserted": counts["features"], "added": counts["added"], "updated": counts["updated"],
                  "deleted": len(doomed), "features_deleted": deleted, "generation": plan.target,
                  "seconds": round(time.monotonic() - clock, 3)}
        advance_cursor(ctx.store, cfg.key, plan, {"upserted": result["upserted"], "deleted": len(doomed)})
    log.info("%s/%s → ArcGIS %s: %d features upserted (%d added, %d updated), %d deleted", app, cfg.key,
             target.name, result["upserted"], result["added"], result["updated"], result["deleted"])
    return result
