"""Prefect task: publish a container's changes from the store to its Socrata dataset.

``SocrataDataset`` is the Socrata side of the one publish driver (``tasks/publishing.py``): rows are
shaped by ``tasks/domain/socrata.py`` and sent by ``tasks/socrata/client.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.clock import utc_now
from tasks.credentials import socrata_credentials
from tasks.domain.config import ContainerConfig, Settings
from tasks.domain.deadlines import request_deadlines
from tasks.domain.destinations import Capabilities, SocrataCounts
from tasks.domain.drift import row_digest
from tasks.domain.errors import ConfigError, UnpublishableRecords
from tasks.domain.results import PublishResult
from tasks.domain.socrata import ID_COLUMN, SocrataSchema, dropped_columns, to_socrata_row
from tasks.publishing import PublishContext, publish
from tasks.socrata.client import delete_rows, fetch_schema, list_row_ids, list_rows, upsert_rows
from tasks.wire import guard_session


class SocrataDataset:
    """One container's dataset, from its config; ``open`` connects to it for a run."""

    role = "socrata"

    def __init__(self, app: str, cfg: ContainerConfig, env: str, settings: Settings, full: bool) -> None:
        if cfg.socrata_resource_id is None:
            raise ConfigError(f"{app}/{cfg.key} has no socrata_resource_id")
        self.capabilities = self.capabilities_of(cfg)
        if full and not self.capabilities.full_refresh:
            raise ConfigError(f"{app}/{cfg.key}: {self.capabilities.kept_by} forbids a full refresh of dataset "
                              f"{cfg.socrata_resource_id}; run without --full")
        self.cfg, self.env = cfg, env
        self.resource_id: str = cfg.socrata_resource_id
        self.batch_size = settings.socrata_chunk_size
        self.deadlines = request_deadlines(settings)

    @staticmethod
    def capabilities_of(cfg: ContainerConfig) -> Capabilities:
        """A ``no_replace_socrata`` dataset takes no full refresh and keeps the rows the store lacks."""
        kept = cfg.no_replace_socrata
        return Capabilities("Socrata", full_refresh=not kept, removes_strays=not kept,
                            kept_by="no_replace_socrata" if kept else None)

    def open(self, ctx: PublishContext) -> OpenSocrataDataset:
        client = socrata_credentials(self.env).get_client()
        # every request whole within its deadline, and cut to the publish's time left
        guard_session(client.session, self.deadlines, f"Socrata dataset {self.resource_id}")
        schema = fetch_schema(client, self.resource_id)
        schema.check_publishable()
        dropped = dropped_columns(ctx.names, schema, self.cfg.append_timestamp_column)
        if dropped:
            get_run_logger().info("Socrata %s has no column for %s: not published", self.resource_id,
                                  ", ".join(dropped))
        # what the drift audit compares: the columns a row is sent with, less the publish time
        audit_columns = [ID_COLUMN, *sorted({n for n in ctx.names.values() if n in schema.column_types}
                                            - {self.cfg.append_timestamp_column, ID_COLUMN})]
        return OpenSocrataDataset(self.cfg, ctx, self.resource_id, f"Socrata {self.resource_id}", self.batch_size,
                                  client, schema,
                                  published_at=utc_now(), audit_columns=audit_columns)


@dataclass(repr=False)  # its client and credentials stay out of any repr
class OpenSocrataDataset:
    """The dataset connected for one run. Never a replace: rows are upserted and deleted by ``id``."""

    cfg: ContainerConfig
    ctx: PublishContext
    resource_id: str
    name: str  # "Socrata abcd-1234"
    batch_size: int
    client: Any  # sodapy's Socrata, its session guarded by request deadlines
    schema: SocrataSchema
    published_at: datetime
    audit_columns: list[str]  # what the drift audit compares

    def to_payload(self, record_id: str, values: dict[str, Any]) -> dict[str, Any]:
        return to_socrata_row(record_id, values, self.ctx.names, self.schema, location_fields=self.cfg.location_fields,
                              app_tz=self.ctx.schema.timezone, published_at=self.published_at,
                              append_timestamp_column=self.cfg.append_timestamp_column)

    def upsert(self, payloads: Iterator[dict[str, Any]]) -> SocrataCounts:
        totals = upsert_rows(self.client, self.resource_id, payloads, chunk_size=self.batch_size)
        return SocrataCounts(upserted=totals.get("rows", 0), created=totals.get("created", 0),
                             updated=totals.get("updated", 0))

    def ids(self) -> set[str]:
        return list_row_ids(self.client, self.resource_id)

    def digest(self, payload: dict[str, Any]) -> str:
        return row_digest(payload, self.audit_columns)

    def held_rows(self) -> dict[str, str]:
        return {str(row[ID_COLUMN]): row_digest(row, self.audit_columns)
                for row in list_rows(self.client, self.resource_id, self.audit_columns)}

    def delete(self, ids: list[str]) -> None:
        if ids:
            delete_rows(self.client, self.resource_id, ids, self.batch_size)

    def left_out(self, unreadable: list[tuple[str, str]]) -> Exception | None:
        return UnpublishableRecords(f"Socrata dataset {self.resource_id}", unreadable) if unreadable else None

    def outcome(self, result: PublishResult, cursor: int) -> str:
        return f"{result.upserted} rows upserted, {result.deleted} deleted; cursor at generation {cursor}"


@task(name="publish-to-socrata", cache_policy=NO_CACHE)
def publish_socrata(app: str, cfg: ContainerConfig, env: str, settings: Settings, full: bool = False,
                    since: datetime | None = None, allow_mass_delete: bool = False,
                    republish: bool = False) -> PublishResult:
    """Upsert changed rows and delete deleted ones; on a full refresh, upsert all then delete strays.

    Never a replace: the dataset is never empty or partial while this runs. The Socrata cursor moves
    only when every chunk succeeded.
    """
    return publish(SocrataDataset(app, cfg, env, settings, full), app, cfg, env, settings, full=full, since=since,
                   allow_mass_delete=allow_mass_delete, republish=republish)
