"""Column types: what a write may send for each ``dataTypeName``, how it is stored, how reads show it.

Follows socrata-api.md §5. Numbers are kept as ``Decimal`` (the request body is parsed with
``parse_float=Decimal``) so that ``12.50`` reads back as ``"12.50"`` without float noise.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

NUMERIC_TYPES = frozenset({"number", "money", "percent"})
GEO_TYPES = frozenset({"point", "multipoint", "location"})
SUPPORTED_TYPES = frozenset({"text", "checkbox", "calendar_date", "date", "url"}) | NUMERIC_TYPES | GEO_TYPES

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_STAMP = r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
_FLOATING = re.compile(rf"^{_STAMP}$")
_FIXED = re.compile(rf"^{_STAMP}(Z|[+-]\d{{2}}:?\d{{2}})$")
_WKT_POINT = re.compile(r"^\s*POINT\s*\(\s*(\S+)\s+(\S+)\s*\)\s*$", re.IGNORECASE)
_WKT_MULTIPOINT = re.compile(r"^\s*MULTIPOINT\s*\((.*)\)\s*$", re.IGNORECASE)
_LOCATION_TEXT = re.compile(r"^\s*\(\s*(\S+?)\s*,\s*(\S+?)\s*\)\s*$")
_EMPTY_ADDRESS = json.dumps({"address": "", "city": "", "state": "", "zip": ""})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def to_decimal(value: Any) -> Decimal:
    """A JSON number or numeric string as a Decimal; ``""``, ``"N/A"``, booleans and NaN are refused."""
    if _is_number(value):
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str) and _NUMBER.match(value.strip()):
        number = Decimal(value.strip())
    else:
        raise ValueError(f"{json.dumps(value, default=str)} is not a number")
    if not number.is_finite():
        raise ValueError("a number must be finite")
    return number


def number_text(number: Decimal) -> str:
    """A Decimal as SODA prints numbers: plain notation, as precise as it was sent."""
    return format(number, "f")


def _coordinate(value: Any) -> float:
    if not _is_number(value):
        raise ValueError(f"coordinate {json.dumps(value, default=str)} is not a number")
    return float(value)


def _timestamp(value: Any, fixed: bool) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{json.dumps(value, default=str)} is not an ISO 8601 string")
    match = (_FIXED if fixed else _FLOATING).match(value)
    if not match:
        need = "with a Z or an offset" if fixed else "without an offset (floating timestamp)"
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp {need}")
    year, month, day, hour, minute, second, fraction = match.groups()[:7]
    micros = int((fraction or "0")[:3].ljust(3, "0")) * 1000  # SODA keeps milliseconds
    stamp = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micros)
    if not fixed:
        return stamp
    offset = match.group(8)
    if offset == "Z":
        return stamp.replace(tzinfo=UTC)
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return stamp.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)


def _point(value: Any) -> tuple[float, float]:
    if isinstance(value, str):
        match = _WKT_POINT.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a WKT POINT")
        return (float(to_decimal(match.group(1))), float(to_decimal(match.group(2))))
    if not isinstance(value, dict) or value.get("type") != "Point":
        raise ValueError("a point is a GeoJSON Point object or a WKT POINT string")
    coords = value.get("coordinates")
    if not isinstance(coords, list) or len(coords) != 2:
        raise ValueError("a Point needs coordinates [longitude, latitude]")
    return (_coordinate(coords[0]), _coordinate(coords[1]))


def _multipoint(value: Any) -> tuple[tuple[float, float], ...]:
    if isinstance(value, str):
        match = _WKT_MULTIPOINT.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a WKT MULTIPOINT")
        pairs = [p.strip().strip("()").split() for p in match.group(1).split(",")]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"{value!r} is not a WKT MULTIPOINT")
        return tuple((float(to_decimal(x)), float(to_decimal(y))) for x, y in pairs)
    if not isinstance(value, dict) or value.get("type") != "MultiPoint":
        raise ValueError("a multipoint is a GeoJSON MultiPoint object or a WKT MULTIPOINT string")
    coords = value.get("coordinates")
    if not isinstance(coords, list) or any(not isinstance(c, list) or len(c) != 2 for c in coords):
        raise ValueError("a MultiPoint needs coordinates [[longitude, latitude], ...]")
    return tuple((_coordinate(c[0]), _coordinate(c[1])) for c in coords)


def _location(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        match = _LOCATION_TEXT.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a '(latitude, longitude)' string")
        value = {"latitude": match.group(1), "longitude": match.group(2)}
    if not isinstance(value, dict) or set(value) - {"latitude", "longitude", "human_address"}:
        raise ValueError("a location is an object with latitude, longitude and optional human_address")
    lat, lon, address = value.get("latitude"), value.get("longitude"), value.get("human_address")
    if (lat is None) != (lon is None) or (lat is None and address is None):
        raise ValueError("a location needs both latitude and longitude, or a human_address")
    if isinstance(address, dict):
        address = json.dumps(address)
    elif address is not None and not isinstance(address, str):
        raise ValueError("human_address must be an object or a JSON string")
    return {"latitude": None if lat is None else to_decimal(lat),
            "longitude": None if lon is None else to_decimal(lon),
            "human_address": address or _EMPTY_ADDRESS}


def _url(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value or set(value) - {"url", "description"}:
        raise ValueError('a url is an object {"url": ..., "description": ...}')
    if any(not isinstance(v, str) for v in value.values()):
        raise ValueError("url and description must be strings")
    return dict(value)


def parse_value(type_name: str, value: Any) -> Any:
    """Validate one written value for a column type and return its stored form (None stays None)."""
    if value is None:
        return None
    if type_name == "text":
        if not isinstance(value, str):
            raise ValueError(f"{json.dumps(value, default=str)} is not a string")
        return value
    if type_name in NUMERIC_TYPES:
        return to_decimal(value)
    if type_name == "checkbox":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValueError(f"{json.dumps(value, default=str)} is not true or false")
    if type_name in ("calendar_date", "date"):
        return _timestamp(value, fixed=type_name == "date")
    parser = {"point": _point, "multipoint": _multipoint, "location": _location, "url": _url}[type_name]
    return parser(value)


def render_value(type_name: str, stored: Any) -> Any:
    """A stored value as a JSON read returns it: numbers as strings, timestamps with milliseconds."""
    if type_name in NUMERIC_TYPES:
        return number_text(stored)
    if type_name == "calendar_date":
        return stored.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stored.microsecond // 1000:03d}"
    if type_name == "date":
        return stored.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stored.microsecond // 1000:03d}Z"
    if type_name == "point":
        return {"type": "Point", "coordinates": list(stored)}
    if type_name == "multipoint":
        return {"type": "MultiPoint", "coordinates": [list(p) for p in stored]}
    if type_name == "location":
        shown = {k: number_text(stored[k]) for k in ("latitude", "longitude") if stored[k] is not None}
        return {**shown, "human_address": stored["human_address"]}
    if type_name == "url":
        return dict(stored)
    return stored


def row_key(type_name: str, stored: Any) -> str:
    """The canonical text of a row-identifier value, so ``"7"``, ``7`` and ``7.0`` find the same row."""
    if type_name in NUMERIC_TYPES:
        return number_text(stored.normalize()) if stored != 0 else "0"
    return str(stored)


def parse_literal(type_name: str, literal: Any) -> Any:
    """A SoQL literal (str, Decimal or bool) turned into a column's stored form for comparison."""
    if type_name in GEO_TYPES or type_name == "url":
        raise ValueError(f"cannot compare a {type_name} column in this emulator")
    if type_name == "text" and not isinstance(literal, str):
        raise ValueError("a text column compares with a quoted string")
    if type_name in NUMERIC_TYPES and isinstance(literal, bool):
        raise ValueError("a number column compares with a number")
    if type_name == "checkbox" and isinstance(literal, str):
        literal = literal.lower()
    if type_name == "date" and isinstance(literal, str) and _FLOATING.match(literal):
        literal += "Z"  # a floating literal against a fixed column is read as UTC
    return parse_value(type_name, literal)


def orderable(type_name: str) -> bool:
    """Whether ``$order`` and range comparisons make sense on the column type."""
    return type_name not in GEO_TYPES and type_name != "url"
