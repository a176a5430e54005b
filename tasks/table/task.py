"""Prefect task: publish a container's changes from the store to its analytics table (Delta Lake).

``AnalyticsTable`` is the table side of the one publish driver (``tasks/publishing.py``), so the table
has its own lock and cursor (``table``), publishes only confirmed deletes and keeps its cursor when a
write fails. Rows are typed by ``tasks/domain/table.py`` and written by ``tasks/table/client.py``: one
merge commit per run, streamed in batches of ``table_batch_rows``. A full run reads the table back
(``held_rows``) for the drift audit, so a row edited there by hand is merged again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from types import ModuleType
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks import fence
from tasks.clock import utc_now
from tasks.domain.config import ContainerConfig, Settings
from tasks.domain.destinations import Capabilities, TableCounts
from tasks.domain.errors import ConfigError, StoreError, UnpublishableRecords
from tasks.domain.layout import table_key
from tasks.domain.results import PublishResult
from tasks.publishing import PublishContext, publish

if TYPE_CHECKING:  # arro3 and deltalake are imported by the run that writes (``open``), not before
    from arro3.core import RecordBatch, Schema

    from tasks.table.client import TableLocation


class AnalyticsTable:
    """One container's Delta table, from its config; ``open`` reads where it is and how it stands."""

    role = "table"

    def __init__(self, app: str, cfg: ContainerConfig, env: str, settings: Settings) -> None:
        if not cfg.publishes_to_table:
            raise ConfigError(f"{app}/{cfg.key} has no analytics table (set table: true on it, or tables: true)")
        self.capabilities = self.capabilities_of(cfg)
        self.app, self.cfg, self.env, self.settings = app, cfg, env, settings

    @staticmethod
    def capabilities_of(cfg: ContainerConfig) -> Capabilities:
        """Every run may reconcile the table and delete the rows the store lacks."""
        return Capabilities("table")

    def open(self, ctx: PublishContext) -> OpenAnalyticsTable:
        from tasks.domain.table import schema_drift, table_schema
        from tasks.table import client as delta

        schema = table_schema(ctx.schema, ctx.names)
        where = delta.table_location(self.env, self.app, self.cfg.key, self.settings)
        try:
            table = delta.open_table(where)
        except Exception as exc:  # noqa: BLE001 - delta-rs raises several kinds; the run fails naming the table
            raise StoreError(f"{self.app}/{self.cfg.key}: cannot open the analytics table at {where.uri}: "
                             f"{exc}") from None
        name = f"table {table_key(self.env, self.app, self.cfg.key)}"
        stored = delta.column_types(table.schema()) if table is not None else None
        drift = schema_drift(stored, delta.column_types(schema))
        if drift:
            get_run_logger().warning("%s/%s → %s: columns changed (%s): the table is rewritten with every row",
                                     self.app, self.cfg.key, name, "; ".join(drift))
        return OpenAnalyticsTable(self.app, self.cfg, self.settings, ctx, name, self.settings.table_batch_rows,
                                  delta, schema, where, table, drift, synced_at=utc_now())


@dataclass(repr=False)  # its client and credentials stay out of any repr
class OpenAnalyticsTable:
    """The table as one run found it: rows merged by ``id``, deleted by ``id``; never emptied.

    A renamed, removed or retyped field (the stored table has a column the run would not write, or writes
    with another type) rewrites the whole table in one commit: readers see the old version or the new
    one. ``delete`` is the run's last write; the table is compacted and vacuumed after it once every
    ``table_compact_every`` commits.
    """

    app: str
    cfg: ContainerConfig
    settings: Settings
    ctx: PublishContext
    name: str        # "table <env>/<app>/_tables/<container>"
    batch_size: int  # rows per batch (``table_batch_rows``)
    delta: ModuleType  # tasks.table.client, imported by the run that writes
    schema: Schema
    where: TableLocation
    table: Any         # the Delta table; None until the first merge creates it
    drift: list[str]   # the columns changed since the table was written (then the table is rewritten)
    synced_at: datetime

    def to_payload(self, record_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
        from tasks.domain.table import to_table_row

        return to_table_row(record_id, values, self.ctx.names, self.schema,
                            modified_field=self.cfg.modified_date_field_id, synced_at=self.synced_at)

    def _batches(self, payloads: Iterator[dict[str, Any]]) -> Iterator[RecordBatch]:
        from tasks.domain.table import to_record_batch

        while rows := list(islice(payloads, self.batch_size)):
            fence.check()  # a merge streaming past the lease aborts before it commits
            yield to_record_batch(rows, self.schema)

    def upsert(self, payloads: Iterator[dict[str, Any]]) -> TableCounts:
        batches = self._batches(payloads)
        if self.drift:
            if not self.ctx.plan.full and len(self.ctx.plan.changed) < len(self.ctx.manifest.records):
                raise StoreError(f"{self.app}/{self.cfg.key}: the analytics table's columns changed "
                                 f"({'; '.join(self.drift)}) and this run does not read every record "
                                 f"(a backfill with a date): run a full refresh")
            with fence.write():
                counts = self.delta.rewrite(self.where, self.delta.stream(self.schema, batches))
        else:
            first = next(batches, None)
            if first is None:  # nothing changed: no commit
                return TableCounts()
            rest = (b for part in ([first], batches) for b in part)
            with fence.write():
                counts = self.delta.merge_rows(self.where, self.table, self.delta.stream(self.schema, rest))
        self.table = self.delta.open_table(self.where)
        return TableCounts(upserted=counts["inserted"] + counts["updated"], inserted=counts["inserted"],
                           updated=counts["updated"], copied=counts["copied"])

    def ids(self) -> set[str]:
        return self.delta.table_ids(self.table)

    def digest(self, payload: dict[str, Any]) -> str:
        from tasks.domain.table import table_row_digest

        return table_row_digest(payload)

    def held_rows(self) -> dict[str, str]:
        """Record id → digest of every row the table holds, read in batches of the run's columns."""
        from tasks.domain.table import ID_COLUMN, PER_RUN_COLUMNS, table_row_digest

        if self.table is None:
            return {}
        columns = [name for name in self.schema.names if name not in PER_RUN_COLUMNS]
        return {row[ID_COLUMN]: table_row_digest(row)
                for rows in self.delta.table_rows(self.table, columns, self.batch_size) for row in rows}

    def delete(self, ids: list[str]) -> int:
        deleted = 0
        if ids and self.table is not None:
            with fence.write():
                deleted = self.delta.delete_ids(self.table, ids)
        self._tidy()
        return deleted

    def _tidy(self) -> None:
        """Compact and vacuum once every ``table_compact_every`` commits; a failure here only logs (the rows
        are committed; the next run tries again)."""
        every = self.settings.table_compact_every
        if not every or self.table is None:
            return
        log = get_run_logger()
        try:
            self.table = self.delta.open_table(self.where)
            if self.delta.commits_since_compaction(self.table) < every:
                return
            fence.check()
            done = self.delta.compact(self.table, self.settings.table_retention_hours)
            log.info("%s/%s → %s: compacted %d files, vacuumed %d", self.app, self.cfg.key, self.name,
                     done["files_compacted"], done["files_vacuumed"])
        except Exception as exc:  # noqa: BLE001 - maintenance never fails a publish that committed
            log.warning("%s/%s → %s: compaction failed (the next run tries again): %s", self.app, self.cfg.key,
                        self.name, exc)

    def left_out(self, unreadable: list[tuple[str, str]]) -> Exception | None:
        return UnpublishableRecords(f"analytics table {self.name}", unreadable) if unreadable else None

    def outcome(self, result: PublishResult, cursor: int) -> str:
        return (f"{result.upserted} rows merged ({result.counts.get('inserted', 0)} inserted, "
                f"{result.counts.get('updated', 0)} updated, {result.counts.get('copied', 0)} unchanged rows "
                f"rewritten beside them), {result.deleted} deleted; cursor at generation {cursor}")


@task(name="publish-to-table", cache_policy=NO_CACHE)
def publish_table(app: str, cfg: ContainerConfig, env: str, settings: Settings, full: bool = False,
                  since: datetime | None = None, allow_mass_delete: bool = False,
                  republish: bool = False) -> PublishResult:
    """Merge changed rows into the container's Delta table by id and delete deleted ones; a full refresh
    reconciles (merges what differs or is missing there, then deletes what the store no longer has);
    ``republish`` merges every row. The table cursor moves only on success."""
    return publish(AnalyticsTable(app, cfg, env, settings), app, cfg, env, settings, full=full, since=since,
                   allow_mass_delete=allow_mass_delete, republish=republish)
