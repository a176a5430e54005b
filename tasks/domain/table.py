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

Types and batches are built with ``arro3.core``, the Arrow library delta-rs itself depends on (the Arrow
PyCapsule interface carries them to it): no pyarrow at run time.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from arro3.core import Array, DataType, Field, RecordBatch, Schema, list_array, struct_array

from tasks.domain.errors import ConfigError
from tasks.domain.formatting import NUMERIC, Address, ContainerSchema
from tasks.domain.text import as_text

ID_COLUMN = "id"
MODIFIED_COLUMN = "_knack_modified"
SYNCED_COLUMN = "_synced_at"
SYSTEM_COLUMNS = (ID_COLUMN, MODIFIED_COLUMN, SYNCED_COLUMN)
PER_RUN_COLUMNS = frozenset({SYNCED_COLUMN})  # set by every run whatever the record: not in a row's digest

STRING = DataType.string()
DOUBLE = DataType.float64()
BOOL = DataType.bool()
TIMESTAMP = DataType.timestamp("us", tz="UTC")
ADDRESS = DataType.struct([Field("text", STRING), Field("latitude", DOUBLE), Field("longitude", DOUBLE)])
LIST = DataType.list(Field("item", STRING))


def column_type(knack_type: str) -> DataType:
    """The Arrow type of a Knack field type's column."""
    if knack_type in NUMERIC:
        return DOUBLE
    if knack_type == "date_time":
        return TIMESTAMP
    if knack_type == "boolean":
        return BOOL
    if knack_type == "address":
        return ADDRESS
    if knack_type in ("multiple_choice", "connection"):
        return LIST
    return STRING


def table_schema(schema: ContainerSchema, names: Mapping[str, str]) -> Schema:
    """``id``, one column per published field (in the container's order), then the modified and sync times."""
    taken = {name: key for key, name in names.items()}
    for system in SYSTEM_COLUMNS[1:]:
        if system in taken:
            raise ConfigError(f"{schema.container}: field {taken[system]} becomes column {system!r}, which the "
                              f"analytics table keeps for itself; add a socrata_field_map entry for it")
    fields = [Field(ID_COLUMN, STRING, nullable=False)]
    fields += [Field(names[f.key], column_type(f.type)) for f in schema.fields if f.key in names]
    fields += [Field(MODIFIED_COLUMN, TIMESTAMP), Field(SYNCED_COLUMN, TIMESTAMP)]
    return Schema(fields)


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


def to_table_value(value: Any, kind: DataType) -> Any:
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
    if DataType.is_floating(kind):
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if DataType.is_boolean(kind):
        return value if isinstance(value, bool) else None
    return as_text(value, date=lambda moment: moment.isoformat())


def to_table_row(record_id: str, formatted: Mapping[str, Any], names: Mapping[str, str], schema: Schema,
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


def to_record_batch(rows: list[dict[str, Any]], schema: Schema) -> RecordBatch:
    """Rows (``to_table_row``) as one Arrow record batch of ``schema``; a value of the wrong type (or a null
    ``id``) raises, naming its column."""
    columns = []
    for field in (schema.field(i) for i in range(len(schema))):
        try:
            columns.append(_column([row.get(field.name) for row in rows], field.type))
        except Exception as exc:  # noqa: BLE001 - arro3 raises its own kinds
            raise TypeError(f"analytics table column {field.name!r}: {exc}") from None
    try:
        return RecordBatch.from_arrays(columns, schema=schema)
    except Exception as exc:  # noqa: BLE001 - a null id, which the schema refuses
        raise TypeError(f"analytics table rows: {exc}") from None


def _column(values: list[Any], kind: DataType) -> Array:
    """One column's values as an Arrow array of ``kind`` (None is null): built from Python values for the
    flat types, from offsets and children for lists and structs, from epoch microseconds for timestamps."""
    nulls = Array([v is None for v in values], type=BOOL)
    if DataType.is_timestamp(kind):
        if any(v is not None and not isinstance(v, datetime) for v in values):
            raise TypeError("a timestamp column takes datetimes only")
        micros = [None if v is None else canonical_table_value(v) for v in values]
        return Array(micros, type=DataType.int64()).cast(kind)
    if DataType.is_list(kind):
        assert kind.value_field is not None
        offsets, items = [0], []
        for value in values:
            if value is not None:
                if not isinstance(value, list | tuple):
                    raise TypeError(f"a list column takes lists, not {type(value).__name__}")
                items.extend(value)
            offsets.append(len(items))
        return list_array(Array(offsets, type=DataType.int32()), _column(items, kind.value_field.type),
                          type=kind, mask=nulls)
    if DataType.is_struct(kind):
        if any(v is not None and not isinstance(v, Mapping) for v in values):
            raise TypeError("a struct column takes mappings only")
        children = [_column([None if v is None else v.get(f.name) for v in values], f.type) for f in kind.fields]
        return struct_array(children, fields=kind.fields, type=kind, mask=nulls)
    return Array(values, type=kind)


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
    """A typed table value (as ``to_table_row`` gives it, or as read back from the table) in one JSON form:
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
