"""Prefect tasks that talk to Knack: app metadata (cached) and records into the store.

``offload`` is the whole Knack → store step the ``sync`` and ``records-to-s3`` flows run: metadata,
then the ``records-to-store`` task (``offload.py`` does its work), then the metadata into the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.clock import utc_now
from tasks.credentials import knack_credentials
from tasks.domain.config import AppConfig, ContainerConfig, Settings, delete_guard
from tasks.domain.deadlines import request_deadlines
from tasks.domain.formatting import container_schema, renamed_fields
from tasks.domain.knack import unreadable_modified
from tasks.domain.plan import check_container
from tasks.domain.report import artifact_key
from tasks.domain.results import OffloadResult
from tasks.knack import metadata_cache
from tasks.knack.client import KnackClient
from tasks.knack.offload import OffloadRequest, offload_container
from tasks.knack.ratelimit import limiter_stats, make_rate_limiter
from tasks.store.locks import run_name
from tasks.store.open import describe_store, open_store
from tasks.store.records import WriteStats

PROGRESS_EVERY_S = 10.0


def knack_client(app: AppConfig, env: str, settings: Settings | None = None) -> KnackClient:
    """A client for one app, its requests shared with every other run of the app through the limiter."""
    return KnackClient(knack_credentials(app.name, env), app.name,
                       limiter=make_rate_limiter(app.name, app.rate_limit_per_second, app.rate_limit_batch),
                       quota_floor=app.quota_floor,
                       deadlines=request_deadlines(settings) if settings is not None else None)


class Progress:
    """A progress artifact and a log line with counts every ``PROGRESS_EVERY_S`` seconds of a fetch."""

    def __init__(self, name: str, client: KnackClient, log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
        self.name, self.client, self.log = name, client, log
        self.last = time.monotonic()
        # called outside an event loop, Prefect's dual sync/async function returns the id itself
        self.artifact_id = cast(UUID, create_progress_artifact(
            progress=0.0, key=artifact_key("fetch", name), description=f"records of {name} fetched from Knack"))

    def update(self, stats: WriteStats) -> None:
        if time.monotonic() - self.last < PROGRESS_EVERY_S:
            return
        self.last = time.monotonic()
        expected = self.client.stats.expected_records or 0
        percent = min(99.0, 100.0 * stats.fetched / expected) if expected else 0.0
        update_progress_artifact(artifact_id=self.artifact_id, progress=percent)
        self.log.info("%s: %d fetched (about %d expected), %d written, %d unchanged so far", self.name,
                      stats.fetched, expected, stats.written, stats.unchanged)

    def finish(self) -> None:
        update_progress_artifact(artifact_id=self.artifact_id, progress=100.0)


# (app, env) → the last metadata this process fetched from Knack; store_metadata stamps it in the store
_FETCHED: dict[tuple[str, str], metadata_cache.Fetched] = {}


@task(name="fetch-knack-metadata", cache_policy=NO_CACHE)
def fetch_metadata(app: AppConfig, env: str, settings: Settings, refresh: bool = False) -> dict[str, Any]:
    """The app's metadata: the stored copy while it is under an hour old and of the same Knack app id
    (``metadata_cache``), otherwise (or with ``refresh``) from Knack."""
    log = get_run_logger()
    app_id = knack_credentials(app.name, env).app_id
    if not refresh:
        with open_store(env, app.name, settings) as store:
            hit = metadata_cache.cached(store, app_id, utc_now())
        if hit is not None:
            log.info("metadata of app %s from the store (fetched %d min ago); Knack not asked", app.name,
                     hit[1].total_seconds() // 60)
            return hit[0]
    started = utc_now()
    metadata = knack_client(app, env, settings).get_metadata()
    _FETCHED[(app.name, env)] = metadata_cache.fetched(app_id, started, metadata)
    log.info("fetched metadata of app %s (%s)", app.name, metadata.get("application", {}).get("name"))
    return metadata


@task(name="store-metadata", cache_policy=NO_CACHE)
def store_metadata(app: AppConfig, env: str, settings: Settings, metadata: dict[str, Any]) -> bool:
    """Write ``<env>/<app>/metadata.json`` when it changed; True if it was written."""
    with open_store(env, app.name, settings) as store:
        renamed = renamed_fields(store.read_metadata(), metadata)
        changed = store.write_metadata(metadata)
        if (fetch := _FETCHED.get((app.name, env))) is not None:
            metadata_cache.write_stamp(store, fetch, metadata)
    if renamed:
        get_run_logger().warning("fields of %s were renamed in Knack (%s): the column names derived from them "
                                 "change; each destination republishes every row under the new names",
                                 app.name, "; ".join(renamed[:20]))
    get_run_logger().info("metadata of %s %s in %s", app.name, "stored" if changed else "unchanged",
                          store.storage.description)
    return changed


@task(name="records-to-store", cache_policy=NO_CACHE)
def records_to_store(app: AppConfig, cfg: ContainerConfig, env: str, settings: Settings,
                     metadata: dict[str, Any], since: datetime | None = None, full: bool = False,
                     allow_mass_delete: bool = False) -> OffloadResult:
    """Fetch the container's records modified since the Knack cursor and store what changed."""
    log = get_run_logger()
    client = knack_client(app, env, settings)
    tz = container_schema(metadata, cfg.key).timezone
    started = utc_now()
    progress = Progress(f"{app.name}/{cfg.key}", client, log)

    undated: dict[str, str] = {}  # record id → why its modified date cannot be read

    def pages(fetch_from: datetime | None) -> Iterator[list[dict[str, Any]]]:
        for page in client.iter_records(cfg.key, scene_id=cfg.scene_id, since=fetch_from,
                                        modified_field=cfg.modified_date_field_id, tz=tz,
                                        rows_per_page=settings.knack_rows_per_page):
            for record in page:
                if (why := unreadable_modified(record, cfg.modified_date_field_id)) is not None:
                    undated[str(record.get("id"))[:40]] = why
            yield page

    with open_store(env, app.name, settings) as store, \
            store.lock(cfg.key, run_name(), "knack", timedelta(seconds=settings.lock_ttl_seconds)):
        request = OffloadRequest(since=since, full=full, started=started,
                                 guard=delete_guard(settings, allow_mass_delete),
                                 cursor_lag=timedelta(seconds=settings.knack_cursor_lag_seconds),
                                 destinations=tuple(cfg.destinations()),
                                 lookup_cap=settings.delete_lookups_per_run)
        result = offload_container(store, pages, cfg, metadata, request, log=log, knack=client,
                                   on_progress=progress.update)
    progress.finish()
    result = replace(result, knack_requests=client.stats.requests, quota_remaining=client.stats.quota_remaining,
                     store=describe_store(env, settings))
    log.info("%s/%s: %d fetched, %d written, %d unchanged, %d deleted; %d Knack requests; cursor %s",
             app.name, cfg.key, result.fetched, result.written, result.unchanged, result.deleted,
             client.stats.requests, result.cursor or "unchanged")
    for name, spent in limiter_stats().items():  # the Prefect limit's cost so far in this process
        log.info("rate limit %s: %d Prefect API calls (%d batches, %d refused, %d reads) for %d Knack requests"
                 "%s", name, spent["api_calls"], spent["batches"], spent["refused"], spent["reads"], spent["grants"],
                 f"; {spent['throttled']} answered 429 for rate" if spent["throttled"] else "")
    if undated:
        shown = "; ".join(f"{rid}: {why}" for rid, why in list(undated.items())[:10])
        log.warning("%s/%s: %d records have no readable modified date in %s (%s%s): they are stored as Knack "
                    "sent them, but only full refreshes see their edits", app.name, cfg.key, len(undated),
                    cfg.modified_date_field_id, shown, " ..." if len(undated) > 10 else "")
    if result.unknown_fields:
        log.warning("%s/%s: records carry fields the stored metadata does not know (%s): the app's "
                    "schema changed; metadata will be refetched", app.name, cfg.key,
                    ", ".join(result.unknown_fields))
    return result


def offload(app: AppConfig, cfg: ContainerConfig, env: str, settings: Settings,
            since: datetime | None, full: bool, allow_mass_delete: bool = False) -> OffloadResult:
    """Metadata (cached), records → store, then the metadata → store; on schema drift the metadata is
    fetched again before it is stored, so publishers never format records with stale fields.

    The metadata is stored only after the records, so a run refused by Knack (bad key, quota) or by
    the config check writes nothing. Called from a flow: each step is a task of that flow run.
    """
    metadata = fetch_metadata(app, env, settings)
    check_container(metadata, app.name, cfg)
    stored = records_to_store(app, cfg, env, settings, metadata, since, full, allow_mass_delete)
    if stored.unknown_fields:
        metadata = fetch_metadata(app, env, settings, refresh=True)
    store_metadata(app, env, settings, metadata)
    return stored
