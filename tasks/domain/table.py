"""Knack values → typed rows of a container's analytics table (Delta Lake): pure, no I/O, no Prefect.

One column per published field, named like the Socrata columns (``destination_names``), typed from the
Knack field type so that DuckDB, Polars, pandas, Spark and Athena read real types:

- numbers (number, currency, rating, equation, auto increment, sums, ...) → ``double``;
- date/time → ``timestamp[us, UTC]`` (Knack's local wall time read in the app's timezone);
- yes/no → ``bool``; multiple choice and connections → ``list<string>``;
- address → ``struct<text, latitude, longitude>`` (coordinates as numbers, null when not geocoded);
- everything else (text, names, emails, links, phones, files, images, ...) → ``string``.

Plus ``id`` (the Knack record id, the merge key), ``_knack_modified`` (the record's modified instant)
and ``_synced_at`` (when the run that wrote the row started).

``table_row_digest`` is the drift audit's digest of a row: the same for the row a run writes and the row
read back from the table, ``_synced_at`` left out (it changes every run).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from tasks.domain.errors import ConfigError
from tasks.domain.formatting import NUMERIC, Address, ContainerSchema
from tasks.domain.text import as_text

ID_COLUMN = "id"
MODIFIED_COLUMN = "_knack_modified"
SYNCED_COLUMN = "_synced_at"
SYSTEM_COLUMNS = (ID_COLUMN, MODIFIED_COLUMN, SYNCED_COLUMN)
PER_RUN_COLUMNS = frozenset({SYNCED_COLUMN})  # set by every run whatever the record: not in a row's digest

TIMESTAMP = pa.timestamp("us", tz="UTC")
ADDRESS = pa.struct([("text", pa.string()), ("latitude", pa.float64()), ("longitude", pa.float64())])
LIST = pa.list_(pa.string())


def column_type(knack_type: str) -> pa.DataType:
    """The Arrow type of a Knack field type's column."""
    if knack_type in NUMERIC:
        return pa.float64()
    if knack_type == "date_time":
        return TIMESTAMP
    if knack_type == "boolean":
        return pa.bool_()
    if knack_type == "address":
        return ADDRESS
    if knack_type in ("multiple_choice", "connection"):
        return LIST
    return pa.string()


def table_schema(schema: ContainerSchema, names: Mapping[str, str]) -> pa.Schema:
    """``id``, one column per published field (in the container's order), then the modified and sync times."""
    taken = {name: key for key, name in names.items()}
    for system in SYSTEM_COLUMNS[1:]:
        if system in taken:
            raise ConfigError(f"{schema.container}: field {taken[system]} becomes column {system!r}, which the "
                              f"analytics table keeps for itself; add a socrata_field_map entry for it")
    fields = [pa.field(ID_COLUMN, pa.string(), nullable=False)]
    fields += [pa.field(names[f.key], column_type(f.type)) for f in schema.fields if f.key in names]
    fields += [pa.field(MODIFIED_COLUMN, TIMESTAMP), pa.field(SYNCED_COLUMN, TIMESTAMP)]
    return pa.schema(fields)


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:  # formatting gives aware instants; a naive one is taken as UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _address(value: Any) -> dict[str, Any] | None:
    """One address as the struct; several (a view pulling them from connected records) as one struct
    with their texts joined by "; " and the coordinates of the first geocoded one."""
    addresses = [a for a in (value if isinstance(value, list) else [value]) if isinstance(a, Address)]
    if not addresses:
        return None
    located = next((a for a in addresses if a.located), None)
    text = "; ".join(a.text for a in addresses if a.text) or None
    return {"text": text, "latitude": located.latitude if located else None,
            "longitude": located.longitude if located else None}


def to_table_value(value: Any, kind: pa.DataType) -> Any:
    """One formatted value (``format_value``) as its column type wants it."""
    if value is None:
        return None
    if kind == ADDRESS:
        return _address(value)
    if kind == TIMESTAMP:
        return _utc(value)
    if kind == LIST:
        items = value if isinstance(value, list) else [value]
        return [str(v) for v in items if v is not None] or None
    if pa.types.is_floating(kind):
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if pa.types.is_boolean(kind):
        return value if isinstance(value, bool) else None
    return as_text(value, date=lambda moment: moment.isoformat())


def to_table_row(record_id: str, formatted: Mapping[str, Any], names: Mapping[str, str], schema: pa.Schema,
                 *, modified_field: str, synced_at: datetime) -> dict[str, Any]:
    """One record as a table row: every column of ``schema``, missing values null."""
    row: dict[str, Any] = {name: None for name in schema.names}
    row[ID_COLUMN] = record_id
    for key, value in formatted.items():
        name = names.get(key)
        if name is not None and name in row and name not in SYSTEM_COLUMNS:
            row[name] = to_table_value(value, schema.field(name).type)
    row[MODIFIED_COLUMN] = _utc(formatted.get(modified_field))
    row[SYNCED_COLUMN] = _utc(synced_at)
    return row


def schema_drift(stored: Mapping[str, str] | None, wanted: Mapping[str, str]) -> list[str]:
    """Columns of the stored table (name → type) that the wanted ones drop or type differently (a renamed,
    removed or retyped field): such a table is rewritten whole. Columns only ``wanted`` has are merged in."""
    drift = []
    for name, kind in (stored or {}).items():
        if name not in wanted:
            drift.append(f"{name} (no longer a column)")
        elif wanted[name] != kind:
            drift.append(f"{name} ({kind} → {wanted[name]})")
    return drift


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def canonical_table_value(value: Any) -> Any:
    """A typed table value (as ``to_table_row`` gives it, or as pyarrow reads it back) in one JSON form:
    timestamps as epoch microseconds (a naive one taken as UTC), numbers as floats (not-a-number and the
    infinities as text), booleans, text as it is, lists item by item, structs field by field."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else repr(number)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _MICROSECOND
    if isinstance(value, Mapping):
        return {str(k): canonical_table_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical_table_value(v) for v in value]
    raise TypeError(f"no canonical form for a table value of type {type(value).__name__}")


def table_row_digest(row: Mapping[str, Any]) -> str:
    """The digest of a table row: its non-null columns but the per-run ones, in canonical form."""
    body = {name: canonical_table_value(value) for name, value in row.items()
            if value is not None and name not in PER_RUN_COLUMNS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
