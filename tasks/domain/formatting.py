"""Knack record → plain Python values per field, driven by the app metadata stored next to the records.

Destinations (Socrata rows, ArcGIS features) are built from these values, so every Knack quirk is
handled once here: empty values as ``""`` with no ``_raw`` key, ``[None]`` multi-selects, local wall
time disguised as UTC, lat/long as numbers, numeric strings or ``""``, values arriving as arrays when a
view pulls a field from connected records. String-valued types use knackpy's own formatters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from knackpy import formatters as kp

from tasks.domain.errors import ConfigError
from tasks.domain.knack import knack_instant, resolve_timezone

NUMERIC = frozenset({"number", "currency", "rating", "equation", "auto_increment",
                     "sum", "average", "count", "min", "max"})
SKIPPED = frozenset({"password", "user_roles"})  # never published
_KNACKPY_STRING = {"email": kp.email, "link": kp.link, "phone": kp.phone, "image": kp.image,
                   "file": kp.file, "signature": kp.signature}


@dataclass(frozen=True)
class FieldInfo:
    """One Knack field as the metadata describes it."""

    key: str
    label: str
    type: str


@dataclass(frozen=True)
class Address:
    """An address value: its one-line text and, when geocoded, its coordinates."""

    text: str | None
    latitude: float | None
    longitude: float | None

    @property
    def located(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(frozen=True)
class ContainerSchema:
    """The fields of one object or view, and the app's timezone."""

    container: str
    fields: tuple[FieldInfo, ...]
    timezone: ZoneInfo

    def field(self, key: str) -> FieldInfo | None:
        return next((f for f in self.fields if f.key == key), None)


def _application(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    return metadata.get("application", metadata)


def _view_field_keys(view: Mapping[str, Any]) -> list[str]:
    keys: list[str] = []
    if view.get("type") == "details":
        for column in view.get("columns") or []:
            for group in column.get("groups") or []:
                for col in group.get("columns") or []:
                    keys.extend(key for item in col if isinstance(item, dict) and (key := item.get("key")))
    else:
        for column in view.get("columns") or []:
            field = column.get("field")
            if isinstance(field, dict) and field.get("key"):
                keys.append(field["key"])
    return list(dict.fromkeys(keys))  # a field may be listed twice


def container_schema(metadata: Mapping[str, Any], container_key: str) -> ContainerSchema:
    """The schema of an object (its fields, in order) or a view (the fields it shows, in order)."""
    app = _application(metadata)
    tz = resolve_timezone(str((app.get("settings") or {}).get("timezone") or "UTC"))
    by_key: dict[str, FieldInfo] = {}
    for obj in app.get("objects") or []:
        for f in obj.get("fields") or []:
            by_key[f["key"]] = FieldInfo(f["key"], str(f.get("name") or f["key"]), str(f.get("type")))
        if obj.get("key") == container_key:
            keys = [f["key"] for f in obj.get("fields") or []]
            return ContainerSchema(container_key, tuple(by_key[k] for k in keys), tz)
    for scene in app.get("scenes") or []:
        for view in scene.get("views") or []:
            if view.get("key") == container_key:
                keys = [k for k in _view_field_keys(view) if k in by_key]
                return ContainerSchema(container_key, tuple(by_key[k] for k in keys), tz)
    raise ConfigError(f"container {container_key!r} is not an object or view of app {app.get('name')!r}")


def renamed_fields(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """``object_1.field_4 'Notes' → 'Remarks'`` for every field whose label changed between two metadata."""
    def labels(metadata: Mapping[str, Any] | None) -> dict[str, str]:
        app = _application(metadata or {})
        return {f"{obj.get('key')}.{fld.get('key')}": str(fld.get("name"))
                for obj in app.get("objects") or [] for fld in obj.get("fields") or []}

    before, after = labels(old), labels(new)
    return [f"{key} {before[key]!r} → {after[key]!r}" for key in sorted(before.keys() & after.keys())
            if before[key] != after[key]]


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    text = str(value).replace(",", "").replace("$", "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() and "." not in text else number


def _coordinate(value: Any, low: float, high: float) -> float | None:
    number = _number(value)
    if number is None or not (low <= float(number) <= high):
        return None
    return float(number)


def to_address(raw: Any) -> Address | None:
    """One raw address dict → Address; lat/long parsed defensively (out of range means not located)."""
    if not isinstance(raw, Mapping):
        return None
    lat = _coordinate(raw.get("latitude"), -90, 90)
    lon = _coordinate(raw.get("longitude"), -180, 180)
    if lat is None or lon is None:
        lat = lon = None
    return Address(kp.address(dict(raw)), lat, lon)


def _date(raw: Any, tz: ZoneInfo) -> datetime | None:
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    if not isinstance(raw, Mapping) or raw.get("unix_timestamp") in (None, ""):
        return None
    return knack_instant(raw, tz).astimezone(tz)


def _list_of_strings(values: list[Any]) -> list[str] | None:
    cleaned = [str(v) for v in values if v not in (None, "")]
    return cleaned or None


def format_value(field: FieldInfo, formatted: Any, raw: Any, tz: ZoneInfo) -> Any:
    """One field's value as a plain Python value (see the module docstring)."""
    kind = field.type
    value = raw if raw is not None else formatted
    if value in ("", None, []) or kind in SKIPPED:
        return None
    if kind == "address":
        if isinstance(value, list):
            return [a for a in (to_address(v) for v in value) if a is not None] or None
        return to_address(value)
    if kind == "date_time":
        return _date(value, tz)
    if kind == "connection":
        items = value if isinstance(value, list) else [value]
        return _list_of_strings([i.get("identifier") if isinstance(i, Mapping) else i for i in items])
    if kind == "multiple_choice":
        return _list_of_strings(value) if isinstance(value, list) else str(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        return {"yes": True, "true": True, "no": False, "false": False}.get(str(value).strip().lower())
    if kind in NUMERIC:
        return _number(value)
    if kind in ("name", "timer"):  # Knack's own text reads best for these
        return kp.timer(str(formatted)) if kind == "timer" and formatted else (formatted or None)
    if kind in _KNACKPY_STRING:
        items = value if isinstance(value, list) else [value]
        texts = [kp_value for kp_value in (_KNACKPY_STRING[kind](v) for v in items) if kp_value]
        return ", ".join(str(t) for t in texts) or None
    if isinstance(value, list):
        return ", ".join(str(v) for v in value if v is not None) or None
    return value if isinstance(value, str | int | float | bool) else str(value)


def format_record(record: Mapping[str, Any], schema: ContainerSchema) -> dict[str, Any]:
    """Every field of the container → its plain value (fields missing from the record are None)."""
    return {f.key: format_value(f, record.get(f.key), record.get(f"{f.key}_raw"), schema.timezone)
            for f in schema.fields}


_NON_WORD = re.compile(r"[^a-z0-9]+")


def destination_field_name(label: str) -> str:
    """"Date/Time - Start" → ``date_time_start``; a field labelled "ID" → ``_id`` (``id`` is the record id)."""
    name = _NON_WORD.sub("_", label.lower()).strip("_")
    if name == "id":
        return "_id"
    return name or "_"


def destination_names(schema: ContainerSchema, field_map: Mapping[str, str] | None = None) -> dict[str, str]:
    """Field key → destination column name; the field map (by field key) overrides the derived name."""
    field_map = field_map or {}
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    for f in schema.fields:
        if f.type in SKIPPED:
            continue
        name = field_map.get(f.key) or destination_field_name(f.label)
        if name == "id":
            raise ConfigError(f"{schema.container}: field {f.key} ({f.label!r}) cannot be published as 'id': "
                              "that column holds the Knack record id")
        if name in owner:
            raise ConfigError(
                f"{schema.container}: fields {owner[name]} and {f.key} ({f.label!r}) both become column "
                f"{name!r}; add a socrata_field_map entry for one of them, e.g. {f.key}: {name}_2"
            )
        owner[name] = f.key
        names[f.key] = name
    return names
