"""Socrata I/O through sodapy: dataset schema, chunked upserts, row-id listing, deletes.

No Prefect here: ``tasks/socrata/task.py`` calls these. Every request retries only transient faults
(timeouts, dropped connections, 429, 5xx: ``tasks/retry.py``) with exponential backoff and jitter,
honouring ``Retry-After``; a 400 fails at once with an error naming the dataset, the chunk's first and
last ids and Socrata's message. Upserts are keyed by ``id``, so a retried or re-run chunk never
duplicates rows. Errors are raised ``from None``: the requests exception would carry the request and
with it the ``Authorization`` header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

from requests.exceptions import HTTPError
from tenacity import RetryCallState

from tasks.domain.batching import chunked
from tasks.domain.errors import SocrataError, SocrataRejectedRows
from tasks.domain.socrata import ID_COLUMN, SocrataSchema, check_upsert_result, deleted_row, upsert_counts
from tasks.domain.text import where_in
from tasks.retry import exponential_jitter, failure_of, hinted, retry_after, retrying, status_of

log = logging.getLogger(__name__)
T = TypeVar("T")

ATTEMPTS = 5
BACKOFF_SECONDS = 2.0
_VERIFY_BATCH = 200  # ids per "which of these still exist" query; keeps the URL short


def _socrata_message(exc: BaseException) -> str:
    """Socrata's own ``message`` when the reply carries one; never headers or credentials."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("message"):
            return f"HTTP {response.status_code}: {body['message']}"
        return f"HTTP {response.status_code} {response.reason or ''}".strip()
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def _log_retry(state: RetryCallState) -> None:
    exc = failure_of(state)
    log.warning("Socrata request failed (%s), attempt %d; retrying", _socrata_message(exc) if exc else "?",
                state.attempt_number)


def call_socrata(func: Callable[[], T], *, attempts: int = ATTEMPTS, backoff: float = BACKOFF_SECONDS) -> T:
    """Run one sodapy call, retrying transient faults only; other errors propagate unchanged."""
    loop = retrying(attempts=attempts, wait=hinted(retry_after, exponential_jitter(backoff)), before_sleep=_log_retry)
    return loop(func)


def _failure(resource_id: str, action: str, exc: Exception, ids: Sequence[str] = ()) -> SocrataError:
    status = status_of(exc)
    span = f" (ids {ids[0]} … {ids[-1]})" if ids else ""
    detail = f"{action}{span} failed: {_socrata_message(exc)}"
    if status == 400 and ids:
        return SocrataRejectedRows(resource_id, ids, detail)
    return SocrataError(f"Socrata dataset {resource_id}: {detail}")


def fetch_schema(client: Any, resource_id: str, **retry: Any) -> SocrataSchema:
    """The dataset's columns and row identifier, from ``/api/views``."""
    try:
        view = call_socrata(lambda: client.get_metadata(resource_id), **retry)
    except (HTTPError, OSError) as exc:
        raise _failure(resource_id, "reading the dataset metadata", exc) from None
    schema = SocrataSchema.from_view(view)
    return SocrataSchema(schema.resource_id or resource_id, schema.column_types, schema.row_identifier)


def _write_chunks(client: Any, resource_id: str, rows: Iterable[dict[str, Any]], chunk_size: int,
                  action: str, **retry: Any) -> dict[str, int]:
    totals = {"rows": 0, "chunks": 0, "created": 0, "updated": 0, "deleted": 0}
    for number, chunk in enumerate(chunked(rows, chunk_size), start=1):
        ids = [str(r.get(ID_COLUMN)) for r in chunk]
        try:
            result = call_socrata(partial(client.upsert, resource_id, chunk), **retry)
        except (HTTPError, OSError) as exc:
            raise _failure(resource_id, f"{action} chunk {number} ({len(chunk)} rows)", exc, ids) from None
        counts = check_upsert_result(result, ids, resource_id) if action == "upsert" else \
            upsert_counts(result, resource_id)
        if counts["errors"]:
            _check_gone(client, resource_id, ids, **retry)  # deleting an absent id counts as an error
        for key in ("created", "updated", "deleted"):
            totals[key] += counts[key]
        totals["rows"] += len(chunk)
        totals["chunks"] += 1
        log.info("Socrata %s: %s chunk %d, %d rows (%d created, %d updated, %d deleted)", resource_id, action,
                 number, len(chunk), counts["created"], counts["updated"], counts["deleted"])
    return totals


def upsert_rows(client: Any, resource_id: str, rows: Iterable[dict[str, Any]], *, chunk_size: int = 5000,
                **retry: Any) -> dict[str, int]:
    """Upsert rows in chunks, checking each reply; returns totals (rows, chunks, created, updated, deleted)."""
    return _write_chunks(client, resource_id, rows, chunk_size, "upsert", **retry)


def delete_rows(client: Any, resource_id: str, ids: Iterable[str], chunk_size: int = 5000,
                **retry: Any) -> dict[str, int]:
    """Delete rows by record id with ``:deleted`` upserts; ids already gone are fine (a re-run repeats them)."""
    return _write_chunks(client, resource_id, (deleted_row(i) for i in ids), chunk_size, "delete", **retry)


def _check_gone(client: Any, resource_id: str, ids: Sequence[str], **retry: Any) -> None:
    """After a delete chunk reported errors, fail only if some of its ids are still there."""
    remaining: list[str] = []
    for batch in chunked(ids, _VERIFY_BATCH):
        where = where_in(ID_COLUMN, batch)
        try:
            found = call_socrata(partial(client.get, resource_id, select=ID_COLUMN, where=where,
                                         limit=len(batch)), **retry)
        except (HTTPError, OSError) as exc:
            raise _failure(resource_id, "checking deleted rows", exc, list(batch)) from None
        remaining.extend(str(r[ID_COLUMN]) for r in found if ID_COLUMN in r)
    if remaining:
        raise SocrataRejectedRows(resource_id, remaining, "rows still present after a :deleted upsert")


def list_row_ids(client: Any, resource_id: str, id_field: str = ID_COLUMN, *, page_size: int = 10000,
                 **retry: Any) -> set[str]:
    """Every row id in the dataset, paged in id order (an unordered page could skip or repeat rows)."""
    return {str(row[id_field]) for row in list_rows(client, resource_id, (), id_field, page_size=page_size,
                                                    what="listing row ids", **retry)}


def list_rows(client: Any, resource_id: str, columns: Sequence[str], id_field: str = ID_COLUMN, *,
              page_size: int = 10000, what: str = "reading rows", **retry: Any) -> Iterator[dict[str, Any]]:
    """Every row of the dataset with ``columns`` (the id first), paged in id order: the drift audit's read."""
    select = ",".join(dict.fromkeys([id_field, *columns]))
    offset = 0
    while True:
        try:
            page = call_socrata(partial(client.get, resource_id, select=select, order=id_field,
                                        limit=page_size, offset=offset), **retry)
        except (HTTPError, OSError) as exc:
            raise _failure(resource_id, f"{what} at offset {offset}", exc) from None
        yield from (row for row in page if id_field in row)
        if len(page) < page_size:
            return
        offset += page_size
