"""The emulator's records: stored once as dicts and once as pre-serialized JSON, with cached orders.

Serving a page is a slice of cached ids joined as bytes, so a 1,000-row page costs well under a
millisecond of CPU after the first request; filters and sorts are computed once per table version.
Every public method takes the lock; callers never hold it while sleeping.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from emulators.knack import filters
from emulators.knack.dates import app_zone, to_local
from emulators.knack.fields import COMPUTED, RenderContext, plain_text
from emulators.knack.records import ObjectIds, build_record
from emulators.knack.views import Column, ViewInfo, project, resolve_views

Record = dict[str, Any]
_NUMERIC = filters.NUMBER_TYPES


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class NotFound(LookupError):
    """An unknown object, view or record id (HTTP 404)."""


class Table:
    """One object's records in insertion order."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.key: str = meta["key"]
        self.fields: list[dict[str, Any]] = list(meta.get("fields") or [])
        self.by_key = {f["key"]: f for f in self.fields}
        sort = meta.get("sort") or {}
        self.sort = [(sort["field"], str(sort.get("order") or "asc"))] if sort.get("field") in self.by_key else []
        self.identifier: str | None = meta.get("identifier")
        self.modified_key = next((f["key"] for f in self.fields if f.get("type") == "date_time"
                                  and "modified" in str(f.get("name", "")).lower()), None)
        self.auto_key = next((f["key"] for f in self.fields if f.get("type") == "auto_increment"), None)
        self.order: list[str] = []
        self.rows: dict[str, Record] = {}
        self.blobs: dict[str, bytes] = {}
        self.version = 0
        self.next_auto = 1

    def put(self, record: Record) -> None:
        rid = record["id"]
        if rid not in self.rows:
            self.order.append(rid)
        self.rows[rid] = record
        self.blobs[rid] = dumps(record)
        if self.auto_key and isinstance(record.get(self.auto_key + "_raw"), int | float):
            self.next_auto = max(self.next_auto, int(record[self.auto_key + "_raw"]) + 1)
        self.version += 1

    def remove(self, rid: str) -> None:
        del self.rows[rid], self.blobs[rid]
        self.order.remove(rid)
        self.version += 1


def sort_key(field: dict[str, Any], record: Record) -> tuple[int, Any]:
    """Blanks first, then numbers numerically, dates by timestamp, everything else as folded text."""
    key, kind = field["key"], field.get("type")
    raw = record.get(key + "_raw")
    if record.get(key, "") == "" and raw in (None, [], [None]):
        return (0, 0)
    if kind in _NUMERIC:
        return (1, filters.numeric_value_of(record, key))
    if kind == "date_time":
        return (1, raw.get("unix_timestamp", 0) if isinstance(raw, dict) else 0)
    if kind == "boolean":
        return (1, raw is True)
    return (1, filters.text_of(record, key).casefold())


class AppState:
    """All tables and views of one app, guarded by one lock."""

    def __init__(self, app: dict[str, Any], app_id: str, clock: Callable[[], datetime]) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.app_id = app_id
        self.meta = copy.deepcopy(app["metadata"]["application"])
        self.meta["id"] = app_id
        self.tz = app_zone(str((self.meta.get("settings") or {}).get("timezone") or "UTC"))
        self.tables = {obj["key"]: Table(obj) for obj in self.meta.get("objects", [])}
        for key, rows in (app.get("records") or {}).items():
            if key.startswith("view_"):
                continue  # view records are always derived from their source object
            table = self.tables.get(key)
            if table is None:
                raise ValueError(f"records given for {key}, which the metadata does not define")
            for row in rows:
                table.put(row)
        self.views = resolve_views(self.meta)
        self._ids = ObjectIds(random.Random())
        self._orders: OrderedDict[tuple, tuple[int, list[str]]] = OrderedDict()
        self._view_blobs: dict[str, dict[str, bytes]] = {}
        self.view_route_filters = False  # does a view's record route honour the view's filter (see ``one``)
        self._children: dict[str, tuple[int, dict[str, list[str]]]] = {}
        self.ctx = RenderContext(self.tz, app_id, self._identifier)

    # --- reads -----------------------------------------------------------------------------------

    def now_local(self) -> datetime:
        return to_local(self.clock(), self.tz)

    def table(self, key: str) -> Table:
        if key not in self.tables:
            raise NotFound(f"Object {key} not found")
        return self.tables[key]

    def view(self, scene: str, view: str) -> ViewInfo:
        info = self.views.get((scene, view))
        if info is None:
            raise NotFound(f"View {view} not found in scene {scene}")
        return info

    def metadata_bytes(self) -> bytes:
        with self.lock:
            counts = {key: len(t.rows) for key, t in self.tables.items()}
            meta = {**self.meta, "counts": {**(self.meta.get("counts") or {}), **counts,
                                            "total_entries": sum(counts.values())}}
            return dumps({"application": meta})

    def page(self, table: Table, view: ViewInfo | None, filter_text: str | None, sort_field: str | None,
             sort_order: str | None, page: int, rows: int) -> tuple[int, list[bytes]]:
        """(total matching records, serialized rows of the requested page)."""
        match, rules = filters.parse(filter_text)
        if sort_field:
            if sort_field not in table.by_key:
                raise filters.FilterError(f"unknown sort_field {sort_field!r}")
            sort = [(sort_field, (sort_order or "asc").lower())]
        else:
            sort = view.sort if view and view.sort else table.sort
        with self.lock:
            ids = self._ordered(table, view, match, rules, tuple(sort))
            chosen = ids[(page - 1) * rows: page * rows] if page >= 1 else []
            if view is None:
                return len(ids), [table.blobs[i] for i in chosen]
            return len(ids), [self._view_blob(view, table, i) for i in chosen]

    def one(self, table: Table, rid: str, view: ViewInfo | None = None) -> bytes:
        """One record; through a view, any record of its object (``view_route_filters`` False, what Knack is
        believed to do), or only one the view's filter keeps (True: 404 for the others)."""
        with self.lock:
            if rid not in table.rows:
                raise NotFound(f"Record {rid} not found in {table.key}")
            if view is not None and self.view_route_filters and view.criteria[1]:
                keep = filters.compile_filters(view.criteria[0], view.criteria[1], table.by_key, self.now_local)
                if keep is not None and not keep(table.rows[rid]):
                    raise NotFound(f"Record {rid} not found in {view.key}")
            return self._view_blob(view, table, rid) if view else table.blobs[rid]

    def set_view_filter(self, scene: str, view: str, rules: list[dict[str, Any]], match: str = "and") -> None:
        """Replace a view's filter (the Builder's "source" criteria): its listings keep matching records only."""
        with self.lock:
            info = self.view(scene, view)
            info.criteria = (match, list(rules))
            self._orders.clear()

    def records(self, key: str) -> list[Record]:
        """Independent copies of the stored records, in insertion order."""
        with self.lock:
            table = self.table(key)
            return [json.loads(table.blobs[i]) for i in table.order]

    # --- writes ----------------------------------------------------------------------------------

    def create(self, key: str, values: dict[str, Any]) -> Record:
        with self.lock:
            table = self.table(key)
            values = self._checked(table, values)
            now_local = self.now_local()
            if table.modified_key and table.modified_key not in values:
                values[table.modified_key] = now_local
            record = build_record(self._ids.new(self.clock()), table.fields, values, self.ctx,
                                  now_local=now_local, auto_number=table.next_auto)
            self._store(table, record)
            return copy.deepcopy(record)

    def update(self, key: str, rid: str, values: dict[str, Any], *, stamp: bool = True) -> Record:
        with self.lock:
            table = self.table(key)
            if rid not in table.rows:
                raise NotFound(f"Record {rid} not found in {key}")
            values = self._checked(table, values)
            if stamp and table.modified_key and table.modified_key not in values:
                values[table.modified_key] = self.now_local()
            record = build_record(rid, table.fields, values, self.ctx, base=table.rows[rid])
            self._store(table, record)
            return copy.deepcopy(record)

    def delete(self, key: str, rid: str) -> None:
        with self.lock:
            table = self.table(key)
            if rid not in table.rows:
                raise NotFound(f"Record {rid} not found in {key}")
            table.remove(rid)
            self._invalidate(table, rid)

    def edit_random(self, key: str, count: int, seed: int | None = None) -> list[str]:
        """Change a text field of ``count`` distinct records (and stamp their modified date)."""
        rng = random.Random(seed)
        with self.lock:
            table = self.table(key)
            texts = [f for f in table.fields if f.get("type") in ("paragraph_text", "short_text")
                     and f["key"] != table.identifier]
            texts.sort(key=lambda f: f.get("type") != "paragraph_text")  # notes first, then short text
            text_key = texts[0]["key"] if texts else None
            chosen = rng.sample(table.order, min(count, len(table.order)))
            for rid in chosen:
                values = {text_key: f"edited {rng.getrandbits(32):08x}"} if text_key else {}
                self.update(key, rid, values)
            return chosen

    # --- internals -------------------------------------------------------------------------------

    def _checked(self, table: Table, values: dict[str, Any] | None) -> dict[str, Any]:
        values = {k: v for k, v in (values or {}).items() if k != "id"}
        unknown = [k for k in values if k not in table.by_key]
        if unknown:
            raise ValueError(f"unknown field(s) for {table.key}: {', '.join(sorted(unknown))}")
        return {k: v for k, v in values.items() if table.by_key[k].get("type") not in COMPUTED}

    def _store(self, table: Table, record: Record) -> None:
        table.put(record)
        self._invalidate(table, record["id"])

    def _invalidate(self, table: Table, rid: str) -> None:
        for view in self.views.values():
            cache = self._view_blobs.get(view.key)
            if cache is None or table.key not in view.depends_on:
                continue
            if any(c.owner == table.key and c.via for c in view.columns):
                cache.clear()
            else:
                cache.pop(rid, None)

    def _identifier(self, obj: str, rid: str) -> str | None:
        table = self.tables.get(obj)
        record = table.rows.get(rid) if table else None
        if record is None:
            return None
        return plain_text(record.get(table.identifier or "", "")) if table.identifier else rid

    def _ordered(self, table: Table, view: ViewInfo | None, match: str, rules: list[dict[str, Any]],
                 sort: tuple[tuple[str, str], ...]) -> list[str]:
        criteria = view.criteria if view else ("and", [])
        cache_key = (table.key, json.dumps([match, rules, criteria], sort_keys=True), sort)
        cached = self._orders.get(cache_key)
        if cached is not None and cached[0] == table.version:
            self._orders.move_to_end(cache_key)
            return cached[1]
        predicate = filters.compile_filters(match, rules, table.by_key, self.now_local)
        view_filter = filters.compile_filters(criteria[0], criteria[1], table.by_key, self.now_local)
        rows = table.rows
        ids = [i for i in table.order if (predicate is None or predicate(rows[i]))
               and (view_filter is None or view_filter(rows[i]))]
        for field_key, order in reversed(sort):
            field = table.by_key[field_key]
            ids.sort(key=lambda i, f=field: sort_key(f, rows[i]), reverse=order == "desc")
        if not _clock_dependent(rules):
            self._orders[cache_key] = (table.version, ids)
            while len(self._orders) > 64:
                self._orders.popitem(last=False)
        return ids

    def _view_blob(self, view: ViewInfo, table: Table, rid: str) -> bytes:
        cache = self._view_blobs.setdefault(view.key, {})
        blob = cache.get(rid)
        if blob is None:
            blob = cache[rid] = dumps(project(table.rows[rid], view, self._connected))
        return blob

    def _connected(self, column: Column, record: Record) -> list[Record]:
        owner = self.tables[column.owner]
        if column.outbound:
            ids = [c.get("id") for c in record.get(column.via + "_raw") or [] if isinstance(c, dict)]
        else:
            ids = self._children_index(owner, column.via or "").get(record["id"], [])
        return [owner.rows[i] for i in ids if i in owner.rows]

    def _children_index(self, owner: Table, via: str) -> dict[str, list[str]]:
        cached = self._children.get(via)
        if cached is not None and cached[0] == owner.version:
            return cached[1]
        index: dict[str, list[str]] = {}
        for rid in owner.order:
            for conn in owner.rows[rid].get(via + "_raw") or []:
                if isinstance(conn, dict):
                    index.setdefault(str(conn.get("id")), []).append(rid)
        self._children[via] = (owner.version, index)
        return index


def _clock_dependent(rules: list[dict[str, Any]]) -> bool:
    """Rules relative to "today"/"now" must be re-evaluated on every request."""
    return any(isinstance(r, dict) and ("today" in str(r.get("operator")) or "current" in str(r.get("operator"))
               or "previous" in str(r.get("operator")) or "next" in str(r.get("operator"))) for r in rules)
