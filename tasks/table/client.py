"""A container's analytics table (Delta Lake, delta-rs) in the store: where it lives, and its writes.

The table lives at ``<env>/<app>/_tables/<container>/`` beside the records (``s3://<bucket>/...`` or the
local folder store), outside every record listing. On S3 each commit is a conditional PUT of the next
log entry (``If-None-Match``): of two writers racing for one version, one wins and the other retries on
the next version (or fails with a commit conflict when the two touched the same files), so no commit is
ever lost or overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arro3.core import RecordBatch, RecordBatchReader
from arro3.core import Schema as ArrowSchema
from deltalake import DeltaTable, QueryBuilder, Schema, write_deltalake
from deltalake.exceptions import TableNotFoundError

from tasks.domain.config import Settings
from tasks.domain.errors import StoreError
from tasks.domain.layout import table_key
from tasks.domain.table import ID_COLUMN
from tasks.domain.text import where_in
from tasks.store.open import shared_s3_client


@dataclass(frozen=True)
class TableLocation:
    """Where one table lives and how delta-rs reaches it (the options hold credentials: never log them)."""

    uri: str
    storage_options: dict[str, str]

    def __repr__(self) -> str:  # the options hold credentials
        return f"TableLocation({self.uri!r})"


def s3_storage_options(client: Any, credentials: Any) -> dict[str, str]:
    """delta-rs options from the store's own boto3 client and the credentials it signs with (its session's
    chain: block, environment, role, ...): region, endpoint, keys, with commits made by conditional PUT
    (S3 ``If-None-Match``), which needs no lock table."""
    if credentials is None:
        raise StoreError("the S3 store has no credentials to hand the analytics table writer")
    frozen = credentials.get_frozen_credentials()
    options = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
               "AWS_REGION": client.meta.region_name or "us-east-1", "AWS_CONDITIONAL_PUT": "etag"}
    if frozen.token:
        options["AWS_SESSION_TOKEN"] = frozen.token
    endpoint = client.meta.endpoint_url or ""
    if endpoint and not endpoint.endswith(".amazonaws.com"):  # an S3-compatible endpoint (or moto)
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


def table_location(env: str, app: str, container: str, settings: Settings) -> TableLocation:
    """The table's URI in the store this run uses, and delta-rs's options to reach it."""
    key = table_key(env, app, container)
    s3 = shared_s3_client(env, settings)
    if s3 is None:
        return TableLocation(str(Path(settings.local_store).resolve() / key), {})
    client, session, bucket = s3
    return TableLocation(f"s3://{bucket}/{key}", s3_storage_options(client, session.get_credentials()))


def open_table(where: TableLocation) -> DeltaTable | None:
    """The table, or None when none was written yet."""
    try:
        return DeltaTable(where.uri, storage_options=where.storage_options or None)
    except TableNotFoundError:
        return None


def column_types(schema: Schema | ArrowSchema) -> dict[str, str]:
    """Column name → its Delta type (as JSON), for a table's schema or the Arrow schema a run writes."""
    delta = schema if isinstance(schema, Schema) else Schema.from_arrow(schema)
    return {f["name"]: json.dumps(f["type"], sort_keys=True) for f in json.loads(delta.to_json())["fields"]}


def _quoted(name: str) -> str:
    """A column name as a SQL identifier (DataFusion: double quotes, case kept)."""
    return '"' + name.replace('"', '""') + '"'


def _select(table: DeltaTable, columns: list[str], batch: int = 8192) -> RecordBatchReader:
    """The table's ``columns``, streamed by delta-rs's own query engine (DataFusion) in batches of at most
    ``batch`` rows, as Arrow record batches."""
    query = QueryBuilder({"datafusion.execution.batch_size": str(batch)}).register("held", table)
    return query.execute(f"SELECT {', '.join(_quoted(c) for c in columns)} FROM held")


def table_ids(table: DeltaTable | None) -> set[str]:
    """Every record id the table holds."""
    if table is None:
        return set()
    return {value for part in _select(table, [ID_COLUMN]) for value in part.column(ID_COLUMN).to_pylist()}


def table_rows(table: DeltaTable, columns: Iterable[str], batch: int) -> Iterator[list[dict[str, Any]]]:
    """The table's rows (only ``columns``, those it has), ``batch`` rows at a time, streamed from its files."""
    held = set(table.schema().to_arrow().names)
    wanted = [name for name in columns if name in held]
    for part in _select(table, wanted, batch):
        if part.num_rows:
            yield list(part.to_struct_array().to_pylist())  # arro3's stubs say ndarray; it is a list of dicts


def stream(schema: ArrowSchema, batches: Iterator[RecordBatch]) -> RecordBatchReader:
    """Batches as one stream: delta-rs writes it in one commit without holding it whole."""
    return RecordBatchReader.from_batches(schema, batches)


def merge_rows(where: TableLocation, table: DeltaTable | None, rows: RecordBatchReader) -> dict[str, int]:
    """Upsert rows by ``id`` in one commit (a new table is created); new columns are added to the table."""
    if table is None:
        write_deltalake(where.uri, rows, mode="error", storage_options=where.storage_options or None)
        written = DeltaTable(where.uri, storage_options=where.storage_options or None)
        return _write_counts(written)
    metrics = (table.merge(rows, predicate=f"t.{ID_COLUMN} = s.{ID_COLUMN}", source_alias="s", target_alias="t",
                           merge_schema=True)
               .when_matched_update_all().when_not_matched_insert_all().execute())
    return {"inserted": int(metrics.get("num_target_rows_inserted", 0)),
            "updated": int(metrics.get("num_target_rows_updated", 0)),
            "copied": int(metrics.get("num_target_rows_copied", 0)),  # unchanged rows rewritten beside them
            "files_added": int(metrics.get("num_target_files_added", 0)),
            "files_removed": int(metrics.get("num_target_files_removed", 0))}


def rewrite(where: TableLocation, rows: RecordBatchReader) -> dict[str, int]:
    """Replace the table's rows and schema in one commit (readers see the old version or the new one)."""
    write_deltalake(where.uri, rows, mode="overwrite", schema_mode="overwrite",
                    storage_options=where.storage_options or None)
    return _write_counts(DeltaTable(where.uri, storage_options=where.storage_options or None))


def _write_counts(table: DeltaTable) -> dict[str, int]:
    """The counts of a plain write (a new table, or a rewrite) from its commit."""
    metrics = table.history(1)[0].get("operationMetrics") or {}
    return {"inserted": int(metrics.get("num_added_rows", 0)), "updated": 0, "copied": 0,
            "files_added": int(metrics.get("num_added_files", 0)),
            "files_removed": int(metrics.get("num_removed_files", 0))}


def delete_ids(table: DeltaTable, ids: Iterable[str], chunk: int = 5000) -> int:
    """Delete rows by record id (ids already gone are fine); one commit per chunk of ids."""
    ids = sorted(ids)
    deleted = 0
    for start in range(0, len(ids), chunk):
        metrics = table.delete(where_in(ID_COLUMN, ids[start:start + chunk]))
        deleted += int(metrics.get("num_deleted_rows", 0))
    return deleted


def commits_since_compaction(table: DeltaTable) -> int:
    """Commits made since the table was last compacted and vacuumed (or created)."""
    count = 0
    for entry in table.history():  # newest first
        if entry.get("operation") in ("OPTIMIZE", "VACUUM END"):
            break
        count += 1
    return count


def compact(table: DeltaTable, retention_hours: int) -> dict[str, int]:
    """Rewrite small files into large ones, then remove the files no version younger than the retention reads."""
    optimized = table.optimize.compact()
    removed = table.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
    return {"files_compacted": int(optimized.get("numFilesRemoved", 0)), "files_vacuumed": len(removed)}
