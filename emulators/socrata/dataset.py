"""One dataset: its schema (served as ``/api/views``), its rows, and the SODA write and read rules.

Writes are validated whole before anything is stored, so a 400 never leaves half a batch behind
(socrata-api.md §2 and §10). Callers hold the emulator's lock around every method here.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from . import soql
from .errors import SodaError, malformed_query
from .values import SUPPORTED_TYPES, parse_value, render_value, row_key

SYSTEM_FIELDS = (":id", ":created_at", ":updated_at")
_SYSTEM_TYPES = {":id": "text", ":created_at": "date", ":updated_at": "date"}
_DATASET_ID = re.compile(r"^[a-z0-9]{4}-[a-z0-9]{4}$")
_FIELD_NAME = re.compile(r"^[a-z_@][a-z0-9_]*$")
_UNSUPPORTED_PARAMS = ("$group", "$having", "$q", "$query", "$search")
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _system_id(seq: int) -> str:
    """``row-xxxx~xxxx~xxxx``, fixed width so that ordering by ``:id`` is insertion order."""
    digits = ""
    for _ in range(12):
        seq, rest = divmod(seq, 36)
        digits = _ID_ALPHABET[rest] + digits
    return f"row-{digits[:4]}~{digits[4:8]}~{digits[8:]}"


class Dataset:
    """A dataset made from a schema ``{"name", "row_identifier", "columns": [{fieldName, name, dataTypeName}]}``."""

    def __init__(self, dataset_id: str, schema: dict[str, Any], first_column_id: int) -> None:
        if not _DATASET_ID.match(dataset_id):
            raise ValueError(f"dataset id {dataset_id!r} is not a 4x4 id like 'abcd-1234'")
        columns = schema.get("columns") or []
        self.id = dataset_id
        self.name = str(schema.get("name") or dataset_id)
        self.description = str(schema.get("description") or "")
        self.columns: list[dict[str, Any]] = []
        for position, col in enumerate(columns, start=1):
            field, type_name = col.get("fieldName"), col.get("dataTypeName")
            if not isinstance(field, str) or not _FIELD_NAME.match(field):
                raise ValueError(f"{dataset_id}: bad fieldName {field!r}")
            if type_name not in SUPPORTED_TYPES:
                raise ValueError(f"{dataset_id}: column {field!r} has unsupported type {type_name!r}")
            self.columns.append({"id": first_column_id + position - 1, "name": str(col.get("name") or field),
                                 "fieldName": field, "dataTypeName": type_name, "position": position})
        self.types = {c["fieldName"]: c["dataTypeName"] for c in self.columns}
        if len(self.types) != len(self.columns):
            raise ValueError(f"{dataset_id}: duplicate fieldName")
        self.row_identifier: str | None = schema.get("row_identifier")
        if self.row_identifier is not None and self.row_identifier not in self.types:
            raise ValueError(f"{dataset_id}: row_identifier {self.row_identifier!r} is not a column")
        self.rows: dict[str, dict[str, Any]] = {}  # by :id, in insertion order
        self.by_key: dict[str, str] = {}  # row-identifier value -> :id
        self.seq = 0
        self.created_at = int(time.time())
        self.rows_updated_at = self.created_at

    # --- metadata -------------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """The ``GET /api/views/{id}.json`` object (socrata-api.md §4)."""
        columns = [{**c, "renderTypeName": c["dataTypeName"], "tableColumnId": c["id"], "description": "",
                    "format": {}} for c in self.columns]
        view: dict[str, Any] = {
            "id": self.id, "name": self.name, "description": self.description, "assetType": "dataset",
            "displayType": "table", "viewType": "tabular", "newBackend": True, "publicationStage": "published",
            "createdAt": self.created_at, "rowsUpdatedAt": self.rows_updated_at, "columns": columns,
        }
        if self.row_identifier is not None:
            ident = next(c for c in self.columns if c["fieldName"] == self.row_identifier)
            view["rowIdentifierColumnId"] = ident["id"]
        return view

    # --- writes ---------------------------------------------------------------------------------

    def write(self, payload: Any, *, replace: bool = False) -> dict[str, int]:
        """Upsert (POST) or replace (PUT) a parsed body; returns the six-key counts."""
        batch = [payload] if isinstance(payload, dict) else payload
        if not isinstance(batch, list):
            raise SodaError(400, "The request body must be a JSON array of row objects")
        operations = [self._validate(i, row) for i, row in enumerate(batch)]
        counts = {"Errors": 0, "Rows Created": 0, "Rows Updated": 0, "Rows Deleted": 0,
                  "By RowIdentifier": 0, "By SID": 0}
        if replace:
            self.rows.clear()
            self.by_key.clear()
        now = datetime.now(UTC)
        for deleted, key, sid, values in operations:
            target = self.by_key.get(key) if key is not None else sid
            exists = target is not None and target in self.rows
            if deleted:
                if exists:
                    self._remove(target)
                    counts["Rows Deleted"] += 1
                else:
                    counts["Errors"] += 1
            elif exists:
                self.rows[target].update(values)
                self.rows[target][":updated_at"] = now
                counts["Rows Updated"] += 1
            elif sid is not None and key is None:
                counts["Errors"] += 1  # an unknown :id on a dataset without a row identifier
            else:
                self.seq += 1
                new_sid = _system_id(self.seq)
                self.rows[new_sid] = {**values, ":id": new_sid, ":created_at": now, ":updated_at": now}
                if key is not None:
                    self.by_key[key] = new_sid
                counts["Rows Created"] += 1
        self.rows_updated_at = int(time.time())
        return counts

    def _validate(self, index: int, row: Any) -> tuple[bool, str | None, str | None, dict[str, Any]]:
        """Check one payload row; returns (deleted, identifier key, :id, stored values)."""
        if not isinstance(row, dict):
            raise SodaError(400, f"Row {index} is not a JSON object")
        for name in row:
            if name not in self.types and name not in (":id", ":deleted"):
                raise SodaError(400, f"Illegal field name sent: {name}")
        deleted = row.get(":deleted", False)
        if not isinstance(deleted, bool):
            raise SodaError(400, f"Row {index}: :deleted must be true or false")
        sid = row.get(":id")
        if sid is not None and not isinstance(sid, str):
            raise SodaError(400, f"Row {index}: :id must be a string")
        values = {}
        for name, value in row.items():
            if name in self.types and not (deleted and name != self.row_identifier):
                try:
                    values[name] = parse_value(self.types[name], value)
                except ValueError as exc:
                    raise SodaError(400, f"Invalid value for column `{name}` ({self.types[name]}): {exc}",
                                    data={"row": index, "field": name}) from exc
        key = None
        if self.row_identifier is not None:
            ident = values.get(self.row_identifier)
            if ident is None:
                raise SodaError(400, f"Row {index} lacks a value for the row identifier "
                                     f"`{self.row_identifier}` (missing or null)", data={"row": index})
            key = row_key(self.types[self.row_identifier], ident)
        elif deleted and sid is None:
            raise SodaError(400, f"Row {index}: deleting from a dataset without a row identifier needs :id")
        return deleted, key, sid, values

    def _remove(self, sid: str) -> None:
        row = self.rows.pop(sid)
        if self.row_identifier is not None:
            self.by_key.pop(row_key(self.types[self.row_identifier], row[self.row_identifier]), None)

    def find(self, row_id: str) -> str | None:
        """The ``:id`` of a row named in a URL by its identifier value or its ``:id``."""
        if self.row_identifier is not None:
            try:
                ident = parse_value(self.types[self.row_identifier], row_id)
            except ValueError:
                ident = None
            if ident is not None and row_key(self.types[self.row_identifier], ident) in self.by_key:
                return self.by_key[row_key(self.types[self.row_identifier], ident)]
        return row_id if row_id in self.rows else None

    def delete_row(self, row_id: str) -> list[dict[str, str]]:
        """``DELETE /resource/{id}/{rowid}.json``."""
        sid = self.find(row_id)
        if sid is None:
            raise SodaError(404, f"Row {row_id} not found in {self.id}", "not_found")
        self._remove(sid)
        self.rows_updated_at = int(time.time())
        return [{"typ": "delete", "id": row_id}]

    # --- reads ----------------------------------------------------------------------------------

    @property
    def all_types(self) -> dict[str, str]:
        return {**self.types, **_SYSTEM_TYPES}

    def render(self, row: dict[str, Any], shown: list[str]) -> dict[str, Any]:
        """One stored row as JSON output: null cells left out."""
        types = self.all_types
        return {n: render_value(types[n], row[n]) for n in shown if row.get(n) is not None}

    def query(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /resource/{id}.json`` with the SoQL subset described in ``soql``."""
        types = self.all_types
        shown = list(self.types)
        if params.get("$$exclude_system_fields", "true").lower() == "false":
            shown = [*SYSTEM_FIELDS, *shown]
        predicates: list[soql.Predicate] = []
        for name, value in params.items():
            if name in _UNSUPPORTED_PARAMS:
                raise malformed_query(f"{name} is not supported by the Socrata emulator")
            if name.startswith("$$"):
                continue
            if name.startswith("$"):
                if name not in ("$select", "$where", "$order", "$limit", "$offset"):
                    raise SodaError(400, f"Unrecognized arguments [{name}]", "query.soql.invalid-parameter")
                continue
            predicates.append(soql.equality_filter(name, value, types))
        if "$where" in params:
            predicates.append(soql.compile_where(params["$where"], types))
        rows = [r for r in self.rows.values() if all(p(r) is True for p in predicates)]
        if "$order" in params:
            rows = soql.sort_rows(rows, soql.parse_order(params["$order"], types))
        count_alias = None
        if "$select" in params:
            shown, count_alias = soql.parse_select(params["$select"], types, SYSTEM_FIELDS)
        if count_alias is not None:
            return [{count_alias: str(len(rows))}]
        offset, limit = _non_negative(params, "$offset", 0), _non_negative(params, "$limit", 1000)
        return [self.render(r, shown) for r in rows[offset:offset + limit]]

    def public_rows(self) -> list[dict[str, Any]]:
        """Every row as a default GET shows it, in the default (insertion) order."""
        return [self.render(r, list(self.types)) for r in self.rows.values()]


def _non_negative(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.strip().isdigit():
        raise malformed_query(f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)
