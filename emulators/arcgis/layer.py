"""One hosted layer or table: rows in an in-memory SQLite table, edited the way the service edits.

SQLite gives the where-clause subset, ordering, paging and the unique index on the match field for
free; this class adds what the hosting server does on top: OBJECTIDs from 1 that are never reused
(until truncate), server-made GlobalIDs, per-row results, and all-or-nothing rollback.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from .schema import (
    GLOBALID_FIELD,
    OID_FIELD,
    SQL_TYPES,
    LayerDefinition,
    RowError,
    check_attributes,
    check_geometry,
)
from .where import WhereError, to_sql

GEOMETRY_COLUMN = '"@geometry"'  # not a legal field name, so it can never clash with one


def _new_global_id() -> str:
    return "{" + str(uuid.uuid4()).upper() + "}"


def _ok(oid: int, global_id: str | None) -> dict[str, Any]:
    return {"objectId": oid, "uniqueId": oid, "globalId": global_id, "success": True}


def _failed(oid: int | None, error: RowError) -> dict[str, Any]:
    return {"objectId": oid, "uniqueId": oid, "globalId": None, "success": False,
            "error": {"code": error.code, "description": error.description}}


class LayerStore:
    """Rows of one layer or table plus the edit and query operations on them."""

    def __init__(self, defn: LayerDefinition, layer_id: int) -> None:
        self.defn = defn
        self.layer_id = layer_id
        self.lock = threading.RLock()
        self.next_oid = 1
        self.deleted: list[dict[str, Any]] = []   # attributes of every committed delete, in order (for tests)
        self._deleting: list[dict[str, Any]] = []
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        columns = [f'"{OID_FIELD}" INTEGER PRIMARY KEY', f'"{GLOBALID_FIELD}" TEXT NOT NULL UNIQUE']
        columns += [f'"{f.name}" {SQL_TYPES[f.type]}' for f in defn.user_fields]
        self._db.execute(f"CREATE TABLE features ({', '.join(columns)}, {GEOMETRY_COLUMN} TEXT)")
        for fld in defn.user_fields:
            if fld.unique:
                self._db.execute(f'CREATE UNIQUE INDEX "uidx_{fld.name}" ON features ("{fld.name}")')
        self._select = ", ".join(f'"{f.name}"' for f in defn.fields)

    # ----- edits ---------------------------------------------------------------------------------
    def apply_edits(self, adds: list[Any], updates: list[Any], deletes: list[Any], *, rollback: bool,
                    use_global_ids: bool = False) -> tuple[dict[str, list[dict[str, Any]]], bool]:
        """Apply adds, then updates, then deletes; returns the per-row results and whether it rolled back."""
        with self.lock:
            saved_oid = self.next_oid
            self._deleting = []
            self._db.execute("BEGIN")
            results = {
                "addResults": [self._row(self._add, f, use_global_ids) for f in adds],
                "updateResults": [self._row(self._update, f, use_global_ids) for f in updates],
                "deleteResults": [self._row(self._delete, d, use_global_ids) for d in deletes],
            }
            failed = any(not r["success"] for rows in results.values() for r in rows)
            if failed and rollback:
                self._db.execute("ROLLBACK")
                self.next_oid = saved_oid
                rolled = RowError("Operation rolled back.", 1003)
                for rows in results.values():
                    for i, r in enumerate(rows):
                        if r["success"]:
                            rows[i] = _failed(r["objectId"], rolled)
                return results, True
            self._db.execute("COMMIT")
            self.deleted.extend(self._deleting)
            return results, False

    def _row(self, op: Any, item: Any, use_global_ids: bool) -> dict[str, Any]:
        self._db.execute("SAVEPOINT row")
        try:
            result = op(item, use_global_ids)
        except RowError as exc:
            self._db.execute("ROLLBACK TO row")
            result = _failed(getattr(exc, "oid", None), exc)
        except sqlite3.IntegrityError as exc:
            self._db.execute("ROLLBACK TO row")
            result = _failed(None, self._integrity_error(exc, item))
        self._db.execute("RELEASE row")
        return result

    def _integrity_error(self, exc: sqlite3.IntegrityError, item: Any) -> RowError:
        name = str(exc).rsplit(".", 1)[-1]
        attrs = item.get("attributes") or {} if isinstance(item, dict) else {}
        value = next((v for k, v in attrs.items() if k.lower() == name.lower()), None)
        return RowError(f"Cannot insert duplicate key row in object '{self.defn.name}' with unique index "
                        f"'uidx_{name}'. The duplicate key value is ({value}).")

    def _add(self, feature: Any, use_global_ids: bool) -> dict[str, Any]:
        if not isinstance(feature, dict):
            raise RowError("Each feature must be an object with 'attributes'.")
        raw = feature.get("attributes") or {}
        attrs = check_attributes(self.defn, raw)
        geometry = check_geometry(self.defn, feature.get("geometry"))
        global_id = _new_global_id()
        supplied = next((v for k, v in raw.items() if k.lower() == GLOBALID_FIELD.lower()), None)
        if use_global_ids and supplied:
            global_id = str(supplied)
        oid = self.next_oid
        self._insert(oid, global_id, attrs, geometry)
        self.next_oid += 1
        return _ok(oid, global_id)

    def _insert(self, oid: int, global_id: str, attrs: dict[str, Any], geometry: Any) -> None:
        names = [f'"{OID_FIELD}"', f'"{GLOBALID_FIELD}"', *[f'"{k}"' for k in attrs], GEOMETRY_COLUMN]
        values = [oid, global_id, *attrs.values(), json.dumps(geometry) if geometry else None]
        marks = ", ".join("?" * len(values))
        self._db.execute(f"INSERT INTO features ({', '.join(names)}) VALUES ({marks})", values)

    def _locate(self, feature: dict[str, Any], use_global_ids: bool) -> tuple[int, str]:
        raw = feature.get("attributes") or {}
        key_name = GLOBALID_FIELD if use_global_ids else OID_FIELD
        key = next((v for k, v in raw.items() if k.lower() == key_name.lower()), None)
        if key is None:
            raise RowError(f"An update needs the '{key_name}' attribute.")
        row = self._db.execute(f'SELECT "{OID_FIELD}", "{GLOBALID_FIELD}" FROM features WHERE "{key_name}" = ?',
                               (key,)).fetchone()
        if row is None:
            error = RowError("Object is missing.", 1019)
            error.oid = key if isinstance(key, int) else None  # type: ignore[attr-defined]
            raise error
        return int(row[0]), str(row[1])

    def _update(self, feature: Any, use_global_ids: bool) -> dict[str, Any]:
        if not isinstance(feature, dict):
            raise RowError("Each feature must be an object with 'attributes'.")
        oid, global_id = self._locate(feature, use_global_ids)
        try:
            attrs = check_attributes(self.defn, feature.get("attributes"))
            sets = [f'"{k}" = ?' for k in attrs]
            values: list[Any] = list(attrs.values())
            if "geometry" in feature:
                geometry = check_geometry(self.defn, feature["geometry"])
                sets.append(f"{GEOMETRY_COLUMN} = ?")
                values.append(json.dumps(geometry) if geometry else None)
        except RowError as exc:
            exc.oid = oid  # type: ignore[attr-defined]
            raise
        if sets:
            self._db.execute(f'UPDATE features SET {", ".join(sets)} WHERE "{OID_FIELD}" = ?', [*values, oid])
        return _ok(oid, global_id)

    def _delete(self, key: Any, use_global_ids: bool) -> dict[str, Any]:
        column = GLOBALID_FIELD if use_global_ids else OID_FIELD
        if not use_global_ids:
            try:
                key = int(str(key).strip())
            except ValueError:
                raise RowError(f"Invalid object id {key!r}.") from None
        row = self._db.execute(f'SELECT "{OID_FIELD}", "{GLOBALID_FIELD}" FROM features WHERE "{column}" = ?',
                               (key,)).fetchone()
        if row is None:
            error = RowError("Object is missing.", 1019)
            error.oid = key if isinstance(key, int) else None  # type: ignore[attr-defined]
            raise error
        cursor = self._db.execute(f'SELECT {self._select} FROM features WHERE "{OID_FIELD}" = ?', (row[0],))
        self._deleting.append(dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True)))
        self._db.execute(f'DELETE FROM features WHERE "{OID_FIELD}" = ?', (row[0],))
        return {**_ok(int(row[0]), str(row[1]))}

    def truncate(self) -> None:
        """Delete every row and restart OBJECTIDs at 1, as the admin truncate does."""
        with self.lock:
            self._db.execute("DELETE FROM features")
            self.next_oid = 1

    # ----- reads ---------------------------------------------------------------------------------
    def filter_sql(self, where: str | None, object_ids: str | None) -> str:
        """The SQL condition for a where clause AND an objectIds list; WhereError when invalid."""
        sql = to_sql(where, self.defn)
        if object_ids:
            try:
                ids = [int(part) for part in str(object_ids).replace("[", "").replace("]", "").split(",")
                       if part.strip()]
            except ValueError:
                raise WhereError("'objectIds' must be a comma-separated list of integers") from None
            sql = f'({sql}) AND "{OID_FIELD}" IN ({", ".join(map(str, ids)) or "NULL"})'
        return sql

    def order_sql(self, order_by: str | None) -> str:
        """An ORDER BY list from ``orderByFields`` ("a ASC, b DESC"), always ending with OBJECTID."""
        parts = []
        for item in (order_by or "").split(","):
            words = item.split()
            if not words:
                continue
            fld = self.defn.field(words[0])
            direction = words[1].upper() if len(words) > 1 else "ASC"
            if fld is None or direction not in ("ASC", "DESC") or len(words) > 2:
                raise WhereError(f"'orderByFields' entry {item.strip()!r} is invalid")
            parts.append(f'"{fld.name}" {direction}')
        parts.append(f'"{OID_FIELD}" ASC')
        return ", ".join(parts)

    def count(self, condition: str) -> int:
        with self.lock:
            return int(self._execute(f"SELECT COUNT(*) FROM features WHERE {condition}").fetchone()[0])

    def object_ids(self, condition: str, order: str) -> list[int]:
        with self.lock:
            rows = self._execute(f'SELECT "{OID_FIELD}" FROM features WHERE {condition} ORDER BY {order}')
            return [int(r[0]) for r in rows]

    def rows(self, condition: str, order: str, offset: int, limit: int) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, geometry) pairs for one page, every field included."""
        with self.lock:
            cursor = self._execute(f"SELECT {self._select}, {GEOMETRY_COLUMN} FROM features WHERE {condition} "
                                   f"ORDER BY {order} LIMIT {int(limit)} OFFSET {int(offset)}")
            names = [f.name for f in self.defn.fields]
            return [(dict(zip(names, row[:-1], strict=True)), json.loads(row[-1]) if row[-1] else None)
                    for row in cursor.fetchall()]

    def distinct(self, condition: str, names: list[str], order: str) -> list[dict[str, Any]]:
        with self.lock:
            cols = ", ".join(f'"{n}"' for n in names)
            order_cols = ", ".join(f'"{n}"' for n in names)
            rows = self._execute(f"SELECT DISTINCT {cols} FROM features WHERE {condition} ORDER BY {order_cols}")
            return [dict(zip(names, r, strict=True)) for r in rows.fetchall()]

    def _execute(self, sql: str) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql)
        except sqlite3.Error as exc:
            raise WhereError(f"invalid clause: {exc}") from None

    def oids_by_value(self, field_name: str, values: Iterable[Any]) -> dict[Any, int]:
        """OBJECTID per value of a (unique) field, for append's upsert."""
        with self.lock:
            out: dict[Any, int] = {}
            for value in values:
                row = self._db.execute(f'SELECT "{OID_FIELD}" FROM features WHERE "{field_name}" = ?',
                                       (value,)).fetchone()
                if row is not None:
                    out[value] = int(row[0])
            return out

    def features(self) -> list[dict[str, Any]]:
        """Every row as ``{"attributes": ..., "geometry": ...}``, by OBJECTID."""
        return [{"attributes": attrs, "geometry": geometry}
                for attrs, geometry in self.rows("1=1", f'"{OID_FIELD}"', 0, 2**62)]
