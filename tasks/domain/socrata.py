"""Knack values → Socrata rows for one dataset: pure, no I/O, no Prefect.

The dataset's own metadata (``/api/views``) decides each value's shape, because Socrata rejects the
whole request on one bad value or one unknown key: fields without a column are dropped, booleans and
lists bound for text columns become strings, floating timestamps are sent in the app's wall time, and
addresses become ``point``, ``location`` or ``multipoint`` according to the column type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tasks.domain.errors import ConfigError, SocrataError, SocrataRejectedRows
from tasks.domain.formatting import Address
from tasks.domain.text import as_text

ID_COLUMN = "id"
TEXT_TYPES = frozenset({"text", "html", "email", "phone"})
NUMBER_TYPES = frozenset({"number", "money", "percent"})
GEO_TYPES = frozenset({"point", "location", "multipoint"})


@dataclass(frozen=True)
class SocrataSchema:
    """The columns of one dataset (``fieldName`` → ``dataTypeName``) and its row identifier."""

    resource_id: str
    column_types: Mapping[str, str]
    row_identifier: str | None

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> SocrataSchema:
        """Read ``GET /api/views/{id}.json``; system columns (``:id``, ...) are not writable and left out."""
        columns = [c for c in view.get("columns") or [] if not str(c.get("fieldName", ":")).startswith(":")]
        ident_id = view.get("rowIdentifierColumnId")
        ident = next((c["fieldName"] for c in columns if ident_id is not None and c.get("id") == ident_id), None)
        return cls(str(view.get("id") or ""), {c["fieldName"]: str(c.get("dataTypeName")) for c in columns}, ident)

    def check_publishable(self) -> None:
        """Refuse a dataset whose row identifier is not ``id``: upserts would append duplicates."""
        if self.row_identifier != ID_COLUMN:
            found = f"`{self.row_identifier}`" if self.row_identifier else "none"
            raise ConfigError(f"Socrata dataset {self.resource_id}: the row identifier must be the text column "
                              f"`{ID_COLUMN}` holding the Knack record id (found {found}); set it on the dataset "
                              "before publishing, or every run would add duplicate rows")


def dropped_columns(names: Mapping[str, str], schema: SocrataSchema,
                    append_timestamp_column: str | None = None) -> list[str]:
    """Destination names with no dataset column (sending one would 400 the request); log them once."""
    wanted = [*names.values(), *([append_timestamp_column] if append_timestamp_column else [])]
    return [name for name in wanted if name not in schema.column_types]


def _floating(value: datetime, tz: ZoneInfo) -> str:
    local = value.astimezone(tz) if value.tzinfo else value
    return local.strftime("%Y-%m-%dT%H:%M:%S")


def _fixed(value: datetime, tz: ZoneInfo) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=tz)
    return aware.astimezone(tz).isoformat(timespec="seconds")


def _text(value: Any, tz: ZoneInfo) -> str | None:
    """Text for a text column: dates as the app's wall time."""
    return as_text(value, date=lambda moment: _floating(moment, tz))


def _geometry(value: Address | list[Address], column_type: str, where: str) -> Any:
    located = [a for a in (value if isinstance(value, list) else [value]) if a.located]
    if not located:
        return None  # never (0, 0): an unlocated address has no geometry
    if column_type == "multipoint":
        return {"type": "MultiPoint", "coordinates": [[a.longitude, a.latitude] for a in located]}
    if len(located) > 1:
        raise ConfigError(f"{where}: {len(located)} addresses cannot go into a {column_type} column; "
                          "make the column a multipoint")
    point = located[0]
    if column_type == "point":
        return {"type": "Point", "coordinates": [point.longitude, point.latitude]}
    return {"latitude": point.latitude, "longitude": point.longitude}


def _is_address(value: Any) -> bool:
    return isinstance(value, Address) or (isinstance(value, list) and bool(value)
                                          and all(isinstance(v, Address) for v in value))


def to_socrata_value(value: Any, column_type: str, tz: ZoneInfo, *, located: bool = False,
                     where: str = "") -> Any:
    """One formatted value shaped for a column type; ``located`` allows geometry from addresses."""
    if value is None:
        return None
    if _is_address(value):
        if column_type in GEO_TYPES:
            if not located:
                raise ConfigError(f"{where}: a {column_type} column is fed by an address field missing from "
                                  "location_fields; add the field key there")
            return _geometry(value, column_type, where)
        value = _text(value, tz)
        if value is None:
            return None
    if column_type in TEXT_TYPES:
        return _text(value, tz)
    if column_type in NUMBER_TYPES:
        if isinstance(value, str):
            return value.strip() or None  # a numeric string is accepted as is
        return value
    if column_type == "calendar_date":
        if isinstance(value, datetime):
            return _floating(value, tz)
        return value.isoformat() if isinstance(value, date) else value
    if column_type == "date" and isinstance(value, datetime):
        return _fixed(value, tz)
    if column_type == "url" and isinstance(value, str):
        return {"url": value}
    return value


def to_socrata_row(record_id: str, formatted: Mapping[str, Any], names: Mapping[str, str], schema: SocrataSchema,
                   *, location_fields: Iterable[str], app_tz: ZoneInfo, published_at: datetime | None = None,
                   append_timestamp_column: str | None = None) -> dict[str, Any]:
    """One record as a dataset row: ``id`` first, then each field with a column (see ``dropped_columns``)."""
    located = set(location_fields)
    row: dict[str, Any] = {ID_COLUMN: record_id}
    for key, value in formatted.items():
        name = names.get(key)
        if name is None or name not in schema.column_types or name == ID_COLUMN:
            continue
        where = f"Socrata dataset {schema.resource_id}, column {name} (field {key}), record {record_id}"
        row[name] = to_socrata_value(value, schema.column_types[name], app_tz, located=key in located,
                                     where=where)
    if append_timestamp_column and append_timestamp_column in schema.column_types:
        if published_at is None:
            raise ValueError("published_at is required when append_timestamp_column is set")
        row[append_timestamp_column] = to_socrata_value(published_at, schema.column_types[append_timestamp_column],
                                                        app_tz)
    return row


def deleted_row(record_id: str) -> dict[str, Any]:
    """The upsert row that deletes one record (``id`` is every dataset's row identifier)."""
    return {ID_COLUMN: record_id, ":deleted": True}


def upsert_counts(result: Any, resource_id: str) -> dict[str, int]:
    """Socrata's upsert summary as ``created/updated/deleted/errors``; keys read with defaults (4 or 6 keys)."""
    if not isinstance(result, Mapping):
        raise SocrataError(f"Socrata dataset {resource_id}: unexpected upsert reply {type(result).__name__}")
    return {name: int(result.get(key) or 0) for name, key in (
        ("created", "Rows Created"), ("updated", "Rows Updated"), ("deleted", "Rows Deleted"), ("errors", "Errors"))}


def check_upsert_result(result: Any, ids: Iterable[str], resource_id: str) -> dict[str, int]:
    """Raise ``SocrataRejectedRows`` when the summary reports row errors; else return the counts.

    Socrata answers 200 even when rows failed, and does not say which: the error names the batch's ids.
    """
    counts = upsert_counts(result, resource_id)
    if counts["errors"] > 0:
        ids = list(ids)
        raise SocrataRejectedRows(resource_id, ids, f"{counts['errors']} row error(s) in a batch of {len(ids)} "
                                                    f"(created {counts['created']}, updated {counts['updated']}, "
                                                    f"deleted {counts['deleted']})")
    return counts
