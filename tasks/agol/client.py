"""ArcGIS Online I/O through the ``arcgis`` package: open a layer, find features by record id,
upsert, delete, list. No Prefect here: ``tasks/agol/task.py`` calls these.

Retries (``tasks/retry.py``) cover only what can pass by itself: "Your request has timed out" (504
envelopes), 5xx and dropped connections, with exponential backoff and jitter. A per-feature failure is never retried:
it is collected, the other chunks still land, and ``AgolEditFailed`` names every refused record at
the end. An expired token (498/499) signs in again once, with a new ``GIS``: the client never does
that itself, and after a 498 it stops sending the token to that URL for good.

Edits are idempotent per chunk: each attempt first looks up which record ids already have features
and turns those into updates, so a retry after a timeout that was applied server-side updates
instead of adding a duplicate.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import requests
from tenacity import RetryCallState, Retrying

from tasks.agol import compat
from tasks.domain.agol import MATCH_FIELD, LayerInfo, edit_failures, refusal
from tasks.domain.batching import chunked
from tasks.domain.deadlines import RequestDeadlines, default_deadlines
from tasks.domain.errors import AgolError, ConfigError, LockLost
from tasks.domain.text import where_in
from tasks.retry import exponential_jitter, failure_of, is_transient, retrying
from tasks.wire import guard_session

log = logging.getLogger(__name__)
T = TypeVar("T")

ATTEMPTS = 5
BACKOFF_SECONDS = 2.0
LOOKUP_BATCH = 500  # record ids per lookup query
REQUEST_TIMEOUT = 60  # seconds per request (``arcgis`` waits 600 by default)
_CODE = re.compile(r"Error Code: (\d+)|['\"]code['\"]: (\d+)")
_TRANSIENT_CODES = frozenset({500, 502, 503, 504})
# a gateway's own 5xx page, passed up by ``arcgis`` as the exception text (the session no longer retries it)
_HTTP_5XX = re.compile(r"\b50[0234]\s+(Internal Server Error|Bad Gateway|Service Unavailable|Gateway Time-?out)",
                       re.IGNORECASE)
_TOKEN_PARAM = re.compile(r"(token=)[^&\s'\"]+", re.IGNORECASE)


def error_code(exc: BaseException) -> int | None:
    """The service's error code carried in an exception raised by the ``arcgis`` client."""
    match = _CODE.search(str(exc))
    return int(match.group(1) or match.group(2)) if match else None


def is_token_error(exc: BaseException) -> bool:
    """Expired or missing token: the client re-sends once without it, so a 498 ends as a 499."""
    if isinstance(exc, AgolError):
        return False
    text = str(exc).lower()
    return error_code(exc) in (498, 499) or "invalid token" in text or "token required" in text


def is_transient_agol(exc: BaseException) -> bool:
    """Timeouts (the 504 envelope), 5xx, dropped connections; never a 400 or a validation error."""
    if isinstance(exc, AgolError):
        return False
    if is_transient(exc) or isinstance(exc, requests.RequestException):
        return True  # includes the client's own exhausted 5xx retries (RetryError)
    text = str(exc)
    return ("your request has timed out" in text.lower() or error_code(exc) in _TRANSIENT_CODES
            or _HTTP_5XX.search(text) is not None)


class AgolTarget:
    """An open layer or table plus what it takes to open it again (a new sign-in after token expiry)."""

    def __init__(self, layer: Any, info: LayerInfo | None = None, *, reopen: Callable[[], Any] | None = None,
                 attempts: int = ATTEMPTS, backoff: float = BACKOFF_SECONDS) -> None:
        self.layer = layer
        self._reopen = reopen
        self.attempts = attempts
        self.backoff = backoff
        self.info = info or LayerInfo.from_properties(dict(layer.properties))

    def __repr__(self) -> str:
        return f"AgolTarget({self.info.name!r}, url={getattr(self.layer, 'url', '?')!r})"

    @property
    def name(self) -> str:
        return self.info.name

    def call(self, action: str, func: Callable[[Any], T]) -> T:
        """Run ``func(layer)``: transient faults retried with backoff, one re-login on token expiry."""
        relogged = False
        while True:
            try:
                return self.retrying(action)(lambda: func(self.layer))
            except (AgolError, LockLost):
                raise
            except Exception as exc:
                if is_token_error(exc) and not relogged and self._reopen is not None:
                    log.warning("ArcGIS %s: token rejected during %s; signing in again", self.name, action)
                    self.layer = self._reopen()
                    relogged = True
                    continue
                raise AgolError(f"ArcGIS layer {self.name}: {action} failed: {_first_line(exc)}") from None

    def retrying(self, action: str) -> Retrying:
        return retry_policy(self.name, action, self.attempts, self.backoff)


def retry_policy(name: str, action: str, attempts: int = ATTEMPTS, backoff: float = BACKOFF_SECONDS) -> Retrying:
    """Transient faults only, ``attempts`` tries, exponential backoff with jitter, each retry logged."""
    def log_retry(state: RetryCallState) -> None:
        exc = failure_of(state)
        log.warning("ArcGIS %s: %s failed (%s), attempt %d; retrying", name, action,
                    _first_line(exc) if exc else "?", state.attempt_number)

    return retrying(attempts=attempts, wait=exponential_jitter(backoff), retry_on=is_transient_agol,
                    before_sleep=log_retry)


def _first_line(exc: BaseException) -> str:
    """The exception's first line for logs and errors; a ``token=`` in a URL is masked."""
    text = str(exc).strip().splitlines()
    line = _TOKEN_PARAM.sub(r"\1***", text[0] if text else "")
    return f"{type(exc).__name__}: {line}".rstrip(": ")


def open_target(creds: Any, service_id: str, layer_id: int, kind: str, *, match_field: str = MATCH_FIELD,
                attempts: int = ATTEMPTS, backoff: float = BACKOFF_SECONDS,
                deadlines: RequestDeadlines | None = None) -> AgolTarget:
    """Sign in (``creds.get_gis()``) and open layer ``layer_id`` of item ``service_id`` as a layer or table.

    Fails with ConfigError when the item is missing, the layer is of the other kind, or it has no text
    ``match_field`` to hold the record id: each would otherwise fail only after edits started.
    """
    def connect() -> Any:
        from arcgis.features import FeatureLayer, Table

        gis = configure_session(creds.get_gis(timeout=REQUEST_TIMEOUT), deadlines=deadlines,
                                what=f"ArcGIS item {service_id}")
        item = gis.content.get(service_id)
        if item is None or not getattr(item, "url", None):
            raise ConfigError(f"ArcGIS item {service_id} does not exist or is not shared with the publishing user")
        layer_cls = Table if kind == "table" else FeatureLayer
        return layer_cls(f"{item.url.rstrip('/')}/{layer_id}", gis)

    def describe() -> tuple[Any, dict[str, Any]]:
        layer = connect()
        return layer, dict(layer.properties)

    try:
        layer, props = retry_policy(service_id, f"opening layer {layer_id}", attempts, backoff)(describe)
    except (AgolError, ConfigError, compat.ArcgisIncompatible):
        raise
    except Exception as exc:
        raise AgolError(f"ArcGIS item {service_id} layer {layer_id}: cannot open: {_first_line(exc)}") from None
    target = AgolTarget(layer, LayerInfo.from_properties(props), reopen=connect, attempts=attempts,
                        backoff=backoff)
    actual = "table" if target.info.geometry_type is None else "layer"
    if actual != kind:
        raise ConfigError(f"ArcGIS item {service_id} layer {layer_id} ({target.name}) is a {actual}, "
                          f"but the container config says agol_kind={kind!r}")
    target.info.match_field(match_field)
    return target


def configure_session(gis: Any, timeout: float = REQUEST_TIMEOUT, *, deadlines: RequestDeadlines | None = None,
                      what: str = "ArcGIS") -> Any:
    """Bound every request of ``gis`` by ``timeout`` per read and by ``deadlines`` whole (``tasks/wire.py``),
    and turn off the session's own retries (every retry goes through ``AgolTarget.call`` instead, whose
    edits look up existing features first). Each of these reaches into the client's private internals:
    ``tasks/agol/compat.py`` does it, checking the arcgis version and each attribute first.
    """
    compat.check_version()
    compat.set_request_timeout(gis, timeout)
    compat.turn_off_session_retries(gis)
    # each request whole within its deadline, and cut to the publish's time left (tasks/deadline.py)
    guard_session(compat.requests_session(gis), deadlines or default_deadlines(), what)
    return gis


def _as_target(layer: AgolTarget | Any) -> AgolTarget:
    return layer if isinstance(layer, AgolTarget) else AgolTarget(layer)


def _key(attributes: Mapping[str, Any], match_field: str) -> str | None:
    value = next((v for k, v in attributes.items() if k.lower() == match_field.lower()), None)
    return None if value in (None, "") else str(value)


def _object_ids(lyr: Any, where: str, match_field: str, oid_field: str) -> dict[str, list[int]]:
    """Record id → OBJECTIDs (ascending; more than one means duplicates) of the features ``where`` selects
    (the client pages past maxRecordCount); no retries here."""
    result = lyr.query(where=where, out_fields=match_field, return_geometry=False)
    found: dict[str, list[int]] = {}
    for feature in result.features:
        key = _key(feature.attributes, match_field)
        if key is not None:
            found.setdefault(key, []).append(int(feature.attributes[oid_field]))
    return {k: sorted(v) for k, v in found.items()}


def _lookup(lyr: Any, ids: Sequence[str], match_field: str, oid_field: str) -> dict[str, list[int]]:
    """The OBJECTIDs of ``ids``: one ``IN`` query per 500 ids (the client POSTs it when the URL would be long)."""
    found: dict[str, list[int]] = {}
    for batch in chunked(ids, LOOKUP_BATCH):
        found.update(_object_ids(lyr, where_in(match_field, batch), match_field, oid_field))
    return found


def list_ids(layer: AgolTarget | Any, match_field: str = MATCH_FIELD) -> dict[str, list[int]]:
    """Every record id in the layer and its OBJECTIDs."""
    target = _as_target(layer)
    return target.call("listing ids", lambda lyr: _object_ids(lyr, "1=1", match_field, target.info.object_id_field))


def _edit(lyr: Any, ids: Mapping[str, list[str]], **edits: Any) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """``edit_features`` and its per-row outcome. A refusal of the whole request (the rollback envelope,
    a 400) becomes a failure of each row; transient and token errors propagate to the retry loop."""
    try:
        response = lyr.edit_features(**edits)
    except Exception as exc:
        if is_transient_agol(exc) or is_token_error(exc):
            raise
        message = " ".join(str(exc).split())
        return {}, [(i, message) for kind in ("adds", "updates", "deletes") for i in ids.get(kind, [])]
    return edit_failures(response, ids)


def _upsert_chunk(target: AgolTarget, features: Sequence[Mapping[str, Any]], match_field: str,
                  rollback: bool) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Look up the chunk's ids, then add new ones, update existing ones and delete their duplicates."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for feature in features:
        record_id = _key(feature.get("attributes") or {}, match_field)
        if record_id is None:
            raise ValueError(f"ArcGIS layer {target.name}: a feature has no {match_field!r} attribute")
        by_id[record_id] = feature  # the last copy of a repeated id wins
    oid_field = target.info.object_id_field

    def attempt(lyr: Any) -> tuple[dict[str, int], list[tuple[str, str]]]:
        existing = _lookup(lyr, list(by_id), match_field, oid_field)
        adds, updates, deletes = [], [], []
        ids: dict[str, list[str]] = {"adds": [], "updates": [], "deletes": []}
        for record_id, feature in by_id.items():
            oids = existing.get(record_id)
            if not oids:
                adds.append(dict(feature))
                ids["adds"].append(record_id)
                continue
            updates.append({**feature, "attributes": {**feature["attributes"], oid_field: oids[0]}})
            ids["updates"].append(record_id)
            deletes.extend(oids[1:])
            ids["deletes"].extend([record_id] * (len(oids) - 1))
        counts, failures = _edit(lyr, ids, adds=adds or None, updates=updates or None, deletes=deletes or None,
                                 rollback_on_failure=rollback)
        counts["duplicates_deleted"] = counts.pop("deleted", 0)
        return counts, failures

    return target.call(f"upserting {len(by_id)} features", attempt)


def upsert_features(layer: AgolTarget | Any, features: Iterable[Mapping[str, Any]], *,
                    match_field: str = MATCH_FIELD, chunk_size: int = 1000,
                    rollback: bool = False) -> dict[str, int]:
    """Add or update features by record id, chunk by chunk; returns counts.

    Features are consumed lazily, so memory stays flat. With ``rollback=False`` a refused feature does
    not hold back the rest of its chunk; with ``True`` its chunk lands all or nothing. Either way every
    refusal is raised together, as one ``AgolEditFailed``, after the last chunk.
    """
    target = _as_target(layer)
    totals = {"features": 0, "added": 0, "updated": 0, "duplicates_deleted": 0, "chunks": 0}
    failures: list[tuple[str, str]] = []
    for number, chunk in enumerate(chunked(features, chunk_size), start=1):
        counts, failed = _upsert_chunk(target, chunk, match_field, rollback)
        for key in ("added", "updated", "duplicates_deleted"):
            totals[key] += counts.get(key, 0)
        totals["features"] += len(chunk)
        totals["chunks"] += 1
        failures.extend(failed)
        log.info("ArcGIS %s: chunk %d, %d features (%d added, %d updated, %d duplicates deleted, %d refused)",
                 target.name, number, len(chunk), counts.get("added", 0), counts.get("updated", 0),
                 counts.get("duplicates_deleted", 0), len(failed))
    if failures:
        raise refusal(target.name, failures)
    return totals


def delete_ids(layer: AgolTarget | Any, ids: Iterable[str], match_field: str = MATCH_FIELD,
               chunk_size: int = 1000) -> int:
    """Delete every feature holding one of ``ids``; ids already gone are fine (a re-run repeats them)."""
    target = _as_target(layer)
    deleted = 0
    for chunk in chunked(dict.fromkeys(str(i) for i in ids), chunk_size):
        def attempt(lyr: Any, batch: list[str] = chunk) -> int:
            existing = _lookup(lyr, batch, match_field, target.info.object_id_field)
            owners = [record_id for record_id in batch for _ in existing.get(record_id, [])]
            if not owners:
                return 0
            oids = [oid for record_id in batch for oid in existing.get(record_id, [])]
            counts, failures = _edit(lyr, {"deletes": owners}, deletes=oids, rollback_on_failure=False)
            if failures:
                raise refusal(target.name, failures)
            return counts.get("deleted", 0)

        deleted += target.call(f"deleting {len(chunk)} ids", attempt)
    log.info("ArcGIS %s: deleted %d features", target.name, deleted)
    return deleted


def list_features(layer: AgolTarget | Any, fields: Sequence[str], match_field: str = MATCH_FIELD,
                  geometry: bool = True) -> list[tuple[str, dict[str, Any], Any]]:
    """Every feature as (record id, attributes of ``fields``, geometry): the drift audit's read (the client
    pages past maxRecordCount)."""
    target = _as_target(layer)
    wanted = ",".join(dict.fromkeys([match_field, *fields]))

    def read(lyr: Any) -> list[tuple[str, dict[str, Any], Any]]:
        result = lyr.query(where="1=1", out_fields=wanted, return_geometry=geometry)
        out = []
        for feature in result.features:
            key = _key(feature.attributes, match_field)
            if key is not None:
                out.append((key, dict(feature.attributes), feature.geometry if geometry else None))
        return out

    return target.call("reading features", read)
